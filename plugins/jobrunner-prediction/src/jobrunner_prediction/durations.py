"""Parse durations given as seconds, short strings ("15min", "24h") or ISO 8601 ("PT24H")."""

from __future__ import annotations

import math
import re

__all__ = ["format_duration", "parse_duration"]

_UNITS: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "wk": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}

_SHORT_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")
_ISO_RE = re.compile(
    r"P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)
_ISO_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: object) -> float:
    """Return a duration in seconds (> 0).

    Accepted forms: a number of seconds (``900``), a string of one or more
    number-unit pairs (``"15min"``, ``"24h"``, ``"1d"``, ``"1h30m"``, units
    s, min/m, h, d, w and their long names), a plain number in a string
    (``"900"``), or an ISO 8601 duration without years or months
    (``"PT24H"``, ``"P1D"``, ``"P1W"``).

    Raises:
        ValueError: the value is not a duration, or is zero, negative or not finite.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(
            f"must be a duration such as 900, '15min', '24h' or 'PT24H', got {value!r}"
        )
    seconds = _parse_text(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {value!r}")
    return seconds


def _parse_text(value: str) -> float:
    text = value.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if text[:1].upper() == "P":
        match = _ISO_RE.fullmatch(text.upper())
        if match and text.upper() not in ("P", "PT") and not text.upper().endswith("T"):
            return sum(
                float(number) * _ISO_SECONDS[unit]
                for unit, number in match.groupdict().items()
                if number is not None
            )
        raise ValueError(
            f"must be an ISO 8601 duration such as 'PT24H' or 'P1D' (no years or months), "
            f"got {value!r}"
        )
    compact = text.lower().replace(" ", "")
    pairs = _SHORT_RE.findall(compact)
    if not pairs or "".join(number + unit for number, unit in pairs) != compact:
        raise ValueError(
            f"must be a duration such as 900, '15min', '24h' or 'PT24H', got {value!r}"
        )
    total = 0.0
    for number, unit in pairs:
        if unit not in _UNITS:
            raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use s, min, h, d or w")
        total += float(number) * _UNITS[unit]
    return total


def format_duration(seconds: float) -> str:
    """Return a short human form of a duration in seconds ("15min", "1d", "90s")."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
