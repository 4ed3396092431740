"""Level-1 market data: reqMktData / cancelMktData and the option calculators.

Owns: reading REQ_MKT_DATA exactly as ``ibapi.client.reqMktData`` writes it for the negotiated
version (combo legs, delta-neutral block, generic ticks, snapshot flags, options), the client's
market data lines (errors 101, 322), the tick stream each line sends — of root instruments, options
(quotes and tickOptionComputation, via `option_market`) and combos, read from `tick_sources` —
snapshots, the delayed and frozen market data types, and calculateImpliedVolatility /
calculateOptionPrice (tick 53).

How a line works: its source describes the instrument's current level-1 state as an ordered
list of tick items; after each market step the line sends only the items that changed since
it last sent them (a new print always re-sends LAST).

Must never: step the market, block the event loop, or draw unseeded randomness.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from ibapi import server_versions as sv
from ibapi.message import IN, OUT
from ibapi.ticktype import TickTypeEnum as T

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from . import option_market as om
from .lookup import NO_SECURITY_DEFINITION, calc_problem, describe_query, read_contract, request_problem, resolve
from .market import StepEvents
from .tick_sources import ComboLeg, ComboSource, OptionSource, RootSource, generic_items, parse_generic_ticks
from .universe import Instrument

if TYPE_CHECKING:
    from .host import MarketHost

log = logging.getLogger("ibframe.sim")

KIND = "mktdata"                 # the subscription family (basics.reqMarketDataType walks it too)
TICK_MSG_VERSION = 6             # version field of TICK_PRICE / TICK_SIZE / TICK_GENERIC / TICK_STRING

# live tick type -> its delayed twin (ticks 66..90), used for market data types 3 and 4
DELAYED = {T.BID: T.DELAYED_BID, T.ASK: T.DELAYED_ASK, T.LAST: T.DELAYED_LAST,
           T.BID_SIZE: T.DELAYED_BID_SIZE, T.ASK_SIZE: T.DELAYED_ASK_SIZE, T.LAST_SIZE: T.DELAYED_LAST_SIZE,
           T.HIGH: T.DELAYED_HIGH, T.LOW: T.DELAYED_LOW, T.VOLUME: T.DELAYED_VOLUME, T.CLOSE: T.DELAYED_CLOSE,
           T.OPEN: T.DELAYED_OPEN, T.LAST_TIMESTAMP: T.DELAYED_LAST_TIMESTAMP, T.HALTED: T.DELAYED_HALTED,
           T.BID_OPTION_COMPUTATION: T.DELAYED_BID_OPTION, T.ASK_OPTION_COMPUTATION: T.DELAYED_ASK_OPTION,
           T.LAST_OPTION_COMPUTATION: T.DELAYED_LAST_OPTION, T.MODEL_OPTION: T.DELAYED_MODEL_OPTION}
SIZE_OF = {T.BID: T.BID_SIZE, T.ASK: T.ASK_SIZE, T.LAST: T.LAST_SIZE}

LEGAL_GENERIC_TEXT = ("100(Option Volume),101(Option Open Interest),104(Historical Volatility),"
                      "105(Average Opt Volume),106(Option Implied Volatility),162(Index Future Premium),"
                      "165(Miscellaneous Stats),221/220(Creditman Mark Price),225(Auction),232/221(Pl Price),"
                      "233(RTVolume),236(inventory),258/47(Fundamental Ratios),291(ivclose),292(Wide_news),"
                      "293(TradeCount),294(TradeRate),295(VolumeRate),318(LastRTHTrade),375(RTTrdVolume),"
                      "411(rthistvol),456/59(IBDividends),460(Bond Factor Multiplier),576(EtfNavBidAsk(navbidask)),"
                      "577(EtfNavLast(navlast)),578(EtfNavClose(navclose)),586(IPOHLMPRC),587(Pl Price Delayed),"
                      "588(Futures Open Interest),595(Short-Term Volume X Mins),614(EtfNavMisc(high/low)),"
                      "619(Creditman Slow Mark Price),623(EtfFrozenNavLast(fnavlast))")

MAX_TICKERS = "Max number of tickers has been reached."
DUPLICATE_TICKER = "Error processing request.-'bQ' : cause - Duplicate ticker id"
SNAPSHOT_GENERIC = ("Error validating request.-'bO' : cause - Snapshot market data subscription is not "
                    "applicable to generic ticks")
DELAYED_NOTICE = "Requested market data is not subscribed. Displaying delayed market data."
BBO_EXCHANGE = {"STK": "9c0001", "OPT": "a60001", "FUT": "c70003", "CASH": "", "BOND": ""}


def _size(value: float) -> str:
    """A size as TWS prints a Decimal: whole numbers without a fraction."""
    v = float(value)
    return str(int(v)) if v.is_integer() else repr(v)


# --- the line --------------------------------------------------------------------------------------

class MarketDataLine:
    """One reqMktData stream of one client: sends the full state, then what changes."""

    def __init__(self, session: Session, req_id: int, inst: Instrument, source, codes: set[int], mdoff: bool):
        self.session = session
        self.req_id = req_id
        self.inst = inst
        self.source = source
        self.codes = codes
        self.mdoff = mdoff
        self.mdt = session.market_data_type
        self.sent: dict[tuple[str, int], object] = {}
        dynamic = isinstance(source, OptionSource)
        self.generic = None if dynamic else generic_items(session.gateway, inst, source, codes)
        self._remove: Callable[[], None] | None = None

    # --- lifecycle ---
    def start(self, snapshot: bool) -> None:
        s = self.session
        s.send(IN.TICK_REQ_PARAMS, self.req_id, self.inst.min_tick, BBO_EXCHANGE.get(self.inst.sec_type, ""), 3)
        if self.mdt in (3, 4):
            s.error(self.req_id, 10167, DELAYED_NOTICE)
        s.send(IN.MARKET_DATA_TYPE, 1, self.req_id, self.mdt)
        self.publish(None)
        if snapshot:
            s.send(IN.TICK_SNAPSHOT_END, 1, self.req_id)
            return
        self._remove = self.source.listen(self.on_step)

    def close(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None

    def on_step(self, ev: StepEvents) -> None:
        current = self.session.market_data_type
        if current != self.mdt:               # reqMarketDataType switched: show the state in the new type
            self.mdt = current
            self.sent.clear()
            self.publish(None)
            return
        if self.mdt in (2, 4):                # frozen: the values were sent once
            return
        if ev.quote_changed or ev.trades or ev.book_changed:
            self.publish(ev)

    # --- what to send ---
    def items(self) -> list:
        """The line's current state as ordered (kind, tickType, value) items."""
        top = self.source.top()
        out: list = []
        if not self.mdoff:
            out += [("P", T.BID, (top.bid, top.bid_size)), ("P", T.ASK, (top.ask, top.ask_size))]
            if top.last is not None:
                out.append(("P", T.LAST, (top.last, top.last_size)))
            if top.volume is not None:
                out.append(("s", T.VOLUME, top.volume))
            for tt, v in ((T.HIGH, top.high), (T.LOW, top.low), (T.CLOSE, top.close), (T.OPEN, top.open)):
                if v is not None:
                    out.append(("p", tt, v))
            if top.last_time is not None:
                out.append(("t", T.LAST_TIMESTAMP, str(int(top.last_time))))
            if self.inst.sec_type == "STK":
                out.append(("g", T.HALTED, 0.0))
        if self.generic is None:            # an option's own volume and range move with its prints
            out += generic_items(self.session.gateway, self.inst, self.source, self.codes)
        else:
            out += self.generic
        return out

    def publish(self, ev: StepEvents | None) -> None:
        """Send every item that differs from what this line last sent (everything when ev is None)."""
        new_print = ev is not None and bool(ev.trades)
        for kind, tt, value in self.items():
            key = (kind, tt)
            old = self.sent.get(key)
            if kind == "P":
                if old is None or old[0] != value[0] or (tt == T.LAST and new_print):
                    self._price(tt, value[0], value[1])
                elif old[1] != value[1]:
                    self._tick(IN.TICK_SIZE, SIZE_OF[tt], _size(value[1]))
            elif old is None or old != value:
                if kind == "p":
                    self._price(tt, value, 0.0)
                elif kind == "s":
                    self._tick(IN.TICK_SIZE, tt, _size(value))
                elif kind == "t":
                    self._tick(IN.TICK_STRING, tt, value)
                else:
                    self._tick(IN.TICK_GENERIC, tt, float(value))
            self.sent[key] = value
        if 233 in self.codes and self.source.prints:
            self._rt_volume(ev)
        comps = self.source.computations()
        if comps is not None and (ev is None or ev.book_changed or ev.trades):
            for tt, comp in comps.items():
                send_computation(self.session, self.req_id, self._type(tt), comp)

    def _rt_volume(self, ev: StepEvents | None) -> None:
        """RT_VOLUME 'price;size;time_ms;totalVolume;vwap;singleTrade' for each print (the last one on start)."""
        top = self.source.top()
        vwap = self.source.vwap()
        if ev is None:
            if top.last and top.volume and top.last_time is not None:
                self._tick(IN.TICK_STRING, T.RT_VOLUME, f"{top.last!r};{_size(top.last_size)};"
                           f"{int(top.last_time * 1000)};{_size(top.volume)};{vwap:.8f};true")
            return
        volume = top.volume - sum(t.size for t in ev.trades)
        for t in ev.trades:
            volume += t.size
            self._tick(IN.TICK_STRING, T.RT_VOLUME,
                       f"{t.price!r};{_size(t.size)};{int(ev.time * 1000)};{_size(volume)};{vwap:.8f};true")

    def _type(self, tt: int) -> int:
        return DELAYED.get(tt, tt) if self.mdt in (3, 4) else tt

    def _price(self, tt: int, price: float, size: float) -> None:
        """TICK_PRICE; for bid, ask and last (which carry their size) then the TICK_SIZE TWS sends after it with
        the same size, as a real TWS does (clients that read sizes only from tickSize see them)."""
        mask = 1 if tt in (T.BID, T.ASK) and self.mdt == 1 else 0     # canAutoExecute on live quotes
        self.session.send(IN.TICK_PRICE, TICK_MSG_VERSION, self.req_id, self._type(tt), price, _size(size), mask)
        size_type = SIZE_OF.get(tt)
        if size_type is not None:
            self._tick(IN.TICK_SIZE, size_type, _size(size))

    def _tick(self, msg_id: int, tt: int, value) -> None:
        self.session.send(msg_id, TICK_MSG_VERSION, self.req_id, self._type(tt), value)


