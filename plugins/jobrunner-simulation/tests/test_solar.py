"""The clear-sky PV day shape."""

from __future__ import annotations

import numpy as np

from jobrunner_simulation.solar import clear_sky_pv_kw, solar_elevation_sine

MIDSUMMER = 1_718_928_000  # 2024-06-21 00:00 UTC
MIDWINTER = 1_734_739_200  # 2024-12-21 00:00 UTC


def test_sun_peaks_near_solar_noon_and_is_down_at_midnight() -> None:
    """At Greenwich the elevation peaks within minutes of 12:00 UTC and is negative at 00:00."""
    minutes = MIDSUMMER + 60.0 * np.arange(1440)
    sine = solar_elevation_sine(minutes, 51.5, 0.0)
    assert abs(int(np.argmax(sine)) - 720) <= 10
    assert sine[0] < 0
    # Noon elevation at midsummer is 90 - 51.5 + 23.44 = 61.9 degrees.
    assert abs(np.degrees(np.arcsin(sine.max())) - 61.94) < 0.5


def test_pv_shape_is_zero_at_night_scales_with_kwp_and_is_longer_in_summer() -> None:
    """Output is zero at night, proportional to kWp, and June yields far more than December."""
    hours = np.arange(0, 86400, 900, dtype=float)
    summer = clear_sky_pv_kw(MIDSUMMER + hours, 4.0, 51.5, 0.0)
    winter = clear_sky_pv_kw(MIDWINTER + hours, 4.0, 51.5, 0.0)
    assert summer[0] == 0.0 and summer[-1] == 0.0
    assert 0 < summer.max() < 4.0
    assert np.allclose(clear_sky_pv_kw(MIDSUMMER + hours, 8.0, 51.5, 0.0), 2 * summer)
    assert summer.sum() > 3 * winter.sum()
    assert np.count_nonzero(summer) > np.count_nonzero(winter)


def test_longitude_shifts_the_day() -> None:
    """15 degrees east moves solar noon one hour earlier in UTC."""
    minutes = MIDSUMMER + 60.0 * np.arange(1440)
    west = int(np.argmax(solar_elevation_sine(minutes, 45.0, 0.0)))
    east = int(np.argmax(solar_elevation_sine(minutes, 45.0, 15.0)))
    assert abs((west - east) - 60) <= 2
