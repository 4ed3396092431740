"""Tick-by-tick data: reqTickByTickData / cancelTickByTickData.

Owns: parsing the request as ``ibapi.client`` writes it for the negotiated version, the
per-client limits IB enforces (simultaneous streams, one request per instrument and tick type
per 15 s), the optional history sent ahead of the stream (rebuilt from the instrument's
per-second tape) and the live TICK_BY_TICK stream fed by market steps.

Every value comes from the instrument's market as it is after the step, so BidAsk prices are
exactly reqMktData's best bid/ask. Never mutates the market, never blocks the loop: a step costs
one comparison per stream, history a few numpy selections over the tape.

Simplifications (documented, deliberate):
- The market prints round lots only and never reports late, so "Last" (which on IB leaves out
  odd lots and unreported prints) carries the same prints as "AllLast".
- History comes from the per-second tape: trade prints of a second are reconstructed from its
  open/high/low/close/volume/count (their venue cycles through the instrument's market makers),
  quote history has one tick per second in which the top of book moved, with round-lot sizes.
- The 15-second rule is kept per client and per (instrument, tick type), in simulated time, so
  independent clients and a BidAsk + AllLast pair on one instrument do not trip each other.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from ibapi import server_versions as sv
from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from .lookup import read_contract, resolve
from .market import InstrumentMarket, StepEvents

KIND = "tickbytick"
TICK_TYPES = {"Last": 1, "AllLast": 2, "BidAsk": 3, "MidPoint": 4}
MAX_HISTORY_TICKS = 1000          # IB: numberOfTicks is capped at 1000
PACING_SECONDS = 15.0             # IB: one request per instrument within 15 seconds

FAILED = "Failed to request tick-by-tick data."
MAX_REACHED = "Max number of tick-by-tick requests has been reached."
EXCHANGE_ALIASES = {"ISLAND": "NASDAQ"}   # IB's name for Nasdaq's book; contract details say NASDAQ

# per client: (conId, tickType) -> simulated time of the last accepted request
_recent_requests: "weakref.WeakKeyDictionary[Session, dict[tuple[int, int], float]]" = weakref.WeakKeyDictionary()


def wire_size(size: float):
    """Sizes are Decimals on the wire; TWS prints whole sizes without a fraction."""
    size = float(size)
    return int(size) if size.is_integer() else size


@dataclass(slots=True)
class TickByTickStream:
    """One live tick-by-tick subscription of one client."""
    req_id: int
    session: Session
    market: InstrumentMarket
    tick_type: int
    ignore_size: bool
    last_sent: tuple | None = None
    remove: Callable[[], None] | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.remove is not None:
            self.remove()
            self.remove = None

    # --- live ticks ---------------------------------------------------------------------------
    def on_step(self, ev: StepEvents) -> None:
        t = int(ev.time)
        if self.tick_type in (1, 2):
            for trade in ev.trades:
                self.session.send(IN.TICK_BY_TICK, self.req_id, self.tick_type, t, float(trade.price),
                                  wire_size(trade.size), 0, trade.exchange, "")
        elif ev.quote_changed:
            self.send_quote(t)

    def send_quote(self, t: int) -> None:
        """BidAsk on every change of the top of book (prices only with ignoreSize); MidPoint when it moves."""
        m = self.market
        if self.tick_type == 3:
            quote = (m.best_bid, m.best_ask, m.bid_size, m.ask_size)
            key = quote[:2] if self.ignore_size else quote
            if self.last_sent is not None and key == self.last_sent:
                return
            self.last_sent = key
            self.session.send(IN.TICK_BY_TICK, self.req_id, 3, t, float(quote[0]), float(quote[1]),
                              wire_size(quote[2]), wire_size(quote[3]), 0)
        elif self.tick_type == 4:
            mid = round((m.best_bid + m.best_ask) / 2, 10)
            if self.last_sent is not None and (mid,) == self.last_sent:
                return
            self.last_sent = (mid,)
            self.session.send(IN.TICK_BY_TICK, self.req_id, 4, t, mid)


# --- history reconstructed from the tape ---------------------------------------------------------

def _prints_of_second(second: int, o: float, h: float, lo: float, c: float, volume: float, count: int,
                      lot: float, makers: tuple[str, ...]) -> list[tuple]:
    """`count` prints consistent with one tape second: first at open, last at close, the extremes between."""
    if count == 1:
        prices = [c]
    else:
        middle = [h if k % 2 == 0 else lo for k in range(count - 2)]
        prices = [o, *middle, c]
    lots = max(int(round(volume / lot)), count)
    base, extra = divmod(lots, count)
    return [(second, prices[k], (base + (1 if k < extra else 0)) * lot, makers[(second + k) % len(makers)])
            for k in range(count)]


def history_last(m: InstrumentMarket, n: int) -> list[tuple]:
    """The last `n` trade prints as (time, price, size, exchange), oldest first."""
    tape = m.tape.arrays()
    counts = tape["count"]
    seconds = np.flatnonzero(counts > 0)
    if n <= 0 or not len(seconds):
        return []
    newest_first = seconds[::-1]
    needed = int(np.searchsorted(np.cumsum(counts[newest_first]), n)) + 1
    ticks: list[tuple] = []
    for i in newest_first[:needed][::-1]:
        ticks += _prints_of_second(int(tape["time"][i]), float(tape["open"][i]), float(tape["high"][i]),
                                   float(tape["low"][i]), float(tape["close"][i]), float(tape["volume"][i]),
                                   int(counts[i]), float(m.lot), m.makers)
    return ticks[-n:]


def _changes(*columns: np.ndarray) -> np.ndarray:
    """Indexes where any column differs from the row before (the first row counts as a change)."""
    changed = np.zeros(len(columns[0]), dtype=bool)
    if len(changed):
        changed[0] = True
    for col in columns:
        changed[1:] |= col[1:] != col[:-1]
    return np.flatnonzero(changed)


def history_bid_ask(m: InstrumentMarket, n: int) -> list[tuple]:
    """(time, bid, ask, bidSize, askSize) for the last `n` seconds in which the top of book moved."""
    tape = m.tape.arrays()
    idx = _changes(tape["bid"], tape["ask"])[-n:] if n > 0 else []
    lot = float(m.lot)
    return [(int(tape["time"][i]), float(tape["bid"][i]), float(tape["ask"][i]), lot, lot) for i in idx]


def history_midpoint(m: InstrumentMarket, n: int) -> list[tuple]:
    """(time, midpoint) for the last `n` seconds in which the midpoint moved."""
    tape = m.tape.arrays()
    mids = np.round((tape["bid"] + tape["ask"]) / 2, 10)
    idx = _changes(mids)[-n:] if n > 0 else []
    return [(int(tape["time"][i]), float(mids[i])) for i in idx]


def send_history(session: Session, stream: TickByTickStream, n: int) -> None:
    """IB answers numberOfTicks with the matching historical-ticks message (done=1) before going live."""
    m, req_id = stream.market, stream.req_id
    fields: list = []
    if stream.tick_type in (1, 2):
        ticks = history_last(m, n)
        for t, price, size, exchange in ticks:
            fields += [t, 0, price, wire_size(size), exchange, ""]
        session.send(IN.HISTORICAL_TICKS_LAST, req_id, len(ticks), *fields, True)
    elif stream.tick_type == 3:
        ticks = history_bid_ask(m, n)
        for t, bid, ask, bid_size, ask_size in ticks:
            fields += [t, 0, bid, ask, wire_size(bid_size), wire_size(ask_size)]
        session.send(IN.HISTORICAL_TICKS_BID_ASK, req_id, len(ticks), *fields, True)
    else:
        ticks = history_midpoint(m, n)
        for t, mid in ticks:
            fields += [t, "", mid, 0]
        session.send(IN.HISTORICAL_TICKS, req_id, len(ticks), *fields, True)


# --- requests ------------------------------------------------------------------------------------

@handles(OUT.REQ_TICK_BY_TICK_DATA)
def req_tick_by_tick_data(session: Session, r: FieldReader) -> None:
    """reqId, contract (with primaryExchange and tradingClass), tickType[, numberOfTicks, ignoreSize]."""
    req_id = r.int("reqId")
    query = read_contract(r)
    tick_type_name = r.str("tickType")
    number_of_ticks, ignore_size = 0, False
    if session.version >= sv.MIN_SERVER_VER_TICK_BY_TICK_IGNORE_SIZE:
        number_of_ticks = r.int("numberOfTicks")
        ignore_size = r.bool("ignoreSize")

    if session.has_subscription(KIND, req_id):
        session.error(req_id, 322, "Duplicate ticker id")
        return
    tick_type = TICK_TYPES.get(tick_type_name)
    if tick_type is None:
        session.error(req_id, 321, f"Error validating request.-'cd' : cause - Invalid tick-by-tick type "
                                   f"'{tick_type_name}'; use Last, AllLast, BidAsk or MidPoint")
        return
    query.exchange = EXCHANGE_ALIASES.get(query.exchange.upper(), query.exchange)
    inst = resolve(session, req_id, query, "cd")
    if inst is None:
        return
    gateway = session.gateway
    market = gateway.market.get(inst.con_id)
    if inst.is_derived or market is None:
        session.error(req_id, 10189, f"{FAILED}Tick-by-tick data is not available for {inst.sec_type} "
                                     f"contracts in this simulator (options are priced from their underlying).")
        return
    if session.count_subscriptions(KIND) >= gateway.config.tick_by_tick_limit:
        session.error(req_id, 10190, MAX_REACHED)
        return
    recent = _recent_requests.setdefault(session, {})
    now = gateway.now()
    key = (inst.con_id, tick_type)
    if gateway.config.pace_tick_by_tick and key in recent and now - recent[key] < PACING_SECONDS:
        # TWS rejects a repeated request inside the window with 10189 (the generic tick-by-tick failure)
        session.error(req_id, 10189, f"{FAILED}No more than 1 tick-by-tick request can be made for the same "
                                     f"instrument within 15 seconds.")
        return
    recent[key] = now

    stream = TickByTickStream(req_id, session, market, tick_type, ignore_size)
    session.add_subscription(KIND, stream)
    if number_of_ticks > 0:
        send_history(session, stream, min(number_of_ticks, MAX_HISTORY_TICKS))
    if tick_type in (3, 4):
        stream.send_quote(int(now))          # the current quote first, as TWS does
    stream.remove = gateway.on_step(inst.con_id, stream.on_step)


@handles(OUT.CANCEL_TICK_BY_TICK_DATA)
def cancel_tick_by_tick_data(session: Session, r: FieldReader) -> None:
    """Stop one stream; TWS says nothing when the id is unknown."""
    session.end_subscription(KIND, r.int("reqId"))
