"""What happens to a new order before it exists: the contract it names, TWS's checks, the ledger's verdict.

Owns: resolving the order's contract (error 200; a BAG's legs by conId), echoing the full contract
back into the order as TWS does, 321 for a contract without conId that lacks a valid secType, a
currency or a derivative's expiry / local symbol (texts and rules in `market/lookup.py`), the
pre-acceptance checks (order_rules, algos, account, TWS time strings, order_precautions: 203, 383,
109, 382), turning a cashQty into a quantity, the ledger's `check_order` per order or per combo
leg, and the what-if preview (an openOrder with the margin and commission numbers).

Must never: store the order, change the market or accounts, or send anything but the error / the
what-if openOrder of the order being checked.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..market.lookup import NO_SECURITY_DEFINITION, order_contract_problem, resolve
from ..market.ordertime import parse_tws_time
from ..market.universe import ContractQuery, Instrument, price_increment
from . import algos, order_precautions as precautions, order_rules as rules
from .live import LiveOrder
from .order_answers_wire import encode_open_order
from .order_records import OrderStateInfo, SimOrder

if TYPE_CHECKING:
    from .broker import Broker
    from ..protocol.session import Session

UNSET_TEXTS = ("None", "?")                        # what a client echoing an openOrder sends for "nothing"
LISTED_AS = {"ISLAND": "NASDAQ", "INET": "NASDAQ"}  # routing names a contract lists under another name


def clean(o: SimOrder) -> None:
    """Empty the placeholders TWS prints in openOrder when a client sends them back."""
    for f in dataclasses.fields(o):
        value = getattr(o, f.name)
        if isinstance(value, str) and value in UNSET_TEXTS:
            setattr(o, f.name, "")


def resolve_contract(broker: "Broker", session: "Session", o: SimOrder):
    """(instrument, []) or (None, legs) for a BAG; None after the error was sent.

    A contract without conId needs a valid secType, a currency and (FUT / FOP / OPT) an expiry or a
    local symbol, else 321 (`lookup.order_contract_problem`); with a conId only the exchange, checked
    before this by `order_precautions.exchange_problem`."""
    bad = order_contract_problem(o.conId, o.secType, o.currency, o.lastTradeDateOrContractMonth, o.localSymbol)
    if bad is not None:
        session.error(o.orderId, bad.code, bad.text)
        return None
    universe = broker.gateway.universe
    if o.secType.upper() == "BAG":
        legs = []
        for leg in o.comboLegs:
            inst = universe.get(leg.conId)
            if inst is None or leg.ratio <= 0:
                session.error(o.orderId, 200, NO_SECURITY_DEFINITION)
                return None
            legs.append((leg, inst))
        if not legs:
            session.error(o.orderId, 321, "Error validating request.-'bN' : cause - Security type 'BAG' "
                                          "requires combo leg details.")
            return None
        return None, legs
    q = ContractQuery(con_id=o.conId, symbol=o.symbol or (o.secId if o.secIdType else ""), sec_type=o.secType,
                      expiry=o.lastTradeDateOrContractMonth, strike=o.strike or 0.0, right=o.right,
                      multiplier=o.multiplier, exchange=LISTED_AS.get(o.exchange.upper(), o.exchange),
                      primary_exchange=o.primaryExchange, currency=o.currency, local_symbol=o.localSymbol,
                      trading_class=o.tradingClass)
    inst = resolve(session, o.orderId, q)
    return None if inst is None else (inst, [])


def echo_contract(o: SimOrder, inst: Instrument) -> None:
    """TWS echoes the full contract in openOrder and executions, whatever the client sent."""
    o.conId, o.symbol, o.secType = inst.con_id, inst.symbol, inst.sec_type
    o.lastTradeDateOrContractMonth, o.strike, o.right = inst.expiry, inst.strike or None, inst.right
    o.multiplier, o.currency = inst.multiplier, inst.currency
    o.localSymbol, o.tradingClass = inst.local_symbol, inst.trading_class
    o.exchange = o.exchange or inst.exchange


def problem(broker: "Broker", o: SimOrder, inst: Instrument | None) -> rules.Reject | None:
    """The first reason to refuse the order before it exists (None: acceptable)."""
    now = broker.now()
    found = rules.validate(o, inst)
    if found is None and o.algoStrategy:
        found = algos.validate(o, inst, now, broker.clock)
    if found is None and o.account not in broker.gateway.accounts:
        found = rules.Reject(201, rules.rejected(f"The account {o.account} is not a managed account."))
    if found is None and inst is not None:
        found = precautions.account_problem(inst.sec_type, inst.describe(), broker.ledger.account(o.account).is_cash)
    if found is None:
        found = precautions.size_problem(o.secType or (inst.sec_type if inst else ""), o.totalQuantity)
    if found is None and inst is not None:
        found = _price_precaution(broker, o, inst)
    for text, name in ((o.goodTillDate, "goodTillDate"), (o.goodAfterTime, "goodAfterTime")):
        if found is None and text:
            try:
                parse_tws_time(text, now, end_of_day=True)
            except ValueError as exc:
                found = rules.Reject(201, rules.rejected(f"Invalid {name}: {exc}"))
    if found is None and o.totalQuantity == 0 and o.cashQty:
        found = cash_quantity(broker, o, inst)
    return found


def _price_precaution(broker: "Broker", o: SimOrder, inst: Instrument) -> rules.Reject | None:
    """109 / 382: a limit price far through the current far side of the book."""
    book = broker.worker.book(inst)
    buy = o.action == "BUY"
    far = book.far(buy) if book is not None else None
    if not far:
        return None
    try:
        tick = price_increment(inst.market_rule_id, far)
    except KeyError:
        tick = inst.min_tick or 0.0
    return precautions.price_problem(o.orderType, buy, o.lmtPrice, far, tick)


def cash_quantity(broker: "Broker", o: SimOrder, inst: Instrument | None) -> rules.Reject | None:
    """A cashQty order: the quantity the cash buys at the current far side (434 when none)."""
    price = broker.worker.reference_price(LiveOrder(o, inst))
    inc = (inst.size_increment if inst else 1.0) or 1.0
    qty = (int(o.cashQty / price / inc) * inc) if price > 0 else 0.0
    if qty <= 0:
        return rules.Reject(434, rules.TEXT_434)
    o.totalQuantity = float(qty)
    return None


def ledger_checks(broker: "Broker", lo: LiveOrder) -> list:
    """The ledger's OrderCheck for the order, or one per combo leg."""
    o, ledger = lo.order, broker.ledger
    if not lo.legs:
        return [ledger.check_order(o.account, lo.inst, "BUY" if lo.buy else "SELL", o.totalQuantity,
                                   broker.worker.reference_price(lo))]
    out = []
    for leg, inst in lo.legs:
        leg_buy = (leg.action.upper() == "BUY") == lo.buy
        book = broker.worker.book(inst)
        price = (book.far(leg_buy) or book.last) if book is not None else float(inst.price or 0.0)
        out.append(ledger.check_order(o.account, inst, "BUY" if leg_buy else "SELL",
                                      o.totalQuantity * max(leg.ratio, 1), price))
    return out


