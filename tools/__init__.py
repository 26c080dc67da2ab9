"""Built-in tools, ready to hand to an :class:`~agentkit.Agent`.

``get_current_time`` tells the time in any IANA time zone; ``get_current_weather`` asks
Open-Meteo (no API key needed) for the current weather in a city::

    from agentkit import Agent
    from agentkit.tools import BUILTIN_TOOLS

    agent = Agent("qwen-plus", tools=BUILTIN_TOOLS)
    print(agent.run("What's the weather in Hangzhou, and what time is it there?").output)
"""

from __future__ import annotations

from .clock import get_current_time
from .weather import get_current_weather

__all__ = ["BUILTIN_TOOLS", "get_current_time", "get_current_weather"]

BUILTIN_TOOLS = (get_current_time, get_current_weather)
"""Both built-in tools, in the order the seed's example declares them."""
