"""Day trades and the pattern-day-trader (PDT) restriction, the way IB applies FINRA's rule.

Owns: per account, which fills made a day trade (a position in a US security — stock, equity
option, bond — opened and then at least partly closed on the same trading day; futures and FX
never count), the count over the last five business days (XNYS sessions, from hours.py /
exchange_calendars), and the DayTradesRemaining figures. A day trade is counted once per
closing order (several partial fills of one order are one day trade).

IB's rule as simulated: a Reg T margin account with Net Liquidation below 25,000 USD that has
made 3 day trades within 5 business days may not open a new position in a US security (the
"potential pattern day trader" rejection); closing stays allowed. DayTradesRemaining is -1 when
the rule does not apply (cash account, PDT check switched off, or equity >= 25,000 USD).

Never touches sessions, the market or cash: the ledger feeds fills in and asks for counts.
"""
from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ..market import hours
from ..market.universe import Instrument

PDT_MIN_EQUITY = 25_000.0
PDT_MAX_DAY_TRADES = 3
WINDOW_DAYS = 5
EASTERN = ZoneInfo("America/New_York")

PDT_REJECT_TEXT = (
    "Potential Pattern Day Trade. A potential pattern day trader error message means that an account has "
    "less than the SEC required USD 25,000 minimum Net Liquidation Value AND the number of available day "
    "trades (3) has already been used within the last 5 days.. You need to maintain an account balance of at "
    "least USD 25,000 if you wish to day trade. If you do not, we restrict you to no more than 3 day trades "
    "within any 5 business day period as a 4th trade would create a violation.. This order rejection serves "
    "to prevent you from opening a 4th trade and possibly closing it today."
)


def counts_for_pdt(inst: Instrument) -> bool:
    """US securities only: stocks, equity options, bonds (not futures, not FX)."""
    return inst.sec_type in ("STK", "OPT", "BOND", "WAR") and inst.currency == "USD"


def trading_day(epoch: float) -> dt.date:
    return dt.datetime.fromtimestamp(epoch, EASTERN).date()


@functools.lru_cache(maxsize=256)
def _session_days(start: dt.date, end: dt.date) -> tuple[dt.date, ...]:
    return tuple(sorted({close.date() for _, close in hours.sessions("us_equity", start, end, liquid=True)}))


def window(day: dt.date) -> frozenset[dt.date]:
    """The five business days ending with `day` (the day itself counts even on a weekend or holiday)."""
    before = [d for d in _session_days(day - dt.timedelta(days=20), day) if d <= day]
    days = set(before[-WINDOW_DAYS:]) | {day}
    return frozenset(sorted(days)[-WINDOW_DAYS:])


def next_business_days(day: dt.date, n: int) -> list[dt.date]:
    """The `n` XNYS session days after `day`."""
    after = [d for d in _session_days(day + dt.timedelta(days=1), day + dt.timedelta(days=10 + 2 * n)) if d > day]
    return after[:n]


@dataclass(slots=True)
class DayTradeBook:
    """One account's day trades and, per conId, the quantity opened today that is still open."""
    trades: list[tuple[str, int, int]] = field(default_factory=list)     # (yyyymmdd, conId, orderId)
    opened: dict[int, tuple[str, float]] = field(default_factory=dict)   # conId -> (yyyymmdd, signed qty)

    def record(self, day: dt.date, con_id: int, order_id: int, old_qty: float, new_qty: float) -> bool:
        """Book one fill; True when it made a (new) day trade."""
        key = day.strftime("%Y%m%d")
        opened_day, opened = self.opened.get(con_id, (key, 0.0))
        if opened_day != key:
            opened = 0.0
        dq = new_qty - old_qty
        closed = min(abs(dq), abs(old_qty)) if old_qty and math.copysign(1, dq) != math.copysign(1, old_qty) else 0.0
        opening = abs(dq) - closed
        made = False
        if closed > 0 and opened and math.copysign(1, opened) == math.copysign(1, old_qty):
            matched = min(closed, abs(opened))
            opened -= math.copysign(matched, opened)
            entry = (key, con_id, order_id)
            if matched > 0 and entry not in self.trades:
                self.trades.append(entry)
                made = True
        if opening > 1e-12:
            opened += math.copysign(opening, dq)
        self.opened[con_id] = (key, opened)
        self._prune(day)
        return made

    def _prune(self, day: dt.date) -> None:
        oldest = (day - dt.timedelta(days=30)).strftime("%Y%m%d")
        self.trades = [t for t in self.trades if t[0] >= oldest]

    def count(self, day: dt.date) -> int:
        """Day trades made within the five business days ending with `day`."""
        keys = {d.strftime("%Y%m%d") for d in window(day)}
        return sum(1 for t in self.trades if t[0] in keys)

    def remaining(self, day: dt.date) -> list[int]:
        """Day trades left today and on each of the next four business days (IB's T, T+1 … T+4)."""
        days = [day] + next_business_days(day, WINDOW_DAYS - 1)
        return [max(0, PDT_MAX_DAY_TRADES - self.count(d)) for d in days]

    def to_state(self) -> dict:
        return {"trades": [list(t) for t in self.trades],
                "opened": {str(c): [d, q] for c, (d, q) in self.opened.items()}}

    @classmethod
    def from_state(cls, state: dict) -> "DayTradeBook":
        book = cls()
        book.trades = [(str(d), int(c), int(o)) for d, c, o in state.get("trades", [])]
        book.opened = {int(c): (str(d), float(q)) for c, (d, q) in state.get("opened", {}).items()}
        return book
