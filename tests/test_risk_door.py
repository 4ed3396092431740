"""There is one door to TWS and the risk gate keeps it (issue 10: "no order may reach placeOrder
without passing the risk layer ... a test proves there is no way around it").

Against the simulator over real sockets: a strategy, the order builders, `engine.orders` and
`engine.conn.placeOrder` called by hand cannot get a refused or unapproved order to the simulator.
"The simulator never saw it" is read from the simulator itself: every placeOrder it receives raises
its `next_order_id` past the order's id (and a placed order is in `broker.find`), so an attempt made
with an id far above everything used, followed by an order that does arrive (the socket keeps
order), proves the attempt never left the process. The issue's own cases: a 1,000,000-share market
order and a limit BUY at twice the ask are refused before sending, and a refused strategy keeps trading.
"""
from __future__ import annotations

import itertools

import pytest

from conftest import wait_until
from ibframe.contracts import Stock
from ibframe.engine import Engine
from ibframe.risk.base import Refusal, RiskRejected
from ibframe.risk.config import RiskConfig
from ibframe.risk.gate import DOOR, Deferred, UnapprovedOrder
from ibframe.risk.layer import RiskLayer
from ibframe.strategy import Strategy
from ibframe.trading import orders as build

_client_ids = itertools.count(940)


@pytest.fixture
def start_engine(tmp_path):
    engines = []

    def start(gw, strategies=(), config=None) -> Engine:
        eng = Engine("127.0.0.1", gw.port, next(_client_ids), state_dir=tmp_path).start()
        engines.append(eng)
        return eng
    yield start
    for eng in engines:
        eng.stop()


def far_id(gw) -> int:
    """An order id above every id the simulator has seen: if it ever arrives, next_order_id passes it."""
    return gw.next_order_id + 100_000


def never_seen(gw, eng: Engine, order_id: int) -> bool:
    return gw.next_order_id <= order_id and gw.broker.find(eng.client_id, order_id) is None


def live_quote(eng: Engine, contract):
    q = eng.market_data(contract).quote
    wait_until(lambda: q.bid and q.ask, what="a live quote")
    return q


def settle_with_a_good_order(gw, eng: Engine, contract) -> None:
    """An approved order that does arrive: everything sent before it has arrived too."""
    good = eng.on_dispatch(lambda: eng.orders.place(contract, build.limit("BUY", 1, 1.01)))
    wait_until(lambda: gw.broker.find(eng.client_id, good.order_id) is not None, what="the approved order")
    eng.on_dispatch(lambda: eng.orders.cancel(good))


def test_no_order_reaches_the_simulator_around_the_gate(gateway, start_engine):
    eng = start_engine(gateway)
    RiskLayer.install(eng, RiskConfig(), [])
    aapl = eng.qualify(Stock("AAPL"))
    q = live_quote(eng, aapl)

    # 1. engine.conn.placeOrder by hand: refused, nothing sent
    hand = far_id(gateway)
    with pytest.raises(UnapprovedOrder, match="never approved it.*Strategy.buy/sell/place"):
        eng.on_dispatch(lambda: eng.conn.placeOrder(hand, aapl, build.limit("BUY", 1, 1.0)))
    # 2. a pass is for one Order object with the terms the gate saw, and for one use
    approved, other = build.limit("BUY", 1, 1.0), build.limit("BUY", 1, 1.0)
    swap = far_id(gateway) + 1
    DOOR.approve(eng.conn, swap, approved)
    with pytest.raises(UnapprovedOrder):
        eng.on_dispatch(lambda: eng.conn.placeOrder(swap, aapl, other))
    changed = far_id(gateway) + 2
    DOOR.approve(eng.conn, changed, approved)
    approved.totalQuantity = 1000
    with pytest.raises(UnapprovedOrder, match="terms changed"):
        eng.on_dispatch(lambda: eng.conn.placeOrder(changed, aapl, approved))
    sent = eng.on_dispatch(lambda: eng.orders.place(aapl, build.limit("BUY", 1, 1.0)))
    with pytest.raises(UnapprovedOrder):                          # the used pass does not open the door again
        eng.on_dispatch(lambda: eng.conn.placeOrder(sent.order_id, aapl, sent.order))
    # 3. engine.orders and the builders: refused by the rules, no id spent
    first_free = eng.order_ids.peek()
    with pytest.raises(RiskRejected, match="max_order_quantity"):
        eng.on_dispatch(lambda: eng.orders.place(aapl, build.market("BUY", 1_000_000)))
    with pytest.raises(RiskRejected, match="price_tolerance"):
        eng.on_dispatch(lambda: eng.orders.place(aapl, build.limit("BUY", 100, round(q.ask * 2, 2))))
    entry = build.bracket("BUY", 100, round(q.ask * 2, 2), round(q.ask * 2.1, 2), round(q.bid * 0.9, 2))
    with pytest.raises(RiskRejected):
        eng.on_dispatch(lambda: eng.orders.place_bracket(aapl, entry))
    assert all(o.orderId == 0 for o in entry) and eng.order_ids.peek() == first_free
    settle_with_a_good_order(gateway, eng, aapl)
    for order_id in (hand, swap, changed):
        assert never_seen(gateway, eng, order_id)
    assert gateway.broker.find(eng.client_id, first_free) is not None      # the good order got the next id


