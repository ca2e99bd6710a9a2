"""The ``weather`` input: irradiance, air temperature and wind, checked and put into arrays.

Two shapes carry the same table:

* CSV with a header row ``time,ghi,dni,dhi,temp_air,wind_speed`` (columns in
  any order; further columns are ignored), or
* JSON ``{"columns": ["time", "ghi", ...], "rows": [[...], ...]}``.

``time`` is ISO 8601 with a UTC offset (``2023-06-01T12:00:00+02:00``, ``Z``)
or unix seconds, and marks the *start* of the interval the row's values
describe (its mean). Rows must be evenly spaced, in increasing time, without
gaps, every 1 to 60 minutes. Irradiance (global horizontal, direct normal,
diffuse horizontal) is in W/m², ``temp_air`` in °C, ``wind_speed`` in m/s.

Every problem is an :class:`~jobrunner.InputInvalid` that names the column
and the first row (counted from 1, the header not counted) where it shows.
"""

from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from jobrunner import InputInvalid

__all__ = ["COLUMNS", "MAX_ROWS", "Weather", "parse_weather"]

FloatArray = npt.NDArray[np.float64]

#: The columns a weather table must have.
COLUMNS = ("time", "ghi", "dni", "dhi", "temp_air", "wind_speed")
#: More rows than a year of 1-minute data (525 600) is refused.
MAX_ROWS = 530_000
#: Allowed spacing of the rows, seconds.
MIN_INTERVAL, MAX_INTERVAL = 60.0, 3600.0

# Plausible ranges, wide enough for any place on earth, narrow enough to catch
# wrong units: (low, high, what a value outside most likely means).
_RANGES: dict[str, tuple[float, float, str]] = {
    "ghi": (-50.0, 1500.0, "irradiance must be in W/m²"),
    "dni": (-50.0, 1500.0, "irradiance must be in W/m²"),
    "dhi": (-50.0, 1500.0, "irradiance must be in W/m²"),
    "temp_air": (-90.0, 65.0, "temperature must be in °C (not °F or K)"),
    "wind_speed": (0.0, 110.0, "wind speed must be in m/s"),
}
# Unix seconds stay below this until the year 5138: larger stamps are milliseconds.
_UNIX_SECONDS_BELOW = 1e11
_HINT = (
    "expected CSV with the header time,ghi,dni,dhi,temp_air,wind_speed or JSON "
    '{"columns": [...], "rows": [[...], ...]}'
)
_NAME = "input.weather"


@dataclass(frozen=True)
class Weather:
    """A checked weather table: row ``i`` covers ``[time[i], time[i] + interval)``.

    Irradiance is clipped at 0 (measured night values are often slightly negative).
    """

    time: FloatArray
    interval: float
    ghi: FloatArray
    dni: FloatArray
    dhi: FloatArray
    temp_air: FloatArray
    wind_speed: FloatArray

    @property
    def start(self) -> float:
        """Unix time the first row starts."""
        return float(self.time[0])

    @property
    def end(self) -> float:
        """Unix time the last row ends."""
        return float(self.time[-1]) + self.interval

    def between(self, start: float, end: float) -> Weather:
        """The rows that overlap ``[start, end)``."""
        first = max(0, int(np.searchsorted(self.time, start, side="right")) - 1)
        stop = int(np.searchsorted(self.time, end, side="left"))
        part = slice(first, max(stop, first + 1))
        return Weather(
            time=self.time[part],
            interval=self.interval,
            ghi=self.ghi[part],
            dni=self.dni[part],
            dhi=self.dhi[part],
            temp_air=self.temp_air[part],
            wind_speed=self.wind_speed[part],
        )

    def describe(self) -> dict[str, Any]:
        """What the result reports about the weather used."""
        return {
            "rows": len(self.time),
            "interval": self.interval,
            "start": self.start,
            "end": self.end,
        }


