"""The ``weather`` input: both shapes, times with offsets or unix seconds, and a bad-input table.

Every bad weather body runs through the job as the worker would run it and
must end in ``input_invalid`` with a message that names what is wrong.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from jobrunner import InputInvalid

from jobrunner_simulation.weather import MAX_ROWS, parse_weather

START = 1_685_577_600  # 2023-06-01 00:00 UTC
HEADER = "time,ghi,dni,dhi,temp_air,wind_speed"


def rows(hours: int = 48, start: int = START) -> list[list[Any]]:
    """Plausible hourly weather rows (unix seconds) with a daily sun."""
    out = []
    for h in range(hours):
        sun = max(0.0, float(np.sin(np.pi * ((h % 24) - 5) / 16))) if 5 <= h % 24 <= 21 else 0.0
        out.append([start + 3600 * h, 800 * sun, 700 * sun, 120 * sun, 18 + 8 * sun, 2.5])
    return out


def csv_body(table: list[list[Any]], header: str = HEADER) -> bytes:
    """A CSV body of the rows."""
    lines = [header, *(",".join(str(cell) for cell in row) for row in table)]
    return ("\n".join(lines) + "\n").encode()


def load_for(hours: int = 48, start: int = START) -> list[list[float]]:
    """An hourly load of 500 W over the weather's span."""
    return [[start + 3600 * h, 500.0] for h in range(hours)]


def test_csv_with_iso_times_in_changing_offsets_equals_unix_seconds() -> None:
    """ISO 8601 times with offsets (a DST change in local time) parse to the same instants."""
    table = rows(6, start=1_698_537_600)  # 2023-10-29 00:00 UTC; at 01:00 UTC Berlin leaves DST
    iso = [
        "2023-10-29T02:00:00+02:00",
        "2023-10-29T02:00:00+01:00",
        "2023-10-29T03:00:00+01:00",
        "2023-10-29T04:00:00+01:00",
        "2023-10-29T04:00:00Z",
        "2023-10-29 05:00:00+00:00",
    ]
    by_iso = parse_weather(csv_body([[t, *row[1:]] for t, row in zip(iso, table, strict=True)]))
    by_unix = parse_weather(csv_body(table))
    assert by_iso.time.tolist() == by_unix.time.tolist()
    assert by_iso.interval == 3600.0
    assert by_iso.ghi.tolist() == by_unix.ghi.tolist()


def test_json_table_with_columns_in_any_order_and_extra_columns() -> None:
    """The JSON shape takes the columns by name; columns it does not know are ignored."""
    table = rows(24)
    columns = ["wind_speed", "time", "dhi", "ghi", "dni", "temp_air", "pressure"]
    order = [5, 0, 3, 1, 2, 4]
    body = {"columns": columns, "rows": [[row[i] for i in order] + [1013.0] for row in table]}
    weather = parse_weather(json.loads(json.dumps(body)))
    assert weather.time.tolist() == [row[0] for row in table]
    assert weather.ghi.tolist() == [row[1] for row in table]
    assert weather.wind_speed.tolist() == [2.5] * 24


def test_weather_input_drives_the_job(run_simulation: Any) -> None:
    """A job with a weather CSV models PV from it and reports the weather it used."""
    data = run_simulation(
        {"load": load_for(), "weather": csv_body(rows())},
        {"pv_kwp": 3, "latitude": 48.1, "longitude": 11.6},
    ).data
    assert data["pv"]["source"] == "weather"
    assert data["pv"]["weather"] == {
        "rows": 48,
        "interval": 3600.0,
        "start": START,
        "end": START + 48 * 3600,
    }
    assert data["totals"]["pv"] > 0


def _big_csv() -> bytes:
    stamps = START + 60 * np.arange(MAX_ROWS + 1)
    body = "\n".join(f"{t},0,0,0,10,1" for t in stamps.tolist())
    return (HEADER + "\n" + body + "\n").encode()


def _with(row: int, column: int, value: Any) -> list[list[Any]]:
    table = rows()
    table[row][column] = value
    return table


