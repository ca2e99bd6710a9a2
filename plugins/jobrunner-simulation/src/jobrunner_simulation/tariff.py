"""Electricity tariffs: import and export prices, flat or by hour and weekday, and the costs.

A price is one of:

* a number: the same price at every hour (a flat tariff);
* a list of 24 numbers: the price of each hour of the day (0 = 00:00-01:00), every day;
* a list of 7 lists of 24 numbers: by weekday (Monday first) and hour.

Hours and weekdays are local time in the tariff's ``timezone`` (an IANA name
such as ``Europe/Berlin``; UTC by default). A step is priced at the hour in
which it starts. Prices are per kWh in any one currency; they may be negative
(dynamic tariffs).
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from jobrunner import InvalidParams

__all__ = ["MAX_PRICE", "Tariff", "costs", "parse_tariff"]

FloatArray = npt.NDArray[np.float64]

#: Prices beyond this (per kWh) are refused as a slip of units or digits.
MAX_PRICE = 1000.0
_DAYS_PER_YEAR = 365.25
_FIELDS = ("import", "export", "timezone")


@dataclass(frozen=True)
class Tariff:
    """Import and export prices per kWh as 7 x 24 tables (weekday from Monday, hour)."""

    import_prices: FloatArray
    export_prices: FloatArray
    timezone: str = "UTC"

    def prices_at(self, unix_seconds: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Import and export price of the hour in which each time falls (local time)."""
        local = pd.DatetimeIndex(pd.to_datetime(unix_seconds, unit="s", utc=True)).tz_convert(
            self.timezone
        )
        day = np.asarray(local.day_of_week, dtype=np.intp)
        hour = np.asarray(local.hour, dtype=np.intp)
        return self.import_prices[day, hour], self.export_prices[day, hour]


def _table(value: Any, where: str) -> FloatArray:
    """A price (number, 24 hourly prices, or 7 x 24) as a 7 x 24 table."""
    shape_hint = "a number, a list of 24 hourly prices, or 7 such lists (Monday first)"

    def price(cell: Any, at: str) -> float:
        ok = (
            isinstance(cell, (int, float))
            and not isinstance(cell, bool)
            and math.isfinite(cell)
            and abs(cell) <= MAX_PRICE
        )
        if not ok:
            raise InvalidParams(
                f"{at}: a price must be a number between {-MAX_PRICE:g} and {MAX_PRICE:g} "
                f"per kWh, got {cell!r:.40}"
            )
        return float(cell)

    if not isinstance(value, list):
        return np.full((7, 24), price(value, where))
    if len(value) == 24 and not any(isinstance(cell, list) for cell in value):
        hours = [price(cell, f"{where}[{h}]") for h, cell in enumerate(value)]
        return np.tile(np.asarray(hours), (7, 1))
    if len(value) == 7 and all(isinstance(day, list) for day in value):
        rows = []
        for d, day in enumerate(value):
            if len(day) != 24:
                raise InvalidParams(f"{where}[{d}]: expected 24 hourly prices, got {len(day)}")
            rows.append([price(cell, f"{where}[{d}][{h}]") for h, cell in enumerate(day)])
        return np.asarray(rows, dtype=np.float64)
    raise InvalidParams(f"{where}: expected {shape_hint}, got a list of {len(value)}")


def parse_tariff(value: Any) -> Tariff | None:
    """Build a :class:`Tariff` from the ``tariff`` param (None stays None).

    Raises:
        InvalidParams: naming the field (``params.tariff.import[2][17]``, ...).
    """
    if value is None or isinstance(value, Tariff):
        return value
    where = "params.tariff"
    if not isinstance(value, dict):
        raise InvalidParams(
            f'{where}: expected an object such as {{"import": 0.30, "export": 0.08}}, '
            f"got {value!r:.60}"
        )
    unknown = sorted(set(map(str, value)) - set(_FIELDS))
    if unknown:
        raise InvalidParams(f"{where}: unknown field {unknown[0]!r}; use {', '.join(_FIELDS)}")
    if "import" not in value:
        raise InvalidParams(f"{where}.import: the import price is required")
    timezone = value.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone or len(timezone) > 64:
        raise InvalidParams(f"{where}.timezone: expected an IANA time zone name, got {timezone!r}")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidParams(
            f"{where}.timezone: unknown time zone {timezone!r:.70}; use an IANA name such as "
            "Europe/Berlin or UTC"
        ) from None
    return Tariff(
        import_prices=_table(value["import"], f"{where}.import"),
        export_prices=_table(value.get("export", 0.0), f"{where}.export"),
        timezone=timezone,
    )


def costs(
    tariff: Tariff,
    step_starts: FloatArray,
    step_seconds: float,
    load_kwh: FloatArray,
    pv_kwh: FloatArray,
    grid_import_kwh: FloatArray,
    grid_export_kwh: FloatArray,
) -> dict[str, float]:
    """Electricity costs over the simulated period, and the battery's saving.

    ``cost_without_pv`` buys the whole load; ``cost_with_pv`` nets PV against
    the load at each step (no battery): the deficit is bought, the surplus
    sold; ``cost_with_pv_battery`` is what the simulated grid exchange costs.
    ``battery_saving`` is the difference of the last two, and
    ``battery_saving_per_year`` scales it to 365.25 days.
    """
    buy, sell = tariff.prices_at(step_starts)
    net = load_kwh - pv_kwh
    without_pv = float(np.dot(load_kwh, buy))
    with_pv = float(np.dot(np.maximum(net, 0.0), buy) - np.dot(np.maximum(-net, 0.0), sell))
    with_battery = float(np.dot(grid_import_kwh, buy) - np.dot(grid_export_kwh, sell))
    saving = with_pv - with_battery
    days = len(step_starts) * step_seconds / 86400.0
    return {
        "cost_without_pv": without_pv,
        "cost_with_pv": with_pv,
        "cost_with_pv_battery": with_battery,
        "battery_saving": saving,
        "battery_saving_per_year": saving * _DAYS_PER_YEAR / days if days > 0 else 0.0,
    }
