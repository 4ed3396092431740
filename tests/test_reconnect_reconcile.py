"""Reconciliation after a reconnect (issue 11, item 3): every fill exactly once, every trade's true status.

An Engine trades against a paused simulator (the market moves only when a test steps it) over real
sockets. A test drops the client (`faults.drop_client`), moves the market while it is away (the
simulator keeps its orders working, as TWS does), opens a new socket with `engine.conn.open`, and
runs `orders.after_reconnect` on the dispatch thread as the connection supervisor does. The truth
every test compares with is the simulator's own record (its executions and order table).
"""
from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
from dataclasses import dataclass, field

import pytest
from ibapi.message import IN, OUT
from ibapi.order_cancel import OrderCancel

from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.ids import REQUEST_ID_BASE
from ibframe.strategy import Strategy
from ibframe.sim.market.ordertime import parse_tws_time
from ibframe.trading.resync import (
    MAX_DAYS, PRIVATE_ID_BASE, RESYNC_MARGIN, ReconcileSummary, execution_filter, tws_epoch,
)
from conftest import RecordingClient, wait_until
from sim_order_kit import AAPL, book, order, paused, step

_client_ids = itertools.count(740)

SIM_EXEC_ID = re.compile(r"^[0-9a-f]{4}e[0-9a-f]{3}\.[0-9a-f]{8}\.\d\d\.\d\d$")   # "1a2be0d7.656d0002.01.01"


# --- the rig: a paused gateway, an engine, and everything the hooks saw ------------------------------------

class WireLog:
    """The connection's recorder tap (IBConnection.recorder): keeps the messages the engine sent."""

    def __init__(self):
        self.out: list[tuple[int, str]] = []

    def inbound(self, frames) -> None:
        pass

    def outbound(self, msg_id: int, text: str) -> None:
        self.out.append((msg_id, text))

    def outbound_proto(self, msg_id: int, data: bytes) -> None:
        """A protobuf request (id + 200) kept as the text it stands for, so tests read one form."""
        from ibframe.sim.protocol.proto_requests import to_text_request
        fields = to_text_request(msg_id - 200, data)
        self.out.append((msg_id - 200, "\0".join(fields[1:]) + "\0"))


@dataclass
class Rig:
    gw: object
    eng: Engine
    cid: int
    aapl: object                                       # the qualified AAPL contract
    fills: list = field(default_factory=list)          # (orderId, execId) per fill-hook call
    statuses: list = field(default_factory=list)       # (orderId, status, filled) per status-hook call
    commissions: list = field(default_factory=list)    # execId per commission-hook call
    unknown: list = field(default_factory=list)        # trades passed to unknown_order_hooks
    summaries: list = field(default_factory=list)      # ReconcileSummary per reconcile-hook call
    sent_executions: list = field(default_factory=list)   # (reqId, execId) of EXECUTION_DATA the gateway sent

    def place(self, o, strategy: str = "resync"):
        aapl = self.aapl
        return self.eng.on_dispatch(lambda: self.eng.orders.place(aapl, o, strategy))

    def drop(self) -> float:
        """Cut the connection at the gateway; returns when the engine knows (engine clock at the drop)."""
        down_since = self.eng.clock.now()
        assert self.gw.faults.drop_client(self.cid)
        wait_until(lambda: not self.eng.conn.isConnected() and not self.eng.router.ready.is_set(), 10,
                   "the engine to see the connection lost")
        return down_since

    def reconnect(self) -> None:
        self.eng.conn.open("127.0.0.1", self.gw.port, self.cid)
        wait_until(self.eng.router.ready.is_set, 10, "nextValidId and managedAccounts on the new connection")

    def reconcile(self, down_since: float, trade=None) -> tuple[bool, bool]:
        """after_reconnect on the dispatch thread; (reconciling, in_doubt(trade)) right after the call."""
        orders = self.eng.orders

        def run():
            orders.after_reconnect(down_since, self.eng.clock.now() - down_since)
            return orders.reconciling, trade is not None and orders.in_doubt(trade)
        return self.eng.on_dispatch(run)

    def wait_reconciled(self, count: int = 1) -> ReconcileSummary:
        wait_until(lambda: len(self.summaries) >= count, 15, f"reconciliation #{count} to finish")
        return self.summaries[count - 1]

    def fill_at_gateway(self, trade, max_steps: int = 800) -> None:
        """Step the market until the simulator has filled the order completely."""
        for _ in range(0, max_steps, 4):
            if self.gateway_status(trade) == "Filled":
                return
            step(self.gw, 4)
        raise AssertionError(f"order {trade.order_id} did not fill in {max_steps} steps")

    def gateway_status(self, trade) -> str | None:
        gw, cid = self.gw, self.cid

        def look():
            lo = gw.broker.find(cid, trade.order_id)
            return lo.status if lo is not None else None
        return gw.call(look)

    def gateway_executions(self) -> list[tuple[int, str]]:
        """(orderId, execId) of every execution the simulator made for this client, in order."""
        gw, cid = self.gw, self.cid
        return gw.call(lambda: [(r.order.orderId, r.execution.execId) for r in gw.broker.executions
                                if r.order.clientId == cid])

    def fills_of(self, trade) -> list[str]:
        return [e for o, e in self.fills if o == trade.order_id]

    def sync(self) -> None:
        """Everything already queued on the dispatch thread has run."""
        self.eng.on_dispatch(lambda: None)


