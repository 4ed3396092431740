"""The simulated accounts: cash, positions, average costs, P&L, margin checks, day trades, liquidation.

Owns: one `Account` per universe account (`AccountSpec`: id, cash, base currency, Reg T or Cash,
PDT switch), the book-keeping of every fill (`apply_fill`), the valuation of an account against
the simulated market (`valuation`: every figure the account tags are made of), the pre-trade
check the broker asks before accepting an order (`check_order`: margin, cash-account and PDT
rules, what-if numbers, commission) and the maintenance-margin watch that liquidates positions
when equity falls below maintenance (`on_step`). State for `--state` files: `to_state`/`load_state`.

Conventions, as IB reports them:
- `avg_cost` is per unit *including* the multiplier and the opening commissions (an AAPL option
  bought at 2.35 with 1.30 commission for 2 contracts has avgCost 235.65); realized P&L is net of
  the commissions of both legs.
- Stocks, options, bonds and FX move cash by quantity x price x multiplier at the fill; futures move
  cash only by their commission and, on closing, the realized variation (their open P&L counts in
  Net Liquidation, their notional does not).
- FX positions (EUR.USD) are foreign-currency cash balances: they count in TotalCashValue, not in
  GrossPositionValue.
- Marks: root instruments at the mid of the simulated book (last trade if the book is empty);
  options at `options.model()` on the underlying's mid.
- Equity with Loan Value = Net Liquidation less option values (options have no loan value); so a
  long option's requirement is its premium, paid in full.
- Daily P&L is measured from the simulated session start (and from each new New York trading day).

Everything here runs on the gateway's event loop; it never writes to a socket itself (account
requests and the broker do, through the watchers), and never uses unseeded randomness.
"""
from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field, replace
from typing import Callable

from ..market import options
from ..market.universe import AccountSpec, Instrument
from .daytrades import PDT_MAX_DAY_TRADES, PDT_MIN_EQUITY, PDT_REJECT_TEXT, DayTradeBook, counts_for_pdt, trading_day
from .margin import Requirement, commission, multiplier, position_requirement

log = logging.getLogger("ibframe.sim")

BUY_SIDES = ("BUY", "BOT", "B")
LIQUIDATION_NOTICE_CODE = 2148          # sent to every client with the account's liquidation notice
LIQUIDATION_RETRY_SECONDS = 30.0        # simulated seconds to wait for a liquidation order to work
LIQUIDATION_OVERSHOOT = 1.10            # liquidate 10 % beyond the deficit, so one round cures it
EPS = 1e-9


@dataclass(slots=True)
class OrderCheck:
    """The ledger's verdict on an order, with IB's what-if numbers (account base currency)."""
    ok: bool = True
    reason: str = ""
    init_before: float = 0.0
    maint_before: float = 0.0
    equity_before: float = 0.0
    init_change: float = 0.0
    maint_change: float = 0.0
    equity_change: float = 0.0
    init_after: float = 0.0
    maint_after: float = 0.0
    equity_after: float = 0.0
    commission: float = 0.0
    commission_currency: str = "USD"


@dataclass(slots=True)
class Position:
    con_id: int
    quantity: float = 0.0
    avg_cost: float = 0.0       # IB's averageCost: per unit, multiplier and opening commissions included
    avg_price: float = 0.0      # average fill price (per share / contract price, no commission)
    realized: float = 0.0       # realized P&L since the day's start (instrument currency)
    flow: float = 0.0           # cash this position moved since the day's start (base currency)
    start_value: float = 0.0    # its part of Net Liquidation at the day's start (base currency)


@dataclass(slots=True)
class Account:
    spec: AccountSpec
    cash: float                                 # base-currency cash balance
    positions: dict[int, Position] = field(default_factory=dict)
    realized: float = 0.0                       # realized P&L since the day's start (base)
    day_trades: DayTradeBook = field(default_factory=DayTradeBook)
    previous_day_elv: float = 0.0
    pending_liquidation: dict[int, float] = field(default_factory=dict)   # conId -> retry-after time
    liquidations: int = 0                       # how many liquidation rounds ran (log, tests)

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def currency(self) -> str:
        return self.spec.currency

    @property
    def is_cash(self) -> bool:
        return self.spec.margin == "Cash"


