"""Parsing, cleaning and resampling of smart-meter input."""

from __future__ import annotations

import numpy as np
import pytest

from jobrunner import InputInvalid
from jobrunner.timeseries import from_watts, parse_readings, regularize, to_watts


def test_parses_pairs_and_readings_object_with_unit() -> None:
    """Both JSON shapes give the same readings; the object's unit is kept."""
    pairs = [[0, 1.5], [900, 2.0]]
    plain = parse_readings(pairs)
    wrapped = parse_readings({"readings": pairs, "unit": "kW"})
    assert plain.ts.tolist() == wrapped.ts.tolist() == [0.0, 900.0]
    assert plain.values.tolist() == [1.5, 2.0]
    assert (plain.unit, wrapped.unit) == (None, "kW")


def test_parses_iso_times_nulls_and_milliseconds() -> None:
    """ISO 8601 strings (naive = UTC), null values and millisecond stamps are understood."""
    readings = parse_readings([["2024-01-01T00:00:00Z", 1], ["2024-01-01T00:15:00", None]])
    assert readings.ts.tolist() == [1704067200.0, 1704068100.0]
    assert readings.values[0] == 1.0 and np.isnan(readings.values[1])
    millis = parse_readings([[1704067200000, 1], [1704068100000, 2]])
    assert millis.ts.tolist() == [1704067200.0, 1704068100.0]


def test_parses_csv_with_header_semicolon_and_decimal_comma() -> None:
    """CSV bytes with a header, ';' delimiter and decimal commas parse like JSON."""
    body = b"timestamp;power\n0;1,5\n900;2,25\n"
    readings = parse_readings(body)
    assert readings.ts.tolist() == [0.0, 900.0]
    assert readings.values.tolist() == [1.5, 2.25]
    comma = parse_readings(
        b"\xef\xbb\xbfts,value\n2024-01-01T00:00:00Z,3\n2024-01-01T00:15:00Z,4\n"
    )
    assert comma.values.tolist() == [3.0, 4.0]


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"values": []}, "no 'readings'"),
        (42, "got int"),
        ([[0, 1], [1]], r"input\[1\]"),
        ([[0, 1], ["yesterday", 2]], r"input\[1\]\[0\]"),
        ([[0, 1], [900, "lots"]], r"input\[1\]\[1\]"),
        (b"ts,value\n0,1\n900,x\n", "CSV line 3"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_rejects_malformed_input_naming_the_place(raw: object, where: str) -> None:
    """Malformed input raises InputInvalid that points at the offending element."""
    with pytest.raises(InputInvalid, match=where):
        parse_readings(raw)


def test_regularize_sorts_and_keeps_the_last_duplicate() -> None:
    """Readings are sorted, and of two readings at one time the later one wins."""
    readings = parse_readings([[1800, 3.0], [0, 1.0], [900, 2.0], [900, 5.0]])
    series = regularize(readings, step=900)
    assert series.start == 0 and series.step == 900
    assert series.values.tolist() == [1.0, 5.0, 3.0]
    assert series.stats["duplicates"] == 1


def test_regularize_averages_power_when_downsampling() -> None:
    """Several power readings in one step are averaged; the grid starts on a step boundary."""
    readings = parse_readings([[60 * i + 30, float(i)] for i in range(30)])
    series = regularize(readings, step=900)
    assert series.start == 0
    assert series.values.tolist() == [7.0, 22.0]


def test_regularize_fills_and_flags_gaps() -> None:
    """A short gap is interpolated linearly and its steps are flagged as filled."""
    pairs = [[900 * i, float(i)] for i in range(10) if i not in (4, 5, 6)]
    series = regularize(parse_readings(pairs), step=900)
    assert series.values.tolist() == [float(i) for i in range(10)]
    assert series.filled.tolist() == [i in (4, 5, 6) for i in range(10)]
    assert series.stats["gaps"] == 1 and series.stats["filled_steps"] == 3


def test_long_gaps_repeat_the_day_before() -> None:
    """A gap longer than an hour copies the same steps one day earlier (keeps the daily shape)."""
    day = 96
    values = np.tile(np.arange(day, dtype=float), 3)
    keep = np.ones(len(values), dtype=bool)
    keep[day + 10 : day + 30] = False
    pairs = [[900 * i, float(v)] for i, v in enumerate(values) if keep[i]]
    series = regularize(parse_readings(pairs), step=900)
    assert series.values.tolist() == values.tolist()


def test_upsampling_coarse_input_is_not_a_gap() -> None:
    """Hourly readings on a 15-minute grid are interpolated without being flagged as gaps."""
    series = regularize(parse_readings([[3600 * i, float(i)] for i in range(4)]), step=900)
    assert len(series.values) == 13
    assert not series.filled.any()
    assert series.values[2] == pytest.approx(0.5)


def test_energy_units_keep_energy_through_resampling() -> None:
    """Wh per 15 minutes resampled to 30 minutes sums the energy, and round-trips through W."""
    pairs = [[900 * i, 10.0 + i] for i in range(8)]
    series = regularize(parse_readings(pairs), step=1800, unit="Wh")
    energy = from_watts(series.values, "Wh", 1800)
    assert energy.tolist() == pytest.approx([21.0, 25.0, 29.0, 33.0])
    watts = to_watts(np.array([0.0, 900.0]), np.array([0.25, 0.25]), "kWh")
    assert watts.tolist() == pytest.approx([1000.0, 1000.0])


def test_too_few_readings_are_rejected() -> None:
    """A series needs two readings with values at different times."""
    with pytest.raises(InputInvalid, match="at least two"):
        regularize(parse_readings([[0, 1.0], [900, None]]))
