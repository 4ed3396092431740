"""Fast decoding of the streaming market-data messages in PROTOBUF form, with exactly the effect of ibapi's Decoder.

Owns: turning the protobuf bodies of TICK_PRICE, TICK_SIZE, TICK_BY_TICK, MARKET_DEPTH and MARKET_DEPTH_L2
(frames whose 4-byte id is the message id + 200, as a TWS of server version >= 206 sends market data) into
the same wrapper callbacks, with the same argument values and types, in the same order, as ibapi's
`Decoder.processTickPriceMsgProtoBuf` / `processTickSizeMsgProtoBuf` / `processTickByTickMsgProtoBuf` /
`processMarketDepthMsgProtoBuf` / `processMarketDepthL2MsgProtoBuf`. The text forms are decoding.py's;
every other protobuf message stays with ibapi's `Decoder.processProtoBuf`.

Why: ibapi builds a fresh message object per frame, calls HasField by name for every field, builds a
fresh Decimal per size and goes through processProtoBuf's table lookup and try block. Here a message
object per kind is reused (ParseFromString clears it; measured: about half the parse cost of a fresh
object with protobuf's upb backend), a field is asked HasField only when its value equals the protobuf
default (the only case where present and absent differ), and sizes come from a bounded cache.

What ibapi's protobuf path does, and so this one (it differs from the text path):
* absent fields take ibapi's defaults: reqId NO_VALID_ID, tickType / operation / side / market-depth
  position UNSET_INTEGER (but an L2 position 0), prices UNSET_DOUBLE (tick-by-tick: 0.0), sizes
  UNSET_DECIMAL, marketMaker "", isSmartDepth False, a tick-by-tick tickType 0 (nothing delivered);
* TickAttrib flags come from the mask at any server version; an absent mask is UNSET_INTEGER, so all
  three flags are True;
* a tickPrice of BID/ASK/LAST/DELAYED_* is followed by a tickSize of the paired size tick, whether or not
  the message carried a size (UNSET_DECIMAL when absent), as on the text path;
* a tick-by-tick message whose tick oneof does not match its tickType, or depth without marketDepthData,
  makes only the raw callback; a MidPoint tick's size is still converted (and can fail) though unused;
* sizes are `Decimal(the string)`: a string Decimal cannot read raises after the raw callback.

The raw callback (`wrapper.tickPriceProtoBuf(message)` etc.), which ibapi makes first, is made with a
fresh message object, before any field is read, exactly as ibapi does. It is skipped only when the
wrapper's method is EWrapper's own (`type(wrapper).tickPriceProtoBuf is EWrapper.tickPriceProtoBuf` and
no instance attribute): that method does nothing but write ibapi's "ANSWER tickPriceProtoBuf ..." INFO log
line, which is therefore not written (ibapi's logger is not at INFO in ibframe). Only then is the reused
message object used, since nobody else sees it.

Failures, as ibapi has them: a body that does not parse is given back (`decode` returns False) before any
callback, and the caller hands it to `processProtoBuf`, which raises as it always does. Without a raw
callback, every field is read before the first callback and a field that cannot be converted also gives
the frame back. With a raw callback the conversion error is raised after it, as from ibapi (giving the frame
back would repeat the raw callback).

Must never: decode any other message, call the wrapper for a frame it then gives back, hand the reused
message object to anyone, or keep state between frames other than the reused message objects and a bounded
cache of immutable Decimal sizes.
"""
from __future__ import annotations

from decimal import Decimal

from ibapi.common import TickAttrib, TickAttribBidAsk, TickAttribLast
from ibapi.const import NO_VALID_ID, UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER
from ibapi.message import IN
from ibapi.protobuf.MarketDepthL2_pb2 import MarketDepthL2 as MarketDepthL2Proto
from ibapi.protobuf.MarketDepth_pb2 import MarketDepth as MarketDepthProto
from ibapi.protobuf.TickByTickData_pb2 import TickByTickData as TickByTickDataProto
from ibapi.protobuf.TickPrice_pb2 import TickPrice as TickPriceProto
from ibapi.protobuf.TickSize_pb2 import TickSize as TickSizeProto
from ibapi.wrapper import EWrapper

# processTickPriceMsgProtoBuf follows these price ticks with a tickSize of the paired size tick
_SIZE_AFTER_PRICE = {1: 0, 2: 3, 4: 5, 66: 69, 67: 70, 68: 71}
_NOT_SET = 111                                   # TickTypeEnum.NOT_SET: a tickSize of it is not delivered
_DECIMAL_CACHE_LIMIT = 4096
# message id -> (protobuf class, the raw callback's name)
KINDS = {IN.TICK_PRICE: (TickPriceProto, "tickPriceProtoBuf"),
         IN.TICK_SIZE: (TickSizeProto, "tickSizeProtoBuf"),
         IN.TICK_BY_TICK: (TickByTickDataProto, "tickByTickDataProtoBuf"),
         IN.MARKET_DEPTH: (MarketDepthProto, "updateMarketDepthProtoBuf"),
         IN.MARKET_DEPTH_L2: (MarketDepthL2Proto, "updateMarketDepthL2ProtoBuf")}