@pytest.fixture
def rig(make_gateway, tmp_path):
    gw = paused(make_gateway)
    cid = next(_client_ids)
    eng = Engine("127.0.0.1", gw.port, cid, state_dir=tmp_path).start()
    r = Rig(gw, eng, cid, eng.qualify(Stock("AAPL")))
    orders = eng.orders

    def attach():
        orders.fill_hooks.append(lambda t, f: r.fills.append((t.order_id, f.exec_id)))
        orders.status_hooks.append(lambda t: r.statuses.append((t.order_id, t.status, t.filled)))
        orders.commission_hooks.append(lambda f, rep: r.commissions.append(f.exec_id))
        orders.unknown_order_hooks.append(r.unknown.append)
        orders.reconcile_hooks.append(r.summaries.append)
    eng.on_dispatch(attach)

    def tap(session, fields):               # on the gateway's thread: what it sends this client
        if session.client_id == cid and fields and fields[0] == IN.EXECUTION_DATA:
            exec_id = next(f for f in fields if isinstance(f, str) and SIM_EXEC_ID.match(f))   # the sim's execIds
            r.sent_executions.append((int(fields[1]), exec_id))
    gw.taps.append(tap)
    yield r
    eng.stop()


def resting_buy(rig: Rig, qty: float = 1, below: float = 0.0):
    """A BUY limit at the bid (minus `below`): it rests until the market comes to it."""
    bid = book(rig.gw, AAPL)["bids"][0][0]
    trade = rig.place(order("BUY", qty, "LMT", round(bid - below, 2)))
    wait_until(lambda: trade.acknowledged and trade.status == "Submitted", 10, "the order to rest")
    return trade


def filled_status_calls(rig: Rig, trade) -> int:
    return sum(1 for o, s, _ in rig.statuses if o == trade.order_id and s == "Filled")


# --- fills while disconnected ------------------------------------------------------------------------------

