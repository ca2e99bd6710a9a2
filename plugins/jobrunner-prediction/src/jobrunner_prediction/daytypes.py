"""Public holidays as Sundays: the calendar of a series and the adjustment that uses it.

Demand on a public holiday looks like a Sunday's. A forecaster that copies
seasons from past weeks would otherwise copy a holiday into the same weekday
of the following weeks, and forecast an ordinary weekday for a holiday. So:

* in the history, each holiday (not already a Sunday) is turned into the
  ordinary weekday it would have been: its values less the difference
  between that time of day on recent Sundays and on recent same weekdays;
* in the horizon, that difference is added back to the forecast of a holiday.

The ``holidays`` package (country and subdivision rules) is imported here only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

__all__ = ["Calendar", "build_calendar", "check_holidays", "holiday_offsets"]

FloatArray = npt.NDArray[np.float64]
#: Recent weeks whose values make the Sunday and weekday profiles.
PROFILE_WEEKS = 4
_SUNDAY = 6


@dataclass(frozen=True)
class Calendar:
    """Local weekday and holiday flag of every step, the history's then the horizon's.

    Attributes:
        weekday: 0 (Monday) .. 6 (Sunday) per step.
        holiday: True on public holidays.
        dates: the local date of each step (ISO), for reporting.
        names: holiday name by ISO date, for those in the range.
        region: ``{"country": ..., "subdivision": ...}`` the holidays are of.
    """

    weekday: npt.NDArray[np.int64]
    holiday: npt.NDArray[np.bool_]
    dates: list[str]
    names: dict[str, str]
    region: dict[str, Any]


def check_holidays(country: str, subdivision: str | None) -> None:
    """Raise ValueError when ``holidays`` knows no such country or subdivision."""
    import holidays

    try:
        holidays.country_holidays(country, subdiv=subdivision, years=2000)
    except NotImplementedError as exc:
        raise ValueError(str(exc)) from None


def build_calendar(
    start: float,
    step: float,
    count: int,
    country: str,
    subdivision: str | None,
    timezone: str,
) -> Calendar:
    """The calendar of ``count`` steps of ``step`` seconds from unix time ``start``.

    Args:
        start: unix seconds of the first step.
        step: seconds between steps.
        count: steps, history and horizon together.
        country: ISO 3166-1 code known to ``holidays`` (e.g. ``AU``).
        subdivision: its subdivision code (e.g. ``VIC``) or None.
        timezone: IANA zone whose local dates decide weekdays and holidays.
    """
    import holidays

    zone = ZoneInfo(timezone)
    stamps = start + step * np.arange(count, dtype=np.float64)
    # One UTC offset per UTC day (taken at noon): exact except for the hours
    # around a daylight-saving change.
    utc_days = np.floor(stamps / 86400.0).astype(np.int64)
    unique_days, where = np.unique(utc_days, return_inverse=True)
    offsets = np.array(
        [
            dt.datetime.fromtimestamp(int(d) * 86400 + 43200, zone).utcoffset() or dt.timedelta()
            for d in unique_days
        ]
    )
    seconds = np.array([o.total_seconds() for o in offsets])[where]
    local_days = np.floor((stamps + seconds) / 86400.0).astype(np.int64)
    weekday = (local_days + 3) % 7  # 1970-01-01 was a Thursday
    first = dt.date(1970, 1, 1) + dt.timedelta(days=int(local_days.min()))
    last = dt.date(1970, 1, 1) + dt.timedelta(days=int(local_days.max()))
    rules = holidays.country_holidays(
        country, subdiv=subdivision, years=range(first.year, last.year + 1)
    )
    epoch = dt.date(1970, 1, 1)
    names = {
        day.isoformat(): str(name) for day, name in sorted(rules.items()) if first <= day <= last
    }
    holiday_days = np.array(
        [(dt.date.fromisoformat(d) - epoch).days for d in names], dtype=np.int64
    )
    holiday = np.isin(local_days, holiday_days)
    dates = [(epoch + dt.timedelta(days=int(d))).isoformat() for d in local_days]
    region = {"country": country, "subdivision": subdivision}
    return Calendar(weekday.astype(np.int64), holiday, dates, names, region)


def _profile(
    y: FloatArray, valid: npt.NDArray[np.bool_], index: npt.NDArray[np.int64], week: int
) -> FloatArray:
    """Median over the nearest ``PROFILE_WEEKS`` usable weeks of each index's time of week."""
    n = len(y)
    shifts = np.array(sorted(range(-12, 13), key=lambda k: (abs(k), k)), dtype=np.int64)
    shifts = shifts[shifts != 0]
    candidates = index[:, None] + week * shifts[None, :]
    inside = (candidates >= 0) & (candidates < n)
    usable = inside & valid[np.clip(candidates, 0, n - 1)]
    # Keep the first PROFILE_WEEKS usable ones in order of distance.
    rank = np.cumsum(usable, axis=1)
    keep = usable & (rank <= PROFILE_WEEKS)
    values = np.where(keep, y[np.clip(candidates, 0, n - 1)], np.nan)
    with np.errstate(all="ignore"):
        out = np.nanmedian(values, axis=1) if keep.any() else np.full(len(index), np.nan)
    return np.asarray(out, dtype=np.float64)


def holiday_offsets(
    y: FloatArray, calendar: Calendar, day: int, horizon: int
) -> tuple[FloatArray, FloatArray, dict[str, Any]]:
    """Adjust the history for holidays and give the forecast's holiday offsets.

    Args:
        y: the history (``len(calendar.weekday) == len(y) + horizon``).
        calendar: weekdays and holidays of history and horizon.
        day: steps per day.
        horizon: steps forecast.

    Returns:
        The history with holidays turned into ordinary weekdays, the offsets
        to add to the forecast (non-zero on holidays), and a report of the
        holidays found in history and horizon.
    """
    n = len(y)
    week = 7 * day
    adjusted = np.array(y, dtype=np.float64, copy=True)
    future = np.zeros(horizon)
    targets = np.flatnonzero(calendar.holiday & (calendar.weekday != _SUNDAY))
    valid = ~calendar.holiday[:n]
    if len(targets) and n >= 2 * week:
        to_sunday = (_SUNDAY - calendar.weekday[targets]) * day
        sunday = _profile(y, valid, targets + to_sunday, week)
        weekday = _profile(y, valid, targets, week)
        offset = np.nan_to_num(sunday - weekday)
        past = targets < n
        adjusted[targets[past]] -= offset[past]
        future[targets[~past] - n] = offset[~past]
    in_history = sorted({calendar.dates[i] for i in np.flatnonzero(calendar.holiday[:n])})
    in_horizon = sorted({calendar.dates[i] for i in np.flatnonzero(calendar.holiday[n:]) + n})
    report = {
        **calendar.region,
        "in_input": [{"date": d, "name": calendar.names.get(d, "")} for d in in_history],
        "in_forecast": [{"date": d, "name": calendar.names.get(d, "")} for d in in_horizon],
    }
    return adjusted, future, report
