"""The built-in time tool: the current time in any IANA time zone, or the local one."""

from __future__ import annotations

import re
import zoneinfo
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as fixed_offset
from functools import cache

from agentkit._errors import ToolRetry
from agentkit._tool import tool

__all__ = ["get_current_time"]

# Models often write offsets instead of zone names ("UTC+8", "GMT-05:30"); accept them.
_OFFSET = re.compile(r"(?:UTC|GMT)\s*([+-])(\d{1,2})(?::?(\d{2}))?", re.IGNORECASE)


@tool
def get_current_time(timezone: str | None = None) -> str:
    """Get the current date and time, optionally in a given time zone.

    Args:
        timezone: An IANA time zone name such as "Asia/Shanghai", "Europe/London" or
            "America/New_York" (or an offset such as "UTC+8"). Leave it out for the
            local time of the machine running the tool.
    """
    if timezone is None or not timezone.strip():
        now = datetime.now().astimezone()
        return f"It is {_format(now)} local time ({_utc_offset(now)}, {now.tzname()})."
    zone = _zone(timezone.strip())
    if zone is None:
        raise ToolRetry(
            f"Unknown time zone {timezone!r}. Use an IANA time zone name of the form "
            '"Area/City", for example "Asia/Shanghai", "Europe/Paris" or "UTC".'
        )
    now = datetime.now(zone)
    return f"It is {_format(now)} in {zone} ({_utc_offset(now)})."


def _zone(name: str) -> tzinfo | None:
    """The zone for ``name``: exact IANA key, the same key in other case, or a UTC offset."""
    match = _OFFSET.fullmatch(name)
    if match:
        sign, hours, minutes = match.groups()
        offset = timedelta(hours=int(hours), minutes=int(minutes or 0))
        if offset > timedelta(hours=14):
            return None
        return fixed_offset(-offset if sign == "-" else offset, name.upper().replace(" ", ""))
    key = _keys_by_lower_case().get(name.lower(), name)
    try:
        return zoneinfo.ZoneInfo(key)
    except (ValueError, KeyError, OSError):  # unknown key, a path, a file that is not TZif
        return None


@cache
def _keys_by_lower_case() -> dict[str, str]:
    # Listing every zone reads the tz database (tens of ms): done once, on first use.
    return {key.lower(): key for key in zoneinfo.available_timezones()}


def _format(now: datetime) -> str:
    return now.strftime("%A %Y-%m-%d %H:%M:%S")


def _utc_offset(now: datetime) -> str:
    offset = now.strftime("%z")  # "+0800"
    return f"UTC{offset[:3]}:{offset[3:]}"
