"""Multi-seasonal decomposition (daily and weekly) with an ARIMA or ETS model on what remains.

The series is split into a daily season, a weekly season and the rest
(trend plus remainder), in the manner of MSTL (Bandara, Hyndman and Bergmeir,
2021): each season is estimated in turn from the series less the others and
less a trend, by smoothing every phase of the cycle across neighbouring cycles
(the daily shape across neighbouring days, the weekday shapes across
neighbouring weeks), and the whole is iterated with robustness weights so
that an odd day (a heat wave, a holiday) does not bend the seasons.

Smoothing across cycles is a NaN-aware weighted moving average with a
triangular kernel: at the end of the series the window is one-sided, so the
last cycle's season is a weighted mean of the most recent cycles, which is
what a forecast repeats. Everything is whole-array NumPy: a few
milliseconds for eight weeks of half-hours.

The rest (trend plus remainder) is forecast by one of

* ``arima``: ARIMA(p, 1, 0), the differences an AR(p) fitted by least
  squares, p by AIC;
* ``ets``: simple exponential smoothing (ETS(A,N,N)), its smoothing
  parameter fitted on the errors over the forecast horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import minimize_scalar
from scipy.signal import lfilter

__all__ = ["Decomposition", "decompose", "forecast_rest", "mstl_forecast"]

FloatArray = npt.NDArray[np.float64]

#: Half-widths, in cycles, of the seasonal smoothing windows (daily, weekly).
DAY_WINDOW = 7
WEEK_WINDOW = 8
#: Degree of the local polynomial smoothing each season across cycles.
SEASON_DEGREE = 0
#: Longest AR order tried for the differenced rest.
MAX_AR = 8


@dataclass(frozen=True)
class Decomposition:
    """A series split as ``y = rest + sum(seasonals)``.

    Attributes:
        periods: the seasonal periods in steps.
        seasonals: one array per period, as long as the series.
        rest: trend plus remainder (the seasonally adjusted series).
    """

    periods: tuple[int, ...]
    seasonals: tuple[FloatArray, ...]
    rest: FloatArray

    def seasonal_forecast(self, horizon: int) -> FloatArray:
        """The seasons' sum for steps 1..horizon after the series: each repeats its last cycle."""
        n = len(self.rest)
        steps = np.arange(1, horizon + 1)
        total = np.zeros(horizon)
        for period, seasonal in zip(self.periods, self.seasonals, strict=True):
            total += seasonal[n - 1 + steps - period * ((steps + period - 1) // period)]
        return total


def _smooth(values: FloatArray, weights: FloatArray, half: int, degree: int = 1) -> FloatArray:
    """Weighted local polynomial (degree 0 or 1) smoothing along axis 0.

    Tricube kernel over ``half`` rows either side, truncated at both ends: at
    the last rows a local line extrapolates how the season has been changing
    (the evening peak moving with sunset, say), as STL's loess does.
    """
    d = np.arange(-half, half + 1, dtype=np.float64)
    kernel = (1.0 - (np.abs(d) / (half + 1)) ** 3) ** 3
    s0 = _correlate0(weights, kernel)
    t0 = _correlate0(values * weights, kernel)
    with np.errstate(invalid="ignore", divide="ignore"):
        level = np.where(s0 > 0, t0 / s0, 0.0)
        if degree == 0:
            return np.asarray(level, dtype=np.float64)
        s1 = _correlate0(weights, kernel * d)
        s2 = _correlate0(weights, kernel * d * d)
        t1 = _correlate0(values * weights, kernel * d)
        det = s0 * s2 - s1 * s1
        line = (s2 * t0 - s1 * t1) / det
    usable = det > 1e-9 * np.maximum(s0 * s2, 1e-300)
    return np.asarray(np.where(usable, line, level), dtype=np.float64)


def _correlate0(a: FloatArray, kernel: FloatArray) -> FloatArray:
    """``out[r] = sum_d kernel[d] * a[r + d]`` along axis 0 (zero outside), same size."""
    flat = a.ndim == 1
    rows = a[:, None] if flat else a
    half = len(kernel) // 2
    padded = np.concatenate(
        (np.zeros((half, rows.shape[1])), rows, np.zeros((half, rows.shape[1])))
    )
    out = np.zeros_like(rows)
    for j, k in enumerate(kernel):
        out += k * padded[j : j + len(rows)]
    return out[:, 0] if flat else out


def _cycles(x: FloatArray, period: int) -> tuple[FloatArray, int]:
    """``x`` as rows of whole cycles aligned to its end (padded with NaN at the start)."""
    pad = (-len(x)) % period
    return np.concatenate((np.full(pad, np.nan), x)).reshape(-1, period), pad


def _seasonal(x: FloatArray, weights: FloatArray, period: int, half: int) -> FloatArray:
    """Smooth each phase of ``period`` across cycles; remove each cycle's mean."""
    rows, pad = _cycles(x, period)
    w_rows, _ = _cycles(weights, period)
    valid = np.isfinite(rows)
    w = np.where(valid, np.nan_to_num(w_rows), 0.0)
    values = np.where(valid, rows, 0.0)
    smooth = _smooth(values, w, half, SEASON_DEGREE)
    # Where robustness weights left a phase no weight at all, use every cycle alike.
    lost = _smooth(valid.astype(np.float64), w, half, 0) == 0.0
    if lost.any():
        plain = _smooth(values, valid.astype(np.float64), half, SEASON_DEGREE)
        smooth = np.where(lost & valid, plain, smooth)
    smooth -= smooth.mean(axis=1, keepdims=True)
    return np.asarray(smooth.ravel()[pad:], dtype=np.float64)


def _moving_average(x: FloatArray, width: int) -> FloatArray:
    """Centred moving average over ``width`` steps, truncated at the ends."""
    kernel = np.ones(width)
    num = np.convolve(x, kernel, mode="same")
    den = np.convolve(np.ones_like(x), kernel, mode="same")
    return np.asarray(num / den, dtype=np.float64)


def decompose(
    y: FloatArray,
    periods: tuple[int, ...],
    windows: tuple[int, ...] | None = None,
    iterations: int = 2,
) -> Decomposition:
    """Split ``y`` into seasons of ``periods`` (ascending) and the rest.

    Args:
        y: the series, without gaps.
        periods: seasonal periods in steps, ascending (e.g. a day and a week).
        windows: half-widths in cycles of each period's smoothing window.
        iterations: passes; after the first, robustness weights damp outliers.
    """
    y = np.asarray(y, dtype=np.float64)
    if windows is None:
        windows = (DAY_WINDOW, WEEK_WINDOW, WEEK_WINDOW)[: len(periods)]
    seasonals = [np.zeros_like(y) for _ in periods]
    trend = _moving_average(y, periods[-1])
    weights = np.ones_like(y)
    for iteration in range(iterations):
        for i, (period, half) in enumerate(zip(periods, windows, strict=True)):
            others = sum((s for j, s in enumerate(seasonals) if j != i), np.zeros_like(y))
            seasonals[i] = _seasonal(y - trend - others, weights, period, half)
        adjusted = y - sum(seasonals, np.zeros_like(y))
        trend = _moving_average(adjusted, periods[0])
        if iteration + 1 < iterations:
            residual = adjusted - trend
            scale = 6.0 * float(np.median(np.abs(residual))) or 1.0
            u = np.clip(np.abs(residual) / scale, 0.0, 1.0)
            weights = (1.0 - u**2) ** 2
    rest = y - sum(seasonals, np.zeros_like(y))
    return Decomposition(tuple(periods), tuple(seasonals), rest)


def _ar_fit(dz: FloatArray, max_order: int) -> tuple[FloatArray, float]:
    """AR coefficients (no intercept) of ``dz`` by least squares, the order by AIC.

    All orders share one Gram matrix of the lags, so trying them all costs
    little more than fitting the largest.
    """
    top = min(max_order, max(0, len(dz) // 10))
    lags = sliding_window_view(dz, top + 1)[:, ::-1]
    gram = lags.T @ lags  # [0] is the target, [1:] the lags
    count = len(lags)
    best: tuple[float, FloatArray, float] | None = None
    for order in range(top + 1):
        if order:
            try:
                coef = np.linalg.solve(gram[1 : order + 1, 1 : order + 1], gram[1 : order + 1, 0])
            except np.linalg.LinAlgError:
                break
            sse = float(gram[0, 0] - coef @ gram[1 : order + 1, 0])
        else:
            coef, sse = np.zeros(0), float(gram[0, 0])
        sigma2 = max(sse / count, 1e-300)
        aic = count * np.log(sigma2) + 2 * order
        if best is None or aic < best[0]:
            best = (aic, coef, sigma2)
    assert best is not None
    return best[1], best[2]


def _arima_paths(
    z: FloatArray, coef: FloatArray, origins: npt.NDArray[np.int64], horizon: int
) -> FloatArray:
    """ARIMA(p,1,0) forecasts 1..horizon after each origin index of ``z``."""
    p = len(coef)
    dz = np.diff(z, prepend=z[0])
    hist = (
        np.stack([dz[origins - k] for k in range(p)], axis=1) if p else np.zeros((len(origins), 0))
    )
    level = z[origins].copy()
    out = np.empty((len(origins), horizon))
    for h in range(horizon):
        step = hist @ coef if p else np.zeros(len(origins))
        level = level + step
        out[:, h] = level
        if p:
            hist = np.concatenate((step[:, None], hist[:, :-1]), axis=1)
    return out


def _ses_level(z: FloatArray, alpha: float) -> FloatArray:
    """Levels of simple exponential smoothing started at ``z[0]``."""
    level, _ = lfilter([alpha], [1.0, alpha - 1.0], z, zi=[(1.0 - alpha) * z[0]])
    return np.asarray(level, dtype=np.float64)


def _fit_ses(z: FloatArray, horizon: int) -> float:
    """The SES smoothing parameter with the least squared error over leads 1..horizon."""
    lead = max(1, min(horizon, len(z) // 4))
    ahead = sliding_window_view(z[1:], lead)
    stride = max(1, len(ahead) // 400)

    def loss(alpha: float) -> float:
        level = _ses_level(z, alpha)[: len(ahead)]
        err = ahead[::stride] - level[::stride, None]
        return float(np.mean(err**2))

    result = minimize_scalar(loss, bounds=(0.001, 1.0), method="bounded", options={"xatol": 1e-3})
    return float(result.x)


def forecast_rest(
    z: FloatArray, model: str, horizon: int, fit_points: int
) -> tuple[FloatArray, dict[str, object]]:
    """Forecast the seasonally adjusted series ``z`` 1..horizon steps ahead.

    Args:
        z: trend plus remainder.
        model: ``arima`` or ``ets``.
        horizon: steps ahead.
        fit_points: the model is fitted on the last this many points.
    """
    window = z[-fit_points:]
    if model == "arima":
        coef, _ = _ar_fit(np.diff(window), MAX_AR)
        path = _arima_paths(window, coef, np.array([len(window) - 1]), horizon)[0]
        return path, {"order": [len(coef), 1, 0], "ar": [round(float(c), 6) for c in coef]}
    alpha = _fit_ses(window, horizon)
    level = _ses_level(window, alpha)[-1]
    return np.full(horizon, level), {"alpha": round(alpha, 6)}


def mstl_forecast(
    y: FloatArray, periods: tuple[int, ...], model: str, horizon: int, fit_points: int
) -> tuple[FloatArray, dict[str, object]]:
    """Decompose ``y`` and forecast: the seasons' last cycles plus the rest's model."""
    parts = decompose(y, periods)
    rest, fitted = forecast_rest(parts.rest, model, horizon, fit_points)
    return rest + parts.seasonal_forecast(horizon), {"periods": list(periods), **fitted}
