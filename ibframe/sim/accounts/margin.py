"""The simulator's margin model and commission schedule: a documented, simple imitation of IB's.

Owns: the initial / maintenance requirement of one position, which segment it lives in, and
the commission IB's fixed pricing would charge for one fill. Pure functions of their
arguments; never holds account state, reads the market or sends messages (account.py does).

Margin (requirements are in the instrument's currency; the ledger converts):

============  ==========================================  ==========================================
asset         Reg T margin account                         Cash account
============  ==========================================  ==========================================
STK / ETF     long 50 % initial, 25 % maintenance;          long 100 % / 100 % (no leverage);
              short 50 % initial, 30 % maintenance          short not allowed
OPT long      none: the premium is paid in full (long       same
              options carry no loan value, see account.py)
OPT short     option value + max(20 % underlying - OTM,     not allowed
              10 % underlying (calls) / 10 % strike (puts)),
              initial = maintenance
FUT           9 % / 7.5 % of notional (≈ CME's E-mini       not allowed
              S&P 500 at the exchange minimum plus IB's
              usual surcharge)
CASH (FX)     3 % / 2.5 % of the notional of the foreign    3 % / 2.5 %
              currency balance
BOND          10 % / 8 % of market value                    100 % / 100 %
============  ==========================================  ==========================================

Commissions (IB "fixed" pricing, simplified): stocks 0.005 USD/share, min 1.00, max 1 % of the
trade value; options 0.65/contract, min 1.00; futures 0.85/contract; FX 0.2 bp of the value,
min 2.00; bonds 0.1 % of the value, min 5.00. Charged in the instrument's currency.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..market.universe import Instrument

REG_T_LONG_INIT, REG_T_LONG_MAINT = 0.50, 0.25
REG_T_SHORT_INIT, REG_T_SHORT_MAINT = 0.50, 0.30
FUTURE_INIT, FUTURE_MAINT = 0.09, 0.075
FX_INIT, FX_MAINT = 0.03, 0.025
BOND_INIT, BOND_MAINT = 0.10, 0.08
SHORT_OPTION_RATE, SHORT_OPTION_FLOOR = 0.20, 0.10

BOND_FACE_PER_UNIT = 1000.0     # one bond = 1,000 face; prices are per 100 face


@dataclass(slots=True)
class Requirement:
    init: float = 0.0
    maint: float = 0.0

    def __add__(self, other: "Requirement") -> "Requirement":
        return Requirement(self.init + other.init, self.maint + other.maint)


def multiplier(inst: Instrument) -> float:
    """Currency units per (quantity x price): the contract multiplier, 10 for bonds (1,000 face
    priced per 100), 1 for stocks and FX."""
    if inst.sec_type == "BOND":
        return BOND_FACE_PER_UNIT / 100.0
    try:
        return float(inst.multiplier) if inst.multiplier else 1.0
    except ValueError:
        return 1.0


def segment(inst: Instrument) -> str:
    """IB's account segment suffix: 'C' commodities (futures), 'S' securities (everything else)."""
    return "C" if inst.sec_type in ("FUT", "FOP") else "S"


def position_requirement(inst: Instrument, quantity: float, mark: float, spot: float | None,
                         cash_account: bool) -> Requirement:
    """Initial and maintenance margin of holding `quantity` at price `mark` (instrument currency).

    `spot` is the underlying's price (options only)."""
    if quantity == 0:
        return Requirement()
    mult = multiplier(inst)
    value = abs(quantity) * mark * mult
    kind = inst.sec_type
    if kind == "STK":
        if cash_account:
            return Requirement(value, value) if quantity > 0 else Requirement(value * 1.5, value * 1.5)
        if quantity > 0:
            return Requirement(value * REG_T_LONG_INIT, value * REG_T_LONG_MAINT)
        return Requirement(value * REG_T_SHORT_INIT, value * REG_T_SHORT_MAINT)
    if kind in ("OPT", "FOP"):
        if quantity > 0:
            return Requirement()
        req = short_option_requirement(inst, abs(quantity), mark, spot)
        return Requirement(req, req)
    if kind == "FUT":
        return Requirement(value * FUTURE_INIT, value * FUTURE_MAINT)
    if kind == "CASH":
        return Requirement(value * FX_INIT, value * FX_MAINT)
    if kind == "BOND":
        if cash_account:
            return Requirement(value, value)
        return Requirement(value * BOND_INIT, value * BOND_MAINT)
    return Requirement(value, value)


def short_option_requirement(inst: Instrument, contracts: float, mark: float, spot: float | None) -> float:
    """IB's standard short option formula: the option's value plus max(20 % of the underlying
    less the out-of-the-money amount, a 10 % floor of the underlying (calls) or strike (puts))."""
    mult = multiplier(inst)
    s = spot if spot and spot > 0 else inst.strike
    if inst.right == "C":
        otm = max(inst.strike - s, 0.0)
        floor = SHORT_OPTION_FLOOR * s
    else:
        otm = max(s - inst.strike, 0.0)
        floor = SHORT_OPTION_FLOOR * inst.strike
    per_share = mark + max(SHORT_OPTION_RATE * s - otm, floor)
    return contracts * per_share * mult


def commission(inst: Instrument, quantity: float, price: float) -> float:
    """What IB's fixed pricing charges for one fill (instrument currency)."""
    qty = abs(quantity)
    if qty == 0:
        return 0.0
    price = abs(price) if price and price < 1e300 else 0.0
    value = qty * price * multiplier(inst)
    kind = inst.sec_type
    if kind == "STK":
        fee = max(0.005 * qty, 1.0)
        if value > 0:
            fee = min(fee, 0.01 * value)
        return round(fee, 2)
    if kind in ("OPT", "FOP"):
        return round(max(0.65 * qty, 1.0), 2)
    if kind == "FUT":
        return round(0.85 * qty, 2)
    if kind == "CASH":
        return round(max(value * 0.2e-4, 2.0), 2)
    if kind == "BOND":
        return round(max(value * 0.001, 5.0), 2)
    return round(max(0.005 * qty, 1.0), 2)
