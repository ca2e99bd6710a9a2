"""The ``simulation`` job type: a household's PV and battery over a load profile."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import numpy.typing as npt
from jobrunner import Context, InputInvalid, InvalidParams, JobType
from jobrunner.timeseries import RegularSeries, parse_readings, regularize

from jobrunner_simulation.battery import Battery, simulate, totals
from jobrunner_simulation.params import UNITS, SimulationParams
from jobrunner_simulation.pv import PvSystem, ac_power_w, clear_sky_weather, on_grid, site_altitude
from jobrunner_simulation.tariff import costs
from jobrunner_simulation.weather import parse_weather

__all__ = ["Simulation", "split_inputs"]

FloatArray = npt.NDArray[np.float64]


def split_inputs(raw: Any) -> tuple[Any, Any | None, Any | None]:
    """Return (load, pv, weather) from named inputs, or (load, None, None) for one series."""
    if isinstance(raw, dict) and "readings" not in raw:
        if "load" not in raw:
            names = ", ".join(sorted(map(str, raw))) or "none"
            raise InputInvalid(
                f"input: expected a 'load' input (and optionally 'pv' or 'weather') or one "
                f"load series, got inputs named {names}"
            )
        unknown = set(raw) - {"load", "pv", "weather"}
        if unknown:
            raise InputInvalid(
                f"input: unknown inputs {sorted(unknown)}; use 'load', 'pv' and 'weather'"
            )
        if "pv" in raw and "weather" in raw:
            raise InputInvalid(
                "input: give either a measured 'pv' series or 'weather' to model PV from, not both"
            )
        return raw["load"], raw.get("pv"), raw.get("weather")
    return raw, None, None


def _on_grid(pv: RegularSeries, load: RegularSeries) -> FloatArray:
    """Mean PV power on the load's steps (matching grids copy, others interpolate)."""
    tolerance = max(pv.step, load.step)
    if pv.start > load.start + tolerance or pv.end < load.end - tolerance:
        raise InputInvalid(
            f"input.pv: covers {pv.start:.0f}..{pv.end:.0f} but the load covers "
            f"{load.start:.0f}..{load.end:.0f}; the PV series must span the load's"
        )
    if pv.step == load.step and (load.start - pv.start) % pv.step == 0:
        offset = round((load.start - pv.start) / pv.step)
        if offset >= 0 and offset + len(load.values) <= len(pv.values):
            return pv.values[offset : offset + len(load.values)]
    middles = load.timestamps + load.step / 2.0
    return np.interp(middles, pv.timestamps + pv.step / 2.0, pv.values)


def _utc(unix_seconds: float) -> str:
    moment = dt.datetime.fromtimestamp(unix_seconds, tz=dt.timezone.utc)
    return moment.isoformat().replace("+00:00", "Z")


def _pairs(stamps: list[int | float], values: FloatArray) -> list[list[Any]]:
    return [[t, v] for t, v in zip(stamps, np.round(values, 6).tolist(), strict=True)]


