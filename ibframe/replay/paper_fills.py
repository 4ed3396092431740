"""Simulated fills against the recorded quotes (`--fills simulated`).

Owns: `PaperFills`, the simple paper broker of a replay (the model is in the package docstring), and
which recorded frames it replaces. Must never: change the recording or the recorded quotes.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from google.protobuf.message import DecodeError
from ibapi.protobuf.ErrorMessage_pb2 import ErrorMessage as ErrorMessageProto
from ibapi.message import IN
from ibapi.server_versions import (MIN_SERVER_VER_ADVANCED_ORDER_REJECT, MIN_SERVER_VER_ERROR_TIME)

from ..engine import Engine
from ..record import Event, Recording, event_to_payload
from .feeder import Feeder, Sent

log = logging.getLogger("ibframe.replay")



# --- simulated fills against the recorded quotes -------------------------------------------------------------

EASTERN = ZoneInfo("US/Eastern")
SUPPORTED_ORDER_TYPES = ("MKT", "LMT", "STP", "STP LMT")
ORDER_ANSWERS = frozenset({IN.OPEN_ORDER, IN.ORDER_STATUS, IN.EXECUTION_DATA, IN.COMMISSION_AND_FEES_REPORT,
                           IN.COMPLETED_ORDER, IN.ORDER_BOUND})


@dataclass(slots=True)
class _Working:
    order_id: int
    contract: object
    order: object
    wire: object | None                 # ibframe.sim.broker.order_records.SimOrder parsed from the sent placeOrder
    perm_id: int
    active: bool
    placed_at: float
    triggered: bool = False


class PaperFills:
    """The replay's paper broker (fills="simulated"); the model is described in the module docstring."""

    def __init__(self, engine: Engine, feeder: Feeder, recording: Recording):
        from ..sim.broker import order_answers_wire, order_records, order_requests_wire  # the replay entry point
        from ..sim.protocol import wire                                                 # alone wires in the sim's codec
        self.records, self.requests_wire = order_records, order_requests_wire
        self.answers, self.format_field = order_answers_wire, wire.format_field
        self.engine, self.feeder = engine, feeder
        self.version = recording.header.server_version
        self.accounts = recording.header.accounts
        self.recorded_order_ids = recording.order_ids
        self.first_order_line = recording.orders[0].line if recording.orders else None
        self.working: dict[int, _Working] = {}
        self.positions: dict[tuple[str, int], list[float]] = {}
        self.seq = 0
        self.fills = 0

    # --- which recorded frames a simulated broker replaces -----------------------------------------------
    def drops(self, ev: Event) -> bool:
        msg_id = ev.msg_id or 0
        if msg_id in ORDER_ANSWERS:
            return True
        if msg_id in (IN.POSITION_DATA, IN.PORTFOLIO_VALUE):
            return self.first_order_line is not None and ev.line > self.first_order_line
        if msg_id == IN.ERR_MSG and ev.is_protobuf:
            try:
                return ErrorMessageProto.FromString(ev.raw[4:]).id in self.recorded_order_ids
            except DecodeError:
                return False
        if msg_id == IN.ERR_MSG and ev.fields:
            at = 1 if self.version >= MIN_SERVER_VER_ERROR_TIME else 2
            try:
                return int(ev.fields[at]) in self.recorded_order_ids
            except (IndexError, ValueError):
                return False
        return False

    # --- orders in ----------------------------------------------------------------------------------------
    def place(self, order_id: int, contract, order, sent: Sent) -> None:
        if order.orderType not in SUPPORTED_ORDER_TYPES:
            self._error(order_id, 201, f"Order rejected - Reason: replay fills support "
                                       f"{', '.join(SUPPORTED_ORDER_TYPES)} orders, not {order.orderType}")
            return
        existing = self.working.get(order_id)
        if existing is not None:                 # a modification: same id, new terms
            existing.order, existing.contract = order, contract
            existing.wire = self._parse(sent) or existing.wire
            w = existing
        else:
            self.seq += 1
            parent = order.parentId
            w = _Working(order_id, contract, order, self._parse(sent), self.records.make_perm_id(self.seq),
                         active=not parent or parent not in self.working, placed_at=self.engine.clock.now())
            self.working[order_id] = w
        status = "Submitted" if w.active else "PreSubmitted"
        self._open_order(w, status)
        self._status(w, status, 0.0, float(order.totalQuantity), 0.0, 0.0)
        if w.active:
            self._check(w, at_placement=True)

    def cancel(self, order_id: int) -> None:
        w = self.working.pop(order_id, None)
        if w is None:
            self._error(order_id, 10147, f"OrderId {order_id} that needs to be cancelled is not found.")
            return
        self._error(order_id, 202, "Order Canceled - reason:")
        self._status(w, "Cancelled", 0.0, float(w.order.totalQuantity), 0.0, 0.0)

    # --- matching against the recorded market ------------------------------------------------------------
    def check_all(self) -> None:
        for w in list(self.working.values()):
            if w.active and w.order_id in self.working:
                self._check(w, at_placement=False)

    def _quote(self, w: _Working) -> tuple[float | None, float | None]:
        quote = self.engine.live_quote(getattr(w.contract, "conId", 0))
        if quote is None:
            return None, None
        return quote.bid, quote.ask

    def _check(self, w: _Working, at_placement: bool) -> None:
        bid, ask = self._quote(w)
        buy = w.order.action == "BUY"
        far = ask if buy else bid
        if far is None:
            return
        kind = w.order.orderType
        if kind in ("STP", "STP LMT") and not w.triggered:
            stop = w.order.auxPrice
            if not ((buy and far >= stop) or (not buy and far <= stop)):
                return
            w.triggered, at_placement = True, True
        if kind in ("MKT", "STP"):
            self._fill(w, far, removed=True)
            return
        limit = w.order.lmtPrice
        if (buy and far <= limit) or (not buy and far >= limit):
            self._fill(w, far if at_placement else limit, removed=at_placement)

    def _fill(self, w: _Working, price: float, removed: bool) -> None:
        self.working.pop(w.order_id, None)
        self.fills += 1
        order, contract = w.order, w.contract
        qty = float(order.totalQuantity)
        now = self.engine.clock.now()
        account = order.account or (self.accounts[0] if self.accounts else "") or self.engine.account
        side = "BOT" if order.action == "BUY" else "SLD"
        exec_id = self.records.make_exec_id(self.fills, w.order_id, now)
        when = dt.datetime.fromtimestamp(now, EASTERN).strftime("%Y%m%d %H:%M:%S") + " US/Eastern"
        if w.wire is not None:
            execution = self.records.ExecutionInfo(
                execId=exec_id, time=when, acctNumber=account,
                exchange=contract.primaryExchange or contract.exchange or "SMART", side=side, shares=qty,
                price=price, permId=w.perm_id, clientId=self.engine.client_id, cumQty=qty, avgPrice=price,
                orderRef=order.orderRef, lastLiquidity=2 if removed else 1)
            self._send(self.answers.encode_execution(-1, w.wire, execution, self.version), "execDetails")
        self._status(w, "Filled", qty, 0.0, price, price)
        if w.wire is not None:
            self._open_order(w, "Filled")
        commission = self._commission(contract, qty, price)
        self._send(self.answers.encode_commission_report(exec_id, commission, contract.currency or "USD", None, None,
                                                    None, self.version), "commissionAndFeesReport")
        self._position(account, contract, qty if side == "BOT" else -qty, price)
        for child in [c for c in self.working.values() if c.order.parentId == w.order_id and not c.active]:
            child.active = True
            self._status(child, "Submitted", 0.0, float(child.order.totalQuantity), 0.0, 0.0)
            self._check(child, at_placement=True)
        if order.parentId:                      # one exit of a bracket filled: the others are cancelled
            for sibling in [c for c in self.working.values() if c.order.parentId == order.parentId]:
                self.working.pop(sibling.order_id, None)
                self._status(sibling, "Cancelled", 0.0, float(sibling.order.totalQuantity), 0.0, 0.0)

    @staticmethod
    def _commission(contract, qty: float, price: float) -> float:
        kind = contract.secType
        if kind == "OPT":
            return round(0.65 * qty, 2)
        if kind in ("FUT", "FOP"):
            return round(0.85 * qty, 2)
        if kind == "CASH":
            return round(max(2.0, qty * price * 0.00002), 2)
        return round(min(max(1.0, 0.005 * qty), 0.01 * qty * price), 2)

    # --- answers, encoded as TWS would send them ----------------------------------------------------------
    def _parse(self, sent: Sent):
        """The placeOrder as the simulator reads it: text fields as sent, or (from server version 203, where
        orders travel as protobuf) the version-200 text form the simulator's codec rebuilds from the body."""
        from ..sim.protocol.codec import SessionCodec
        from ..sim.protocol.proto_requests import TEXT_SERVER_VERSION
        from ..sim.protocol.wire import FieldReader
        fields, version = sent.fields, self.version
        try:
            if fields is None:
                fields, version = SessionCodec(self.version).request_fields(sent.payload), TEXT_SERVER_VERSION
            parsed = self.requests_wire.parse_place_order(FieldReader(fields, "PLACE_ORDER", 1), version)
        except ValueError as exc:
            log.warning("replay fills: cannot read back placeOrder %s (%s); no openOrder is synthesized", sent, exc)
            return None
        parsed.clientId = self.engine.client_id
        return parsed

    def _open_order(self, w: _Working, status: str) -> None:
        if w.wire is None:
            return
        w.wire.permId = w.perm_id
        self._send(self.answers.encode_open_order(w.wire, self.records.OrderStateInfo(status=status), self.version),
                   "openOrder")

    def _status(self, w: _Working, status: str, filled: float, remaining: float, avg: float, last: float) -> None:
        self._send(self.answers.encode_order_status(w.order_id, status, filled, remaining, avg, w.perm_id,
                                               w.order.parentId or 0, last, self.engine.client_id, "", None,
                                               self.version), "orderStatus")

    def _error(self, order_id: int, code: int, text: str) -> None:
        if self.version >= MIN_SERVER_VER_ERROR_TIME:
            fields = (IN.ERR_MSG, order_id, code, text, "", int(self.engine.clock.now() * 1000))
        elif self.version >= MIN_SERVER_VER_ADVANCED_ORDER_REJECT:
            fields = (IN.ERR_MSG, 2, order_id, code, text, "")
        else:
            fields = (IN.ERR_MSG, 2, order_id, code, text)
        self._send(fields, "error")

    def _position(self, account: str, contract, delta: float, price: float) -> None:
        key = (account, contract.conId)
        if key not in self.positions:
            known = self.engine.portfolio.positions.get(key)
            self.positions[key] = [known.quantity, known.avg_cost] if known else [0.0, 0.0]
        pos = self.positions[key]
        qty, avg = pos
        new = qty + delta
        if new == 0:
            avg = 0.0
        elif qty == 0 or (qty > 0) != (new > 0):
            avg = price
        elif abs(new) > abs(qty):
            avg = (qty * avg + delta * price) / new
        pos[0], pos[1] = new, avg
        self._send((IN.POSITION_DATA, 3, account, contract.conId, contract.symbol, contract.secType,
                    contract.lastTradeDateOrContractMonth, float(contract.strike or 0.0), contract.right,
                    contract.multiplier, contract.exchange, contract.currency, contract.localSymbol,
                    contract.tradingClass, new, avg), "position")

    def _send(self, fields: tuple, what: str) -> None:
        text = [self.format_field(f) for f in fields]
        self.feeder.inject(event_to_payload({"fields": text}, self.version), what)
