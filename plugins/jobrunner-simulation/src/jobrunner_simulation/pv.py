"""PV output from pvlib's models: the PVWatts chain, driven by weather or by a clear sky.

For each interval, at its middle (times in UTC):

1. solar position: NREL SPA (``pvlib.solarposition.get_solarposition``,
   ``nrel_numpy``), refraction with the interval's air temperature;
2. plane-of-array irradiance: Perez 1990 transposition
   (``pvlib.irradiance.get_total_irradiance``, model ``perez``) with the
   extraterrestrial DNI and the Kasten-Young relative air mass, plus ground
   reflection with the ``albedo``;
3. reflection losses at the glass: the physical incidence-angle modifier
   (``pvlib.iam.physical``) on the direct part;
4. cell temperature: the Sandia (SAPM) cell temperature model
   (``pvlib.temperature.sapm_cell``) for the chosen mounting;
5. DC power: PVWatts (``pvlib.pvsystem.pvwatts_dc``), rated ``pv_kwp`` at
   1000 W/m² and 25 °C, temperature coefficient -0.37 %/°C;
6. system losses: ``losses`` percent of the DC power (PVWatts' 14 % by
   default: soiling, shading, mismatch, wiring, connections, light-induced
   degradation, nameplate, availability);
7. AC power: the PVWatts inverter (``pvlib.inverter.pvwatts``), nominal
   efficiency 96 %, limited to ``inverter_kw`` of AC output.

This is the chain of pvlib's ``ModelChain.with_pvwatts`` (the tests check it
against ModelChain on a year of real weather). Without weather the sky is
clear: irradiance from the Ineichen-Perez model with the Linke turbidity of
the place and month from pvlib's climatology (``Location.get_clearsky``),
20 °C air and 0 m/s wind.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pvlib
from pvlib import atmosphere, iam, inverter, irradiance, pvsystem, solarposition, temperature
from pvlib.location import Location

from jobrunner_simulation.weather import Weather

__all__ = [
    "GAMMA_PDC",
    "INVERTER_EFFICIENCY",
    "MOUNTINGS",
    "PvSystem",
    "ac_power_w",
    "clear_sky_weather",
    "on_grid",
]

FloatArray = npt.NDArray[np.float64]

#: DC power temperature coefficient, 1/°C (PVWatts version 8, "standard" module).
GAMMA_PDC = -0.0037
#: The PVWatts inverter's nominal efficiency.
INVERTER_EFFICIENCY = 0.96
#: Mountings with SAPM cell temperature parameters (pvlib.temperature).
MOUNTINGS = tuple(temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"])
#: Air temperature (°C) and wind speed (m/s) under the clear sky.
CLEAR_SKY_TEMP_AIR, CLEAR_SKY_WIND_SPEED = 20.0, 0.0


@dataclass(frozen=True)
class PvSystem:
    """A fixed PV system: place, size, orientation, losses, inverter, mounting."""

    latitude: float
    longitude: float
    altitude: float
    kwp: float
    tilt: float
    azimuth: float
    losses: float = 14.0
    inverter_kw: float | None = None
    albedo: float = 0.25
    mounting: str = "open_rack_glass_polymer"

    def describe(self) -> dict[str, Any]:
        """What the result reports about the PV model and system."""
        return {
            "model": "pvlib PVWatts: NREL SPA, Perez transposition, physical IAM, "
            "SAPM cell temperature, PVWatts DC, losses and inverter",
            "pvlib": pvlib.__version__,
            "kwp": self.kwp,
            "tilt": self.tilt,
            "azimuth": self.azimuth,
            "losses": self.losses,
            "inverter_kw": self.inverter_kw if self.inverter_kw is not None else self.kwp,
            "albedo": self.albedo,
            "mounting": self.mounting,
            "latitude": self.latitude,
            "longitude": self.longitude,
            "altitude": self.altitude,
        }


def site_altitude(latitude: float, longitude: float) -> float:
    """Altitude (m) of a place from pvlib's global elevation map."""
    return float(pvlib.location.lookup_altitude(latitude, longitude))


def _times(unix_seconds: FloatArray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(unix_seconds, unit="s", utc=True))


