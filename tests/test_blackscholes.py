"""Black–Scholes–Merton pricer: textbook values, parity, greek units versus finite differences,
implied-vol round trips and the degenerate / invalid-input edges."""
from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ibframe.sim.market.blackscholes import Greeks, implied_vol, price_and_greeks

rights = st.sampled_from(["C", "P"])
spots = st.floats(min_value=10.0, max_value=500.0)
moneyness = st.floats(min_value=0.5, max_value=2.0)  # strike / spot
expiries = st.floats(min_value=7 / 365, max_value=3.0)
vols = st.floats(min_value=0.05, max_value=1.5)
rates = st.floats(min_value=-0.01, max_value=0.08)
yields = st.floats(min_value=0.0, max_value=0.05)


def price(right, s, k, t, v, r=0.0, q=0.0) -> float:
    return price_and_greeks(right, s, k, t, v, r, q).price


# --- known values -------------------------------------------------------------------------


def test_textbook_atm_call_and_put():
    # Hull: S=K=100, T=1, r=5 %, sigma=20 %  ->  call 10.4506, put 5.5735
    call = price_and_greeks("C", 100.0, 100.0, 1.0, 0.2, rate=0.05)
    put = price_and_greeks("P", 100.0, 100.0, 1.0, 0.2, rate=0.05)
    assert call.price == pytest.approx(10.4506, abs=5e-5)
    assert put.price == pytest.approx(5.5735, abs=5e-5)
    assert call.delta == pytest.approx(0.6368, abs=5e-5)  # N(0.35)
    assert put.delta == pytest.approx(0.6368 - 1.0, abs=5e-5)
    assert call.gamma == pytest.approx(0.018762, abs=5e-7)
    assert call.vega == pytest.approx(0.37524, abs=5e-6)  # per vol point, not per 1.00
    assert call.theta == pytest.approx(-6.4140 / 365, abs=1e-5)  # per calendar day


def test_textbook_hull_example():
    # Hull, Options Futures & Other Derivatives: S=42, K=40, r=10 %, sigma=20 %, T=0.5
    assert price("C", 42.0, 40.0, 0.5, 0.2, 0.1) == pytest.approx(4.76, abs=5e-3)
    assert price("P", 42.0, 40.0, 0.5, 0.2, 0.1) == pytest.approx(0.81, abs=5e-3)


def test_textbook_merton_with_dividend_yield():
    # Haug, generalized BSM: S=100, K=95, T=0.5, r=10 %, q=5 %, sigma=20 %  ->  put 2.4648
    assert price("P", 100.0, 95.0, 0.5, 0.2, 0.1, 0.05) == pytest.approx(2.4648, abs=5e-5)


def test_result_is_a_frozen_slots_dataclass_of_floats():
    g = price_and_greeks("C", 100.0, 100.0, 0.5, 0.3)
    assert isinstance(g, Greeks)
    assert all(type(x) is float for x in (g.price, g.delta, g.gamma, g.vega, g.theta))
    assert not hasattr(g, "__dict__")
    with pytest.raises(AttributeError):
        g.price = 1.0  # type: ignore[misc]


# --- rights -------------------------------------------------------------------------------


@pytest.mark.parametrize("alias, canonical", [("call", "C"), ("CALL", "C"), ("c", "C"),
                                              ("put", "P"), ("Put", "P"), ("p", "P")])
def test_right_aliases(alias, canonical):
    assert price_and_greeks(alias, 100, 105, 0.3, 0.25, 0.02) == price_and_greeks(canonical, 100, 105, 0.3, 0.25, 0.02)
    assert implied_vol(alias, 3.0, 100, 105, 0.3) == implied_vol(canonical, 3.0, 100, 105, 0.3)


@pytest.mark.parametrize("bad", ["X", "", "CP", "straddle", None, 1])
def test_bad_right_raises(bad):
    with pytest.raises(ValueError, match="right"):
        price_and_greeks(bad, 100.0, 100.0, 1.0, 0.2)
    with pytest.raises(ValueError, match="right"):
        implied_vol(bad, 5.0, 100.0, 100.0, 1.0)


@pytest.mark.parametrize("spot, strike", [(0.0, 100.0), (100.0, 0.0), (-1.0, 100.0), (math.nan, 100.0)])
def test_non_positive_spot_or_strike_raises(spot, strike):
    with pytest.raises(ValueError):
        price_and_greeks("C", spot, strike, 1.0, 0.2)


# --- parity and bounds --------------------------------------------------------------------


