"""Account, position and P&L requests: what TWS sends about the simulated accounts, and when.

Owns: reqAccountSummary / cancelAccountSummary (ACCOUNT_SUMMARY rows + END, then the changed
values every 3 simulated minutes; at most 2 active per client, error 322), reqAccountUpdates
(updateAccountValue with currency and -S/-C segment variants, updatePortfolio, updateAccountTime,
accountDownloadEnd; refreshed every 3 minutes and on every fill for the positions touched; a new
subscription replaces the client's previous one, with warning 2100 when the account changes),
reqPositions / cancelPositions (POSITION rows + END, live rows on every fill), the *Multi variants,
and reqPnL / reqPnLSingle (about once a simulated second, when a value changed).
Message layouts are the same at every served version (157..200; see ibapi decoder.py).

Must never change the ledger: it only reads valuations and listens (Ledger.watch_fills / watch_steps).
"""
from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from .account import Account, Holding, Ledger, Valuation
from .account_values import account_values, price, qty, summary_rows

log = logging.getLogger("ibframe.sim")
EASTERN = ZoneInfo("America/New_York")

MAX_SUMMARY_REQUESTS = 2

# --- contract blocks --------------------------------------------------------------------------------

def position_contract(h_inst) -> list:
    """conId symbol secType lastTradeDateOrContractMonth strike right multiplier exchange currency
    localSymbol tradingClass, as POSITION messages carry them."""
    i = h_inst
    exchange = i.primary_exchange if i.sec_type == "STK" else i.exchange if i.sec_type == "FUT" else ""
    return [i.con_id, i.symbol, i.sec_type, i.expiry, float(i.strike), i.right, i.multiplier, exchange,
            i.currency, i.local_symbol, i.trading_class]


def send_position(session: Session, acct: Account, h: Holding) -> None:
    session.send(IN.POSITION_DATA, 3, acct.id, *position_contract(h.inst), qty(h.pos.quantity),
                 price(h.pos.avg_cost))


def send_position_multi(session: Session, req_id: int, acct: Account, h: Holding) -> None:
    session.send(IN.POSITION_MULTI, 1, req_id, acct.id, *position_contract(h.inst), qty(h.pos.quantity),
                 price(h.pos.avg_cost), "")


def send_portfolio(session: Session, acct: Account, h: Holding) -> None:
    i = h.inst
    session.send(IN.PORTFOLIO_VALUE, 8, i.con_id, i.symbol, i.sec_type, i.expiry, float(i.strike), i.right,
                 i.multiplier, i.primary_exchange, i.currency, i.local_symbol, i.trading_class,
                 qty(h.pos.quantity), price(h.mark), round(h.market_value, 2), price(h.pos.avg_cost),
                 round(h.unrealized, 2), round(h.pos.realized, 2), acct.id)


def account_time(ledger: Ledger) -> str:
    return dt.datetime.fromtimestamp(ledger.now(), EASTERN).strftime("%H:%M")


def holding_of(ledger: Ledger, acct: Account, con_id: int) -> Holding | None:
    pos = acct.positions.get(con_id)
    inst = ledger.gateway.universe.get(con_id)
    if pos is None or inst is None:
        return None
    return ledger.holding(acct, pos, inst)


def bad_account(session: Session, req_id: int, account: str) -> None:
    session.error(req_id, 321, f"Error validating request.-'cb' : cause - The account code {account} is not "
                               f"one of the managed accounts ({','.join(session.gateway.accounts)})")


def wanted_accounts(ledger: Ledger, account: str) -> list[Account] | None:
    """'' or 'All' -> every account; a known id -> that one; otherwise None."""
    if account in ("", "All", "ALL"):
        return list(ledger.accounts.values())
    if ledger.has_account(account):
        return [ledger.accounts[account]]
    return None


# --- subscriptions ------------------------------------------------------------------------------------