@dataclass(slots=True)
class Holding:
    """One position valued at the current marks."""
    inst: Instrument
    pos: Position
    mark: float
    mult: float
    rate: float                 # instrument currency -> account base currency
    market_value: float         # quantity x mark x multiplier (instrument currency)
    unrealized: float           # market value - quantity x avg cost (instrument currency)
    contribution: float         # part of Net Liquidation (base)
    loan_value: float           # part of Equity with Loan Value (base)
    req: Requirement            # margin (base)
    daily: float                # P&L since the day's start (base)


@dataclass(slots=True)
class Valuation:
    """Everything the account tags are computed from, in the account's base currency."""
    account: Account
    holdings: list[Holding]
    cash: float                 # TotalCashValue: base cash plus foreign cash balances (FX positions)
    stock_value: float
    option_value: float
    bond_value: float
    future_pnl: float
    fx_value: float
    gross: float                # GrossPositionValue
    net_liq: float
    elv: float                  # EquityWithLoanValue
    init: float
    maint: float
    init_c: float               # commodities segment part of the requirements
    maint_c: float
    unrealized: float
    realized: float
    daily: float

    @property
    def available(self) -> float:
        return self.elv - self.init

    @property
    def excess(self) -> float:
        return self.elv - self.maint

    @property
    def cushion(self) -> float:
        return self.excess / self.net_liq if self.net_liq else 0.0

    @property
    def leverage(self) -> float:
        return self.gross / self.net_liq if self.net_liq else 0.0


def _sign(x: float) -> float:
    return 1.0 if x > 0 else -1.0 if x < 0 else 0.0


