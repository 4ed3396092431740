"""The pattern-day-trader (PDT) guard: count the account's day trades, refuse the 4th opening order.

Owns: the account's day-trade count over a rolling window of XNYS business days (FINRA Rule
4210(f)(8)(B) as IBKR applies it), fed by executions (live through `OrderManager.execution_hooks`,
earlier ones from the journal through `load`), TWS's own `DayTradesRemaining` and the account's
equity (`on_account_value`), and the `pdt` Rule the risk gate asks: when equity is below
`min_equity` and no day trade is left (the stricter of its own count and TWS's), an order that
opens or increases a position in a US security is refused — it could only become a 4th day trade
("prohibiting the 4th opening transaction within 5 days"). An order that reduces or closes a
position always passes.

What counts (FINRA Regulatory Notice 21-13's examples): a day trade is a run of purchases followed
by a sale (or of sales followed by a purchase) of the same security on the same trading day, where
the position was increased ("opened") and then decreased ("closed"). Buy, buy, sell is one day
trade; buy, sell, sell, sell is one; buy, sell, buy, sell is two; a long held overnight and sold
before any new purchase is none. Short sales count the same way; US stocks, options, warrants and
bonds count, futures and FX never. The trading day is the New York calendar date of the execution.

Must never: block, wait on TWS or on disk, talk to TWS, or refuse an order that reduces a position.
`check` is a few dictionary look-ups; recounting happens when an execution arrives.
"""
from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from .base import OrderIntent, Refusal, account_number

log = logging.getLogger("ibframe.risk.pdt")

RULE = "pdt"
NEW_YORK = ZoneInfo("America/New_York")
PDT_SEC_TYPES = frozenset({"STK", "OPT", "WAR", "BOND", "IOPT"})     # US securities; FUT/FOP/CASH never count
BUY_SIDES = frozenset({"BOT", "BUY"})
SELL_SIDES = frozenset({"SLD", "SELL", "SSHORT"})
EQUITY_TAGS = ("NetLiquidation", "EquityWithLoanValue")
KEYS = ("enabled", "min_equity", "max_day_trades", "window_days", "currency")


# --- configuration --------------------------------------------------------------------------------