def raw_callback(wrapper, name: str):
    """`wrapper`'s raw protobuf callback `name`, or None when it is EWrapper's own (a log line, nothing else)."""
    inherited = getattr(type(wrapper), name, None) is getattr(EWrapper, name)
    if inherited and name not in getattr(wrapper, "__dict__", {}):
        return None
    return getattr(wrapper, name)


class ProtoFastDecoder:
    """Decodes the hot protobuf messages for `decoder.wrapper`; see the module docstring."""

    def __init__(self, decoder):
        self.decoder = decoder                    # ibapi's Decoder: its wrapper is the one called
        self._sizes: dict[str, Decimal] = {}
        self._wrapper = None
        self._raw: dict[int, object] = {}
        self._reused = {msg_id: cls() for msg_id, (cls, _) in KINDS.items()}
        # keyed by the real message id (the wire id minus PROTOBUF_MSG_ID)
        self.handlers = {IN.TICK_PRICE: self.tick_price, IN.TICK_SIZE: self.tick_size,
                         IN.TICK_BY_TICK: self.tick_by_tick, IN.MARKET_DEPTH: self.market_depth,
                         IN.MARKET_DEPTH_L2: self.market_depth_l2}

    def decode(self, msg_id: int, body: bytes) -> bool:
        """Deliver one protobuf message (`msg_id` without the +200); False when ibapi's processProtoBuf must take it."""
        handler = self.handlers.get(msg_id)
        return handler is not None and handler(body)

    # --- shared steps ----------------------------------------------------------------------------------
    def _parse(self, msg_id: int, body):
        """(wrapper, the parsed message, its raw callback or None); None when the body does not parse."""
        wrapper = self.decoder.wrapper
        if wrapper is not self._wrapper:
            self._raw = {i: raw_callback(wrapper, name) for i, (_, name) in KINDS.items()}
            self._wrapper = wrapper
        raw = self._raw[msg_id]
        message = self._reused[msg_id] if raw is None else KINDS[msg_id][0]()
        try:
            message.ParseFromString(body)
        except Exception:
            return None
        return wrapper, message, raw

    def _size(self, s: str) -> Decimal:
        value = self._sizes.get(s)
        if value is None:
            value = Decimal(s)
            if len(self._sizes) >= _DECIMAL_CACHE_LIMIT:
                self._sizes.clear()
            self._sizes[s] = value
        return value

    # --- the messages ----------------------------------------------------------------------------------
    def tick_price(self, body) -> bool:
        parsed = self._parse(IN.TICK_PRICE, body)
        if parsed is None:
            return False
        wrapper, m, raw = parsed
        if raw is not None:
            raw(m)
        try:
            req_id = m.reqId
            if not req_id and not m.HasField("reqId"):
                req_id = NO_VALID_ID
            tick_type = m.tickType
            if not tick_type and not m.HasField("tickType"):
                tick_type = UNSET_INTEGER
            price = m.price
            if not price and not m.HasField("price"):
                price = UNSET_DOUBLE
            s = m.size
            size = self._size(s) if s or m.HasField("size") else UNSET_DECIMAL
            mask = m.attrMask
            if not mask and not m.HasField("attrMask"):
                mask = UNSET_INTEGER
        except Exception:
            if raw is not None:
                raise
            return False
        attrib = TickAttrib()
        attrib.canAutoExecute = mask & 1 != 0
        attrib.pastLimit = mask & 2 != 0
        attrib.preOpen = mask & 4 != 0
        wrapper.tickPrice(req_id, tick_type, price, attrib)
        size_type = _SIZE_AFTER_PRICE.get(tick_type)
        if size_type is not None:
            wrapper.tickSize(req_id, size_type, size)
        return True

    def tick_size(self, body) -> bool:
        parsed = self._parse(IN.TICK_SIZE, body)
        if parsed is None:
            return False
        wrapper, m, raw = parsed
        if raw is not None:
            raw(m)
        try:
            req_id = m.reqId
            if not req_id and not m.HasField("reqId"):
                req_id = NO_VALID_ID
            tick_type = m.tickType
            if not tick_type and not m.HasField("tickType"):
                tick_type = UNSET_INTEGER
            s = m.size
            size = self._size(s) if s or m.HasField("size") else UNSET_DECIMAL
        except Exception:
            if raw is not None:
                raise
            return False
        if tick_type != _NOT_SET:
            wrapper.tickSize(req_id, tick_type, size)
        return True

    def tick_by_tick(self, body) -> bool:
        parsed = self._parse(IN.TICK_BY_TICK, body)
        if parsed is None:
            return False
        wrapper, m, raw = parsed
        if raw is not None:
            raw(m)
        # absent time/price/exchange/conditions/flags are ibapi's defaults 0 / 0.0 / "" / False: the protobuf's
        call = None
        try:
            req_id = m.reqId
            if not req_id and not m.HasField("reqId"):
                req_id = NO_VALID_ID
            tick_type = m.tickType                       # absent: 0, as ibapi
            which = m.WhichOneof("tick")
            if (tick_type == 1 or tick_type == 2) and which == "historicalTickLast":
                h = m.historicalTickLast
                s = h.size
                size = self._size(s) if s or h.HasField("size") else UNSET_DECIMAL
                flags = h.tickAttribLast
                attrib = TickAttribLast()
                attrib.pastLimit = flags.pastLimit
                attrib.unreported = flags.unreported
                call = (wrapper.tickByTickAllLast, req_id, tick_type, h.time, h.price, size, attrib, h.exchange,
                        h.specialConditions)
            elif tick_type == 3 and which == "historicalTickBidAsk":
                h = m.historicalTickBidAsk
                flags = h.tickAttribBidAsk
                attrib = TickAttribBidAsk()
                attrib.bidPastLow = flags.bidPastLow
                attrib.askPastHigh = flags.askPastHigh
                s = h.sizeBid
                bid_size = self._size(s) if s or h.HasField("sizeBid") else UNSET_DECIMAL
                s = h.sizeAsk
                ask_size = self._size(s) if s or h.HasField("sizeAsk") else UNSET_DECIMAL
                call = (wrapper.tickByTickBidAsk, req_id, h.time, h.priceBid, h.priceAsk, bid_size, ask_size, attrib)
            elif tick_type == 4 and which == "historicalTickMidPoint":
                h = m.historicalTickMidPoint
                s = h.size
                if s or h.HasField("size"):
                    self._size(s)                        # ibapi converts it (and can fail on it), then drops it
                call = (wrapper.tickByTickMidPoint, req_id, h.time, h.price)
        except Exception:
            if raw is not None:
                raise
            return False
        if call is not None:
            call[0](*call[1:])
        return True

    def market_depth(self, body) -> bool:
        parsed = self._parse(IN.MARKET_DEPTH, body)
        if parsed is None:
            return False
        wrapper, m, raw = parsed
        if raw is not None:
            raw(m)
        try:
            req_id = m.reqId
            if not req_id and not m.HasField("reqId"):
                req_id = NO_VALID_ID
            if not m.HasField("marketDepthData"):
                return True
            d = m.marketDepthData
            position = d.position
            if not position and not d.HasField("position"):
                position = UNSET_INTEGER
            operation = d.operation
            if not operation and not d.HasField("operation"):
                operation = UNSET_INTEGER
            side = d.side
            if not side and not d.HasField("side"):
                side = UNSET_INTEGER
            price = d.price
            if not price and not d.HasField("price"):
                price = UNSET_DOUBLE
            s = d.size
            size = self._size(s) if s or d.HasField("size") else UNSET_DECIMAL
        except Exception:
            if raw is not None:
                raise
            return False
        wrapper.updateMktDepth(req_id, position, operation, side, price, size)
        return True

    def market_depth_l2(self, body) -> bool:
        parsed = self._parse(IN.MARKET_DEPTH_L2, body)
        if parsed is None:
            return False
        wrapper, m, raw = parsed
        if raw is not None:
            raw(m)
        try:
            req_id = m.reqId
            if not req_id and not m.HasField("reqId"):
                req_id = NO_VALID_ID
            if not m.HasField("marketDepthData"):
                return True
            d = m.marketDepthData                        # absent position 0, marketMaker "", isSmartDepth False
            operation = d.operation
            if not operation and not d.HasField("operation"):
                operation = UNSET_INTEGER
            side = d.side
            if not side and not d.HasField("side"):
                side = UNSET_INTEGER
            price = d.price
            if not price and not d.HasField("price"):
                price = UNSET_DOUBLE
            s = d.size
            size = self._size(s) if s or d.HasField("size") else UNSET_DECIMAL
        except Exception:
            if raw is not None:
                raise
            return False
        wrapper.updateMktDepthL2(req_id, d.position, d.marketMaker, operation, side, price, size, d.isSmartDepth)
        return True