class _Watching:
    """A stream fed by the ledger's fill and step watchers; `close` detaches it."""

    def __init__(self, session: Session, req_id: int):
        self.session = session
        self.req_id = req_id
        self.ledger: Ledger = session.gateway.ledger
        self._detach: list = []
        self.last_at = self.ledger.now()

    def watch(self, fills: bool = False, steps: bool = False) -> None:
        if fills:
            self._detach.append(self.ledger.watch_fills(self.on_fill))
        if steps:
            self._detach.append(self.ledger.watch_steps(self.on_step))

    def on_fill(self, account_id: str, con_id: int) -> None:
        pass

    def on_step(self, now: float) -> None:
        if now - self.last_at >= self.ledger.refresh_seconds:
            self.last_at = now
            self.refresh()

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        for undo in self._detach:
            undo()
        self._detach.clear()


class AccountSummary(_Watching):
    def __init__(self, session: Session, req_id: int, tags: list[str]):
        super().__init__(session, req_id)
        self.tags = tags
        self.sent: dict[tuple[str, str, str], str] = {}

    def start(self) -> None:
        self.refresh(initial=True)
        self.session.send(IN.ACCOUNT_SUMMARY_END, 1, self.req_id)
        self.watch(steps=True)

    def refresh(self, initial: bool = False) -> None:
        for acct in self.ledger.accounts.values():
            v = self.ledger.valuation(acct)
            for tag, value, ccy in summary_rows(self.ledger, v, self.tags):
                key = (acct.id, tag, ccy)
                if initial or self.sent.get(key) != value:
                    self.sent[key] = value
                    self.session.send(IN.ACCOUNT_SUMMARY, 1, self.req_id, acct.id, tag, value, ccy)


class AccountUpdates(_Watching):
    """reqAccountUpdates: one per client (req_id 0 in the session's table)."""

    def __init__(self, session: Session, account: Account):
        super().__init__(session, 0)
        self.account = account
        self.sent: dict[tuple[str, str], str] = {}
        self.portfolio_sent: dict[int, tuple] = {}

    def start(self) -> None:
        self.send_values(initial=True)
        v = self.ledger.valuation(self.account)
        for h in v.holdings:
            self.send_holding(h)
        self.session.send(IN.ACCT_UPDATE_TIME, 1, account_time(self.ledger))
        self.session.send(IN.ACCT_DOWNLOAD_END, 1, self.account.id)
        self.watch(fills=True, steps=True)

    def send_values(self, initial: bool = False) -> Valuation:
        v = self.ledger.valuation(self.account)
        for key, value, ccy in account_values(self.ledger, v):
            if initial or self.sent.get((key, ccy)) != value:
                self.sent[(key, ccy)] = value
                self.session.send(IN.ACCT_VALUE, 2, key, value, ccy, self.account.id)
        return v

    def send_holding(self, h: Holding) -> None:
        self.portfolio_sent[h.inst.con_id] = (h.pos.quantity, round(h.mark, 8), round(h.pos.avg_cost, 8))
        send_portfolio(self.session, self.account, h)

    def on_fill(self, account_id: str, con_id: int) -> None:
        if account_id != self.account.id:
            return
        h = holding_of(self.ledger, self.account, con_id)
        if h is not None:
            self.send_holding(h)
        self.send_values()
        self.session.send(IN.ACCT_UPDATE_TIME, 1, account_time(self.ledger))

    def refresh(self) -> None:
        v = self.send_values()
        for h in v.holdings:
            state = (h.pos.quantity, round(h.mark, 8), round(h.pos.avg_cost, 8))
            if self.portfolio_sent.get(h.inst.con_id) != state:
                self.send_holding(h)
        self.session.send(IN.ACCT_UPDATE_TIME, 1, account_time(self.ledger))


class AccountUpdatesMulti(_Watching):
    def __init__(self, session: Session, req_id: int, accounts: list[Account], model_code: str, ledger_and_nlv: bool):
        super().__init__(session, req_id)
        self.accounts = accounts
        self.model_code = model_code
        self.ledger_and_nlv = ledger_and_nlv
        self.sent: dict[tuple[str, str, str], str] = {}

    def start(self) -> None:
        self.refresh(initial=True)
        self.session.send(IN.ACCOUNT_UPDATE_MULTI_END, 1, self.req_id)
        self.watch(fills=True, steps=True)

    def refresh(self, initial: bool = False) -> None:
        for acct in self.accounts:
            v = self.ledger.valuation(acct)
            for key, value, ccy in account_values(self.ledger, v, self.ledger_and_nlv):
                k = (acct.id, key, ccy)
                if initial or self.sent.get(k) != value:
                    self.sent[k] = value
                    self.session.send(IN.ACCOUNT_UPDATE_MULTI, 1, self.req_id, acct.id, self.model_code, key,
                                      value, ccy)

    def on_fill(self, account_id: str, con_id: int) -> None:
        if any(a.id == account_id for a in self.accounts):
            self.refresh()