@dataclass(slots=True, frozen=True)
class PdtConfig:
    """`risk: pdt:` in the YAML. `enabled: false` for cash accounts, non-US accounts, or once FINRA's
    2026 change (SR-FINRA-2025-017, effective 4 June 2026, phase-in to 20 Oct 2027) applies."""
    enabled: bool = True
    min_equity: float = 25_000.0
    max_day_trades: int = 3
    window_days: int = 5
    currency: str = "USD"

    @classmethod
    def from_mapping(cls, raw: Mapping | None, fail: Callable[[tuple, str], Any]) -> "PdtConfig":
        """Read the `pdt:` mapping; `fail(key_path, message)` raises the config error (key paths are
        relative to `pdt:`)."""
        if raw is None:
            return cls()
        if isinstance(raw, bool):                       # `pdt: false` / `pdt: true`
            return cls(enabled=raw)
        if not isinstance(raw, Mapping):
            fail((), f"must be a mapping with keys {', '.join(KEYS)} (or true/false), got {type(raw).__name__}")
        for key in raw:
            if key not in KEYS:
                fail((key,), f"unknown key; the pdt guard knows {', '.join(KEYS)}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            fail(("enabled",), f"must be true or false, got {enabled!r}")
        min_equity = _number(raw.get("min_equity", 25_000.0), ("min_equity",), fail, "an amount such as 25000")
        if min_equity < 0:
            fail(("min_equity",), f"must be 0 or more (25000 is FINRA's minimum), got {min_equity:g}")
        max_trades = _integer(raw.get("max_day_trades", 3), ("max_day_trades",), fail, 0)
        window = _integer(raw.get("window_days", 5), ("window_days",), fail, 1)
        if window > 60:
            fail(("window_days",), f"must be 60 business days or fewer (FINRA's window is 5), got {window}")
        currency = raw.get("currency", "USD")
        if not isinstance(currency, str) or len(currency.strip()) != 3 or not currency.strip().isalpha():
            fail(("currency",), f"must be a 3-letter currency code such as USD, got {currency!r}")
        return cls(enabled, float(min_equity), max_trades, window, currency.strip().upper())


def _number(value, path: tuple, fail, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(path, f"must be a finite number ({example}), got {value!r}")
    return float(value)


def _integer(value, path: tuple, fail, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        fail(path, f"must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


# --- business days ----------------------------------------------------------------------------------
FIRST_DAY = dt.date(1990, 1, 2)            # the earliest XNYS session the calendar is built from

class BusinessDays:
    """XNYS session dates from exchange_calendars, built once for a span of years and widened on demand.

    `window(day, n)`: the n business days ending with `day`; `day` itself always counts (a day trade
    made on it is real even if it is no session), replacing the oldest."""

    def __init__(self, around: dt.date | None = None, years: int = 2):
        self._lock = threading.Lock()
        self._days: list[dt.date] = []
        self._lo = self._hi = None
        center = around or dt.date.today()
        # every session from 1990 on, built once here (≈0.8 s, the same as a 4-year span): a fill dated years
        # away from today (a simulator or a recording pinned to another date) must never make the dispatch
        # thread build a calendar
        self._cover(FIRST_DAY, center + dt.timedelta(days=366 * years))

    def _cover(self, lo: dt.date, hi: dt.date) -> None:
        import exchange_calendars as xc          # slow import: only when a guard is built
        import pandas as pd
        import warnings

        with self._lock:
            if self._lo is not None:
                if self._lo <= lo and hi <= self._hi:
                    return
                lo, hi = min(lo, self._lo), max(hi, self._hi)
            first = max(lo, FIRST_DAY)
            hi = max(hi, first + dt.timedelta(days=366))      # a clock before 1990 (a hand-made recording)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cal = xc.get_calendar("XNYS", start=pd.Timestamp(first), end=pd.Timestamp(hi))
            self._days = [ts.date() for ts in cal.sessions]
            self._lo, self._hi = first, hi

    def _ensure(self, day: dt.date) -> None:
        if day < FIRST_DAY + dt.timedelta(days=120):
            return                               # before the calendar's data: no business days to count
        if not (self._lo <= day - dt.timedelta(days=120) and day + dt.timedelta(days=120) <= self._hi):
            log.info("extending the XNYS business-day calendar to cover %s", day)
            self._cover(day - dt.timedelta(days=400), day + dt.timedelta(days=400))

    def is_session(self, day: dt.date) -> bool:
        self._ensure(day)
        i = bisect.bisect_left(self._days, day)
        return i < len(self._days) and self._days[i] == day

    def window(self, day: dt.date, n: int) -> tuple[dt.date, ...]:
        """The n business days ending with `day` (day included, even when it is no session)."""
        self._ensure(day)
        end = bisect.bisect_right(self._days, day)
        before = [d for d in self._days[max(0, end - n):end] if d != day]
        return tuple((before + [day])[-n:])

    def after(self, day: dt.date, n: int) -> list[dt.date]:
        """The next n business days after `day`."""
        self._ensure(day)
        start = bisect.bisect_right(self._days, day)
        return self._days[start:start + n]


def trading_day(epoch: float) -> dt.date:
    """The New York calendar date of an instant."""
    return dt.datetime.fromtimestamp(epoch, NEW_YORK).date()


def execution_epoch(value) -> float | None:
    """Epoch seconds of an execution time as TWS, the journal or a caller give it: a number, a datetime
    (naive = New York), a pandas Timestamp, or TWS's text ('20261118 11:30:05 US/Eastern',
    '20261118  11:30:05', '20261118-16:30:05' in UTC, or epoch seconds as text). None when unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value > 0 else None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=NEW_YORK)).timestamp()
    text = str(value).strip()
    if not text:
        return None
    if text.isdigit() and len(text) >= 9:
        return float(text)
    try:
        if "-" in text[:9] and len(text) >= 17 and text[8] == "-":
            stamp = dt.datetime.strptime(text[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.timezone.utc)
            return stamp.timestamp()
        parts = text.split()
        stamp = dt.datetime.strptime(f"{parts[0]} {parts[1]}", "%Y%m%d %H:%M:%S")
        zone = NEW_YORK
        if len(parts) > 2:
            try:
                zone = ZoneInfo(parts[2])
            except Exception:
                zone = NEW_YORK
        return stamp.replace(tzinfo=zone).timestamp()
    except (ValueError, IndexError):
        return None


def side_sign(side: str) -> int:
    """+1 for a purchase (BOT/BUY), -1 for a sale (SLD/SELL/SSHORT), 0 when unknown."""
    s = str(side or "").strip().upper()
    return 1 if s in BUY_SIDES else -1 if s in SELL_SIDES else 0


def counts_for_pdt(sec_type: str, currency: str) -> bool:
    """US securities count (stocks, options, warrants, bonds in USD); futures, FX and others never."""
    return (sec_type or "STK").upper() in PDT_SEC_TYPES and (currency or "USD").upper() == "USD"


# --- counting ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Exec:
    time: float
    day: dt.date
    qty: float                          # signed: + bought, - sold


@dataclass(slots=True)
class _Security:
    """One security's executions (time order), its start position and the day trades they make."""
    start: float = 0.0                  # position before the first execution kept
    execs: list[_Exec] = field(default_factory=list)
    position: float = 0.0               # after the last execution
    armed: bool = False                 # an opening since the last counted close, on `day`
    day: dt.date | None = None
    trades: list[tuple[dt.date, float]] = field(default_factory=list)   # (day, time of the closing execution)

    def add(self, e: _Exec) -> bool:
        """Book one execution; True when it made a new day trade. Out of order: recount from the start."""
        if self.execs and e.time < self.execs[-1].time:
            bisect.insort(self.execs, e, key=lambda x: x.time)
            before = len(self.trades)
            self.recount()
            return len(self.trades) > before
        self.execs.append(e)
        return self._step(e)

    def recount(self) -> None:
        self.position, self.armed, self.day, self.trades = self.start, False, None, []
        for e in self.execs:
            self._step(e)

    def _step(self, e: _Exec) -> bool:
        if e.day != self.day:
            self.day, self.armed = e.day, False
        pos, q = self.position, e.qty
        closed = min(abs(q), abs(pos)) if pos and q and (q > 0) != (pos > 0) else 0.0
        opened = abs(q) - closed
        made = False
        if closed > 1e-12 and self.armed:
            self.trades.append((e.day, e.time))
            self.armed = False
            made = True
        if opened > 1e-12:
            self.armed = True
        self.position = pos + q
        return made


def count_day_trades(executions: Iterable[tuple[float, float]], start_position: float = 0.0) -> list[float]:
    """Times of the day trades one security's executions make: (epoch time, signed quantity) pairs,
    the position before them `start_position`. The guard's counting, for tests and tools."""
    sec = _Security(start=start_position, position=start_position)
    for t, q in sorted(executions, key=lambda x: x[0]):
        sec.add(_Exec(float(t), trading_day(float(t)), float(q)))
    return [t for _, t in sec.trades]


# --- the guard ---------------------------------------------------------------------------------------

class PdtGuard:
    """The `pdt` Rule. Feed it executions (`on_execution`, `record`, `load`) and account values
    (`on_account_value`); the gate calls `check`. Dispatch thread only (load: before trading starts)."""

    name = RULE

    def __init__(self, config: PdtConfig | None = None, account: str = "",
                 position: Callable[[int], float | None] | None = None,
                 calendar: BusinessDays | None = None, now: Callable[[], float] | None = None):
        self.config = config or PdtConfig()
        self.now = now                          # the framework clock: dates TWS's DayTradesRemaining
        self.account = account                  # "" = every account's executions and values
        self.position = position                # the account's position in a conId (engine.portfolio.position)
        self.calendar = calendar or (BusinessDays(trading_day(now()) if now else None) if self.config.enabled else None)
        self._secs: dict[int, _Security] = {}
        self._exec_ids: set[str] = set()
        self._unmatched: dict[tuple, int] = {}      # (second, conId, side, shares) of rows loaded without execId
        self._tws_remaining: tuple[int, dt.date | None] | None = None   # (DayTradesRemaining, day it arrived)
        self._equity: dict[str, float] = {}         # tag -> value in config.currency
        self._cache: tuple[dt.date, int] | None = None
        self._warned: set[str] = set()

    # --- feeding ------------------------------------------------------------------------------------
    def on_execution(self, trade, fill, execution) -> None:
        """`OrderManager.execution_hooks` signature: every new execution (legs too; a combo's BAG row is
        skipped, its legs count)."""
        contract = getattr(fill, "contract", None)
        if contract is None or contract.secType == "BAG":
            return
        account = getattr(execution, "acctNumber", "") or ""
        if self.account and account and account != self.account:
            return
        when = execution_epoch(getattr(execution, "time", None) or getattr(fill, "time", None))
        self.record(when, contract.conId, fill.side, fill.shares, fill.exec_id, contract.secType,
                    contract.currency)

    def record(self, time, con_id: int, side: str, shares: float, exec_id: str = "",
               sec_type: str = "STK", currency: str = "USD") -> bool:
        """Book one execution; True when it made a new day trade. Unusable rows are logged and skipped.
        An execution with an execId seen before is ignored; one that matches a row loaded without an execId
        (same second, conId, side and shares) is taken as TWS re-sending that row, once per row."""
        return bool(self._book(time, con_id, side, shares, exec_id, sec_type, currency))

    def _book(self, time, con_id, side, shares, exec_id="", sec_type="STK", currency="USD") -> bool | None:
        """None when not booked (skipped, a duplicate, not a US security), else whether it made a day trade."""
        if not self.config.enabled or not counts_for_pdt(sec_type, currency):
            return None
        when = execution_epoch(time)
        sign = side_sign(side)
        try:
            qty = float(shares)             # positive: the side gives the direction
            con_id = int(con_id)
        except (TypeError, ValueError):
            qty, con_id = float("nan"), 0
        if when is None or sign == 0 or not math.isfinite(qty) or qty <= 0 or con_id <= 0:
            log.warning("pdt guard: execution skipped (time %r, conId %r, side %r, shares %r): unreadable",
                        time, con_id, side, shares)
            return None
        key = (int(when), con_id, sign, round(qty, 6))
        if exec_id:
            if exec_id in self._exec_ids:
                return None
            self._exec_ids.add(exec_id)
            if self._unmatched.get(key, 0) > 0:     # TWS re-sending an execution loaded without its execId
                self._unmatched[key] -= 1
                return None
        else:
            self._unmatched[key] = self._unmatched.get(key, 0) + 1
        sec = self._secs.get(con_id)
        if sec is None:
            sec = self._secs[con_id] = _Security()
        made = sec.add(_Exec(when, trading_day(when), sign * qty))
        self._cache = None
        if made:
            day = trading_day(when)
            log.info("pdt guard: day trade in conId %d on %s (%d in the %d business days ending then)",
                     con_id, day, self.day_trades(day), self.config.window_days)
        return made

    def load(self, executions: Iterable, positions_now: Mapping[int, float] | None = None) -> int:
        """Earlier executions (the journal's `day_trade_executions(since)`), so a restart keeps the count.

        Rows are (time, conId, side, shares[, execId[, secType[, currency]]]) or mappings with those keys
        (`execId`/`exec_id`, `secType`/`sec_type`, `conId`/`con_id`). Rows with an execId are never counted
        twice when TWS re-sends the same execution. `positions_now` (conId -> the account's position now,
        if known) lets the guard work out the position before the first row; without it that position is
        taken as flat, which can only count more day trades, never fewer. Returns the rows booked."""
        booked = 0
        for row in executions:
            fields = _row(row)
            if fields is None:
                log.warning("pdt guard: journal row %r skipped: expected (time, conId, side, shares[, execId, "
                            "secType, currency])", row)
                continue
            booked += self._book(*fields) is not None
        if positions_now:
            for con_id, sec in self._secs.items():
                now = positions_now.get(con_id)
                if now is None or not math.isfinite(float(now)):
                    continue
                sec.start = float(now) - sum(e.qty for e in sec.execs)
                sec.recount()
        self._cache = None
        return booked

    def load_journal(self, journal, now: float | None = None) -> int:
        """Load the executions of the last two windows from the journal (`Journal.day_trade_executions`)."""
        now = now if now is not None else (self.now() if self.now else None)
        if now is None or self.calendar is None:
            return 0
        days = self.calendar.window(trading_day(now), 2 * self.config.window_days)
        since = dt.datetime.combine(days[0], dt.time(0, 0), NEW_YORK).timestamp()
        try:
            rows = journal.day_trade_executions(since, self.account or None)
        except TypeError:
            rows = journal.day_trade_executions(since)
        booked = self.load(rows)
        log.info("pdt guard: %d executions since %s loaded from the journal; %d day trades in the window",
                 booked, days[0], self.day_trades(trading_day(now)))
        return booked

    def on_row(self, row: tuple | None) -> None:
        """A row of the risk layer's account summary feed (margin.subscribe_account_summary)."""
        if row is not None:
            self.on_account_value(row[1], row[2], row[3], row[0])

    def on_account_value(self, tag: str, value, currency: str = "", account: str = "") -> None:
        """An account value (reqAccountSummary / updateAccountValue): DayTradesRemaining, NetLiquidation,
        EquityWithLoanValue. Garbage (text, NaN, inf) is ignored with a warning; it never loosens the rule."""
        if self.account and account and account != self.account:
            return
        if tag == "DayTradesRemaining":
            number = account_number(value)
            if number is None or number != int(number) or number < -1:
                self._warn(tag, f"DayTradesRemaining {value!r} is not a count; kept the previous one")
                return
            self._tws_remaining = (int(number), trading_day(self.now()) if self.now else None)
        elif tag in EQUITY_TAGS:
            if (currency or "").upper() != self.config.currency:
                self._warn(tag + currency, f"{tag} arrives in {currency or 'no currency'}, the guard compares "
                                           f"equity in {self.config.currency}: set risk.pdt.currency")
                return
            number = account_number(value)
            if number is None:
                self._warn(tag, f"{tag} {value!r} is not a number; kept the previous one")
                return
            self._equity[tag] = number

    # --- reading ------------------------------------------------------------------------------------
    def day_trades(self, day: dt.date) -> int:
        """Own count: day trades in the window of business days ending with `day`."""
        if self._cache is not None and self._cache[0] == day:
            return self._cache[1]
        days = set(self.calendar.window(day, self.config.window_days)) if self.calendar else {day}
        n = sum(1 for s in self._secs.values() for d, _ in s.trades if d in days)
        self._cache = (day, n)
        return n

    def day_trade_list(self) -> list[tuple[dt.date, int, float]]:
        """(day, conId, time) of every day trade the guard knows, in time order."""
        return sorted(((d, c, t) for c, s in self._secs.items() for d, t in s.trades), key=lambda x: x[2])

    def equity(self) -> float | None:
        """The account's equity in the configured currency (NetLiquidation, else EquityWithLoanValue)."""
        for tag in EQUITY_TAGS:
            if tag in self._equity:
                return self._equity[tag]
        return None

    def tws_remaining(self, day: dt.date | None = None) -> int | None:
        """TWS's DayTradesRemaining as last sent (-1 = unrestricted), or None; with `day`, None when it was
        sent on another trading day (a new day can free day trades)."""
        if self._tws_remaining is None:
            return None
        value, sent = self._tws_remaining
        return None if day is not None and sent is not None and sent != day else value

    def remaining(self, now: float) -> int | None:
        """Day trades left today: the stricter of the own count and TWS's; None when the rule does not
        restrict the account (switched off, or equity at or above min_equity)."""
        if not self.config.enabled:
            return None
        equity = self.equity()
        if equity is not None and equity >= self.config.min_equity:
            return None
        day = trading_day(now)
        own = self.config.max_day_trades - self.day_trades(day)
        tws = self.tws_remaining(day)
        return max(0, own if tws is None or tws < 0 else min(own, tws))

    # --- the rule -------------------------------------------------------------------------------------
    def check(self, intent: OrderIntent) -> Refusal | None:
        cfg = self.config
        if not cfg.enabled or intent.reduces:
            return None
        contract = intent.contract
        if contract.secType != "BAG" and not counts_for_pdt(contract.secType, contract.currency):
            return None
        left = self.remaining(intent.now)
        if left is None or left > 0:
            return None
        if self._closes(intent):
            return None
        return self._refusal(intent)

    def _closes(self, intent: OrderIntent) -> bool:
        """Does the order only reduce the account's position (the account's, not just the strategy's)?"""
        con_id = intent.contract.conId
        if self.position is None or not con_id:
            return False
        try:
            pos = self.position(con_id)
            qty = float(intent.order.totalQuantity)
        except Exception:
            return False
        if pos is None or not math.isfinite(pos) or not math.isfinite(qty) or pos == 0 or qty <= 0:
            return False
        sign = side_sign(intent.order.action)
        return sign != 0 and (sign > 0) != (pos > 0) and qty <= abs(pos) + 1e-9

    def _refusal(self, intent: OrderIntent) -> Refusal:
        cfg = self.config
        day = trading_day(intent.now)
        own = self.day_trades(day)
        tws = self.tws_remaining(day)
        equity = self.equity()
        eq_text = f"equity {equity:,.2f} {cfg.currency}" if equity is not None else \
            "equity not yet reported by TWS (taken as below the minimum)"
        seen = f"{own} day trade{'s' if own != 1 else ''} in the {cfg.window_days} business days ending {day}"
        if tws is not None and tws >= 0:
            seen += f", TWS DayTradesRemaining {tws}"
        free = self._frees_on(day)
        when = f"on {free}" if free else "once a day trade leaves the window"
        order = intent.order
        return Refusal(
            RULE,
            f"{cfg.max_day_trades} day trades in {cfg.window_days} business days while equity is below "
            f"{cfg.min_equity:,.0f} {cfg.currency}",
            f"{order.action} {_qty(order.totalQuantity)} {intent.contract.symbol or intent.contract.conId} "
            f"opens a position that could only become another day trade; {seen}; {eq_text}",
            f"pattern-day-trader rule (FINRA 4210): IBKR refuses the 4th opening transaction within "
            f"{cfg.window_days} days under {cfg.min_equity:,.0f} {cfg.currency}. Orders that reduce or close "
            f"positions still pass. Open new positions {when}, or bring the account's equity to "
            f"{cfg.min_equity:,.0f} {cfg.currency}; set risk.pdt.enabled: false only if the rule does not apply "
            f"(cash account, non-US account, or after FINRA's 2026 change)")

    def _frees_on(self, day: dt.date) -> dt.date | None:
        """The next business day on which the own count leaves a day trade free (None: not within 2 windows)."""
        if self.calendar is None:
            return None
        trades = [d for s in self._secs.values() for d, _ in s.trades]
        for nxt in self.calendar.after(day, 2 * self.config.window_days):
            days = set(self.calendar.window(nxt, self.config.window_days))
            if sum(1 for d in trades if d in days) < self.config.max_day_trades:
                return nxt
        return None

    def _warn(self, key: str, text: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("pdt guard: %s", text)


def _qty(q) -> str:
    try:
        return f"{float(q):g}"
    except (TypeError, ValueError):
        return str(q)


def _row(row) -> tuple | None:
    """(time, conId, side, shares, execId, secType, currency) from a tuple or a mapping."""
    if isinstance(row, Mapping):
        def pick(*names, default=None):
            for n in names:
                if n in row and row[n] is not None:
                    return row[n]
            return default
        time, con_id = pick("time", "timestamp"), pick("conId", "con_id", "conid")
        side, shares = pick("side"), pick("shares", "quantity", "qty")
        if time is None or con_id is None or side is None or shares is None:
            return None
        return (time, con_id, side, shares, str(pick("execId", "exec_id", default="") or ""),
                str(pick("secType", "sec_type", default="STK") or "STK"),
                str(pick("currency", default="USD") or "USD"))
    try:
        items = tuple(row)
    except TypeError:
        return None
    if len(items) < 4 or len(items) > 7:
        return None
    defaults = ("", "STK", "USD")
    rest = tuple(str(v) if v is not None else d for v, d in zip(items[4:], defaults)) + defaults[len(items) - 4:]
    return items[:4] + rest


# --- wiring ------------------------------------------------------------------------------------------

def install(engine, config: PdtConfig | None, layer) -> PdtGuard | None:
    """The risk layer's hook (RiskLayer._plugins): the guard on the engine's gate, fed by every execution and
    by the shared account summary (DayTradesRemaining, NetLiquidation). None when switched off.

    Restart safety: after the journal is open, call `guard.load_journal(journal)` (the runner does)."""
    config = config if isinstance(config, PdtConfig) else PdtConfig()
    if not config.enabled:
        log.info("PDT guard off (risk.pdt.enabled: false)")
        return None
    from .margin import account_feed
    account = engine.account
    guard = PdtGuard(config, account=account, now=engine.clock.now,
                     position=lambda con_id: engine.portfolio.position(con_id, account or None))
    engine.orders.execution_hooks.append(guard.on_execution)
    gate = getattr(layer, "gate", None) or engine.orders.gate
    gate.add_rule(guard)
    account_feed(engine).add(guard.on_row)
    log.info("PDT guard on: at most %d day trades in %d business days below %s %s of equity",
             config.max_day_trades, config.window_days, f"{config.min_equity:,.0f}", config.currency)
    return guard
