"""Top-of-book and per-instrument statistics for one contract, fed by mktData ticks.

Owns: turning raw ibapi ``tickPrice`` / ``tickSize`` / ``tickGeneric`` / ``tickString``
values into named fields (bid, ask, last, sizes, volume, session stats, option volume and
open interest, shortability, halts, RT volume...), applying a price and the size TWS sent
with it as one update (``on_price_size``), counting trade prints, and telling listeners when
the top of book or the last trade changed.

Must never: take locks, do I/O, or call ibapi ``EClient``. A Quote is updated ONLY on the
framework's single dispatch thread; readers on that thread see a consistent object.

Mapping rules (by IB tick type, whatever callback it arrived through, so a tick type that
TWS moves between ``tickGeneric`` and ``tickString`` still lands in the right field):

* Delayed tick types (66-76, 88, 90) write the same fields as their live twins and set
  ``delayed = True``; a live bid/ask/last tick sets it back to ``False``.
* Bid/ask price ``-1`` or ``0`` mean "no quote" and become ``None``. Any other price tick
  of ``-1`` (IB's "not available") or ``UNSET_DOUBLE`` also becomes ``None``.
* Sizes arrive as ``Decimal`` (or float); they are stored as ``float``; ``UNSET_DECIMAL``
  becomes ``None``.
* Unknown tick types are kept raw in ``other[tick_type]`` rather than dropped.
* Non-finite numbers (NaN, infinities) never enter: the Router drops such ticks and counts them;
  should one reach a Quote anyway it reads as ``None`` (not available).
* ``crossed`` is True exactly while bid > ask (both known): a crossed quote is flagged, never
  silently "fixed". ``check_invariants()`` lists anything that breaks these rules (empty when fine).

Trade prints (``prints``, ``printed``): TWS reports a trade as a TICK_PRICE of LAST (4, or 68
delayed) carrying its size, which the Router hands over as one ``on_price_size`` call — one
print, even when price and size equal the previous print's. A LAST_SIZE tick on its own (5/71)
is a print too (a trade at the last price whose size alone changed), except for the copy TWS
sends right after each LAST price: the first LAST_SIZE after a print, with no LAST tick
between, that leaves ``last_size`` unchanged is that copy and is not counted. A LAST_SIZE
while ``last`` is unknown is not a print. A LAST price tick on its own (no size) is applied but
is not a print; the LAST_SIZE that follows it is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Callable

import pandas as pd
from ibapi.const import UNSET_DECIMAL, UNSET_DOUBLE, UNSET_INTEGER

__all__ = ["Quote", "RtVolume", "MARKET_DATA_TYPES"]

MARKET_DATA_TYPES = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed_frozen"}

# Converters are named by string so the table below reads as a spec.
_QUOTE, _PRICE, _SIZE, _FLOAT, _EPOCH, _HALT, _RTV, _STR = (
    "quote", "price", "size", "float", "epoch", "halt", "rtv", "str")

# tick type -> (field, converter, delayed?)
_TICKS: dict[int, tuple[str, str, bool]] = {
    0: ("bid_size", _SIZE, False), 1: ("bid", _QUOTE, False), 2: ("ask", _QUOTE, False),
    3: ("ask_size", _SIZE, False), 4: ("last", _PRICE, False), 5: ("last_size", _SIZE, False),
    6: ("high", _PRICE, False), 7: ("low", _PRICE, False), 8: ("volume", _SIZE, False),
    9: ("close", _PRICE, False), 14: ("open", _PRICE, False),
    15: ("low_13w", _PRICE, False), 16: ("high_13w", _PRICE, False),
    17: ("low_26w", _PRICE, False), 18: ("high_26w", _PRICE, False),
    19: ("low_52w", _PRICE, False), 20: ("high_52w", _PRICE, False),
    21: ("avg_volume", _SIZE, False), 22: ("open_interest", _SIZE, False),
    23: ("hist_vol", _FLOAT, False), 24: ("implied_vol", _FLOAT, False),
    27: ("call_open_interest", _SIZE, False), 28: ("put_open_interest", _SIZE, False),
    29: ("call_volume", _SIZE, False), 30: ("put_volume", _SIZE, False),
    32: ("bid_exchange", _STR, False), 33: ("ask_exchange", _STR, False),
    34: ("auction_volume", _SIZE, False), 35: ("auction_price", _PRICE, False),
    36: ("auction_imbalance", _SIZE, False), 37: ("mark_price", _PRICE, False),
    45: ("last_timestamp", _EPOCH, False), 46: ("shortable", _FLOAT, False),
    48: ("rt_volume", _RTV, False), 49: ("halted", _HALT, False),
    54: ("trade_count", _FLOAT, False), 55: ("trade_rate", _FLOAT, False),
    56: ("volume_rate", _FLOAT, False), 57: ("last_rth_trade", _PRICE, False),
    58: ("rt_hist_vol", _FLOAT, False), 77: ("rt_trd_volume", _RTV, False),
    84: ("last_exchange", _STR, False), 86: ("futures_open_interest", _SIZE, False),
    87: ("avg_opt_volume", _SIZE, False), 89: ("shortable_shares", _SIZE, False),
    # delayed twins
    66: ("bid", _QUOTE, True), 67: ("ask", _QUOTE, True), 68: ("last", _PRICE, True),
    69: ("bid_size", _SIZE, True), 70: ("ask_size", _SIZE, True),
    71: ("last_size", _SIZE, True), 72: ("high", _PRICE, True), 73: ("low", _PRICE, True),
    74: ("volume", _SIZE, True), 75: ("close", _PRICE, True), 76: ("open", _PRICE, True),
    88: ("last_timestamp", _EPOCH, True), 90: ("halted", _HALT, True),
}

# Fields whose change wakes strategies (on_change).
_TOP = frozenset({"bid", "ask", "bid_size", "ask_size", "last", "last_size"})
# Live ticks that prove the stream is live again.
_LIVE_TOP_TICKS = frozenset({1, 2, 4})
_LAST_PRICE_TICKS = frozenset({4, 68})
_LAST_SIZE_TICKS = frozenset({5, 71})


@dataclass(slots=True, frozen=True)
class RtVolume:
    """Parsed RT_VOLUME (tick 48 / 77): ``price;size;time_ms;totalVolume;vwap;single``.

    Empty fields (IB sends e.g. ``;;time;volume;vwap;false`` for volume-only updates)
    are ``None``. ``time`` is epoch seconds.
    """

    price: float | None
    size: float | None
    time: float | None
    total_volume: float | None
    vwap: float | None
    single_trade: bool | None

    @classmethod
    def parse(cls, text: str) -> "RtVolume":
        parts = (str(text).split(";") + [""] * 6)[:6]

        def num(s: str) -> float | None:
            s = s.strip()
            if not s:
                return None
            try:
                number = float(s)
            except ValueError:
                return None
            return number if math.isfinite(number) else None
        ms = num(parts[2])
        single = parts[5].strip().lower()
        return cls(num(parts[0]), num(parts[1]), None if ms is None else ms / 1000.0,
                   num(parts[3]), num(parts[4]),
                   None if not single else single in ("true", "1"))


def _is_unset(value: Any) -> bool:
    return value is None or value == UNSET_DOUBLE or value == UNSET_DECIMAL \
        or value == UNSET_INTEGER


# float() of every value _is_unset accepts is one of these: the exact (slow, Decimal-vs-float)
# comparison is only needed when the float is one of them.
_UNSET_FLOATS = frozenset({float(UNSET_DOUBLE), float(UNSET_DECIMAL), float(UNSET_INTEGER)})


def _number(value: Any) -> float | None:
    """float(value); None for IB's unset sentinels, NaN, and values that are not numbers."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or (number in _UNSET_FLOATS and _is_unset(value)):
        return None
    return number