class Positions(_Watching):
    """reqPositions: every account's positions, then one POSITION per fill while subscribed."""

    def start(self) -> None:
        for acct in self.ledger.accounts.values():
            for h in self.ledger.holdings(acct):
                send_position(self.session, acct, h)
        self.session.send(IN.POSITION_END, 1)
        self.watch(fills=True)

    def on_fill(self, account_id: str, con_id: int) -> None:
        acct = self.ledger.accounts.get(account_id)
        h = holding_of(self.ledger, acct, con_id) if acct else None
        if h is not None:
            send_position(self.session, acct, h)


class PositionsMulti(_Watching):
    def __init__(self, session: Session, req_id: int, accounts: list[Account]):
        super().__init__(session, req_id)
        self.accounts = accounts

    def start(self) -> None:
        for acct in self.accounts:
            for h in self.ledger.holdings(acct):
                send_position_multi(self.session, self.req_id, acct, h)
        self.session.send(IN.POSITION_MULTI_END, 1, self.req_id)
        self.watch(fills=True)

    def on_fill(self, account_id: str, con_id: int) -> None:
        acct = next((a for a in self.accounts if a.id == account_id), None)
        h = holding_of(self.ledger, acct, con_id) if acct else None
        if h is not None:
            send_position_multi(self.session, self.req_id, acct, h)


class PnL(_Watching):
    """reqPnL: daily / unrealized / realized P&L of one account, about once a simulated second."""

    def __init__(self, session: Session, req_id: int, account: Account):
        super().__init__(session, req_id)
        self.account = account
        self.last: tuple | None = None

    def start(self) -> None:
        self.refresh()
        self.watch(steps=True)

    def on_step(self, now: float) -> None:
        if now - self.last_at >= self.ledger.pnl_seconds:
            self.last_at = now
            self.refresh()

    def values(self) -> tuple:
        v = self.ledger.valuation(self.account)
        return round(v.daily, 2), round(v.unrealized, 2), round(v.realized, 2)

    def refresh(self) -> None:
        values = self.values()
        if values != self.last:
            self.last = values
            self.session.send(IN.PNL, self.req_id, *values)


class PnLSingle(PnL):
    """reqPnLSingle: one position's size, daily / unrealized / realized P&L and market value."""

    def __init__(self, session: Session, req_id: int, account: Account, con_id: int):
        super().__init__(session, req_id, account)
        self.con_id = con_id

    def values(self) -> tuple:
        h = holding_of(self.ledger, self.account, self.con_id)
        if h is None:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        return (h.pos.quantity, round(h.daily, 2), round(h.unrealized * h.rate, 2),
                round(h.pos.realized * h.rate, 2), round(h.market_value * h.rate, 2))

    def refresh(self) -> None:
        values = self.values()
        if values != self.last:
            self.last = values
            pos, *rest = values
            self.session.send(IN.PNL_SINGLE, self.req_id, qty(pos), *rest)


# --- handlers -------------------------------------------------------------------------------------------

