"""Fast decoding of the streaming market-data messages, with exactly the effect of ibapi's Decoder.

Owns: turning the text fields of TICK_PRICE, TICK_SIZE, TICK_BY_TICK, MARKET_DEPTH and
MARKET_DEPTH_L2 into the same wrapper callbacks, with the same argument values and types, in the
same order, as ibapi's `Decoder.process*Msg` at the same server version. Every other message, and
every protobuf frame, stays with ibapi's Decoder.

Why: these five are almost all of a market-data stream, and ibapi's generic `decode()` costs more
than everything else per message (a logger call and a bytes→str round trip per field, four string
comparisons and a fresh Decimal per size).

How it stays identical: each field is converted with the expression ibapi's `decode()` applies to
that type (`int(s or 0)`, `float(s or 0)` with "Infinity", IB's unset size texts → UNSET_DECIMAL,
UTF-8 with backslashreplace), every field is read before the first callback, and a frame that
cannot be read (too few fields, a bad number) is given back — `decode()` returns False — so the
caller hands it to ibapi's Decoder, which then does exactly what it always does with it.
tests/test_fast_decode.py checks both against each other on generated frames and server versions.
A TICK_PRICE that carries a size still becomes tickPrice then tickSize, as with ibapi; the Router
pairs the two into one Quote update (router.py), so both decode paths give strategies the same view.

Must never: decode any other message, call the wrapper for a frame it then gives back, or keep
state between frames other than a bounded cache of immutable Decimal sizes.
"""
from __future__ import annotations

from decimal import Decimal

from ibapi.common import TickAttrib, TickAttribBidAsk, TickAttribLast
from ibapi.const import DOUBLE_INFINITY, UNSET_DECIMAL
from ibapi.message import IN
from ibapi.server_versions import MIN_SERVER_VER_PAST_LIMIT, MIN_SERVER_VER_PRE_OPEN_BID_ASK, MIN_SERVER_VER_SMART_DEPTH

# ibapi's decode(Decimal, …) returns UNSET_DECIMAL for these texts (and for an empty field)
_UNSET_SIZE_TEXTS = frozenset({b"", b"2147483647", b"9223372036854775807", b"1.7976931348623157E308",
                               b"-9223372036854775808"})
# processTickPriceMsg follows these price ticks with a tickSize of the paired size tick
_SIZE_AFTER_PRICE = {1: 0, 2: 3, 4: 5, 66: 69, 67: 70, 68: 71}
_DECIMAL_CACHE_LIMIT = 4096


