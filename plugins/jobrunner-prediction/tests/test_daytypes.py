"""Calendars of weekdays and public holidays, and the holiday-as-Sunday adjustment."""

from __future__ import annotations

import numpy as np
import pytest

from jobrunner_prediction.daytypes import build_calendar, check_holidays, holiday_offsets


def test_calendar_uses_local_dates_of_the_time_zone() -> None:
    """Steps are given local weekdays; Melbourne's Christmas starts at 13:00 UTC the day before."""
    start = 1_419_379_200  # 2014-12-24 00:00 UTC
    calendar = build_calendar(start, 3600, 72, "AU", "VIC", "Australia/Melbourne")
    holiday_hours = np.flatnonzero(calendar.holiday)
    # 2014-12-25 00:00 in Melbourne (UTC+11) is 2014-12-24 13:00 UTC.
    assert holiday_hours[0] == 13
    assert calendar.dates[13] == "2014-12-25" and calendar.weekday[13] == 3  # a Thursday
    assert calendar.names["2014-12-25"] == "Christmas Day"
    assert calendar.names["2014-12-26"] == "Boxing Day"


def test_subdivision_holidays_differ() -> None:
    """Melbourne Cup day is a holiday in Victoria, not in New South Wales."""
    start = 1_415_059_200  # 2014-11-04 00:00 UTC
    vic = build_calendar(start, 3600, 24, "AU", "VIC", "UTC")
    nsw = build_calendar(start, 3600, 24, "AU", "NSW", "UTC")
    assert vic.holiday.all() and not nsw.holiday.any()


def test_unknown_regions_are_rejected() -> None:
    """An unknown country or subdivision is a ValueError naming it."""
    with pytest.raises(ValueError, match="XX"):
        check_holidays("XX", None)
    with pytest.raises(ValueError, match="ZZ"):
        check_holidays("AU", "ZZ")
    check_holidays("GB", "ENG")


def test_holidays_become_ordinary_days_in_history_and_sundays_ahead() -> None:
    """A past Monday holiday (Sunday-like) is made a Monday; a coming one gets Sunday's level."""
    day = 24
    start = 1_702_252_800  # Monday 2023-12-11 00:00 UTC
    weeks = 4
    t = np.arange(weeks * 7 * day)
    weekday = (t // day) % 7
    y = 100.0 + 10 * np.sin(2 * np.pi * t / day) - np.where(weekday == 6, 30.0, 0.0)
    new_year = 21 * day  # Monday 2024-01-01
    y[new_year : new_year + day] -= 30.0  # it looked like a Sunday
    calendar = build_calendar(start, 3600, len(y) + day, "GB", "ENG", "UTC")
    adjusted, future, report = holiday_offsets(y, calendar, day, day)
    monday = y[7 * day : 8 * day]
    assert np.allclose(adjusted[new_year : new_year + day], monday, atol=1e-6)
    assert np.allclose(future, 0.0)  # 2024-01-08 is no holiday
    assert [h["date"] for h in report["in_input"]] == ["2023-12-25", "2023-12-26", "2024-01-01"]
    before_christmas = 14 * day  # ends on Sunday 2023-12-24: Monday 25th comes next
    cut = build_calendar(start, 3600, before_christmas + day, "GB", "ENG", "UTC")
    _, ahead, report = holiday_offsets(y[:before_christmas], cut, day, day)
    assert np.allclose(ahead, -30.0)
    assert report["in_forecast"] == [{"date": "2023-12-25", "name": "Christmas Day"}]