def parse_weather(raw: object) -> Weather:
    """Parse and check the decoded ``weather`` input (CSV bytes/text or the JSON table).

    Raises:
        jobrunner.InputInvalid: naming the column and row of the first problem.
    """
    table = _table(raw)
    if len(table) > MAX_ROWS:
        raise InputInvalid(
            f"{_NAME}: {len(table)} rows is more than {MAX_ROWS} (a year of 1-minute data); "
            "send a coarser interval or a shorter period"
        )
    if len(table) < 2:
        raise InputInvalid(f"{_NAME}: needs at least two rows, got {len(table)}")
    time = _times(table["time"])
    interval = _interval(time)
    values = {name: _numbers(table[name], name) for name in _RANGES}
    for name, (low, high, meaning) in _RANGES.items():
        column = values[name]
        bad = np.flatnonzero((column < low) | (column > high))
        if len(bad):
            row = int(bad[0])
            raise InputInvalid(
                f"{_NAME}: row {row + 1}: {name} = {column[row]:g} is outside "
                f"[{low:g}, {high:g}]; {meaning}"
            )
    ghi_peak = float(values["ghi"].max())
    if 0.0 < ghi_peak <= 2.0:
        raise InputInvalid(
            f"{_NAME}: ghi peaks at {ghi_peak:g}; irradiance must be in W/m², this looks like kW/m²"
        )
    return Weather(
        time=time,
        interval=interval,
        ghi=np.clip(values["ghi"], 0.0, None),
        dni=np.clip(values["dni"], 0.0, None),
        dhi=np.clip(values["dhi"], 0.0, None),
        temp_air=values["temp_air"],
        wind_speed=values["wind_speed"],
    )


def _table(raw: object) -> pd.DataFrame:
    """The weather as a DataFrame of strings/numbers, header names stripped."""
    if isinstance(raw, (bytes, bytearray, str)):
        text = bytes(raw) if isinstance(raw, bytearray) else raw
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                raise InputInvalid(f"{_NAME}: CSV must be UTF-8 text ({exc.reason})") from None
        if not text.strip():
            raise InputInvalid(f"{_NAME}: the body is empty; {_HINT}")
        lines = (line for line in io.StringIO(text) if line.strip() and line[0] != "#")
        # Checked before pandas reads the table: it would rename a repeated name ("ghi.1").
        _check_names([name.strip() for name in next(csv.reader(lines), [])])
        try:
            # pandas' C parser reads numeric columns straight into floats; a column
            # with a bad cell stays text and the checks below name the cell. A row
            # longer than the header must not shift the columns (index_col=False)
            # nor lose its extra cells quietly (the warning is an error).
            with warnings.catch_warnings():
                warnings.simplefilter("error", pd.errors.ParserWarning)
                table = pd.read_csv(
                    io.StringIO(text),
                    skipinitialspace=True,
                    comment="#",
                    low_memory=False,
                    index_col=False,
                )
        except pd.errors.ParserWarning:
            raise InputInvalid(
                f"{_NAME}: a row has more cells than the header has names; {_HINT}"
            ) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputInvalid(f"{_NAME}: unreadable CSV ({message:.120}); {_HINT}") from None
    elif isinstance(raw, dict):
        unknown = sorted(set(map(str, raw)) - {"columns", "rows"})
        columns, rows = raw.get("columns"), raw.get("rows")
        if unknown or not isinstance(columns, list) or not isinstance(rows, list):
            raise InputInvalid(f"{_NAME}: {_HINT}")
        if not all(isinstance(name, str) for name in columns):
            raise InputInvalid(f"{_NAME}.columns: must be a list of names (strings)")
        _check_names([name.strip() for name in columns])
        if len(rows) > MAX_ROWS:  # before looking at each row
            raise InputInvalid(f"{_NAME}: {len(rows)} rows is more than {MAX_ROWS}")
        width = len(columns)
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != width:
                raise InputInvalid(
                    f"{_NAME}.rows[{number - 1}]: expected a list of {width} values "
                    f"(one per column), got {row!r:.80}"
                )
            # JSON true/false would pass as 1/0: refuse them like text.
            flags = [str(columns[i]) for i, cell in enumerate(row) if isinstance(cell, bool)]
            if flags:
                raise InputInvalid(f"{_NAME}: row {number}: {flags[0]} is not a number")
        table = pd.DataFrame(rows, columns=columns, dtype=object)
    else:
        raise InputInvalid(f"{_NAME}: {_HINT}, got {type(raw).__name__}")
    table.columns = [str(name).strip() for name in table.columns]
    return table