class FastDecoder:
    """Decodes the hot messages for `decoder.wrapper` at `decoder.serverVersion`; see the module docstring."""

    def __init__(self, decoder):
        self.decoder = decoder                   # ibapi's Decoder: its wrapper and server version are used
        self._sizes: dict[bytes, Decimal] = {}
        self.handlers = {IN.TICK_PRICE: self.tick_price, IN.TICK_SIZE: self.tick_size,
                         IN.TICK_BY_TICK: self.tick_by_tick, IN.MARKET_DEPTH: self.market_depth,
                         IN.MARKET_DEPTH_L2: self.market_depth_l2}

    def decode(self, msg_id: int, fields) -> bool:
        """Deliver one message (fields after the message id); False when ibapi's Decoder must take it."""
        handler = self.handlers.get(msg_id)
        return handler is not None and handler(fields)

    # --- field conversions, as ibapi.utils.decode does them -------------------------------------------
    def _size(self, s: bytes) -> Decimal:
        value = self._sizes.get(s)
        if value is None:
            value = UNSET_DECIMAL if s in _UNSET_SIZE_TEXTS else Decimal(s.decode())
            if len(self._sizes) >= _DECIMAL_CACHE_LIMIT:
                self._sizes.clear()
            self._sizes[s] = value
        return value

    # --- the messages (fields[0] is the first field after the message id) ----------------------------
    def tick_price(self, f) -> bool:
        try:
            int(f[0] or 0)                                           # version
            req_id, tick_type = int(f[1] or 0), int(f[2] or 0)
            price = _float(f[3])
            size = self._size(f[4])
            mask = int(f[5] or 0)
        except Exception:
            return False
        attrib = TickAttrib()
        attrib.canAutoExecute = mask == 1
        version = self.decoder.serverVersion
        if version >= MIN_SERVER_VER_PAST_LIMIT:
            attrib.canAutoExecute = mask & 1 != 0
            attrib.pastLimit = mask & 2 != 0
            if version >= MIN_SERVER_VER_PRE_OPEN_BID_ASK:
                attrib.preOpen = mask & 4 != 0
        wrapper = self.decoder.wrapper
        wrapper.tickPrice(req_id, tick_type, price, attrib)
        size_type = _SIZE_AFTER_PRICE.get(tick_type)
        if size_type is not None:
            wrapper.tickSize(req_id, size_type, size)
        return True

    def tick_size(self, f) -> bool:
        try:
            int(f[0] or 0)
            req_id, tick_type = int(f[1] or 0), int(f[2] or 0)
            size = self._size(f[3])
        except Exception:
            return False
        if tick_type != 111:                                         # TickTypeEnum.NOT_SET
            self.decoder.wrapper.tickSize(req_id, tick_type, size)
        return True

    def tick_by_tick(self, f) -> bool:
        try:
            req_id, tick_type, time = int(f[0] or 0), int(f[1] or 0), int(f[2] or 0)
            if tick_type == 1 or tick_type == 2:
                price, size, mask = _float(f[3]), self._size(f[4]), int(f[5] or 0)
                exchange, conditions = _str(f[6]), _str(f[7])
            elif tick_type == 3:
                bid, ask = _float(f[3]), _float(f[4])
                bid_size, ask_size, mask = self._size(f[5]), self._size(f[6]), int(f[7] or 0)
            elif tick_type == 4:
                mid = _float(f[3])
        except Exception:
            return False
        wrapper = self.decoder.wrapper
        if tick_type == 1 or tick_type == 2:
            attrib = TickAttribLast()
            attrib.pastLimit = mask & 1 != 0
            attrib.unreported = mask & 2 != 0
            wrapper.tickByTickAllLast(req_id, tick_type, time, price, size, attrib, exchange, conditions)
        elif tick_type == 3:
            attrib = TickAttribBidAsk()
            attrib.bidPastLow = mask & 1 != 0
            attrib.askPastHigh = mask & 2 != 0
            wrapper.tickByTickBidAsk(req_id, time, bid, ask, bid_size, ask_size, attrib)
        elif tick_type == 4:
            wrapper.tickByTickMidPoint(req_id, time, mid)
        return True

    def market_depth(self, f) -> bool:
        try:
            int(f[0] or 0)
            req_id, position, operation, side = int(f[1] or 0), int(f[2] or 0), int(f[3] or 0), int(f[4] or 0)
            price, size = _float(f[5]), self._size(f[6])
        except Exception:
            return False
        self.decoder.wrapper.updateMktDepth(req_id, position, operation, side, price, size)
        return True

    def market_depth_l2(self, f) -> bool:
        try:
            int(f[0] or 0)
            req_id, position, maker = int(f[1] or 0), int(f[2] or 0), _str(f[3])
            operation, side = int(f[4] or 0), int(f[5] or 0)
            price, size = _float(f[6]), self._size(f[7])
            smart = False
            if self.decoder.serverVersion >= MIN_SERVER_VER_SMART_DEPTH:
                smart = int(f[8] or 0) != 0
        except Exception:
            return False
        self.decoder.wrapper.updateMktDepthL2(req_id, position, maker, operation, side, price, size, smart)
        return True


def _float(s: bytes) -> float:
    return DOUBLE_INFINITY if s == b"Infinity" else float(s or 0)


def _str(s: bytes) -> str:
    return s.decode("UTF-8", errors="backslashreplace")