def test_an_order_filled_while_disconnected_is_delivered_once_and_ends_filled(rig):
    trade = resting_buy(rig)
    down_since = rig.drop()
    rig.fill_at_gateway(trade)
    rig.reconnect()
    reconciling, in_doubt = rig.reconcile(down_since, trade)
    assert reconciling and in_doubt              # marked while TWS is being asked
    summary = rig.wait_reconciled()

    assert not rig.eng.orders.reconciling and not rig.eng.orders.in_doubt(trade)
    assert trade.status == "Filled" and trade.filled == 1 and trade.remaining == 0 and trade.done
    truth = [e for o, e in rig.gateway_executions() if o == trade.order_id]
    assert len(truth) == 1 and rig.fills_of(trade) == truth          # delivered, once
    assert rig.commissions == truth and trade.fills[0].commission is not None
    assert filled_status_calls(rig, trade) == 1
    assert [f.exec_id for _, f in summary.fills_recovered] == truth
    assert trade in summary.statuses_changed and not summary.unknown_orders and not rig.unknown
    assert summary.round == 1 and summary.abandoned == 0
    assert summary.since == ""                   # no execution seen before the drop: asked without a time
    rig.sync()
    assert len(rig.summaries) == 1                                   # the hooks ran once


def test_partly_filled_before_and_rest_during_the_disconnect_gives_each_fill_once(rig):
    ask = book(rig.gw, AAPL)["asks"][0][0]
    trade = rig.place(order("BUY", 800, "LMT", ask))                # takes the ask's size now, rests for the rest
    wait_until(lambda: trade.fills and trade.status == "Submitted", 10, "a partial fill")
    before = rig.fills_of(trade)
    assert 0 < trade.filled < 800
    down_since = rig.drop()
    rig.fill_at_gateway(trade)
    rig.reconnect()
    rig.reconcile(down_since)
    summary = rig.wait_reconciled()

    truth = [e for o, e in rig.gateway_executions() if o == trade.order_id]
    assert len(truth) > len(before)
    assert rig.fills_of(trade) == truth and len(set(rig.fills_of(trade))) == len(truth)   # each once, in order
    assert sorted(rig.commissions) == sorted(truth)                                       # commissions once each
    assert [f.exec_id for _, f in summary.fills_recovered] == truth[len(before):]
    assert trade.status == "Filled" and trade.filled == 800 and sum(f.shares for f in trade.fills) == 800
    assert trade.avg_fill_price == pytest.approx(sum(f.shares * f.price for f in trade.fills) / 800)
    resent = {e for _, e in rig.sent_executions}
    assert set(before) <= resent            # TWS did send the early fills again: the dedupe, not the filter, held


class FillLog(Strategy):
    """Keeps what a strategy is told: each on_fill and each on_order_status."""

    def on_start(self):
        self.fills, self.statuses = [], []

    def on_fill(self, trade, fill):
        self.fills.append(fill.exec_id)

    def on_order_status(self, trade):
        self.statuses.append((trade.order_id, trade.status, trade.filled))


def test_a_strategy_hears_each_fill_once_and_its_book_matches_the_gateway(rig):
    strategy = FillLog(rig.eng, "fill-log", instruments={"AAPL": rig.aapl})
    rig.eng.on_dispatch(strategy._start)
    ask = book(rig.gw, AAPL)["asks"][0][0]
    trade = rig.eng.on_dispatch(lambda: strategy.place("AAPL", order("BUY", 800, "LMT", ask)))
    wait_until(lambda: trade.fills and trade.status == "Submitted", 10, "a partial fill")
    down_since = rig.drop()
    rig.fill_at_gateway(trade)
    rig.reconnect()
    rig.reconcile(down_since)
    rig.wait_reconciled()
    rig.sync()

    truth = [e for o, e in rig.gateway_executions() if o == trade.order_id]
    assert strategy.fills == truth                                      # zero lost, zero doubled
    assert strategy.own_book.position(rig.aapl) == 800 == rig.gw.call(
        lambda: rig.gw.ledger.account(rig.eng.account).positions[AAPL].quantity)
    assert [s for _, s, _ in strategy.statuses].count("Filled") == 1 and strategy.statuses[-1][1:] == ("Filled", 800)


