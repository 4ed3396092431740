"""Per-instrument market state: objects that update themselves from routed ibapi callbacks.

Owns: Quote (mktData ticks), TickRing (tick-by-tick history), OrderBook (market depth),
Bars (historical / keepUpToDate / real-time bars) and OptionGreeks (option computations).
Each is readable as a pandas DataFrame and exposes hook lists the engine uses to wake
strategies.

Must never: take locks, do I/O, or call ibapi ``EClient``. These objects are updated ONLY
on the framework's single dispatch thread (the Router calls them); nothing here is
thread-safe, by design.
"""
from ibframe.market.bars import Bar, Bars, parse_bar_time
from ibframe.market.book import ASK, BID, BookRow, OrderBook
from ibframe.market.greeks import OptionComputation, OptionGreeks
from ibframe.market.quote import Quote, RtVolume
from ibframe.market.ticks import TickRing

__all__ = ["Quote", "RtVolume", "TickRing", "OrderBook", "BookRow", "ASK", "BID",
           "Bars", "Bar", "parse_bar_time", "OptionGreeks", "OptionComputation"]