class Ledger:
    """Every simulated account, marked to the simulated market."""

    def __init__(self, gateway, specs: list[AccountSpec]):
        self.gateway = gateway
        self.specs = specs
        self.accounts: dict[str, Account] = {s.id: Account(spec=s, cash=float(s.cash)) for s in specs}
        self._fx = [i for i in gateway.universe.instruments if i.sec_type == "CASH"] if gateway else []
        self._marks: dict[int, float] = {}
        self._marks_step = -1
        self._fill_watchers: list[Callable[[str, int], None]] = []
        self._step_watchers: list[Callable[[float], None]] = []
        self._day: dt.date | None = None
        self.refresh_seconds = 180.0     # TWS refreshes account values / summaries every 3 minutes
        self.pnl_seconds = 1.0           # and P&L streams about once a second
        for acct in self.accounts.values():
            acct.previous_day_elv = acct.cash

    # --- lookups --------------------------------------------------------------------------------
    def default_account(self) -> str:
        return self.specs[0].id

    def account(self, account_id: str | None) -> Account:
        """The named account, or the first one for an empty / unknown id (TWS's single-account default)."""
        acct = self.accounts.get(account_id or "")
        return acct if acct is not None else self.accounts[self.default_account()]

    def has_account(self, account_id: str) -> bool:
        return account_id in self.accounts

    def now(self) -> float:
        return self.gateway.now()

    # --- watchers (account_requests pushes updates through these) ---------------------------------
    def watch_fills(self, fn: Callable[[str, int], None]) -> Callable[[], None]:
        """Call fn(accountId, conId) after every booked fill; returns the unsubscribe."""
        self._fill_watchers.append(fn)
        return lambda: self._fill_watchers.remove(fn) if fn in self._fill_watchers else None

    def watch_steps(self, fn: Callable[[float], None]) -> Callable[[], None]:
        """Call fn(now) after every market step, once the accounts are marked; returns the unsubscribe."""
        self._step_watchers.append(fn)
        return lambda: self._step_watchers.remove(fn) if fn in self._step_watchers else None

    # --- marks and rates ---------------------------------------------------------------------------
    def mark(self, inst: Instrument) -> float:
        """The simulated market's price of one instrument (cached per market step)."""
        steps = self.gateway.market.steps
        if steps != self._marks_step:
            self._marks.clear()
            self._marks_step = steps
        cached = self._marks.get(inst.con_id)
        if cached is not None:
            return cached
        if inst.is_derived:
            spot = self.spot(inst.under_con_id)
            if spot > 0 and options.years_to_expiry(inst, self.now()) > 0:
                price = options.model(inst, spot, self.now())[1].price
            else:
                price = max(spot - inst.strike, 0.0) if inst.right == "C" else max(inst.strike - spot, 0.0)
        else:
            price = self.spot(inst.con_id) or inst.price
        self._marks[inst.con_id] = price
        return price

    def spot(self, con_id: int) -> float:
        m = self.gateway.market.get(con_id)
        if m is None:
            inst = self.gateway.universe.get(con_id)
            return inst.price if inst else 0.0
        if m.bids and m.asks and m.best_bid > 0 and m.best_ask > 0:
            return (m.best_bid + m.best_ask) / 2
        return m.last

    def rate(self, currency: str, base: str) -> float:
        """Units of `base` per unit of `currency`, from the simulated FX pairs (1.0 when unknown)."""
        if not currency or currency == base:
            return 1.0
        for inst in self._fx:
            if inst.symbol == currency and inst.currency == base:
                return self.mark(inst)
            if inst.symbol == base and inst.currency == currency:
                m = self.mark(inst)
                return 1.0 / m if m else 1.0
        if "USD" not in (currency, base):
            via = self.rate("USD", base)
            return self.rate(currency, "USD") * via
        return 1.0

    # --- fills ---------------------------------------------------------------------------------------
    def commission_for(self, inst: Instrument, quantity: float, price: float) -> float:
        return commission(inst, quantity, price)

    def _book(self, acct: Account, pos: Position, inst: Instrument, dq: float, price: float,
              fee: float) -> tuple[float, float]:
        """Apply one fill of signed size dq to `pos` (in place): (realized in instrument currency,
        cash change in base currency)."""
        mult = multiplier(inst)
        q = pos.quantity
        realized = 0.0
        variation = 0.0
        new_q = q + dq
        if abs(new_q) < EPS:
            new_q = 0.0
        if q == 0 or _sign(q) == _sign(dq):
            signed_fee = fee if dq > 0 else -fee
            total = abs(q) * pos.avg_cost + abs(dq) * price * mult + signed_fee
            pos.avg_cost = total / abs(new_q)
            pos.avg_price = (abs(q) * pos.avg_price + abs(dq) * price) / abs(new_q)
        else:
            closed = min(abs(dq), abs(q))
            fee_close = fee * closed / abs(dq)
            fee_open = fee - fee_close
            realized = (price * mult - pos.avg_cost) * closed * _sign(q) - fee_close
            variation = (price - pos.avg_price) * mult * closed * _sign(q)
            if new_q == 0:
                pos.avg_cost = pos.avg_price = 0.0
            elif _sign(new_q) != _sign(q):
                opened = abs(new_q)
                pos.avg_cost = (opened * price * mult + (fee_open if new_q > 0 else -fee_open)) / opened
                pos.avg_price = price
        if inst.sec_type in ("FUT", "FOP"):
            cash = variation - fee
        else:
            cash = -dq * price * mult - fee
        pos.quantity = new_q
        pos.realized += realized
        cash_base = cash * self.rate(inst.currency, acct.currency)
        pos.flow += cash_base
        return realized, cash_base

    def apply_fill(self, account: str, inst: Instrument, side: str, quantity: float, price: float,
                   commission: float, time: float, order_id: int) -> float:
        """Book one execution; returns its realized P&L (instrument currency, net of commissions)."""
        acct = self.account(account)
        dq = abs(quantity) if side.upper() in BUY_SIDES else -abs(quantity)
        pos = acct.positions.get(inst.con_id)
        if pos is None:
            pos = acct.positions[inst.con_id] = Position(inst.con_id)
        old = pos.quantity
        realized, cash = self._book(acct, pos, inst, dq, price, commission)
        acct.cash += cash
        acct.realized += realized * self.rate(inst.currency, acct.currency)
        if counts_for_pdt(inst) and acct.day_trades.record(trading_day(time), inst.con_id, order_id, old, pos.quantity):
            log.info("account %s: day trade in %s (order %d); %d within 5 business days", acct.id,
                     inst.describe(), order_id, acct.day_trades.count(trading_day(time)))
        if inst.con_id in acct.pending_liquidation and abs(pos.quantity) < abs(old):
            acct.pending_liquidation.pop(inst.con_id, None)
        log.info("account %s: %s %g %s @ %g (commission %.2f): position %g -> %g, avg cost %.4f, realized %.2f",
                 acct.id, "BOT" if dq > 0 else "SLD", abs(quantity), inst.describe(), price, commission, old,
                 pos.quantity, pos.avg_cost, realized)
        for fn in list(self._fill_watchers):
            try:
                fn(acct.id, inst.con_id)
            except Exception:
                log.exception("fill watcher failed; it is removed")
                self._fill_watchers.remove(fn)
        return realized

    # --- valuation -----------------------------------------------------------------------------------
    def holding(self, acct: Account, pos: Position, inst: Instrument) -> Holding:
        mark = self.mark(inst)
        mult = multiplier(inst)
        rate = self.rate(inst.currency, acct.currency)
        q = pos.quantity
        market_value = q * mark * mult
        unrealized = market_value - q * pos.avg_cost if q else 0.0
        if inst.sec_type in ("FUT", "FOP"):
            contribution = (mark - pos.avg_price) * q * mult * rate
        else:
            contribution = market_value * rate
        loan_value = 0.0 if inst.sec_type in ("OPT", "FOP") else contribution
        spot = self.spot(inst.under_con_id) if inst.is_derived else None
        req = position_requirement(inst, q, mark, spot, acct.is_cash)
        req = Requirement(req.init * rate, req.maint * rate)
        daily = contribution + pos.flow - pos.start_value
        return Holding(inst, pos, mark, mult, rate, market_value, unrealized, contribution, loan_value, req, daily)

    def holdings(self, acct: Account, positions: dict[int, Position] | None = None) -> list[Holding]:
        out = []
        for pos in (acct.positions if positions is None else positions).values():
            inst = self.gateway.universe.get(pos.con_id)
            if inst is not None:
                out.append(self.holding(acct, pos, inst))
        return out

    def valuation(self, acct: Account | str, trial: tuple[Instrument, float, float, float] | None = None) -> Valuation:
        """The account at the current marks; `trial` = (inst, signed qty, price, commission) values it
        as if that fill had happened (what-if, pre-trade checks)."""
        if isinstance(acct, str):
            acct = self.account(acct)
        positions = acct.positions
        cash = acct.cash
        realized_total = acct.realized
        if trial is not None:
            inst, dq, price, fee = trial
            positions = dict(positions)
            pos = replace(positions[inst.con_id]) if inst.con_id in positions else Position(inst.con_id)
            realized, cash_delta = self._book(acct, pos, inst, dq, price, fee)
            positions[inst.con_id] = pos
            cash += cash_delta
            realized_total += realized * self.rate(inst.currency, acct.currency)
        holdings = self.holdings(acct, positions)
        sums = {"STK": 0.0, "OPT": 0.0, "BOND": 0.0, "FUT": 0.0, "CASH": 0.0}
        gross = init = maint = init_c = maint_c = unrealized = daily = 0.0
        for h in holdings:
            kind = {"FOP": "FUT", "WAR": "OPT"}.get(h.inst.sec_type, h.inst.sec_type)
            sums[kind] = sums.get(kind, 0.0) + h.contribution
            if kind in ("STK", "OPT", "BOND"):
                gross += abs(h.contribution)
            init += h.req.init
            maint += h.req.maint
            if kind == "FUT":
                init_c += h.req.init
                maint_c += h.req.maint
            unrealized += h.unrealized * h.rate
            daily += h.daily
        total_cash = cash + sums["CASH"]
        net_liq = total_cash + sums["STK"] + sums["OPT"] + sums["BOND"] + sums["FUT"]
        elv = net_liq - sums["OPT"]
        return Valuation(acct, holdings, total_cash, sums["STK"], sums["OPT"], sums["BOND"], sums["FUT"],
                         sums["CASH"], gross, net_liq, elv, init, maint, init_c, maint_c, unrealized,
                         realized_total, daily)

    # --- day trades ----------------------------------------------------------------------------------
    def pdt_applies(self, acct: Account, net_liq: float) -> bool:
        """Whether the PDT restriction binds: Reg T margin, switched on, equity under 25,000 USD."""
        if acct.is_cash or not acct.spec.pdt:
            return False
        return net_liq * self.rate(acct.currency, "USD") < PDT_MIN_EQUITY

    def day_trades_remaining(self, acct: Account, net_liq: float | None = None) -> list[int]:
        """DayTradesRemaining for today and T+1..T+4: -1 when unrestricted."""
        if net_liq is None:
            net_liq = self.valuation(acct).net_liq
        if not self.pdt_applies(acct, net_liq):
            return [-1] * 5
        return acct.day_trades.remaining(trading_day(self.now()))

    # --- pre-trade check -------------------------------------------------------------------------------
    def estimate_price(self, inst: Instrument, dq: float) -> float:
        """Where a marketable order would fill: the far side of the book (the model value for options)."""
        m = None if inst.is_derived else self.gateway.market.get(inst.con_id)
        if m is not None and m.bids and m.asks:
            return m.best_ask if dq > 0 else m.best_bid
        return self.mark(inst)

    def check_order(self, account: str, inst: Instrument, action: str, quantity: float, price: float) -> OrderCheck:
        """Would IB accept this order? Margin / cash-account / PDT rules, plus the what-if numbers."""
        acct = self.account(account)
        dq = abs(quantity) if action.upper() in BUY_SIDES else -abs(quantity)
        px = price if price and 0 < price < 1e300 else self.estimate_price(inst, dq)
        fee = self.commission_for(inst, quantity, px)
        before = self.valuation(acct)
        after = self.valuation(acct, trial=(inst, dq, px, fee))
        check = OrderCheck(
            ok=True, init_before=before.init, maint_before=before.maint, equity_before=before.elv,
            init_change=after.init - before.init, maint_change=after.maint - before.maint,
            equity_change=after.elv - before.elv, init_after=after.init, maint_after=after.maint,
            equity_after=after.elv, commission=fee, commission_currency=inst.currency or acct.currency)
        old = acct.positions[inst.con_id].quantity if inst.con_id in acct.positions else 0.0
        new = old + dq
        reducing = old != 0 and _sign(dq) != _sign(old) and abs(dq) <= abs(old) + EPS
        if reducing:
            return check
        if acct.is_cash:
            if inst.sec_type in ("FUT", "FOP"):
                return self._reject(check, acct, "Futures positions can only be held in a margin account")
            if new < -EPS:
                what = {"STK": "stock", "OPT": "option", "BOND": "bond", "CASH": "currency"}.get(inst.sec_type, "")
                return self._reject(check, acct, f"Short {what} positions can only be held in a margin account")
        if counts_for_pdt(inst) and self.pdt_applies(acct, before.net_liq) \
                and acct.day_trades.count(trading_day(self.now())) >= PDT_MAX_DAY_TRADES:
            return self._reject(check, acct, PDT_REJECT_TEXT)
        if after.init > after.elv + 0.005 and after.available < before.available:
            ccy = acct.currency
            return self._reject(check, acct, (
                "We are unable to accept your order. Your Available Funds are insufficient to cover the change "
                "in the account's margin requirements if this order executes. In order to obtain the desired "
                f"position your Equity with Loan Value [{after.elv:.2f} {ccy}] must exceed the new total "
                f"Initial Margin of [{after.init:.2f} {ccy}]."))
        return check

    @staticmethod
    def _reject(check: OrderCheck, acct: Account, reason: str) -> OrderCheck:
        check.ok = False
        check.reason = reason
        log.info("account %s: order rejected: %s", acct.id, reason[:160])
        return check

    # --- market steps: day roll, maintenance watch, watchers ---------------------------------------------
    def on_step(self, events) -> None:
        """Called after every market step with {conId: StepEvents}."""
        now = self.now()
        day = trading_day(now)
        if self._day is None:
            self._day = day
        elif day != self._day:
            self._day = day
            self.roll_day()
        for acct in self.accounts.values():
            if not acct.is_cash and any(p.quantity for p in acct.positions.values()):
                self._watch_maintenance(acct, now)
        for fn in list(self._step_watchers):
            try:
                fn(now)
            except Exception:
                log.exception("account step watcher failed; it is removed")
                self._step_watchers.remove(fn)

    def roll_day(self) -> None:
        """A new New York trading day: daily P&L restarts and today's equity becomes 'previous day'."""
        for acct in self.accounts.values():
            v = self.valuation(acct)
            acct.previous_day_elv = v.elv
            acct.realized = 0.0
            for h in v.holdings:
                h.pos.realized = 0.0
                h.pos.flow = 0.0
                h.pos.start_value = h.contribution
            acct.positions = {c: p for c, p in acct.positions.items() if p.quantity}

    def _watch_maintenance(self, acct: Account, now: float) -> None:
        """Below maintenance (Equity with Loan Value < maintenance margin): tell every client (2148) and
        ask the broker to close positions, largest maintenance requirement first, until the deficit
        (plus 10 %) is cured. `Broker.liquidate(account, conId, quantity, reason)` gets the positive
        quantity to close; the broker trades the closing side at market. While those orders work
        (30 simulated seconds at most) no new round starts."""
        v = self.valuation(acct)
        deficit = v.maint - v.elv
        if deficit <= 0:
            return
        if any(until > now for until in acct.pending_liquidation.values()):
            return                                  # a liquidation order is still working
        acct.pending_liquidation.clear()
        acct.liquidations += 1
        ccy = acct.currency
        text = (f"Alert: account {acct.id} is below its maintenance margin requirement: Equity with Loan Value "
                f"[{v.elv:.2f} {ccy}] is less than the Maintenance Margin [{v.maint:.2f} {ccy}]. Positions are "
                f"being liquidated to cure the margin deficit of [{deficit:.2f} {ccy}].")
        log.warning("%s", text)
        for session in list(self.gateway.sessions.values()):
            session.error(-1, LIQUIDATION_NOTICE_CODE, text)
        left = deficit * LIQUIDATION_OVERSHOOT
        for h in sorted(v.holdings, key=lambda h: h.req.maint, reverse=True):
            q = h.pos.quantity
            if not q:
                continue
            unit_value = h.mark * h.mult * h.rate
            cure = h.req.maint / abs(q)
            if h.inst.sec_type in ("OPT", "FOP"):
                cure += unit_value if q > 0 else -unit_value      # selling adds loan value; buying back costs it
            if cure <= 0:
                continue
            step = h.inst.size_increment or 1.0
            qty = min(abs(q), math.ceil(left / cure / step) * step)
            reason = (f"Margin deficit liquidation: account {acct.id} Equity with Loan Value {v.elv:.2f} {ccy} "
                      f"below Maintenance Margin {v.maint:.2f} {ccy}")
            log.warning("account %s: liquidating %g of %s (position %g)", acct.id, qty, h.inst.describe(), q)
            acct.pending_liquidation[h.inst.con_id] = now + LIQUIDATION_RETRY_SECONDS
            liquidate = getattr(self.gateway.broker, "liquidate", None)
            if liquidate is None:
                log.error("the broker cannot liquidate (no Broker.liquidate); account %s stays in deficit", acct.id)
                return
            liquidate(acct.id, h.inst.con_id, qty, reason)
            left -= qty * cure
            if left <= 0:
                break

    # --- state -----------------------------------------------------------------------------------------
    def to_state(self) -> dict:
        return {"accounts": {
            acct.id: {
                "cash": acct.cash, "realized": acct.realized, "previous_day_elv": acct.previous_day_elv,
                "positions": [{"conId": p.con_id, "quantity": p.quantity, "avgCost": p.avg_cost,
                               "avgPrice": p.avg_price, "realized": p.realized} for p in acct.positions.values()],
                "day_trades": acct.day_trades.to_state(),
            } for acct in self.accounts.values()}}

    def load_state(self, state: dict) -> None:
        """Restore cash, positions, average costs, realized P&L and day trades; daily P&L restarts now."""
        for account_id, saved in (state or {}).get("accounts", {}).items():
            acct = self.accounts.get(account_id)
            if acct is None:
                log.warning("state file has account %s, which the universe does not define; ignored", account_id)
                continue
            acct.cash = float(saved.get("cash", acct.cash))
            acct.realized = float(saved.get("realized", 0.0))
            acct.previous_day_elv = float(saved.get("previous_day_elv", acct.cash))
            acct.positions = {}
            for p in saved.get("positions", []):
                con_id = int(p["conId"])
                if self.gateway.universe.get(con_id) is None:
                    log.warning("state file has a position in conId %d, unknown to the universe; ignored", con_id)
                    continue
                acct.positions[con_id] = Position(con_id, float(p["quantity"]), float(p["avgCost"]),
                                                  float(p.get("avgPrice", 0.0)), float(p.get("realized", 0.0)))
            acct.day_trades = DayTradeBook.from_state(saved.get("day_trades", {}))
            for h in self.holdings(acct):
                h.pos.start_value = h.contribution
                h.pos.flow = 0.0
