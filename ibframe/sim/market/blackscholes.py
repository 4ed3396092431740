"""Black–Scholes–Merton pricing for the simulated gateway's option quotes.

Owns: European option prices, greeks and implied volatility for the simulator's option
chains, in the units Interactive Brokers uses in ``tickOptionComputation``:

* ``delta``  – dPrice/dSpot, in [-1, 1];
* ``gamma``  – d2Price/dSpot2, per 1 unit of the underlying;
* ``vega``   – dPrice/dVol per 1 volatility *point* (dPrice/dSigma / 100);
* ``theta``  – price change per *calendar day* of time passing (-dPrice/dYears / 365),
  normally negative for a long option.

Rates and dividend yield are continuously compounded annual figures, ``years`` is the time
to expiry in years and ``vol`` an annualised volatility as a fraction (0.2 = 20 %).

Must never do: any I/O, logging, clock reads or touching simulator state. Every function is
pure and returns plain Python floats; market data, contracts and ticks live elsewhere.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Greeks", "price_and_greeks", "implied_vol", "IV_MIN", "IV_MAX", "IV_PRICE_TOL"]

IV_MIN = 1e-4  # lower end of the implied-volatility search bracket
IV_MAX = 5.0  # upper end (500 % vol)
IV_PRICE_TOL = 1e-8  # implied_vol stops once the model price is this close to the target
_IV_MAX_ITER = 200

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_DAYS_PER_YEAR = 365.0
# Below this total standard deviation (vol * sqrt(years)) the time value is < 1e-10 of spot and
# d1, gamma would overflow as it shrinks to 0: price such options as if vol were 0.
_MIN_STDDEV = 1e-10


@dataclass(slots=True, frozen=True)
class Greeks:
    """One option's model price and sensitivities, in IB's reporting units (see module doc)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def _norm_cdf(x: float) -> float:
    # Phi(x) = (1 + erf(x/sqrt2)) / 2 = erfc(-x/sqrt2) / 2; the erfc form keeps full relative
    # precision deep in the lower tail, where 1 + erf(...) would cancel to zero.
    return 0.5 * math.erfc(-x / _SQRT2)


def _norm_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _is_call(right: str) -> bool:
    key = right.strip().upper() if isinstance(right, str) else None
    if key in ("C", "CALL"):
        return True
    if key in ("P", "PUT"):
        return False
    raise ValueError(f"option right must be 'C'/'CALL' or 'P'/'PUT' (any case), got {right!r}")