@given(spots, moneyness, expiries, vols, rates, yields)
def test_put_call_parity(s, m, t, v, r, q):
    k = s * m
    c = price_and_greeks("C", s, k, t, v, r, q)
    p = price_and_greeks("P", s, k, t, v, r, q)
    forward_gap = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert c.price - p.price == pytest.approx(forward_gap, abs=1e-9 * s)
    assert c.delta - p.delta == pytest.approx(math.exp(-q * t), abs=1e-12)
    assert c.gamma == pytest.approx(p.gamma, rel=1e-12)
    assert c.vega == pytest.approx(p.vega, rel=1e-12)
    assert -1.0 <= p.delta <= 0.0 <= c.delta <= 1.0
    assert c.gamma >= 0.0 and c.vega >= 0.0


@given(rights, spots, moneyness, expiries, vols, rates, yields)
def test_price_within_no_arbitrage_bounds(right, s, m, t, v, r, q):
    k = s * m
    g = price_and_greeks(right, s, k, t, v, r, q)
    fs, pk = s * math.exp(-q * t), k * math.exp(-r * t)
    lower, upper = (max(fs - pk, 0.0), fs) if right == "C" else (max(pk - fs, 0.0), pk)
    assert lower <= g.price <= upper


# --- greeks versus finite differences -----------------------------------------------------

fd_moneyness = st.floats(min_value=0.7, max_value=1.4)
fd_expiries = st.floats(min_value=0.1, max_value=2.0)
fd_vols = st.floats(min_value=0.1, max_value=0.8)


@settings(max_examples=200)
@given(rights, spots, fd_moneyness, fd_expiries, fd_vols, rates, yields)
def test_greeks_match_finite_differences(right, s, m, t, v, r, q):
    k = s * m
    g = price_and_greeks(right, s, k, t, v, r, q)

    h = 1e-4 * s
    up, mid, down = price(right, s + h, k, t, v, r, q), g.price, price(right, s - h, k, t, v, r, q)
    assert g.delta == pytest.approx((up - down) / (2 * h), abs=1e-6)
    assert g.gamma == pytest.approx((up - 2 * mid + down) / (h * h), rel=1e-3, abs=1e-6 / s)

    dv = 1e-4
    fd_vega_per_point = (price(right, s, k, t, v + dv, r, q) - price(right, s, k, t, v - dv, r, q)) / (2 * dv) / 100
    assert g.vega == pytest.approx(fd_vega_per_point, rel=1e-5, abs=1e-9 * s)

    dt = 1e-5
    # theta is the value change as one calendar day passes, i.e. -dPrice/dYears / 365
    fd_theta_per_day = -(price(right, s, k, t + dt, v, r, q) - price(right, s, k, t - dt, v, r, q)) / (2 * dt) / 365
    assert g.theta == pytest.approx(fd_theta_per_day, rel=1e-4, abs=1e-8 * s)


def test_long_option_theta_is_negative_without_carry():
    for right in ("C", "P"):
        for k in (80.0, 100.0, 120.0):
            assert price_and_greeks(right, 100.0, k, 0.5, 0.25).theta < 0.0


def test_theta_close_to_one_day_decay():
    g = price_and_greeks("C", 100.0, 100.0, 30 / 365, 0.3, 0.03)
    one_day_later = price("C", 100.0, 100.0, 29 / 365, 0.3, 0.03)
    assert one_day_later - g.price == pytest.approx(g.theta, rel=2e-2)


# --- implied volatility -------------------------------------------------------------------

iv_vols = st.floats(min_value=0.02, max_value=3.0)


@settings(max_examples=300)
@given(rights, spots, moneyness, expiries, iv_vols, rates, yields)
def test_implied_vol_round_trips(right, s, m, t, v, r, q):
    k = s * m
    g = price_and_greeks(right, s, k, t, v, r, q)
    iv = implied_vol(right, g.price, s, k, t, r, q)
    assert iv is not None
    assert 1e-4 <= iv <= 5.0
    assert price(right, s, k, t, iv, r, q) == pytest.approx(g.price, abs=1e-8)
    raw_vega = g.vega * 100
    if raw_vega > 1e-2:  # vol is only identifiable where price actually moves with it
        assert iv == pytest.approx(v, abs=1e-8 / raw_vega + 1e-12)


@pytest.mark.parametrize("right, strike, vol, years, rate, q", [
    ("C", 100.0, 0.2, 1.0, 0.05, 0.0),
    ("P", 100.0, 0.2, 1.0, 0.05, 0.0),
    ("C", 150.0, 0.9, 0.05, 0.0, 0.0),
    ("P", 60.0, 0.6, 2.0, 0.03, 0.02),
    ("C", 100.0, 4.5, 1.0, 0.0, 0.0),
    ("P", 100.0, 0.01, 1.0, 0.0, 0.0),
])
def test_implied_vol_known_points(right, strike, vol, years, rate, q):
    p = price(right, 100.0, strike, years, vol, rate, q)
    assert implied_vol(right, p, 100.0, strike, years, rate, q) == pytest.approx(vol, abs=1e-6)