class Refused(Strategy):
    """First quote: a 1,000,000-share market order, not caught (the callback ends with the exception). Next
    quote: a limit BUY at twice the ask and an oversized bracket, caught; then BUY 1 at market, which fills."""

    def on_start(self):
        self.refusals, self.statuses, self.errors, self.good, self.quotes_seen = [], [], [], None, 0
        self.quote("AAPL")

    def on_quote(self, instrument, quote):
        if not quote.ask or self.good is not None:
            return
        self.quotes_seen += 1
        if self.quotes_seen == 1:
            self.buy("AAPL", 1_000_000)                     # raises RiskRejected out of on_quote
            raise AssertionError("not reached")
        for attempt in (lambda: self.buy("AAPL", 100, round(quote.ask * 2, 2)),
                        lambda: self.bracket("AAPL", "BUY", 20_000, round(quote.ask, 2), round(quote.ask * 1.01, 2),
                                             round(quote.bid * 0.99, 2))):
            try:
                attempt()
            except RiskRejected as exc:
                self.refusals.append(exc)
        self.good = self.buy("AAPL", 1)

    def on_order_status(self, trade):
        self.statuses.append((trade.order_id, trade.status))

    def on_error(self, error):
        self.errors.append(error)


def test_a_strategy_refused_by_the_rules_keeps_running_and_trading(gateway, start_engine):
    eng = start_engine(gateway)
    s = Refused(eng, "refused", {}, {"AAPL": eng.qualify(Stock("AAPL"))})
    layer = RiskLayer.install(eng, RiskConfig(), [s])
    events = []
    layer.events.append(events.append)
    eng.on_dispatch(s._start)
    wait_until(lambda: s.good is not None and s.good.status == "Filled", what="the good order to fill")
    double, bracket = s.refusals
    assert double.refusal.rule == "price_tolerance" and "through" in str(double)
    assert bracket.refusal.rule == "max_order_quantity" and bracket.refusal.value == "20000"
    assert s.trades == [s.good] and all(i == s.good.order_id for i, _ in s.statuses)   # refused: no trade, no id
    wait_until(lambda: len(s.errors) == 3, what="every refusal on on_error")
    assert not [e for e in s.errors if e.code == -3]          # the uncaught one is reported once, as a refusal
    refusals = [e for e in s.errors if e.code == -4]          # each refusal, after the callback that made it
    assert [e.subject for e in refusals] == ["risk rule max_order_quantity", "risk rule price_tolerance",
                                             "risk rule max_order_quantity"]
    big = refusals[0]
    assert "1000000" in big.text and "limit 10000" in big.text and "split the order" in big.text
    assert [e.rule for e in events if e.kind == "refused"] == ["max_order_quantity", "price_tolerance",
                                                               "max_order_quantity"]
    assert all(e.scope == "refused" for e in events)
    sim_orders = [lo for lo in list(gateway.broker.orders.values()) if lo.order.clientId == eng.client_id]
    assert [lo.order.orderId for lo in sim_orders] == [s.good.order_id]     # the simulator saw only the good one
    eng.on_dispatch(s._stop)


