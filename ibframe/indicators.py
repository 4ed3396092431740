"""Vectorised technical indicators over numpy arrays or pandas Series.

Owns: pure functions of a price series. Each accepts a 1-D numpy array (or anything
``np.asarray`` accepts) or a pandas Series and returns the same kind: a float64 ndarray,
or a Series with the input's index and name. The first values that a formula cannot
produce yet (the warm-up) are NaN.

Must never: keep state, mutate its input, do I/O or touch ibapi. Safe on any thread.

Leading NaNs (e.g. feeding one indicator's output to another) shift the warm-up: the
recursions (EMA, RSI) start at the first non-NaN input.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = ["sma", "ema", "rsi", "bollinger", "Bands", "crossover", "crossunder"]


def _as_series(x: Any) -> tuple[pd.Series, bool]:
    """(float Series, whether the caller gave a Series)."""
    if isinstance(x, pd.Series):
        return x.astype("float64"), True
    arr = np.asarray(x, dtype="float64")
    if arr.ndim != 1:
        raise ValueError("indicators take 1-D input")
    return pd.Series(arr), False


def _out(result: pd.Series, like: pd.Series, was_series: bool) -> Any:
    if was_series:
        return pd.Series(result.to_numpy(dtype="float64"), index=like.index, name=like.name)
    return result.to_numpy(dtype="float64")


def _check_period(n: int) -> int:
    if int(n) != n or n < 1:
        raise ValueError("period must be a positive integer")
    return int(n)


def _first_valid(s: pd.Series) -> int | None:
    valid = np.flatnonzero(~np.isnan(s.to_numpy()))
    return int(valid[0]) if len(valid) else None


def _seeded_recursion(s: pd.Series, n: int, alpha: float) -> pd.Series:
    """y[f+n-1] = mean(x[f:f+n]); y[t] = alpha*x[t] + (1-alpha)*y[t-1] after; NaN before.

    ``f`` is the first non-NaN position. Run by pandas' C ewm (adjust=False), which starts
    its recursion at the first non-NaN value -- the SMA seed placed at f+n-1.
    """
    values = s.to_numpy(dtype="float64").copy()
    f = _first_valid(s)
    if f is None or len(values) - f < n:
        return pd.Series(np.full(len(values), np.nan))
    seed_at = f + n - 1
    values[seed_at] = values[f:seed_at + 1].mean()
    values[:seed_at] = np.nan
    return pd.Series(values).ewm(alpha=alpha, adjust=False).mean()


def sma(x: Any, n: int) -> Any:
    """Simple moving average: sma[t] = (x[t-n+1] + ... + x[t]) / n; NaN for t < n-1."""
    n = _check_period(n)
    s, was_series = _as_series(x)
    return _out(s.rolling(n, min_periods=n).mean(), s, was_series)


def ema(x: Any, n: int) -> Any:
    """Exponential moving average, alpha = 2 / (n + 1), seeded with the SMA of the first n.

    ema[n-1] = sma[n-1]; ema[t] = alpha * x[t] + (1 - alpha) * ema[t-1]; NaN for t < n-1.
    """
    n = _check_period(n)
    s, was_series = _as_series(x)
    return _out(_seeded_recursion(s, n, 2.0 / (n + 1)), s, was_series)


def rsi(x: Any, n: int = 14) -> Any:
    """Wilder's Relative Strength Index, in [0, 100].

    d[t] = x[t] - x[t-1]; gain = max(d, 0); loss = max(-d, 0).
    avg_gain[n] = mean(gain[1..n]); avg_gain[t] = (avg_gain[t-1] * (n-1) + gain[t]) / n
    (Wilder smoothing, alpha = 1/n), same for losses.
    rsi = 100 * avg_gain / (avg_gain + avg_loss)  (= 100 - 100 / (1 + RS)).
    A flat window (both averages 0) gives 50. NaN for t < n.
    """
    n = _check_period(n)
    s, was_series = _as_series(x)
    delta = s.diff()
    gain = delta.clip(lower=0.0)
    loss = (-delta).clip(lower=0.0)
    avg_gain = _seeded_recursion(gain, n, 1.0 / n).to_numpy()
    avg_loss = _seeded_recursion(loss, n, 1.0 / n).to_numpy()
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, 100.0 * avg_gain / total, 50.0)
    value = np.where(np.isnan(total), np.nan, np.clip(value, 0.0, 100.0))
    return _out(pd.Series(value), s, was_series)


class Bands(NamedTuple):
    mid: Any
    upper: Any
    lower: Any


def bollinger(x: Any, n: int = 20, k: float = 2.0) -> Bands:
    """Bollinger bands: mid = sma(x, n); sd = population std (ddof=0) over the same window;
    upper = mid + k*sd; lower = mid - k*sd. Returns Bands(mid, upper, lower), each the
    input's kind; NaN for t < n-1. With k >= 0, upper >= mid >= lower.
    """
    n = _check_period(n)
    if k < 0:
        raise ValueError("k must be >= 0")
    s, was_series = _as_series(x)
    roll = s.rolling(n, min_periods=n)
    mid = roll.mean()
    sd = roll.std(ddof=0).clip(lower=0.0)
    return Bands(_out(mid, s, was_series), _out(mid + k * sd, s, was_series),
                 _out(mid - k * sd, s, was_series))


def _cross(a: Any, b: Any, up: bool) -> Any:
    s, was_series = _as_series(a)
    if isinstance(b, pd.Series):
        other = b.astype("float64").to_numpy()
    elif np.ndim(b) == 0:
        other = np.full(len(s), float(b))
    else:
        other = np.asarray(b, dtype="float64")
    if len(other) != len(s):
        raise ValueError("crossover inputs must have the same length")
    cur = s.to_numpy()
    diff = cur - other
    prev = np.concatenate(([np.nan], diff[:-1]))
    with np.errstate(invalid="ignore"):
        hit = (diff > 0) & (prev <= 0) if up else (diff < 0) & (prev >= 0)
    if was_series:
        return pd.Series(hit, index=s.index, name=s.name)
    return hit


def crossover(a: Any, b: Any) -> Any:
    """True at t where a crosses above b: a[t] > b[t] and a[t-1] <= b[t-1].

    ``b`` may be a scalar level. NaN on either side never counts; t = 0 is False.
    Returns a bool array, or a bool Series with a's index.
    """
    return _cross(a, b, up=True)


def crossunder(a: Any, b: Any) -> Any:
    """True at t where a crosses below b: a[t] < b[t] and a[t-1] >= b[t-1]."""
    return _cross(a, b, up=False)
