"""How the simulated market prices an option from its underlying.

Owns: the volatility smile (the instrument's vol plus a skew in log-moneyness), time to
expiry (to 16:00 New York on the expiry date), the risk-free rate, and the model value and
greeks of one option at one underlying price. Feeds (quotes, history) call this; nothing here
keeps state or touches a session.
"""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

from .blackscholes import Greeks, price_and_greeks
from .universe import Instrument

RISK_FREE_RATE = 0.04          # continuously compounded; the simulator's only rate
DIVIDEND_YIELD = 0.0
EXPIRY_ZONE = ZoneInfo("America/New_York")
SECONDS_PER_YEAR = 365.0 * 24 * 3600


def years_to_expiry(inst: Instrument, now: float) -> float:
    d = dt.datetime.strptime(inst.expiry[:8], "%Y%m%d").replace(hour=16, tzinfo=EXPIRY_ZONE)
    return max(0.0, (d.timestamp() - now) / SECONDS_PER_YEAR)


def smile_vol(inst: Instrument, spot: float) -> float:
    """The instrument's implied vol at this spot: base vol + skew * ln(K/S), floored at 5 %."""
    return max(0.05, inst.vol + inst.skew * math.log(inst.strike / spot))


def model(inst: Instrument, spot: float, now: float) -> tuple[float, Greeks]:
    """(implied vol, price and greeks) of an option at underlying price `spot` at time `now`."""
    vol = smile_vol(inst, spot)
    greeks = price_and_greeks(inst.right, spot, inst.strike, years_to_expiry(inst, now), vol,
                              RISK_FREE_RATE, DIVIDEND_YIELD)
    return vol, greeks