def _convert(kind: str, value: Any) -> Any:
    """Raw callback value -> stored field value (None means 'not available')."""
    if kind == _SIZE or kind == _FLOAT:
        return _number(value)
    if kind == _QUOTE:
        number = _number(value)
        return None if number == -1.0 or number == 0.0 else number
    if kind == _PRICE:
        number = _number(value)
        return None if number == -1.0 else number
    if kind == _HALT:                       # -1 n/a, 0 not halted, 1 general, 2 volatility
        number = _number(value)
        return None if number is None or number < 0 else number > 0
    if kind == _STR:
        return None if value is None else str(value)
    if kind == _RTV:
        return None if value is None else RtVolume.parse(value)
    if kind == _EPOCH:
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None
    return _number(value)


@dataclass(slots=True, eq=False, repr=False)
class Quote:
    """Latest market data for one contract; see module docstring for the mapping rules."""

    contract_key: str
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last_size: float | None = None
    volume: float | None = None
    open: float | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None              # previous session's close
    last_timestamp: float | None = None     # epoch seconds of the last trade (tick 45/88)
    halted: bool | None = None              # tick 49/90; None = not available
    shortable: float | None = None          # tick 46 raw: >2.5 easy, >1.5 locate, else none
    shortable_shares: float | None = None
    rt_volume: RtVolume | None = None
    rt_trd_volume: RtVolume | None = None
    call_volume: float | None = None
    put_volume: float | None = None
    call_open_interest: float | None = None
    put_open_interest: float | None = None
    open_interest: float | None = None
    futures_open_interest: float | None = None
    hist_vol: float | None = None
    implied_vol: float | None = None
    rt_hist_vol: float | None = None
    low_13w: float | None = None
    high_13w: float | None = None
    low_26w: float | None = None
    high_26w: float | None = None
    low_52w: float | None = None
    high_52w: float | None = None
    avg_volume: float | None = None
    avg_opt_volume: float | None = None
    mark_price: float | None = None
    auction_volume: float | None = None
    auction_price: float | None = None
    auction_imbalance: float | None = None
    trade_count: float | None = None
    trade_rate: float | None = None
    volume_rate: float | None = None
    last_rth_trade: float | None = None
    bid_exchange: str | None = None
    ask_exchange: str | None = None
    last_exchange: str | None = None
    delayed: bool = False
    crossed: bool = False                   # bid > ask (both known): flagged, kept as TWS sent it
    crossings: int = 0                      # times the quote became crossed
    stale: bool = False                     # its data farm or the connection is down: values may be old
    updates: int = 0                        # ticks applied (any type; a price with its size counts 2)
    updated: float | None = None            # framework time of the last value change
    prints: int = 0                         # trade prints seen (see the module docstring)
    other: dict[int, Any] = field(default_factory=dict, repr=False)
    on_change: list[Callable[["Quote"], None]] = field(default_factory=list, repr=False)
    _market_data_type: int = field(default=1, repr=False)
    _print_update: int = field(default=-1, repr=False)    # `updates` right after the latest print
    _await_echo: bool = field(default=False, repr=False)  # a print's LAST_SIZE copy may follow

    # ---- callbacks (called by the Router with raw ibapi values) ---------------------------
    def on_price_size(self, price_type: int, price: float, attrib: Any, size_type: int,
                      size: Decimal | float, time: float | None = None) -> None:
        """A TICK_PRICE and the size it carried (BID+BID_SIZE, LAST+LAST_SIZE…), applied as one
        update: ``on_change`` runs once, after both, and a LAST price is one trade print."""
        self.updates += 2
        changed = self._set(price_type, price, time)
        if self._set(size_type, size, time):
            changed = True
        if price_type in _LAST_PRICE_TICKS:
            self.prints += 1
            self._print_update = self.updates
            self._await_echo = True
            changed = True
        if changed and self.on_change:
            for hook in tuple(self.on_change):     # a hook may unsubscribe itself
                hook(self)

    def on_tick_price(self, tick_type: int, price: float, attrib: Any = None,
                      time: float | None = None) -> None:
        if tick_type in _LAST_PRICE_TICKS:
            self._await_echo = False
        self._apply(tick_type, price, time)

    def on_tick_size(self, tick_type: int, size: Decimal | float,
                     time: float | None = None) -> None:
        if tick_type not in _LAST_SIZE_TICKS:
            return self._apply(tick_type, size, time)
        self.updates += 1
        changed = self._set(tick_type, size, time)
        echo, self._await_echo = self._await_echo, False
        if (changed or not echo) and self.last is not None:      # not the copy of the print before
            self.prints += 1
            self._print_update = self.updates
            changed = True
        if changed and self.on_change:
            for hook in tuple(self.on_change):
                hook(self)

    def on_tick_generic(self, tick_type: int, value: float, time: float | None = None) -> None:
        self._apply(tick_type, value, time)

    def on_tick_string(self, tick_type: int, value: str, time: float | None = None) -> None:
        self._apply(tick_type, value, time)

    def _apply(self, tick_type: int, raw: Any, time: float | None) -> None:
        self.updates += 1
        if self._set(tick_type, raw, time) and self.on_change:
            for hook in tuple(self.on_change):     # a hook may unsubscribe itself
                hook(self)

    def _set(self, tick_type: int, raw: Any, time: float | None) -> bool:
        """Store one tick's value; True when a top-of-book field (_TOP) changed."""
        spec = _TICKS.get(tick_type)
        if spec is None:
            if isinstance(raw, (float, Decimal)) and _number(raw) is None and not _is_unset(raw):
                raw = None                      # a non-finite number is "not available" here too
            if self.other.get(tick_type) != raw:
                self.other[tick_type] = raw
                self.updated = time
            return False
        name, kind, delayed = spec
        if delayed:
            self.delayed = True
        elif tick_type in _LIVE_TOP_TICKS:
            self.delayed = False
        value = _convert(kind, raw)
        if getattr(self, name) == value:
            return False
        setattr(self, name, value)
        self.updated = time
        if name == "bid" or name == "ask":
            bid, ask = self.bid, self.ask
            crossed = bid is not None and ask is not None and bid > ask
            if crossed and not self.crossed:
                self.crossings += 1
            self.crossed = crossed
        return name in _TOP

    def check_invariants(self) -> list[str]:
        """What breaks the Quote's rules (empty when all is well): every number finite or None, RT volume
        parts finite or None, and `crossed` set exactly when bid > ask."""
        problems = []
        for name in _NUMBER_FIELDS:
            value = getattr(self, name)
            if value is not None and not (isinstance(value, float) and math.isfinite(value)):
                problems.append(f"{name} = {value!r} is neither a finite float nor None")
        for name in ("rt_volume", "rt_trd_volume"):
            rtv = getattr(self, name)
            if rtv is not None:
                for part in ("price", "size", "time", "total_volume", "vwap"):
                    value = getattr(rtv, part)
                    if value is not None and not math.isfinite(value):
                        problems.append(f"{name}.{part} = {value!r} is not finite")
        for tick_type, value in self.other.items():
            if isinstance(value, (float, Decimal)) and _number(value) is None and not _is_unset(value):
                problems.append(f"other[{tick_type}] = {value!r} is not finite")
        expect = self.bid is not None and self.ask is not None and self.bid > self.ask
        if self.crossed != expect:
            problems.append(f"crossed = {self.crossed} but bid {self.bid} / ask {self.ask}")
        return problems

    @property
    def printed(self) -> bool:
        """True when the latest update applied to this quote was a trade print."""
        return self._print_update == self.updates

    # ---- derived values ---------------------------------------------------------------------
    @property
    def market_data_type(self) -> int:
        """1 live, 2 frozen, 3 delayed, 4 delayed-frozen (from ``marketDataType``)."""
        return self._market_data_type

    @market_data_type.setter
    def market_data_type(self, value: int) -> None:
        value = int(value)
        if value not in MARKET_DATA_TYPES:
            raise ValueError(f"market data type must be one of {sorted(MARKET_DATA_TYPES)}")
        self._market_data_type = value
        self.delayed = value in (3, 4)

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid

    @property
    def can_short(self) -> bool | None:
        """IB's rule for tick 46: a value above 2.5 means shares are available to borrow."""
        return None if self.shortable is None else self.shortable > 2.5

    # ---- views --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (f"Quote({self.contract_key!r} bid={self.bid}x{self.bid_size} "
                f"ask={self.ask}x{self.ask_size} last={self.last}x{self.last_size}"
                f"{' delayed' if self.delayed else ''})")

    def snapshot(self) -> dict[str, Any]:
        """Plain dict of every named field plus mid/spread (no hooks, no raw extras)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("on_change", "other") or f.name.startswith("_"):
                continue
            out[f.name] = getattr(self, f.name)
        out["market_data_type"] = self._market_data_type
        out["mid"] = self.mid
        out["spread"] = self.spread
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row indexed by contract_key; time fields become tz-aware UTC Timestamps."""
        row = self.snapshot()
        key = row.pop("contract_key")
        for name in _FLOAT_FIELDS:                 # NaN keeps float columns concat-friendly
            if row[name] is None:
                row[name] = math.nan
        frame = pd.DataFrame([row], index=pd.Index([key], name="contract_key"))
        for name in _TIME_FIELDS:
            frame[name] = pd.to_datetime(frame[name].astype("float64"), unit="s", utc=True)
        return frame


_TIME_FIELDS = ("updated", "last_timestamp")
_NUMBER_FIELDS = tuple(sorted({name for name, kind, _delayed in _TICKS.values() if kind not in (_STR, _RTV, _HALT)}))
_FLOAT_FIELDS = tuple(f.name for f in fields(Quote) if "float" in str(f.type)) + ("mid", "spread")