BAD_WEATHER: list[tuple[str, Any, str]] = [
    ("empty body", b"", "empty"),
    ("not UTF-8", b"\xff\xfe\x00garbage\x81", "UTF-8"),
    ("not a table", {"readings": [[1, 2]]}, "columns"),
    ("a JSON list", [[START, 1, 2, 3, 4, 5]], "expected CSV with the header"),
    (
        "missing dhi column",
        csv_body([r[:3] + r[4:] for r in rows()], HEADER.replace(",dhi", "")),
        "missing column dhi",
    ),
    (
        "misspelt header",
        csv_body(rows(), HEADER.replace("temp_air", "tempair")),
        "missing column temp_air",
    ),
    ("no header at all", csv_body(rows(), "0,0,0,0,0,0"), "missing columns time, ghi"),
    (
        "duplicate column",
        csv_body([[*r, 1] for r in rows()], HEADER + ",ghi"),
        "'ghi' appears more than once",
    ),
    ("NaN irradiance", csv_body(_with(10, 1, "nan")), "row 11: ghi is missing"),
    ("empty cell", csv_body(_with(3, 4, "")), "row 4: temp_air is missing"),
    ("text in a number column", csv_body(_with(7, 5, "calm")), "row 8: wind_speed is not a number"),
    ("infinite irradiance", csv_body(_with(5, 2, "inf")), "row 6: dni is not a number ('inf');"),
    (
        "JSON null",
        {"columns": HEADER.split(","), "rows": _with(2, 2, None)},
        "row 3: dni is missing",
    ),
    (
        "JSON true",
        {"columns": HEADER.split(","), "rows": _with(2, 2, True)},
        "row 3: dni is not a number",
    ),
    (
        "JSON row too short",
        {"columns": HEADER.split(","), "rows": [rows()[0][:5]]},
        "rows[0]: expected a list of 6",
    ),
    (
        "JSON row not a list",
        {"columns": HEADER.split(","), "rows": ["x"]},
        "rows[0]: expected a list",
    ),
    (
        "JSON columns not names",
        {"columns": [1, 2, 3, 4, 5, 6], "rows": []},
        "columns: must be a list of names",
    ),
    (
        "JSON extra key",
        {"columns": HEADER.split(","), "rows": rows(), "units": "W"},
        "expected CSV",
    ),
    (
        "a row with an extra cell",
        csv_body([*rows()[:3], [*rows()[3], 7], *rows()[4:]]),
        "Expected 6 fields in line 5, saw 7",
    ),
    (
        "the first row with an extra cell",
        csv_body([[*rows()[0], 7], *rows()[1:]]),
        "a row has more cells than the header",
    ),
    (
        "a row with a cell short",
        csv_body([*rows()[:3], rows()[3][:5], *rows()[4:]]),
        "row 4: wind_speed is missing",
    ),
    ("one row only", csv_body(rows(1)), "at least two rows"),
    (
        "time without offset",
        csv_body(
            [["2023-06-01T00:00:00", *rows()[0][1:]], ["2023-06-01T01:00:00Z", *rows()[1][1:]]]
        ),
        "row 1: time '2023-06-01T00:00:00' has no UTC offset",
    ),
    (
        "time not a time",
        csv_body(
            [[f"2023-06-01T{h:02d}:00:00+00:00", *r[1:]] for h, r in enumerate(rows(5))]
            + [["yesterday+01", *rows()[5][1:]]]
        ),
        "row 6: time 'yesterday+01' is not ISO 8601",
    ),
    (
        "times mixed",
        csv_body(_with(5, 0, "2023-06-01T05:00:00Z")),
        "row 6: time '2023-06-01T05:00:00Z' is not unix seconds like",
    ),
    ("time in milliseconds", csv_body([[r[0] * 1000, *r[1:]] for r in rows()]), "milliseconds"),
    (
        "rows out of order",
        csv_body(rows()[:10] + rows()[11:12] + rows()[10:11] + rows()[12:]),
        "row 12: time does not increase",
    ),
    ("a repeated row", csv_body(rows()[:6] + rows()[5:]), "row 7: time does not increase"),
    ("a gap", csv_body(rows()[:20] + rows()[23:]), "row 21 comes 14400 s after"),
    (
        "daily rows",
        csv_body([[START + 86400 * d, 200, 100, 50, 10, 1] for d in range(30)]),
        "86400 s apart",
    ),
    (
        "ten-second rows",
        csv_body([[START + 10 * i, 0, 0, 0, 10, 1] for i in range(30)]),
        "10 s apart",
    ),
    (
        "irradiance in kW/m²",
        csv_body([[r[0], r[1] / 1000, r[2] / 1000, r[3] / 1000, *r[4:]] for r in rows()]),
        "looks like kW/m²",
    ),
    ("irradiance far too high", csv_body(_with(12, 2, 5000)), "row 13: dni = 5000 is outside"),
    (
        "temperature in kelvin",
        csv_body([[*r[:4], r[4] + 273.15, r[5]] for r in rows()]),
        "temperature must be in °C",
    ),
    ("temperature in fahrenheit", csv_body(_with(14, 4, 95)), "row 15: temp_air = 95"),
    ("negative wind", csv_body(_with(1, 5, -3)), "row 2: wind_speed = -3 is outside"),
    ("more rows than a year of minutes", None, f"more than {MAX_ROWS}"),
]


@pytest.mark.parametrize(
    ("body", "message"),
    [pytest.param(body, message, id=name) for name, body, message in BAD_WEATHER],
)
def test_bad_weather_fails_as_input_invalid_naming_the_problem(
    body: Any, message: str, run_simulation: Any
) -> None:
    """Each bad weather body ends the job with input_invalid and a message that says why."""
    if body is None:
        body = _big_csv()
    with pytest.raises(InputInvalid, match=r"input\.weather") as failure:
        run_simulation({"load": load_for(), "weather": body}, {"pv_kwp": 3})
    assert message in str(failure.value)
    assert failure.value.code == "input_invalid"


def test_weather_that_does_not_span_the_load_is_refused(run_simulation: Any) -> None:
    """Weather for only part of the load's period fails, naming both periods."""
    with pytest.raises(InputInvalid, match=r"input\.weather: covers 2023-06-01T00:00:00Z to"):
        run_simulation({"load": load_for(72), "weather": csv_body(rows(48))}, {"pv_kwp": 3})


def test_measured_pv_and_weather_together_are_refused(run_simulation: Any) -> None:
    """A job cannot both measure and model its PV."""
    pv = [[START + 3600 * h, 100.0] for h in range(48)]
    with pytest.raises(InputInvalid, match="either a measured 'pv' series or 'weather'"):
        run_simulation({"load": load_for(), "pv": pv, "weather": csv_body(rows())}, {"pv_kwp": 3})
