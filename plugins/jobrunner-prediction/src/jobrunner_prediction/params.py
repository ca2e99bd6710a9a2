"""The ``prediction`` job type's params, structured from the job by cattrs and validated here."""

from __future__ import annotations

import math
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from jobrunner import InvalidParams
from jobrunner.timeseries import ENERGY_UNITS, POWER_UNITS

from jobrunner_prediction.daytypes import check_holidays
from jobrunner_prediction.durations import format_duration, parse_duration
from jobrunner_prediction.forecast import AUTO, METHODS

__all__ = ["MAX_HORIZON_STEPS", "HolidayRegion", "PredictionParams"]

#: The longest forecast, in steps of the interval.
MAX_HORIZON_STEPS = 100_000
_DAY = 86400.0


def _parse(name: str, value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise InvalidParams(f"params.{name}: {exc}") from None


def _horizon(value: Any) -> float:
    return _parse("horizon", value)


def _interval(value: Any) -> float | None:
    return None if value is None else _parse("interval", value)


def divides_day(seconds: float) -> bool:
    """Whether a whole number of steps of ``seconds`` makes a day (needed for daily seasons)."""
    count = _DAY / seconds
    return abs(count - round(count)) < 1e-9 * max(1.0, count)


@attrs.frozen(kw_only=True)
class HolidayRegion:
    """Whose public holidays to treat like Sundays.

    Attributes:
        country: ISO 3166-1 code, e.g. ``AU``, ``GB``, ``DE``, ``US``.
        subdivision: state, province or nation code within it, e.g. ``VIC``, ``ENG``, ``BY``.
    """

    country: str
    subdivision: str | None = None

    def __attrs_post_init__(self) -> None:
        """Check the region with the ``holidays`` package."""
        try:
            check_holidays(self.country, self.subdivision)
        except ValueError as exc:
            raise InvalidParams(f"params.holidays: {exc}") from None


# The duration fields are annotated ``float | str`` so that cattrs hands the raw
# value ("24h", "PT15M", 900) to the attrs converter whatever its settings; after
# conversion they always hold seconds as a float.
@attrs.frozen(kw_only=True)
class PredictionParams:
    """Params of a ``prediction`` job.

    Attributes:
        horizon: how far ahead to forecast, in seconds (900, "24h", "1d", "PT24H").
        interval: the forecast's step in seconds; the input's own spacing when None.
            Must divide a day evenly (1min, 15min, 30min, 1h, ...).
        method: ``auto`` (back-test and combine), ``mstl_arima``, ``mstl_ets``,
            ``holt_winters``, ``seasonal_naive_day`` or ``seasonal_naive_week``.
        level: coverage of the prediction interval, in (0, 1).
        unit: unit of the input values (W, kW, MW, or Wh, kWh, MWh per reading);
            the input's own ``unit`` field, else W, when None.
        holidays: country (and subdivision) whose public holidays are treated like
            Sundays, e.g. ``{"country": "AU", "subdivision": "VIC"}``; none when None.
        timezone: IANA time zone whose local dates decide weekdays and holidays.
    """

    horizon: float | str = attrs.field(converter=_horizon)
    interval: float | str | None = attrs.field(default=None, converter=_interval)
    method: str = attrs.field(default=AUTO)
    level: float = attrs.field(default=0.9)
    unit: str | None = attrs.field(default=None)
    holidays: HolidayRegion | None = attrs.field(default=None)
    timezone: str = attrs.field(default="UTC")

    @interval.validator
    def _check_interval(self, _: attrs.Attribute[Any], value: float | None) -> None:
        if value is not None and not divides_day(float(value)):
            raise InvalidParams(
                f"params.interval: must divide a day evenly (e.g. 1min, 15min, 30min, 1h), "
                f"got {format_duration(float(value))}"
            )

    @method.validator
    def _check_method(self, _: attrs.Attribute[Any], value: str) -> None:
        if value not in (AUTO, *METHODS):
            known = ", ".join((AUTO, *sorted(METHODS)))
            raise InvalidParams(f"params.method: must be one of {known}, got {value!r}")

    @level.validator
    def _check_level(self, _: attrs.Attribute[Any], value: float) -> None:
        if isinstance(value, bool) or not math.isfinite(value) or not 0.0 < value < 1.0:
            raise InvalidParams(f"params.level: must be between 0 and 1 (e.g. 0.9), got {value!r}")

    @unit.validator
    def _check_unit(self, _: attrs.Attribute[Any], value: str | None) -> None:
        if value is not None and value not in POWER_UNITS and value not in ENERGY_UNITS:
            known = ", ".join([*POWER_UNITS, *ENERGY_UNITS])
            raise InvalidParams(f"params.unit: must be one of {known}, got {value!r}")

    @timezone.validator
    def _check_timezone(self, _: attrs.Attribute[Any], value: str) -> None:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidParams(
                f"params.timezone: unknown time zone {value!r} (use an IANA name such as "
                "Europe/London or Australia/Melbourne)"
            ) from None