def test_a_fill_seen_before_the_drop_is_not_delivered_again(rig):
    log = WireLog()
    rig.eng.conn.recorder = log
    trade = rig.place(order("BUY", 1, "MKT"))
    wait_until(lambda: trade.done and rig.commissions, 10, "the fill and its commission")
    seen_fill = trade.fills[0]
    statuses_before = list(rig.statuses)
    assert rig.eng.orders.request_id is not None     # the engine hands the manager its RequestIds
    down_since = rig.drop()
    rig.reconnect()
    rig.reconcile(down_since)
    summary = rig.wait_reconciled()

    assert rig.fills == [(trade.order_id, seen_fill.exec_id)] and rig.commissions == [seen_fill.exec_id]
    assert rig.statuses == statuses_before          # no status delivered again either
    assert summary.fills_recovered == [] and summary.statuses_changed == [] and summary.unknown_orders == []
    # TWS answered our request (a fresh id from the engine's RequestIds) with that very execution again
    req_id = next(i for i, e in rig.sent_executions if e == seen_fill.exec_id and i != -1)
    assert REQUEST_ID_BASE <= req_id < PRIVATE_ID_BASE
    # ... asked for from RESYNC_MARGIN before it, in the form TWS reads ("yyyymmdd-hh:mm:ss", UTC)
    sent = [text.split("\0") for msg_id, text in log.out if msg_id == OUT.REQ_EXECUTIONS]
    assert len(sent) == 1
    fields = sent[0]
    assert fields[1] == str(req_id) and fields[2] == str(rig.cid)      # version, reqId, clientId, acctCode, time
    assert fields[4] == summary.since
    assert parse_tws_time(fields[4], 0.0) == tws_epoch(seen_fill.time) - RESYNC_MARGIN


def test_a_fill_on_the_new_connection_before_the_round_does_not_hide_the_missed_ones(rig):
    rig.eng.orders.resync.margin = 1.0           # a small margin, so only the choice of "last execution" matters
    early = rig.place(order("BUY", 1, "MKT"))
    wait_until(lambda: early.done and early.fills, 10, "a fill before the drop")
    missed = resting_buy(rig)
    down_since = rig.drop()
    rig.fill_at_gateway(missed)
    step(rig.gw, 20)                             # 5 simulated seconds later...
    rig.reconnect()
    late = rig.place(order("BUY", 1, "MKT"))     # ...a fill arrives live before the supervisor reconciles
    wait_until(lambda: late.done and late.fills, 10, "a fill on the new connection")
    rig.reconcile(down_since)
    summary = rig.wait_reconciled()

    assert parse_tws_time(summary.since, 0.0) == tws_epoch(early.fills[0].time) - 1.0    # the last one before the drop
    truth = [e for o, e in rig.gateway_executions() if o == missed.order_id]
    assert rig.fills_of(missed) == truth and missed.status == "Filled"
    assert sorted(rig.fills) == sorted(rig.gateway_executions())


# --- statuses from TWS's word --------------------------------------------------------------------------------

def test_an_order_cancelled_by_another_client_while_disconnected_ends_cancelled(rig):
    trade = resting_buy(rig, below=1.0)
    down_since = rig.drop()
    other = RecordingClient().start(rig.gw.port, rig.cid + 500)
    try:
        other.reqGlobalCancel(OrderCancel())
        wait_until(lambda: rig.gateway_status(trade) == "Cancelled", 10, "the global cancel")
    finally:
        other.close()
    rig.reconnect()
    rig.reconcile(down_since)
    summary = rig.wait_reconciled()

    assert trade.status == "Cancelled" and trade.done and trade.fills == []
    assert "Cancelled by Trader" in trade.reason                  # TWS's own word, from its completed orders
    assert trade in summary.statuses_changed and not summary.unknown_orders and not rig.unknown
    assert [s for o, s, _ in rig.statuses if o == trade.order_id].count("Cancelled") == 1


def test_an_open_order_keeps_working_and_its_state_is_confirmed(rig):
    trade = resting_buy(rig, below=5.0)                             # far from the market: it stays open
    down_since = rig.drop()
    step(rig.gw, 8)
    rig.reconnect()
    rig.reconcile(down_since, trade)
    summary = rig.wait_reconciled()

    assert trade.status == "Submitted" and not trade.done and trade in rig.eng.orders.open_trades()
    assert rig.gateway_status(trade) == "Submitted"
    assert summary.statuses_changed == [] and summary.unknown_orders == [] and summary.fills_recovered == []
    assert not rig.eng.orders.in_doubt(trade)