def _check_names(names: list[str]) -> None:
    """Every column the weather needs is there, and no name appears twice."""
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise InputInvalid(
            f"{_NAME}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
            f"{_HINT}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputInvalid(f"{_NAME}: column {repeated[0]!r} appears more than once")


def _numbers(column: pd.Series, name: str) -> FloatArray:
    """A column as floats; a missing, non-numeric or non-finite cell is an error."""
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(numbers))
    if len(bad):
        row = int(bad[0])
        cell = column.iloc[row]
        text = "" if cell is None else str(cell).strip()
        # An empty or NaN cell is missing; anything else is shown as written (a
        # str, not the repr of NumPy's float: "inf", not "np.float64(inf)").
        what = "is missing" if text.lower() in ("", "nan") else f"is not a number ({text!r:.40})"
        raise InputInvalid(
            f"{_NAME}: row {row + 1}: {name} {what}; every row needs all of {', '.join(COLUMNS)}"
        )
    return numbers


def _times(column: pd.Series) -> FloatArray:
    """Unix seconds from unix seconds or ISO 8601 times with an offset."""
    numbers = pd.to_numeric(column, errors="coerce")
    if numbers.notna().any():
        if numbers.isna().any():
            row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
            raise InputInvalid(
                f"{_NAME}: row {row + 1}: time {column.iloc[row]!r:.40} is not unix seconds "
                "like the other rows; write every time the same way"
            )
        seconds = numbers.to_numpy(dtype=np.float64)
        if not np.isfinite(seconds).all():
            raise InputInvalid(f"{_NAME}: time must be finite")
        if np.nanmedian(np.abs(seconds)) >= _UNIX_SECONDS_BELOW:
            raise InputInvalid(
                f"{_NAME}: time looks like milliseconds ({seconds[0]:.0f}); give unix seconds"
            )
        return seconds
    text = column.astype(str).str.strip()
    has_offset = text.str.contains(r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$", regex=True)
    if not has_offset.all():
        row = int(np.flatnonzero(~has_offset.to_numpy())[0])
        raise InputInvalid(
            f"{_NAME}: row {row + 1}: time {text.iloc[row]!r:.40} has no UTC offset; write "
            "ISO 8601 with an offset (2023-06-01T12:00:00+02:00 or ...Z) or unix seconds"
        )
    try:
        stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    except (ValueError, TypeError, OverflowError):
        stamps = pd.Series(pd.NaT, index=text.index)
    if stamps.isna().any():
        row = int(np.flatnonzero(stamps.isna().to_numpy())[0])
        raise InputInvalid(
            f"{_NAME}: row {row + 1}: time {text.iloc[row]!r:.40} is not ISO 8601 "
            "(2023-06-01T12:00:00+02:00) or unix seconds"
        )
    epoch = pd.Timestamp(0, tz="UTC")
    return ((stamps - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)


def _interval(time: FloatArray) -> float:
    """The rows' even spacing; rows out of order, repeated or with gaps are errors."""
    steps = np.diff(time)
    backwards = np.flatnonzero(steps <= 0)
    if len(backwards):
        row = int(backwards[0]) + 1
        raise InputInvalid(
            f"{_NAME}: row {row + 1}: time does not increase (rows must be in time order, "
            "each time once)"
        )
    interval = float(np.median(steps))
    if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
        raise InputInvalid(
            f"{_NAME}: rows are {interval:g} s apart; the weather needs one row every "
            f"{MIN_INTERVAL:g} to {MAX_INTERVAL:g} s"
        )
    uneven = np.flatnonzero(np.abs(steps - interval) > 1.0)
    if len(uneven):
        row = int(uneven[0]) + 1
        raise InputInvalid(
            f"{_NAME}: row {row + 1} comes {steps[row - 1]:g} s after the one before, the "
            f"rows' interval is {interval:g} s; the weather must be evenly spaced, without gaps"
        )
    return interval