class Simulation(JobType):
    """Simulate PV self-consumption with a battery over a household's load profile.

    Input: the load series (``[[unix_ts, value], ...]``, ``{"readings": ...}`` or CSV),
    or named inputs ``{"load": ..., "pv": ...}`` (measured PV) or
    ``{"load": ..., "weather": ...}`` (PV modelled with pvlib from the weather; from
    a clear sky without either). Params:
    :class:`~jobrunner_simulation.params.SimulationParams`. Output: ``series`` (per
    step, kWh; ``soc`` in kWh at the end of the step), ``totals`` (with costs when
    the params carry a tariff) and where the PV came from.
    """

    Params = SimulationParams
    #: JSON (``[[ts, value], ...]`` or ``{"readings": ...}``) or CSV inputs.
    accepts = ("application/json", "*/*+json", "text/csv", "text/plain")

    @staticmethod
    def _modelled_pv(
        params: SimulationParams, load: RegularSeries, weather_raw: Any | None
    ) -> tuple[FloatArray, dict[str, Any]]:
        """PV power (W) on the load's steps from pvlib: from the weather, or a clear sky."""
        if params.pv_kwp is None:
            raise InvalidParams(
                "params.pv_kwp: needed to model PV (the job has no measured 'pv' input)"
            )
        altitude = params.altitude
        if altitude is None:
            altitude = site_altitude(params.latitude, params.longitude)
        system = PvSystem(
            latitude=params.latitude,
            longitude=params.longitude,
            altitude=altitude,
            kwp=params.pv_kwp,
            tilt=params.tilt,
            azimuth=params.facing,
            losses=params.losses,
            inverter_kw=params.inverter_kw,
            albedo=params.albedo,
            mounting=params.mounting,
        )
        if weather_raw is not None:
            weather = parse_weather(weather_raw)
            if weather.start > load.start or weather.end < load.end:
                raise InputInvalid(
                    f"input.weather: covers {_utc(weather.start)} to {_utc(weather.end)} but "
                    f"the load covers {_utc(load.start)} to {_utc(load.end)}; the weather must "
                    "span the load's period"
                )
            weather = weather.between(load.start, load.end)
            sky: dict[str, Any] = {"source": "weather", "weather": weather.describe()}
        else:
            # Clear sky at the load's own steps, or hourly for coarser loads.
            interval = min(load.step, 3600.0)
            weather = clear_sky_weather(
                load.start, load.end, interval, system.latitude, system.longitude, altitude
            )
            sky = {
                "source": "clear_sky",
                "clear_sky": "pvlib Ineichen-Perez, Linke turbidity "
                "climatology; an upper bound, not a yield forecast",
            }
        power = ac_power_w(system, weather)
        pv_w = on_grid(
            power, weather.start, weather.interval, load.start, load.step, len(load.values)
        )
        return pv_w, {**sky, **system.describe()}

    def __call__(self, ctx: Context) -> dict[str, Any]:
        """Run one simulation job."""
        params: SimulationParams = ctx.params
        load_raw, pv_raw, weather_raw = split_inputs(ctx.input)
        named = isinstance(ctx.input, dict) and "load" in ctx.input
        load_readings = parse_readings(load_raw, name="input.load" if named else "input")
        unit = params.unit or load_readings.unit or "W"
        if unit not in UNITS:
            raise InputInvalid(f"input.unit: must be one of {', '.join(UNITS)}, got {unit!r}")
        load = regularize(load_readings, unit=unit)
        if np.any(load.values < 0):
            raise InputInvalid("input.load: the load must not be negative (use a 'pv' input)")
        step_hours = load.step / 3600.0
        if pv_raw is not None:
            pv_readings = parse_readings(pv_raw, name="input.pv")
            pv_w = _on_grid(regularize(pv_readings, unit=pv_readings.unit or unit), load)
            pv_source: dict[str, Any] = {"source": "input"}
        else:
            pv_w, pv_source = self._modelled_pv(params, load, weather_raw)
        load_kwh = load.values * step_hours / 1000.0
        pv_kwh = np.clip(pv_w, 0.0, None) * step_hours / 1000.0
        battery = Battery(
            capacity_kwh=params.battery_kwh,
            max_charge_kw=params.max_charge_kw,
            max_discharge_kw=params.max_discharge_kw,
            efficiency=params.efficiency,
            initial_soc=params.initial_soc,
        )
        ctx.log.info("simulation_started", steps=len(load_kwh), interval=load.step)
        result = simulate(load_kwh, pv_kwh, step_hours, battery, progress=ctx.progress)
        summary = totals(load_kwh, pv_kwh, result, battery)
        if params.tariff is not None:
            summary.update(
                costs(
                    params.tariff,
                    load.timestamps,
                    load.step,
                    load_kwh,
                    pv_kwh,
                    result.grid_import,
                    result.grid_export,
                )
            )
        if pv_source["source"] != "input" and params.pv_kwp:
            pv_source["specific_yield"] = round(summary["pv"] / params.pv_kwp, 3)
        ctx.log.info("simulation_done", **{k: round(v, 3) for k, v in summary.items()})
        stamps = [int(t) if t.is_integer() else t for t in load.timestamps.tolist()]
        return {
            "series": {
                "soc": _pairs(stamps, result.soc),
                "grid_import": _pairs(stamps, result.grid_import),
                "grid_export": _pairs(stamps, result.grid_export),
                "battery_charge": _pairs(stamps, result.battery_charge),
                "battery_discharge": _pairs(stamps, result.battery_discharge),
                "pv": _pairs(stamps, pv_kwh),
                "load": _pairs(stamps, load_kwh),
            },
            "totals": {key: round(value, 6) for key, value in summary.items()},
            "interval": load.step,
            "pv": pv_source,
            "battery": {
                "capacity_kwh": battery.capacity_kwh,
                "max_charge_kw": battery.max_charge_kw,
                "max_discharge_kw": battery.max_discharge_kw,
                "efficiency": battery.efficiency,
            },
            "input": {**load.stats, "start": load.start, "end": load.end, "unit": unit},
        }
