"""Duration parsing for the horizon and interval params."""

from __future__ import annotations

import pytest

from jobrunner_prediction.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (900, 900.0),
        (0.5, 0.5),
        ("900", 900.0),
        ("15min", 900.0),
        ("15 min", 900.0),
        ("24h", 86400.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("2 hours", 7200.0),
        ("PT24H", 86400.0),
        ("PT15M", 900.0),
        ("P1D", 86400.0),
        ("P1DT12H", 129600.0),
        ("pt30s", 30.0),
    ],
)
def test_parse_duration_accepts_numbers_short_and_iso_forms(text: object, seconds: float) -> None:
    """Seconds, number-unit strings and ISO 8601 durations all become seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "bad",
    ["", "abc", "24x", "h", "P1Y", "P1M", "PT", "-3", -3, 0, "0s", True, None, [1], float("inf")],
)
def test_parse_duration_rejects_invalid_values(bad: object) -> None:
    """Anything that is not a positive, finite duration raises ValueError with the value in it."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_unknown_unit_is_named_in_the_error() -> None:
    """An unknown unit is reported by name, with the units that are accepted."""
    with pytest.raises(ValueError, match="unknown duration unit 'fortnights'"):
        parse_duration("2fortnights")


def test_format_duration_uses_the_largest_whole_unit() -> None:
    """Formatting picks the largest unit that divides the duration."""
    assert [format_duration(s) for s in (900, 86400, 5400, 90, 1.5)] == [
        "15min",
        "1d",
        "90min",
        "90s",
        "1.5s",
    ]