def _check_inputs(spot: float, strike: float, years: float, rate: float, dividend_yield: float) -> None:
    if not (math.isfinite(spot) and spot > 0.0):
        raise ValueError(f"spot must be a finite positive number, got {spot!r}")
    if not (math.isfinite(strike) and strike > 0.0):
        raise ValueError(f"strike must be a finite positive number, got {strike!r}")
    for name, value in (("years", years), ("rate", rate), ("dividend_yield", dividend_yield)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")


def _bounds(is_call: bool, spot: float, strike: float, years: float, rate: float, q: float) -> tuple[float, float]:
    """No-arbitrage (lower, upper) price bounds of a European option."""
    t = max(years, 0.0)
    fwd_spot = spot * math.exp(-q * t)  # spot less the PV of dividends paid before expiry
    pv_strike = strike * math.exp(-rate * t)
    if is_call:
        return max(fwd_spot - pv_strike, 0.0), fwd_spot
    return max(pv_strike - fwd_spot, 0.0), pv_strike


def _price_and_raw_vega(
    is_call: bool, spot: float, strike: float, years: float, vol: float, rate: float, q: float
) -> tuple[float, float]:
    """Model price and dPrice/dSigma (per unit of vol); assumes years > 0 and vol > 0."""
    sd = vol * math.sqrt(years)
    if sd < _MIN_STDDEV:
        return _bounds(is_call, spot, strike, years, rate, q)[0], 0.0
    d1 = (math.log(spot / strike) + (rate - q) * years) / sd + 0.5 * sd
    d2 = d1 - sd
    df_q = math.exp(-q * years)
    df_r = math.exp(-rate * years)
    if is_call:
        price = spot * df_q * _norm_cdf(d1) - strike * df_r * _norm_cdf(d2)
    else:
        price = strike * df_r * _norm_cdf(-d2) - spot * df_q * _norm_cdf(-d1)
    lower, upper = _bounds(is_call, spot, strike, years, rate, q)
    price = min(max(price, lower), upper)  # only ever trims floating-point rounding
    return price, spot * df_q * _norm_pdf(d1) * math.sqrt(years)


def price_and_greeks(
    right: str,
    spot: float,
    strike: float,
    years: float,
    vol: float,
    rate: float = 0.0,
    dividend_yield: float = 0.0,
) -> Greeks:
    """Black–Scholes–Merton price and greeks of a European call or put.

    ``right`` is "C"/"CALL" or "P"/"PUT" (any case); anything else raises ``ValueError``, as do
    a non-positive or non-finite ``spot``/``strike`` and non-finite other inputs.

    With no time or no volatility left (``years <= 0`` or ``vol <= 0``, or so little of both
    that ``vol * sqrt(years) < 1e-10`` and the time value is negligible) the option is worth its
    (forward-discounted, which is plain at expiry) intrinsic value; delta is the step limit
    (call 1 if in the money else 0, put -1 if in the money else 0, scaled by the dividend
    discount when time remains) and gamma, vega and theta are 0.
    """
    is_call = _is_call(right)
    _check_inputs(spot, strike, years, rate, dividend_yield)
    if not math.isfinite(vol):
        raise ValueError(f"vol must be finite, got {vol!r}")
    q = dividend_yield

    if years <= 0.0 or vol <= 0.0 or vol * math.sqrt(years) < _MIN_STDDEV:
        lower, _ = _bounds(is_call, spot, strike, years, rate, q)
        df_q = math.exp(-q * max(years, 0.0))
        delta = (df_q if is_call else -df_q) if lower > 0.0 else 0.0
        return Greeks(price=lower, delta=delta, gamma=0.0, vega=0.0, theta=0.0)

    sqrt_t = math.sqrt(years)
    sd = vol * sqrt_t
    d1 = (math.log(spot / strike) + (rate - q) * years) / sd + 0.5 * sd
    d2 = d1 - sd
    df_q = math.exp(-q * years)
    df_r = math.exp(-rate * years)
    pdf_d1 = _norm_pdf(d1)

    price, raw_vega = _price_and_raw_vega(is_call, spot, strike, years, vol, rate, q)
    gamma = df_q * pdf_d1 / (spot * sd)
    decay = -spot * df_q * pdf_d1 * vol / (2.0 * sqrt_t)  # the pure time-value bleed, per year
    if is_call:
        delta = df_q * _norm_cdf(d1)
        theta_year = decay - rate * strike * df_r * _norm_cdf(d2) + q * spot * df_q * _norm_cdf(d1)
    else:
        delta = -df_q * _norm_cdf(-d1)
        theta_year = decay + rate * strike * df_r * _norm_cdf(-d2) - q * spot * df_q * _norm_cdf(-d1)

    return Greeks(
        price=price,
        delta=delta,
        gamma=gamma,
        vega=raw_vega / 100.0,
        theta=theta_year / _DAYS_PER_YEAR,
    )


def implied_vol(
    right: str,
    option_price: float,
    spot: float,
    strike: float,
    years: float,
    rate: float = 0.0,
    dividend_yield: float = 0.0,
) -> float | None:
    """The volatility in [IV_MIN, IV_MAX] at which the model reproduces ``option_price``.

    Safeguarded Newton: every step keeps a bracket [lo, hi] whose prices straddle the target
    and falls back to bisection whenever Newton would leave it, so it always converges. Stops
    when the model price is within ``IV_PRICE_TOL`` of the target.

    Returns ``None`` when no such volatility exists: a non-finite price, no time left
    (``years <= 0``), a price below the discounted intrinsic value or above the no-arbitrage
    upper bound (spot, dividend-discounted, for calls; discounted strike for puts), or a price
    outside what the [IV_MIN, IV_MAX] bracket can produce. Bad ``right``/``spot``/``strike``
    raise ``ValueError`` as in :func:`price_and_greeks`.
    """
    is_call = _is_call(right)
    _check_inputs(spot, strike, years, rate, dividend_yield)
    q = dividend_yield
    if not math.isfinite(option_price) or years <= 0.0:
        return None
    lower, upper = _bounds(is_call, spot, strike, years, rate, q)
    if option_price < lower - IV_PRICE_TOL or option_price > upper + IV_PRICE_TOL:
        return None

    def diff(vol: float) -> tuple[float, float]:
        price, vega = _price_and_raw_vega(is_call, spot, strike, years, vol, rate, q)
        return price - option_price, vega

    lo, hi = IV_MIN, IV_MAX
    f_lo, _ = diff(lo)
    if abs(f_lo) <= IV_PRICE_TOL:
        return lo
    if f_lo > 0.0:  # less time value than even the lowest vol gives
        return None
    f_hi, _ = diff(hi)
    if abs(f_hi) <= IV_PRICE_TOL:
        return hi
    if f_hi < 0.0:  # more time value than the highest vol gives
        return None

    # Start at the inflection point of price in vol (Manaster–Koehler); clipped into the bracket.
    vol = math.sqrt(abs(math.log(spot / strike) + (rate - q) * years) * 2.0 / years)
    vol = min(max(vol, 0.2), hi * 0.5)
    best_vol, best_err = lo, abs(f_lo)
    for _ in range(_IV_MAX_ITER):
        f, vega = diff(vol)
        if abs(f) < best_err:
            best_vol, best_err = vol, abs(f)
        if abs(f) <= IV_PRICE_TOL:
            return vol
        if f < 0.0:
            lo = vol
        else:
            hi = vol
        if hi - lo <= 1e-15 * hi:  # bracket exhausted at double precision: take the best seen
            return best_vol
        step_ok = vega > 0.0
        if step_ok:
            candidate = vol - f / vega
            step_ok = lo < candidate < hi
        vol = candidate if step_ok else 0.5 * (lo + hi)
    return best_vol
