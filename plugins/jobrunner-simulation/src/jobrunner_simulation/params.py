"""The ``simulation`` job type's params, structured from the job by cattrs and validated here."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
from jobrunner import InvalidParams

from jobrunner_simulation.pv import MOUNTINGS
from jobrunner_simulation.tariff import Tariff, parse_tariff

__all__ = ["UNITS", "SimulationParams"]

#: Units of the input values: power, or energy per step.
UNITS = ("W", "kW", "Wh", "kWh")


def _number(name: str, low: float, high: float, *, low_open: bool = False) -> Callable[..., None]:
    """An attrs validator: a finite number in [low, high] (or (low, high] if ``low_open``)."""

    def check(_: object, __: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        ok = (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > low if low_open else value >= low)
            and value <= high
        )
        if not ok:
            bracket = "(" if low_open else "["
            raise InvalidParams(
                f"params.{name}: must be a number in {bracket}{low:g}, {high:g}], got {value!r}"
            )

    return check


@attrs.frozen(kw_only=True)
class SimulationParams:
    """Params of a ``simulation`` job.

    Attributes:
        battery_kwh: usable battery capacity in kWh (0: no battery).
        max_charge_kw: highest charging power in kW (AC side).
        max_discharge_kw: highest discharging power in kW (AC side).
        efficiency: round-trip efficiency in (0, 1].
        initial_soc: state of charge at the start, as a fraction of the capacity.
        pv_kwp: rated DC power of the PV modules in kWp (at 1000 W/m², 25 °C); the PV
            model needs it when the job has no ``pv`` input series.
        latitude: degrees north of the PV system.
        longitude: degrees east of the PV system.
        altitude: metres above sea level; None looks it up in pvlib's elevation map.
        tilt: the modules' tilt from horizontal, degrees (0 flat, 90 vertical).
        azimuth: the direction the modules face, degrees clockwise from north
            (180 south); None faces the equator (180 north of it, 0 south of it).
        losses: DC system losses in percent (PVWatts' default 14).
        inverter_kw: the inverter's AC power limit in kW; None is ``pv_kwp``.
        albedo: the ground's reflectance, 0..1.
        mounting: the SAPM cell temperature parameters (pvlib's names).
        unit: unit of the input values: power (W, kW) or energy per step (Wh, kWh);
            the input's own ``unit`` field, else W, when None.
        tariff: import and export prices (see :mod:`jobrunner_simulation.tariff`);
            no costs are computed when None.
    """

    battery_kwh: float = attrs.field(default=10.0, validator=_number("battery_kwh", 0, 1e6))
    max_charge_kw: float = attrs.field(default=5.0, validator=_number("max_charge_kw", 0, 1e6))
    max_discharge_kw: float = attrs.field(
        default=5.0, validator=_number("max_discharge_kw", 0, 1e6)
    )
    efficiency: float = attrs.field(
        default=0.9, validator=_number("efficiency", 0, 1, low_open=True)
    )
    initial_soc: float = attrs.field(default=0.5, validator=_number("initial_soc", 0, 1))
    pv_kwp: float | None = attrs.field(default=None, validator=_number("pv_kwp", 0, 1e6))
    latitude: float = attrs.field(default=51.5, validator=_number("latitude", -90, 90))
    longitude: float = attrs.field(default=0.0, validator=_number("longitude", -180, 180))
    altitude: float | None = attrs.field(default=None, validator=_number("altitude", -500, 9000))
    tilt: float = attrs.field(default=30.0, validator=_number("tilt", 0, 90))
    azimuth: float | None = attrs.field(default=None, validator=_number("azimuth", 0, 360))
    losses: float = attrs.field(default=14.0, validator=_number("losses", 0, 99))
    inverter_kw: float | None = attrs.field(
        default=None, validator=_number("inverter_kw", 0, 1e6, low_open=True)
    )
    albedo: float = attrs.field(default=0.25, validator=_number("albedo", 0, 1))
    mounting: str = attrs.field(default="open_rack_glass_polymer")
    unit: str | None = attrs.field(default=None)
    # Any: cattrs hands the raw JSON to the converter, which checks it field by field.
    tariff: Tariff | Any = attrs.field(default=None, converter=parse_tariff)

    @property
    def facing(self) -> float:
        """The azimuth in use: the given one, or the equator's direction."""
        if self.azimuth is not None:
            return self.azimuth
        return 180.0 if self.latitude >= 0 else 0.0

    @mounting.validator
    def _check_mounting(self, _: attrs.Attribute[Any], value: str) -> None:
        if value not in MOUNTINGS:
            raise InvalidParams(
                f"params.mounting: must be one of {', '.join(MOUNTINGS)}, got {value!r:.60}"
            )

    @unit.validator
    def _check_unit(self, _: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and value not in UNITS:
            raise InvalidParams(f"params.unit: must be one of {', '.join(UNITS)}, got {value!r}")
