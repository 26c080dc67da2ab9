"""Cost estimates from a price table the user passes (agentkit ships no prices).

Prices change and differ by region, tier and contract, so agentkit never guesses them::

    from agentkit import ModelPrice

    prices = {"qwen-plus": ModelPrice(input=0.4, output=1.2, cached_input=0.08)}
    price = ModelPrice.lookup(prices, "qwen-plus-2025-07-28")  # prefix match
    if price is not None:
        print(f"{result.usage.cost(price):.4f}")
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._errors import ConfigurationError

if TYPE_CHECKING:
    from ._wire import Usage

__all__ = ["ModelPrice"]

_PER = 1_000_000


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """What one model's tokens cost, per million tokens, in any currency you like.

    Attributes:
        input: an input (prompt) token that was not served from a cache.
        output: an output token; reasoning tokens are output tokens and cost the same.
        cached_input: an input token served from the provider's cache (``None``: the
            ``input`` price). DashScope bills an explicit-cache hit at 10% of the input
            price and an implicit one at 20%; OpenAI at 50% or less.
        cache_creation: an input token written to DashScope's explicit context cache
            (``None``: the ``input`` price; DashScope bills it at 125%).
    """

    input: float
    output: float
    cached_input: float | None = None
    cache_creation: float | None = None

    def __post_init__(self) -> None:
        for name in ("input", "output", "cached_input", "cache_creation"):
            value = getattr(self, name)
            if value is None and name in ("cached_input", "cache_creation"):
                continue
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigurationError(
                    f"ModelPrice.{name} must be a finite number >= 0, got {value!r}"
                )

    def cost(self, usage: Usage) -> float:
        """The estimated cost of ``usage`` at these prices."""
        cached = usage.cached_tokens
        created = usage.cache_creation_tokens
        plain = max(usage.prompt_tokens - cached - created, 0)
        cached_price = self.input if self.cached_input is None else self.cached_input
        created_price = self.input if self.cache_creation is None else self.cache_creation
        return (
            plain * self.input
            + cached * cached_price
            + created * created_price
            + usage.completion_tokens * self.output
        ) / _PER

    @staticmethod
    def lookup(prices: Mapping[str, ModelPrice], model: str) -> ModelPrice | None:
        """The price of ``model`` in ``prices``: its exact name, else the longest name it
        starts with followed by ``-`` (``qwen-plus`` prices ``qwen-plus-2025-07-28``), else
        ``None``."""
        exact = prices.get(model)
        if exact is not None:
            return exact
        best: str | None = None
        for name in prices:
            if model.startswith(name + "-") and (best is None or len(name) > len(best)):
                best = name
        return None if best is None else prices[best]
