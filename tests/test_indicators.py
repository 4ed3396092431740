"""Indicators against straightforward reference loops; kinds in = kinds out."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibframe.indicators import Bands, bollinger, crossover, crossunder, ema, rsi, sma

PRICES = st.lists(st.floats(1.0, 1000.0, allow_nan=False), min_size=0, max_size=80)
PERIOD = st.integers(1, 20)


def ref_sma(x, n):
    return [math.nan if t < n - 1 else sum(x[t - n + 1:t + 1]) / n for t in range(len(x))]


def ref_ema(x, n):
    out, alpha, prev = [], 2 / (n + 1), None
    for t in range(len(x)):
        if t < n - 1:
            out.append(math.nan)
            continue
        prev = sum(x[:n]) / n if t == n - 1 else alpha * x[t] + (1 - alpha) * prev
        out.append(prev)
    return out


def ref_rsi(x, n):
    out = [math.nan] * len(x)
    if len(x) <= n:
        return out
    gains = [max(x[t] - x[t - 1], 0.0) for t in range(1, len(x))]
    losses = [max(x[t - 1] - x[t], 0.0) for t in range(1, len(x))]
    g, l = sum(gains[:n]) / n, sum(losses[:n]) / n
    for t in range(n, len(x)):
        if t > n:
            g = (g * (n - 1) + gains[t - 1]) / n
            l = (l * (n - 1) + losses[t - 1]) / n
        out[t] = 50.0 if g + l == 0 else 100.0 - 100.0 / (1.0 + g / l) if l > 0 else 100.0
    return out


def ref_std(x, n):
    out = []
    for t in range(len(x)):
        if t < n - 1:
            out.append(math.nan)
        else:
            w = x[t - n + 1:t + 1]
            m = sum(w) / n
            out.append(math.sqrt(sum((v - m) ** 2 for v in w) / n))
    return out


def close(actual, expected, tol=1e-7):
    actual, expected = np.asarray(actual, float), np.asarray(expected, float)
    assert actual.shape == expected.shape
    assert np.array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_allclose(actual[~np.isnan(actual)], expected[~np.isnan(expected)],
                               rtol=tol, atol=tol)


@settings(max_examples=150)
@given(PRICES, PERIOD)
def test_sma_matches_loop(x, n):
    close(sma(np.array(x), n), ref_sma(x, n))


@settings(max_examples=150)
@given(PRICES, PERIOD)
def test_ema_matches_loop(x, n):
    close(ema(np.array(x), n), ref_ema(x, n))


@settings(max_examples=150)
@given(PRICES, PERIOD)
def test_rsi_matches_wilder_loop_and_is_bounded(x, n):
    out = rsi(np.array(x), n)
    close(out, ref_rsi(x, n), tol=1e-6)
    finite = out[~np.isnan(out)]
    assert ((finite >= 0) & (finite <= 100)).all()
    assert np.isnan(out[:min(n, len(x))]).all()


@settings(max_examples=150)
@given(PRICES, PERIOD, st.floats(0, 4))
def test_bollinger_matches_loop_and_is_ordered(x, n, k):
    bands = bollinger(np.array(x), n, k)
    assert isinstance(bands, Bands)
    mid = np.array(ref_sma(x, n))
    sd = np.array(ref_std(x, n))
    close(bands.mid, mid)
    # rolling variance is computed online: compare the std with a scale-aware tolerance
    close(bands.upper, mid + k * sd, tol=1e-4)
    close(bands.lower, mid - k * sd, tol=1e-4)
    ok = ~np.isnan(bands.mid)
    assert (bands.upper[ok] >= bands.mid[ok]).all() and (bands.mid[ok] >= bands.lower[ok]).all()


@settings(max_examples=150)
@given(st.lists(st.tuples(st.floats(-5, 5), st.floats(-5, 5)), max_size=50))
def test_crossover_matches_loop(pairs):
    a = np.array([p for p, _ in pairs])
    b = np.array([q for _, q in pairs])
    up = [t > 0 and a[t] > b[t] and a[t - 1] <= b[t - 1] for t in range(len(a))]
    down = [t > 0 and a[t] < b[t] and a[t - 1] >= b[t - 1] for t in range(len(a))]
    assert crossover(a, b).tolist() == up
    assert crossunder(a, b).tolist() == down


def test_crossover_scalar_nan_and_series():
    s = pd.Series([1.0, 2.0, np.nan, 4.0, 1.0, 5.0], index=list("abcdef"), name="px")
    up = crossover(s, 3.0)
    assert isinstance(up, pd.Series) and up.index.equals(s.index) and up.dtype == bool
    assert up.tolist() == [False, False, False, False, False, True]    # NaN never crosses
    assert crossunder(s, 3.0).tolist() == [False, False, False, False, True, False]


def test_series_in_series_out_numpy_in_numpy_out():
    idx = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    s = pd.Series(np.linspace(100, 130, 30) + np.sin(np.arange(30)), index=idx, name="close")
    for fn in (lambda v: sma(v, 5), lambda v: ema(v, 5), lambda v: rsi(v, 5)):
        out = fn(s)
        assert isinstance(out, pd.Series) and out.index.equals(idx) and out.name == "close"
        arr = fn(s.to_numpy())
        assert isinstance(arr, np.ndarray) and arr.dtype == np.float64
        close(arr, out.to_numpy())
        assert isinstance(fn(list(s)), np.ndarray)
    bands = bollinger(s, 5)
    assert all(isinstance(b, pd.Series) and b.index.equals(idx) for b in bands)
    assert isinstance(bollinger(s.to_numpy(), 5).upper, np.ndarray)
    assert s.notna().all()                                             # input untouched


def test_warmup_lengths_and_edge_cases():
    x = np.arange(1.0, 11.0)
    assert np.isnan(sma(x, 4)[:3]).all() and sma(x, 4)[3] == 2.5
    assert np.isnan(ema(x, 4)[:3]).all() and ema(x, 4)[3] == 2.5
    assert rsi(x, 3)[3] == 100.0 and rsi(x[::-1].copy(), 3)[3] == 0.0
    assert rsi(np.full(10, 7.0), 3)[5] == 50.0                        # flat: neutral
    assert np.isnan(ema(x[:3], 5)).all() and len(sma(np.array([]), 3)) == 0
    # leading NaNs (an indicator of an indicator) shift the EMA seed
    chained = ema(sma(x, 3), 2)
    assert np.isnan(chained[:3]).all() and chained[3] == pytest.approx((2.0 + 3.0) / 2)
    with pytest.raises(ValueError):
        sma(x, 0)
    with pytest.raises(ValueError):
        bollinger(x, 3, k=-1)
    with pytest.raises(ValueError):
        sma(np.ones((2, 2)), 1)