def test_implied_vol_none_below_intrinsic():
    # deep ITM call: discounted intrinsic is 100 - 80*e^-0.05 ~= 23.90
    intrinsic = 100.0 - 80.0 * math.exp(-0.05)
    assert implied_vol("C", intrinsic - 0.01, 100.0, 80.0, 1.0, rate=0.05) is None
    assert implied_vol("P", 19.0, 80.0, 100.0, 1.0) is None  # put intrinsic 20
    assert implied_vol("C", -0.5, 100.0, 100.0, 1.0) is None


def test_implied_vol_none_above_upper_bound():
    assert implied_vol("C", 100.5, 100.0, 100.0, 1.0) is None  # a call is never worth more than spot
    assert implied_vol("P", 96.0, 100.0, 100.0, 1.0, rate=0.05) is None  # nor a put more than PV(K)
    # inside the no-arbitrage bound but beyond what 500 % vol gives
    assert implied_vol("C", 99.9, 100.0, 100.0, 0.1) is None


def test_implied_vol_none_without_time_or_finite_price():
    assert implied_vol("C", 5.0, 100.0, 100.0, 0.0) is None
    assert implied_vol("C", 5.0, 100.0, 100.0, -1.0) is None
    assert implied_vol("C", math.nan, 100.0, 100.0, 1.0) is None
    assert implied_vol("C", math.inf, 100.0, 100.0, 1.0) is None


def test_implied_vol_worthless_option_hits_bracket_floor():
    assert implied_vol("C", 0.0, 100.0, 300.0, 0.05) == pytest.approx(1e-4)


# --- degenerate inputs --------------------------------------------------------------------


@pytest.mark.parametrize("years, vol", [(0.0, 0.2), (-0.1, 0.2), (1.0, 0.0), (1.0, -0.3), (0.0, 0.0)])
def test_no_time_or_no_vol_gives_intrinsic(years, vol):
    itm_call = price_and_greeks("C", 110.0, 100.0, years, vol)
    otm_call = price_and_greeks("C", 90.0, 100.0, years, vol)
    itm_put = price_and_greeks("P", 90.0, 100.0, years, vol)
    otm_put = price_and_greeks("P", 110.0, 100.0, years, vol)
    assert itm_call == Greeks(10.0, 1.0, 0.0, 0.0, 0.0)
    assert otm_call == Greeks(0.0, 0.0, 0.0, 0.0, 0.0)
    assert itm_put == Greeks(10.0, -1.0, 0.0, 0.0, 0.0)
    assert otm_put == Greeks(0.0, 0.0, 0.0, 0.0, 0.0)


def test_zero_vol_with_time_is_discounted_intrinsic():
    g = price_and_greeks("C", 110.0, 100.0, 1.0, 0.0, rate=0.05)
    assert g.price == pytest.approx(110.0 - 100.0 * math.exp(-0.05))
    assert (g.delta, g.gamma, g.vega, g.theta) == (1.0, 0.0, 0.0, 0.0)


@settings(max_examples=300)
@given(
    rights,
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=-1.0, max_value=50.0),
    st.floats(min_value=-1.0, max_value=10.0),
    st.floats(min_value=-0.05, max_value=0.2),
    st.floats(min_value=0.0, max_value=0.2),
)
def test_never_nan_for_positive_spot_and_strike(right, s, k, t, v, r, q):
    g = price_and_greeks(right, s, k, t, v, r, q)
    assert all(math.isfinite(x) for x in (g.price, g.delta, g.gamma, g.vega, g.theta))
    assert -1.0 <= g.delta <= 1.0
    assert g.price >= 0.0 and g.gamma >= 0.0 and g.vega >= 0.0


@settings(max_examples=300)
@given(
    rights,
    st.floats(min_value=-1.0, max_value=2e6),
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=1e-3, max_value=1e6),
    st.floats(min_value=-1.0, max_value=50.0),
    st.floats(min_value=-0.05, max_value=0.2),
    st.floats(min_value=0.0, max_value=0.2),
)
def test_implied_vol_never_raises_or_nans(right, p, s, k, t, r, q):
    iv = implied_vol(right, p, s, k, t, r, q)
    assert iv is None or 1e-4 <= iv <= 5.0
