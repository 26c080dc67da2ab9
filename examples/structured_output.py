"""Structured output: the answer is a validated pydantic object, not text to parse.

A support inbox triage: each email becomes a ``Ticket`` the rest of the system can route.
agentkit asks the model for JSON matching the model's schema (``response_format`` where the
provider supports it, a final-answer tool otherwise), validates it, and lets the model
correct an answer that does not fit.

    export DASHSCOPE_API_KEY=sk-...
    python examples/structured_output.py "My order 1002 arrived broken, I want my money back!"
"""

from __future__ import annotations

import argparse
import sys
from typing import Literal

from pydantic import BaseModel, Field

from agentkit import Agent, AgentKitError


class Ticket(BaseModel):
    """A support ticket made from one customer email."""

    category: Literal["shipping", "refund", "cancellation", "product question", "other"]
    urgency: int = Field(ge=1, le=5, description="1 = whenever, 5 = the customer is furious")
    order_id: int | None = Field(None, description="The order number, if the email gives one")
    summary: str = Field(description="One sentence for the support team")


def triage(email: str, model: str = "qwen-plus", base_url: str | None = None) -> Ticket:
    """Turn an email into a :class:`Ticket`."""
    with Agent(
        model,
        instructions="Triage customer emails for the support team of a web shop.",
        output_type=Ticket,
        base_url=base_url,
    ) as agent:
        return agent.run(email).output


def main(argv: list[str] | None = None) -> None:
    """Triage the email given on the command line (or on stdin) and print the ticket."""
    parser = argparse.ArgumentParser(description="Triage a customer email into a ticket.")
    parser.add_argument("email", nargs="*", help="the email text (default: read stdin)")
    parser.add_argument("--model", default="qwen-plus", help="the model (qwen-plus)")
    parser.add_argument(
        "--base-url",
        help="any OpenAI-compatible server, such as http://localhost:8000/v1 "
        "(default: $AGENTKIT_BASE_URL, else DashScope with $DASHSCOPE_API_KEY)",
    )
    args = parser.parse_args(argv)

    email = " ".join(args.email) or sys.stdin.read()
    ticket = triage(email, args.model, args.base_url)
    print(ticket.model_dump_json(indent=2))
    if ticket.urgency >= 4:
        print(f"-> paging the on-call agent about a {ticket.category} ticket", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except AgentKitError as exc:
        sys.exit(f"{type(exc).__name__}: {exc}")