def margin_refusal(broker: "Broker", lo: LiveOrder):
    """The first failing ledger check (None when the order may go)."""
    if lo.liquidation:
        return None
    return next((c for c in ledger_checks(broker, lo) if not c.ok), None)


def what_if(broker: "Broker", session: "Session", lo: LiveOrder) -> None:
    """openOrder with whatIf=True and the margin / commission preview; nothing is stored or executed."""
    checks = ledger_checks(broker, lo)
    first = checks[0]
    bad = next((c for c in checks if not c.ok), None)
    init = sum(c.init_change for c in checks)
    maint = sum(c.maint_change for c in checks)
    equity = sum(c.equity_change for c in checks)
    commission = sum(c.commission for c in checks)
    state = OrderStateInfo(
        status="PreSubmitted",
        initMarginBefore=_money(first.init_before), maintMarginBefore=_money(first.maint_before),
        equityWithLoanBefore=_money(first.equity_before), initMarginChange=_money(init),
        maintMarginChange=_money(maint), equityWithLoanChange=_money(equity),
        initMarginAfter=_money(first.init_before + init), maintMarginAfter=_money(first.maint_before + maint),
        equityWithLoanAfter=_money(first.equity_before + equity),
        commission=commission, minCommission=commission, maxCommission=commission,
        commissionCurrency=first.commission_currency, marginCurrency=first.commission_currency,
        rejectReason=bad.reason if bad else "", warningText=bad.reason if bad else "")
    session.send(*encode_open_order(lo.order, state, session.version))


def _money(x: float) -> str:
    return f"{x:.2f}"