@pytest.mark.parametrize("how", ["swallowed", "restart_without_state"])
def test_an_order_tws_does_not_know_is_marked_inactive_and_reported(rig, how, caplog):
    caplog.set_level(logging.WARNING, logger="ibframe.orders")
    if how == "swallowed":                       # placed, never received
        rig.eng.orders.ack_timeout = 0
        rig.gw.faults.swallow_next_orders(1)
        lost = rig.place(order("BUY", 1, "LMT", 100.0), strategy="lost-order")
        down_since = rig.drop()
    else:                                        # received, then TWS restarted without it
        lost = resting_buy(rig, below=5.0)
        down_since = rig.eng.clock.now()
        rig.gw.faults.restart(keep_state=False, pause=0.1)
        wait_until(lambda: not rig.eng.router.ready.is_set(), 10, "the engine to see the restart")
    rig.reconnect()
    rig.reconcile(down_since)
    summary = rig.wait_reconciled()

    assert lost.status == "Inactive" and lost.done and lost not in rig.eng.orders.open_trades()
    assert f"TWS no longer knows order {lost.order_id} after the reconnect" in lost.reason
    assert "never received, or TWS restarted without it" in lost.reason
    assert rig.unknown == [lost] and summary.unknown_orders == [lost]
    assert [(o, s) for o, s, _ in rig.statuses if o == lost.order_id][-1] == (lost.order_id, "Inactive")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"order {lost.order_id} BUY 1 AAPL ended Inactive: TWS no longer knows" in m for m in warnings)
    assert lost.filled == 0 and lost.fills == []                       # never guessed filled


def test_an_order_tws_forgot_after_its_executions_came_ends_filled_only_when_they_cover_it(rig):
    """After a TWS restart its completed-orders list starts empty while its executions stay (up to 7 days):
    an order filled in the gap is then known only by its executions. They cover it: Filled, and reported."""
    trade = resting_buy(rig)
    down_since = rig.drop()
    rig.fill_at_gateway(trade)
    rig.gw.call(rig.gw.broker.completed.clear)                     # TWS's completed orders list, reset
    rig.reconnect()
    rig.reconcile(down_since)
    summary = rig.wait_reconciled()

    truth = [e for o, e in rig.gateway_executions() if o == trade.order_id]
    assert rig.fills_of(trade) == truth
    assert trade.status == "Filled" and trade.filled == 1 and trade.remaining == 0
    assert "execution(s) fill all 1" in trade.reason and f"no longer knows order {trade.order_id}" in trade.reason
    assert rig.unknown == [trade] and summary.unknown_orders == [trade]


def test_a_partly_filled_order_tws_lost_in_a_restart_ends_inactive_keeping_its_fills(rig):
    ask = book(rig.gw, AAPL)["asks"][0][0]
    trade = rig.place(order("BUY", 800, "LMT", ask))
    wait_until(lambda: trade.fills and trade.status == "Submitted", 10, "a partial fill")
    filled = trade.filled
    down_since = rig.eng.clock.now()
    rig.gw.faults.restart(keep_state=False, pause=0.1)
    wait_until(lambda: not rig.eng.router.ready.is_set(), 10, "the engine to see the restart")
    rig.reconnect()
    rig.reconcile(down_since)
    rig.wait_reconciled()

    assert trade.status == "Inactive" and trade.filled == filled == sum(f.shares for f in trade.fills)
    assert f"{filled:g} of 800 were filled before" in trade.reason and rig.unknown == [trade]


# --- rounds: again, and interrupted --------------------------------------------------------------------------

