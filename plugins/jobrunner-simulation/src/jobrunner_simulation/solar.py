"""A clear-sky PV model: the day shape of a PV system under a cloudless sky.

Solar elevation from the usual approximations (declination and equation of
time from the day of the year), beam irradiance from the Meinel air-mass
model, taken on a horizontal plane, and a performance ratio for the system's
losses. It gives the shape and rough size of a sunny day, not a yield
forecast: real output is lower on cloudy days.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["PERFORMANCE_RATIO", "clear_sky_pv_kw", "solar_elevation_sine"]

FloatArray = npt.NDArray[np.float64]

#: Share of the panels' rated output that reaches the AC side (inverter, wiring, heat).
PERFORMANCE_RATIO = 0.85
_SOLAR_CONSTANT_KW_M2 = 1.353


def solar_elevation_sine(unix_ts: FloatArray, latitude: float, longitude: float) -> FloatArray:
    """Sine of the sun's elevation above the horizon at each unix time (negative at night)."""
    days = unix_ts / 86400.0
    day_of_year = (days - 10957.0) % 365.2422  # days since 2000-01-01, folded into a year
    angle = 2.0 * np.pi * (day_of_year - 80.0) / 365.2422
    declination = np.radians(23.44) * np.sin(angle)
    b = 2.0 * np.pi * (day_of_year - 81.0) / 364.0
    equation_of_time_h = (9.87 * np.sin(2 * b) - 7.53 * np.cos(b) - 1.5 * np.sin(b)) / 60.0
    utc_hours = (days % 1.0) * 24.0
    solar_hours = utc_hours + longitude / 15.0 + equation_of_time_h
    hour_angle = np.radians(15.0 * (solar_hours - 12.0))
    lat = np.radians(latitude)
    return np.asarray(
        np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle),
        dtype=np.float64,
    )


def clear_sky_pv_kw(
    unix_ts: FloatArray, kwp: float, latitude: float, longitude: float
) -> FloatArray:
    """AC power in kW of a ``kwp`` PV system under a clear sky at each unix time.

    ``kwp`` is rated at 1 kW/m^2; the beam irradiance is
    ``1.353 * 0.7 ** (air_mass ** 0.678)`` kW/m^2 with ``air_mass = 1 / sin(elevation)``.
    """
    sine = solar_elevation_sine(unix_ts, latitude, longitude)
    up = sine > 0.01
    power = np.zeros_like(sine)
    air_mass = 1.0 / sine[up]
    beam = _SOLAR_CONSTANT_KW_M2 * 0.7 ** (air_mass**0.678)
    power[up] = kwp * PERFORMANCE_RATIO * beam * sine[up]
    return power