def send_computation(session: Session, req_id: int, tick_type: int, c: om.Computation, attrib: int = 0) -> None:
    """TICK_OPTION_COMPUTATION for the negotiated version, with TWS's 'not computed' sentinels."""
    def v(x, missing):
        return missing if x is None else x
    head = [req_id, tick_type, attrib] if session.version >= sv.MIN_SERVER_VER_PRICE_BASED_VOLATILITY \
        else [6, req_id, tick_type]
    session.send(IN.TICK_OPTION_COMPUTATION, *head, v(c.implied_vol, -1.0), v(c.delta, -2.0),
                 v(c.opt_price, -1.0), v(c.pv_dividend, -1.0), v(c.gamma, -2.0), v(c.vega, -2.0),
                 v(c.theta, -2.0), v(c.und_price, -1.0))


# --- requests ----------------------------------------------------------------------------------------

def _combo_instrument(q) -> Instrument:
    return Instrument(con_id=0, symbol=q.symbol, sec_type="BAG", currency=q.currency or "USD",
                      exchange=q.exchange or "SMART", primary_exchange="", local_symbol="", trading_class="",
                      min_tick=0.01, valid_exchanges=(q.exchange or "SMART",))


def _source_for(gateway: "MarketHost", inst: Instrument):
    if inst.is_derived:
        return OptionSource(gateway, inst)
    return RootSource(gateway, inst)