def test_two_reconnects_in_a_row_each_bring_their_fills_once(rig):
    first, second = resting_buy(rig), resting_buy(rig, below=0.02)
    down_since = rig.drop()
    rig.fill_at_gateway(first)
    rig.reconnect()
    rig.reconcile(down_since)
    one = rig.wait_reconciled(1)
    assert first.status == "Filled" and rig.fills_of(first) and not one.unknown_orders

    if second.done:                              # the first gap filled both: give the second round new work
        second = resting_buy(rig, below=0.05)
    last_seen = rig.eng.on_dispatch(lambda: max(tws_epoch(f.time) for _, f in rig.eng.orders.executions))
    down_since = rig.drop()
    rig.fill_at_gateway(second)
    rig.reconnect()
    rig.reconcile(down_since)
    two = rig.wait_reconciled(2)

    truth = rig.gateway_executions()
    assert sorted(rig.fills) == sorted(truth) and len(set(rig.fills)) == len(rig.fills)   # zero lost, zero doubled
    assert sorted(rig.commissions) == sorted(e for _, e in truth)
    assert second.status == "Filled" and [f.exec_id for _, f in two.fills_recovered] == rig.fills_of(second)
    assert (one.round, two.round) == (1, 2) and two.abandoned == 0
    assert one.since == ""                       # nothing seen before the first drop; then from the last fill seen
    assert parse_tws_time(two.since, 0.0) == last_seen - RESYNC_MARGIN
    assert filled_status_calls(rig, first) == 1 and filled_status_calls(rig, second) == 1


@pytest.mark.parametrize("stage", ["executions", "orders"])
def test_a_reconnect_during_a_running_reconciliation_starts_a_new_round(rig, stage):
    trade = resting_buy(rig)
    down_since = rig.drop()
    rig.fill_at_gateway(trade)
    rig.reconnect()
    rig.gw.faults.delay_messages(30.0, client_id=rig.cid)          # TWS's answers to this round never arrive
    if stage == "orders":
        rig.eng.orders.resync.timeout = 0.2                         # the watchdog moves it on to the orders
    reconciling, _ = rig.reconcile(down_since)
    assert reconciling
    if stage == "orders":
        wait_until(lambda: rig.eng.on_dispatch(lambda: rig.eng.orders.resync.round.phase == "orders"
                                               and rig.eng.orders.reconciler.busy), 10, "the orders stage")
    stale_id = rig.eng.on_dispatch(lambda: rig.eng.orders.resync.round.req_id)
    rig.drop()                                                      # the second drop, mid-round
    assert rig.eng.orders.reconciling and not rig.summaries         # not finished, not stuck either:
    rig.gw.faults.delay_messages(0, client_id=rig.cid)
    rig.reconnect()
    rig.reconcile(down_since)                                       # ...a new round starts
    summary = rig.wait_reconciled()

    assert summary.round == 2 and summary.abandoned == 1 and summary.down_since == down_since
    assert trade.status == "Filled"
    truth = [e for o, e in rig.gateway_executions() if o == trade.order_id]
    assert rig.fills_of(trade) == truth and [f.exec_id for _, f in summary.fills_recovered] == truth
    # a late answer of the abandoned round is harmless: no second summary, no change
    rig.eng.on_dispatch(rig.eng.orders.on_execution_end, stale_id)
    rig.sync()
    assert len(rig.summaries) == 1 and not rig.eng.orders.reconciling and rig.fills_of(trade) == truth