def test_a_refused_modification_leaves_the_order_working_as_it_was(gateway, start_engine):
    eng = start_engine(gateway)
    RiskLayer.install(eng, RiskConfig(), [])
    aapl = eng.qualify(Stock("AAPL"))
    q = live_quote(eng, aapl)
    resting = round(q.bid * 0.9, 2)
    trade = eng.on_dispatch(lambda: eng.orders.place(aapl, build.limit("BUY", 10, resting)))
    wait_until(lambda: trade.status == "Submitted", what="the order to work")
    with pytest.raises(RiskRejected, match="modification of order .* price_tolerance"):
        eng.on_dispatch(lambda: eng.orders.modify(trade, lmtPrice=round(q.ask * 2, 2)))
    assert trade.pending is None and trade.order.lmtPrice == resting
    eng.on_dispatch(lambda: eng.orders.modify(trade, lmtPrice=round(q.bid * 0.95, 2)))
    wait_until(lambda: trade.order.lmtPrice == round(q.bid * 0.95, 2), what="the allowed modification")
    assert gateway.broker.find(eng.client_id, trade.order_id).order.lmtPrice == round(q.bid * 0.95, 2)
    eng.on_dispatch(lambda: eng.orders.cancel(trade))
    wait_until(lambda: trade.done, what="the cancel")


class AskFirst:
    """A deferred rule as a what-if check is: it answers later, by the test's hand."""
    name = "ask_first"

    def __init__(self):
        self.waiting = []

    def check(self, intent):
        return Deferred(lambda send, refuse: self.waiting.append((send, refuse)), self.name)


def test_a_deferred_order_gets_its_id_only_when_sent_or_ends_refused(gateway, start_engine):
    eng = start_engine(gateway)
    aapl = eng.qualify(Stock("AAPL"))
    rule = eng.on_dispatch(lambda: eng.orders.gate.add_rule(AskFirst()))
    statuses = []
    eng.on_dispatch(lambda: eng.orders.status_hooks.append(lambda t: statuses.append((t.order_id, t.status))))
    sent = eng.on_dispatch(lambda: eng.orders.place(aapl, build.limit("BUY", 1, 1.0)))
    refused = eng.on_dispatch(lambda: eng.orders.place(aapl, build.limit("BUY", 2, 1.0)))
    changed = eng.on_dispatch(lambda: eng.orders.place(aapl, build.limit("BUY", 3, 1.0)))
    assert sent.order_id == refused.order_id == changed.order_id == 0 and sent.status == "PendingSubmit"
    (send1, _), (_, refuse2), (send3, _) = rule.waiting
    eng.on_dispatch(lambda: refuse2(Refusal("ask_first", "a yes", "a no", "ask again later")))
    assert refused.status == "Inactive" and "ask again later" in refused.reason and (0, "Inactive") in statuses
    changed.order.totalQuantity = 300                       # changed while waiting: never sent
    eng.on_dispatch(send3)
    assert changed.status == "Inactive" and "changed_after_check" in changed.reason
    eng.on_dispatch(send1)
    assert sent.order_id > 0
    wait_until(lambda: gateway.broker.find(eng.client_id, sent.order_id) is not None, what="the deferred order")
    eng.on_dispatch(lambda: eng.orders.gate.remove_rule("ask_first"))
    eng.on_dispatch(lambda: eng.orders.cancel(sent))
    wait_until(lambda: sent.done, what="the cancel")
    assert [lo.order.totalQuantity for lo in list(gateway.broker.orders.values())
            if lo.order.clientId == eng.client_id] == [1]