@handles(OUT.REQ_MKT_DATA)
def req_mkt_data(session: Session, r: FieldReader) -> None:
    v = session.version
    r.int("version")
    req_id = r.int("reqId")
    q = read_contract(r, con_id=v >= sv.MIN_SERVER_VER_REQ_MKT_DATA_CONID,
                      trading_class=v >= sv.MIN_SERVER_VER_TRADING_CLASS)
    legs: list[ComboLeg] = []
    if q.sec_type == "BAG":
        for _ in range(r.int("comboLegsCount")):
            legs.append(ComboLeg(r.int("comboLeg.conId"), r.int("comboLeg.ratio"), r.str("comboLeg.action"),
                                 r.str("comboLeg.exchange")))
    if v >= sv.MIN_SERVER_VER_DELTA_NEUTRAL and r.bool("deltaNeutralContractPresent"):
        r.int("deltaNeutralContract.conId")
        r.float("deltaNeutralContract.delta")
        r.float("deltaNeutralContract.price")
    generic_text = r.str("genericTickList")
    snapshot = r.bool("snapshot")
    regulatory = r.bool("regulatorySnapshot") if v >= sv.MIN_SERVER_VER_REQ_SMART_COMPONENTS else False
    if v >= sv.MIN_SERVER_VER_LINKING:
        r.str("mktDataOptions")

    if session.has_subscription(KIND, req_id):
        session.error(req_id, 322, DUPLICATE_TICKER)
        return
    codes, mdoff, bad = parse_generic_ticks(generic_text)
    one_shot = snapshot or regulatory
    if one_shot and (codes or bad):
        session.error(req_id, 321, SNAPSHOT_GENERIC)
        return
    if bad is not None:
        session.error(req_id, 321, f"Error validating request.-'bO' : cause - Incorrect generic tick list of "
                                   f"{bad}.  Legal ones for ({q.sec_type or 'STK'}) are: {LEGAL_GENERIC_TEXT}")
        return
    if session.count_subscriptions(KIND) >= session.gateway.config.market_data_lines:
        session.error(req_id, 101, MAX_TICKERS)
        return
    if q.sec_type == "BAG":
        bad = request_problem(q, "bO")              # a combo is named without conId: it needs its exchange
        if bad is not None:
            session.error(req_id, bad.code, bad.text)
            return
        source = _combo_source(session, req_id, q, legs)
        if source is None:
            return
        inst = source.inst
    else:
        inst = resolve(session, req_id, q, "bO")
        if inst is None:
            return
        source = _source_for(session.gateway, inst)
    line = MarketDataLine(session, req_id, inst, source, codes, mdoff)
    if not one_shot:
        session.add_subscription(KIND, line)
    line.start(snapshot=one_shot)