def test_when_execdetailsend_is_late_the_round_goes_on_and_late_fills_still_count_once(rig, caplog):
    caplog.set_level(logging.WARNING, logger="ibframe.orders")
    trade = resting_buy(rig)
    down_since = rig.drop()
    rig.fill_at_gateway(trade)
    rig.reconnect()
    rig.eng.orders.resync.timeout = 0.2
    rig.gw.faults.delay_messages(30.0, client_id=rig.cid)          # TWS's answers are held back...
    rig.reconcile(down_since)
    wait_until(lambda: rig.eng.on_dispatch(lambda: rig.eng.orders.resync.round.phase) == "orders", 10,
               "the watchdog to go on with the orders")
    assert any("has not finished sending executions" in r.getMessage() for r in caplog.records)
    assert not trade.fills and not rig.summaries
    gw, cid = rig.gw, rig.cid
    gw.faults.delay_messages(0, client_id=cid)
    gw.call(lambda: gw.sessions[cid].writer.flush_now())           # ...and then arrive, in order
    summary = rig.wait_reconciled()

    assert trade.status == "Filled" and len(rig.summaries) == 1
    truth = [e for o, e in rig.gateway_executions() if o == trade.order_id]
    assert rig.fills_of(trade) == truth and rig.commissions == truth
    assert [f.exec_id for _, f in summary.fills_recovered] == truth


# --- the execution filter, on its own ------------------------------------------------------------------------

def test_the_execution_filter_time_is_what_tws_and_the_simulator_read():
    last = dt.datetime(2026, 11, 17, 10, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))).timestamp()
    f = execution_filter(7, last, 30.0, 200)
    assert f.clientId == 7 and f.acctCode == ""
    assert f.time == "20261117-14:55:05"                             # 10:00:05 EST - 300 s, in UTC
    assert parse_tws_time(f.time, 0.0) == last - RESYNC_MARGIN       # the simulator reads it as meant
    assert f.lastNDays == MAX_DAYS
    old_server = execution_filter(7, last, 30.0, 176)                # below 200 lastNDays is refused by ibapi
    assert old_server.time == f.time and old_server.lastNDays != MAX_DAYS and old_server.specificDates is None
    none_seen = execution_filter(7, None, 3 * 86400.0, 200)          # nothing seen yet: no time, days cover the gap
    assert none_seen.time == "" and none_seen.lastNDays == 5
    assert execution_filter(7, None, 60.0, 200).lastNDays == 2
    assert execution_filter(7, None, 30 * 86400.0, 200).lastNDays == MAX_DAYS


@pytest.mark.parametrize("text, expected", [
    ("20261117 10:00:05 US/Eastern", "2026-11-17T15:00:05+00:00"),
    ("20261117 10:00:05 America/New_York", "2026-11-17T15:00:05+00:00"),
    ("20261117 10:00:05 EST", "2026-11-17T15:00:05+00:00"),
    ("20261117  16:00:05 MET", "2026-11-17T15:00:05+00:00"),
    ("20261117-15:00:05", "2026-11-17T15:00:05+00:00"),
    ("20261117 15:00:05 UTC", "2026-11-17T15:00:05+00:00"),
    ("20261117 15:00:05", "2026-11-17T01:00:05+00:00"),              # no zone: as early as any zone allows
    ("20261117 15:00:05 Mars/Olympus", "2026-11-17T01:00:05+00:00"),
])
def test_execution_times_are_read_in_their_zone_or_as_early_as_possible(text, expected):
    assert tws_epoch(text) == dt.datetime.fromisoformat(expected).timestamp()


@pytest.mark.parametrize("text", ["", "yesterday", "20261117", "2026-11-17 10:00", "20261341 10:00:00 EST"])
def test_what_is_no_time_gives_none(text):
    assert tws_epoch(text) is None


def test_request_ids_fall_back_to_a_private_range_when_the_engine_gives_none(rig):
    log = WireLog()
    rig.eng.conn.recorder = log
    rig.eng.orders.request_id = None             # an order manager the engine gave no request ids
    down_since = rig.drop()
    rig.reconnect()
    rig.reconcile(down_since)
    rig.wait_reconciled()
    rig.reconcile(down_since)                   # asked again on the same connection: a new round, a new id
    rig.wait_reconciled(2)
    ids = [int(text.split("\0")[1]) for msg_id, text in log.out if msg_id == OUT.REQ_EXECUTIONS]
    assert ids == [PRIVATE_ID_BASE, PRIVATE_ID_BASE + 1]
    assert [s.round for s in rig.summaries] == [1, 2]