def clear_sky_weather(
    start: float, end: float, interval: float, latitude: float, longitude: float, altitude: float
) -> Weather:
    """Clear-sky weather (Ineichen-Perez with climatological Linke turbidity) on a regular grid."""
    stamps = np.arange(start, end, interval, dtype=np.float64)
    times = _times(stamps + interval / 2.0)
    with warnings.catch_warnings():
        # pvlib's own use of pandas APIs that pandas has deprecated: not ours to fix.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        sky = Location(latitude, longitude, altitude=altitude).get_clearsky(times, model="ineichen")
    return Weather(
        time=stamps,
        interval=interval,
        ghi=sky["ghi"].to_numpy(dtype=np.float64),
        dni=sky["dni"].to_numpy(dtype=np.float64),
        dhi=sky["dhi"].to_numpy(dtype=np.float64),
        temp_air=np.full(len(stamps), CLEAR_SKY_TEMP_AIR),
        wind_speed=np.full(len(stamps), CLEAR_SKY_WIND_SPEED),
    )


def ac_power_w(system: PvSystem, weather: Weather) -> FloatArray:
    """Mean AC power (W) of ``system`` over each weather interval, computed at its middle."""
    if system.kwp == 0:
        return np.zeros(len(weather.time))
    # Night-time divisions inside the models (their results are 0), and pvlib's own use
    # of pandas APIs that pandas has deprecated: not ours to fix, nor the job's to log.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return _ac_power_w(system, weather)


def _ac_power_w(system: PvSystem, weather: Weather) -> FloatArray:
    times = _times(weather.time + weather.interval / 2.0)
    sun = solarposition.get_solarposition(
        times,
        system.latitude,
        system.longitude,
        altitude=system.altitude,
        temperature=weather.temp_air,
        method="nrel_numpy",
    )
    zenith = sun["apparent_zenith"].to_numpy(dtype=np.float64)
    sun_azimuth = sun["azimuth"].to_numpy(dtype=np.float64)
    day_of_year = np.asarray(times.day_of_year, dtype=np.float64)
    dni_extra = np.asarray(irradiance.get_extra_radiation(day_of_year), dtype=np.float64)
    airmass = np.asarray(
        atmosphere.get_relative_airmass(zenith, model="kastenyoung1989"), dtype=np.float64
    )
    poa = irradiance.get_total_irradiance(
        system.tilt,
        system.azimuth,
        zenith,
        sun_azimuth,
        weather.dni,
        weather.ghi,
        weather.dhi,
        dni_extra=dni_extra,
        airmass=airmass,
        albedo=system.albedo,
        model="perez",
    )
    poa_direct = np.nan_to_num(np.asarray(poa["poa_direct"], dtype=np.float64))
    poa_diffuse = np.nan_to_num(np.asarray(poa["poa_diffuse"], dtype=np.float64))
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=np.float64))
    angle = irradiance.aoi(system.tilt, system.azimuth, zenith, sun_azimuth)
    effective = poa_direct * np.asarray(iam.physical(angle), dtype=np.float64) + poa_diffuse
    mounting = temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][system.mounting]
    cell = temperature.sapm_cell(poa_global, weather.temp_air, weather.wind_speed, **mounting)
    pdc0 = system.kwp * 1000.0
    dc = np.asarray(pvsystem.pvwatts_dc(effective, cell, pdc0, GAMMA_PDC), dtype=np.float64)
    dc = dc * (1.0 - system.losses / 100.0)
    ac_limit = (system.inverter_kw if system.inverter_kw is not None else system.kwp) * 1000.0
    ac = inverter.pvwatts(dc, ac_limit / INVERTER_EFFICIENCY, INVERTER_EFFICIENCY)
    return np.clip(np.nan_to_num(np.asarray(ac, dtype=np.float64)), 0.0, None)


def on_grid(
    power_w: FloatArray, start: float, interval: float, grid_start: float, step: float, steps: int
) -> FloatArray:
    """Mean power over each step of another regular grid, keeping the energy.

    ``power_w[i]`` is the mean over ``[start + i*interval, +interval)``. The
    energy delivered up to any time is piecewise linear; each step's mean is
    its increase over the step divided by the step's length. Finer steps
    repeat the interval's mean, coarser ones average the intervals they cover.
    """
    edges = start + interval * np.arange(len(power_w) + 1, dtype=np.float64)
    energy = np.concatenate(([0.0], np.cumsum(power_w * interval)))
    bounds = grid_start + step * np.arange(steps + 1, dtype=np.float64)
    at_bounds = np.interp(bounds, edges, energy)
    return np.diff(at_bounds) / step