def _combo_source(session: Session, req_id: int, q, legs: list[ComboLeg]) -> ComboSource | None:
    """Resolve every leg by conId (as TWS does for BAG legs); error 200 when a leg is unknown."""
    universe = session.gateway.universe
    resolved = []
    for leg in legs:
        inst = universe.get(leg.con_id)
        if inst is None or leg.ratio <= 0:
            session.error(req_id, 200, NO_SECURITY_DEFINITION)
            return None
        resolved.append((leg, _source_for(session.gateway, inst)))
    if not resolved:
        session.error(req_id, 321, "Error validating request.-'bO' : cause - Invalid combo: no legs "
                                   f"given for {describe_query(q)}")
        return None
    return ComboSource(session.gateway, _combo_instrument(q), resolved)


@handles(OUT.CANCEL_MKT_DATA)
def cancel_mkt_data(session: Session, r: FieldReader) -> None:
    """Stop a line; TWS ignores a cancel for an id it does not know."""
    r.int("version")
    session.end_subscription(KIND, r.int("reqId"))


# --- option calculators ---------------------------------------------------------------------------------

def _read_calc(session: Session, r: FieldReader, value_name: str):
    r.int("version")
    req_id = r.int("reqId")
    q = read_contract(r, trading_class=session.version >= sv.MIN_SERVER_VER_TRADING_CLASS)
    value = r.float(value_name)
    under_price = r.float("underPrice")
    if session.version >= sv.MIN_SERVER_VER_LINKING:
        r.str("options")
    return req_id, q, value, under_price


def _calc_target(session: Session, req_id: int, q, value_name: str, value: float,
                 under_price: float) -> tuple[Instrument, float] | None:
    """The option named and the market's underlying price (used when the request gives none)."""
    bad = calc_problem(value_name, value, under_price)
    inst = resolve(session, req_id, q) if bad is None else session.error(req_id, bad.code, bad.text)
    if inst is None:
        return None
    if not inst.is_derived:
        session.error(req_id, 321, f"Error validating request.-'bP' : cause - Option calculations are only "
                                   f"available for options, not {inst.sec_type} {inst.symbol}")
        return None
    under = session.gateway.market.get(inst.under_con_id)
    return inst, under.midpoint


@handles(OUT.REQ_CALC_IMPLIED_VOLAT)
def req_calc_implied_volatility(session: Session, r: FieldReader) -> None:
    req_id, q, option_price, under_price = _read_calc(session, r, "optionPrice")
    target = _calc_target(session, req_id, q, "optionPrice", option_price, under_price)
    if target is None:
        return
    inst, spot = target
    spot = under_price if under_price > 0 else spot
    comp = om.computation_at_price(inst, option_price, spot, session.gateway.now())
    send_computation(session, req_id, T.CUST_OPTION_COMPUTATION, comp)


@handles(OUT.REQ_CALC_OPTION_PRICE)
def req_calc_option_price(session: Session, r: FieldReader) -> None:
    req_id, q, vol, under_price = _read_calc(session, r, "volatility")
    target = _calc_target(session, req_id, q, "volatility", vol, under_price)
    if target is None:
        return
    inst, spot = target
    spot = under_price if under_price > 0 else spot
    comp = om.computation_at_vol(inst, vol, spot, session.gateway.now())
    send_computation(session, req_id, T.CUST_OPTION_COMPUTATION, comp)


@handles(OUT.CANCEL_CALC_IMPLIED_VOLAT)
def cancel_calc_implied_volatility(session: Session, r: FieldReader) -> None:
    """The calculation was answered at once; nothing is left to cancel."""
    r.int("version")
    r.int("reqId")


@handles(OUT.CANCEL_CALC_OPTION_PRICE)
def cancel_calc_option_price(session: Session, r: FieldReader) -> None:
    r.int("version")
    r.int("reqId")