@handles(OUT.REQ_ACCOUNT_SUMMARY)
def req_account_summary(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    r.str("groupName")
    tags = [t.strip() for t in r.str("tags").split(",") if t.strip()]
    if session.has_subscription("acctsummary", req_id):
        session.error(req_id, 322, "Error processing request.-'bc' : cause - Duplicate ticker id")
        return
    if session.count_subscriptions("acctsummary") >= MAX_SUMMARY_REQUESTS:
        session.error(req_id, 322, "Error processing request.-'bc' : cause - "
                                   "Maximum number of account summary requests exceeded")
        return
    sub = AccountSummary(session, req_id, tags)
    session.add_subscription("acctsummary", sub)
    sub.start()


@handles(OUT.CANCEL_ACCOUNT_SUMMARY)
def cancel_account_summary(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.end_subscription("acctsummary", r.int("reqId"))


@handles(OUT.REQ_ACCT_DATA)
def req_account_updates(session: Session, r: FieldReader) -> None:
    r.int("version")
    subscribe = r.bool("subscribe")
    code = r.str("acctCode")
    ledger: Ledger = session.gateway.ledger
    old = session.subscriptions.get(("acctupdates", 0))
    if not subscribe:
        session.end_subscription("acctupdates", 0)
        return
    if code and not ledger.has_account(code):
        bad_account(session, -1, code)
        return
    acct = ledger.account(code)
    if old is not None:
        session.end_subscription("acctupdates", 0)
        if old.account is not acct:
            session.error(-1, 2100, "New account data requested from TWS. API client has been unsubscribed "
                                     "from account data.")
    sub = AccountUpdates(session, acct)
    session.add_subscription("acctupdates", sub)
    sub.start()


@handles(OUT.REQ_ACCOUNT_UPDATES_MULTI)
def req_account_updates_multi(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    account = r.str("account")
    model_code = r.str("modelCode")
    ledger_and_nlv = r.bool("ledgerAndNLV")
    accounts = wanted_accounts(session.gateway.ledger, account)
    if accounts is None:
        bad_account(session, req_id, account)
        return
    session.end_subscription("acctmulti", req_id)
    sub = AccountUpdatesMulti(session, req_id, accounts, model_code, ledger_and_nlv)
    session.add_subscription("acctmulti", sub)
    sub.start()


@handles(OUT.CANCEL_ACCOUNT_UPDATES_MULTI)
def cancel_account_updates_multi(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.end_subscription("acctmulti", r.int("reqId"))


@handles(OUT.REQ_POSITIONS)
def req_positions(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.end_subscription("positions", 0)
    sub = Positions(session, 0)
    session.add_subscription("positions", sub)
    sub.start()


@handles(OUT.CANCEL_POSITIONS)
def cancel_positions(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.end_subscription("positions", 0)


@handles(OUT.REQ_POSITIONS_MULTI)
def req_positions_multi(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    account = r.str("account")
    r.str("modelCode")
    accounts = wanted_accounts(session.gateway.ledger, account)
    if accounts is None:
        bad_account(session, req_id, account)
        return
    session.end_subscription("posmulti", req_id)
    sub = PositionsMulti(session, req_id, accounts)
    session.add_subscription("posmulti", sub)
    sub.start()


@handles(OUT.CANCEL_POSITIONS_MULTI)
def cancel_positions_multi(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.end_subscription("posmulti", r.int("reqId"))


@handles(OUT.REQ_PNL)
def req_pnl(session: Session, r: FieldReader) -> None:
    req_id = r.int("reqId")
    account = r.str("account")
    r.str("modelCode")
    ledger: Ledger = session.gateway.ledger
    if not ledger.has_account(account):
        bad_account(session, req_id, account)
        return
    if session.has_subscription("pnl", req_id):
        session.error(req_id, 322, "Error processing request.-'bc' : cause - Duplicate ticker id")
        return
    sub = PnL(session, req_id, ledger.accounts[account])
    session.add_subscription("pnl", sub)
    sub.start()


@handles(OUT.CANCEL_PNL)
def cancel_pnl(session: Session, r: FieldReader) -> None:
    session.end_subscription("pnl", r.int("reqId"))


@handles(OUT.REQ_PNL_SINGLE)
def req_pnl_single(session: Session, r: FieldReader) -> None:
    req_id = r.int("reqId")
    account = r.str("account")
    r.str("modelCode")
    con_id = r.int("conId")
    ledger: Ledger = session.gateway.ledger
    if not ledger.has_account(account):
        bad_account(session, req_id, account)
        return
    if session.gateway.universe.get(con_id) is None:
        session.error(req_id, 200, "No security definition has been found for the request")
        return
    if session.has_subscription("pnlsingle", req_id):
        session.error(req_id, 322, "Error processing request.-'bc' : cause - Duplicate ticker id")
        return
    sub = PnLSingle(session, req_id, ledger.accounts[account], con_id)
    session.add_subscription("pnlsingle", sub)
    sub.start()


@handles(OUT.CANCEL_PNL_SINGLE)
def cancel_pnl_single(session: Session, r: FieldReader) -> None:
    session.end_subscription("pnlsingle", r.int("reqId"))
