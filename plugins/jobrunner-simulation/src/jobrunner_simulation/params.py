"""The ``simulation`` job type's params, structured from the job by cattrs and validated here."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
from jobrunner import InvalidParams

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
        pv_kwp: rated PV power in kWp for the clear-sky model; used when the job
            has no ``pv`` input series (required then).
        latitude: degrees north, for the clear-sky model.
        longitude: degrees east, for the clear-sky model.
        unit: unit of the input values: power (W, kW) or energy per step (Wh, kWh);
            the input's own ``unit`` field, else W, when None.
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
    unit: str | None = attrs.field(default=None)

    @unit.validator
    def _check_unit(self, _: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and value not in UNITS:
            raise InvalidParams(f"params.unit: must be one of {', '.join(UNITS)}, got {value!r}")
