"""The string forms the validator reads, as regular expressions for JSON Schema.

JSON Schema treats ``format`` as a note only; a ``pattern`` is checked. So the full schema
of a tool (``validation_parameters``) carries, beside each ``format``, a pattern that
accepts exactly the strings pydantic's strict JSON mode reads: dates (calendar-exact: month
lengths, 29 February in leap years only), times, durations, UUIDs, IP addresses, URLs and
decimals. No pattern uses lookaround, so strict mode can keep them.
"""

from __future__ import annotations

import re

from pydantic_core import core_schema

__all__ = [
    "ANY_URL",
    "DECIMAL_DIGITS",
    "DURATION_MATCH",
    "HOST_SCHEMES",
    "INTEGER_KEY_PATTERN",
    "PATTERNS",
    "POSITIVE_DECIMAL",
    "URL_WITH_HOST",
    "decimal_pattern",
]

_YEAR = "([0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"  # 0001 to 9999
_LEAP_YEAR = "([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])"
    "|(0[469]|11)-(0[1-9]|[12][0-9]|30)"
    "|02-(0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = f"({_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_OFFSET = "([Zz]|[+-]([01][0-9]|2[0-3]):?[0-5][0-9])?"
_TIME = "([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.,][0-9]+)?)?" + _OFFSET
# ISO 8601 (P1DT2H, PT1.5H) or the clock form (1 day, 01:30:00). ISO components in the
# usual order, each at most once and at least one, a fraction on the last one only, and
# numbers no longer than the validator takes. Six digits per unit keep every duration the
# pattern describes within a timedelta. pydantic also reads rarer spellings (P1D1D, P1D2Y,
# P3D3DT) and durations beyond a million years; _schema_types refuses, before
# pydantic reads it, any string this pattern refuses, so the two agree.
_ISO_NUMBER = "[0-9]{1,6}"


def _iso_components(units: str, *, required: bool) -> str:
    """A regex of ISO 8601 duration components for ``units`` (like ``"HMS"``) in order,
    each at most once; at least one when ``required``, and then the last present one may
    carry a fraction."""
    if not required:
        return "".join(f"({_ISO_NUMBER}{unit})?" for unit in units)
    options = [
        _iso_components(units[:last], required=False) + f"{_ISO_NUMBER}([.,][0-9]+)?{unit}"
        for last, unit in enumerate(units)
    ]
    return "(" + "|".join(options) + ")"


_ISO_DURATION = (
    f"P({_iso_components('YMWD', required=True)}T?"
    f"|{_iso_components('YMWD', required=False)}T{_iso_components('HMS', required=True)})"
)
_SECONDS = ":[0-5][0-9]([.,][0-9]+)?"
_CLOCK = f"([0-9]{{2,8}}:[0-5][0-9]|[0-9]{{1,8}}:[0-5][0-9]{_SECONDS})"  # hours unbounded
_DAY_CLOCK = f"(([01][0-9]|2[0-3]):[0-5][0-9]|([01]?[0-9]|2[0-3]):[0-5][0-9]{_SECONDS})"
_DURATION = f"[+-]?({_ISO_DURATION}|[0-9]{{1,9}} ?d(ays?)?(,? ?{_DAY_CLOCK})?|{_CLOCK})"
DURATION_MATCH = re.compile(_DURATION)
_EXPONENT = "([eE][+-]?[0-9]{1,18})?"
DECIMAL_DIGITS = r"([0-9]+\.?[0-9]*|\.[0-9]+)" + _EXPONENT
POSITIVE_DECIMAL = r"([0-9]*[1-9][0-9]*\.?[0-9]*|[0-9]*\.[0-9]*[1-9][0-9]*)" + _EXPONENT


def decimal_pattern(schema: core_schema.DecimalSchema) -> str:
    """The string form of a decimal, with its sign and digit constraints where given.

    ``gt``/``ge`` of zero or more refuse a minus sign (more than zero: and all zeros);
    ``decimal_places`` and ``max_digits`` bound the digits on each side of the point
    (without an exponent; leading zeros and trailing fraction zeros do not count, as
    for the validator). Other bounds are left to the number form and the validator.
    """
    lower = schema.get("gt", schema.get("ge"))
    sign = r"\+?" if lower is not None and lower >= 0 else "[+-]?"
    places = schema.get("decimal_places")
    digits = schema.get("max_digits")
    positive = lower is not None and (lower > 0 or (lower == 0 and "gt" in schema))
    if places is not None or digits is not None:
        return f"^{sign}{_digit_limited(digits, places, positive=positive)}$"
    if positive:
        return f"^{sign}{POSITIVE_DECIMAL}$"
    return f"^{sign}{DECIMAL_DIGITS}$"


def _digit_limited(max_digits: int | None, places: int | None, *, positive: bool) -> str:
    """Digits with at most ``max_digits`` in all and ``places`` after the point (and not
    all zeros when ``positive``)."""
    splits: list[tuple[int | None, int]]  # (digits before the point, digits after it)
    if max_digits is None:
        splits = [(None, places or 0)]
    elif places is not None:
        splits = [(max(max_digits - places, 0), places)]
    else:  # any split of the digits between the two sides
        splits = [(whole, max_digits - whole) for whole in range(max_digits + 1)]
    options = []
    widest = max(fraction for _, fraction in splits)
    if widest:  # nothing but zeros before the point
        digits = f"[0-9]{{0,{widest - 1}}}[1-9]" if positive else f"[0-9]{{1,{widest}}}"
        options.append(f"0*\\.{digits}0*")
    for whole, fraction in splits:
        if whole is None:
            integer = "[0-9]*[1-9][0-9]*" if positive else "[0-9]+"
        elif whole == 0:
            if positive:
                continue  # zero before the point: the option above
            integer = "0+"
        else:
            integer = f"0*[1-9][0-9]{{0,{whole - 1}}}"
            if len(splits) == 1 and not positive:
                integer = f"(0+|{integer})"
        point = f"(\\.[0-9]{{0,{fraction}}}0*)?" if fraction else "(\\.0*)?"
        options.append(integer + point)
    return "(" + "|".join(options) + ")"


INTEGER_KEY_PATTERN = "^[+-]?[0-9]+$"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = f"{_OCTET}(\\.{_OCTET}){{3}}"
_IPV6 = "[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*(%[0-9A-Za-z._-]+)?"  # the shape; the validator the rest
# URLs of schemes that need a host (http://example.com); other schemes (mailto:x, file:///)
HOST_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
URL_WITH_HOST = "://[^\\s/?#]+([/?#]\\S*)?$"
ANY_URL = "^[A-Za-z][A-Za-z0-9+.-]*:\\S+$"
PATTERNS = {
    "date": f"^{_DATE}$",
    "date-time": f"^{_DATE}[Tt _]{_TIME}$",
    "time": f"^{_TIME}$",
    "duration": f"^({_DURATION})$",
    "uuid": r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})$",
    "ipv4": f"^{_IPV4}$",
    "ipv6": f"^{_IPV6}$",
    "ipvanyaddress": f"^({_IPV4}|{_IPV6})$",
}
