"""How a working order meets the market, step by step: the paper broker's order-type behaviour.

Owns: the per-step books the broker trades against (one `matching.Book` per instrument per step,
shared by every order so they never trade the same shares twice), when an order may work (its
instrument's sessions, outsideRth, goodAfterTime, the open for OPG and the close for MOC/LOC), stop,
trailing and if-touched triggers on the last trade, REL pegging, marketable orders walking the
book, resting limits filling as makers when the market moves through them or trades print at or
through their price (price-time priority among the broker's own orders), BAG combos filling every
leg at its price, and IB algo slices. Every fill goes to `Broker.fill` / `Broker.fill_combo`.

Choices where TWS leaves room:
- Sessions: US stocks work in liquid hours, and with outsideRth also in extended hours, but only
  for LMT / STP LMT / LIT / TRAIL LIMIT (other types wait, after warning 2109); every other kind
  works whenever its instrument trades (algos: liquid hours only).
- MOC / LOC always wait for the next liquid close and fill there, in full, at the last trade of
  that step (LOC only if that price is within its limit, else it is cancelled); OPG likewise at
  the first step of the next liquid open.
- SMART takes hidden liquidity first (sometimes, never worse than the NBBO), then walks every
  venue's levels: a small order fills at or better than the NBBO at arrival, a large one walks
  deeper. Options have no prints of their own here, so a resting option limit inside the spread
  fills now and then (seeded) besides when the quote crosses it.
- Triggers read trade prints only (triggerMethod is not modelled).

Must never: send messages or change order lifecycle directly (it asks the broker), or change the
market; randomness comes from generators seeded by (seed, permId, step, purpose).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..market.universe import Instrument
from . import algos, live, notify
from .matching import Book, Fill, exec_venue, option_book, root_book, venue_maker
from .order_rules import OUTSIDE_RTH_TYPES, TRIGGERED

if TYPE_CHECKING:
    from .broker import Broker
    from .live import LiveOrder


class Worker:
    def __init__(self, broker: "Broker"):
        self.broker = broker
        self.gateway = broker.gateway
        self._books: dict[int, Book] = {}
        self._books_step = -1
        self._trade_left: dict[tuple[int, int], float] = {}

    # --- books ----------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self.gateway.market.steps

    def new_step(self) -> None:
        self._books.clear()
        self._trade_left.clear()
        self._books_step = self.step

    def book(self, inst: Instrument) -> Book | None:
        """The broker's view of one instrument's book in the current step (None: no market)."""
        if self._books_step != self.step:
            self.new_step()
        b = self._books.get(inst.con_id)
        if b is None:
            if inst.is_derived:
                from ..market.option_market import quoter_for
                try:
                    quoter = quoter_for(self.gateway, inst)
                except ValueError:
                    return None
                b = option_book(quoter, self.gateway.config.seed, self.step)
            else:
                market = self.gateway.market.get(inst.con_id)
                if market is None:
                    return None
                b = root_book(market)
            self._books[inst.con_id] = b
        return b

    def rng(self, lo: "LiveOrder", purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.gateway.config.seed, lo.perm_id, self.step, purpose,
                                      int(round(lo.filled * 1000))])

    def reference_price(self, lo: "LiveOrder") -> float:
        """A price to value the order at before it trades: its limit, stop, or the far side."""
        o = lo.order
        if o.lmtPrice and o.orderType not in ("MKT",):
            return float(o.lmtPrice)
        if o.auxPrice and o.orderType in ("STP", "MIT"):
            return float(o.auxPrice)
        if lo.inst is None:
            return 0.0
        b = self.book(lo.inst)
        if b is None:
            return float(lo.inst.price or 0.0)
        return b.far(lo.buy) or b.last or float(lo.inst.price or 0.0)

    # --- when an order may work -------------------------------------------------------------------
    def tradable(self, lo: "LiveOrder", t: float) -> bool:
        inst = lo.main_inst
        kind = inst.hours_kind
        clock = self.broker.clock
        if kind == "us_equity":
            if clock.is_open(kind, True, t):
                return True
            form = "LMT" if lo.triggered and lo.work_price is not None else lo.kind
            return (lo.order.outsideRth and lo.algo is None and form in OUTSIDE_RTH_TYPES
                    and clock.is_open(kind, False, t))
        return clock.is_open(kind, lo.algo is not None, t)

    def initial_status(self, lo: "LiveOrder", t: float) -> str:
        if lo.kind in ("MOC", "LOC") or lo.order.tif == "OPG":
            return "Submitted"
        if lo.active_at is not None and t < lo.active_at:
            return "PreSubmitted"
        if lo.kind in TRIGGERED and not lo.triggered:
            return "PreSubmitted"
        if lo.algo is not None and t < lo.algo.start:
            return "PreSubmitted"
        return "Submitted" if self.tradable(lo, t) else "PreSubmitted"

    # --- one step of one order ----------------------------------------------------------------------
    def advance(self, lo: "LiveOrder", t: float, events: dict | None, arrival: bool = False) -> None:
        """Everything that happens to a working order at time `t` (a step, or its arrival)."""
        o = lo.order
        if lo.kind in ("MOC", "LOC"):
            if lo.active_at is not None and t >= lo.active_at:
                self._auction(lo, "close")
            return
        if lo.expires_at is not None and t >= lo.expires_at:
            self.broker.cancel(lo, reason="", completed="Expired")
            return
        if lo.active_at is not None and t < lo.active_at:
            return
        if o.tif == "OPG":
            self._auction(lo, "open")
            return
        if lo.algo is not None and t < lo.algo.start:
            return
        if not self.tradable(lo, t):
            return
        if lo.status == "PreSubmitted" and not (lo.kind in TRIGGERED and not lo.triggered):
            lo.status = "Submitted"
            notify.both(self.broker.session_of(lo), lo)
        if lo.legs:
            self._combo(lo, arrival)
            return
        book = self.book(lo.inst)
        if book is None:
            return
        if lo.kind in TRIGGERED and not lo.triggered:
            if not self._trigger(lo, self._prices(lo, events, book, arrival)):
                return
            arrival = True
        if lo.kind == "REL":
            price = live.rel_price(lo, book)
            if price is not None and price != lo.work_price:
                lo.work_price = price
                lo.queue_price = None
        if lo.algo is not None:
            self._algo(lo, book, t, events)
            return
        self._match(lo, book, events, arrival)

    def _prices(self, lo: "LiveOrder", events: dict | None, book: Book, arrival: bool) -> list[float]:
        """Last-trade prices a trigger looks at now."""
        if arrival:
            lo.last_seen = book.last
            return [book.last] if book.last else []
        if lo.inst.is_derived:
            if book.last and book.last != lo.last_seen:
                lo.last_seen = book.last
                return [book.last]
            return []
        ev = (events or {}).get(lo.inst.con_id)
        return [tr.price for tr in ev.trades] if ev is not None else []

    def _trigger(self, lo: "LiveOrder", prices: list[float]) -> bool:
        trailing = lo.kind in ("TRAIL", "TRAIL LIMIT")
        for p in prices:
            if trailing and lo.trail_stop is not None and not live.fires(lo, p):
                live.follow_trail(lo, p)
                continue
            if live.fires(lo, p):
                lo.triggered = True
                lo.work_price = live.triggered_price(lo)
                lo.rested = False
                lo.queue_price = None
                lo.status = "Submitted"
                notify.both(self.broker.session_of(lo), lo)
                return True
        return False

    # --- matching -------------------------------------------------------------------------------------
    def _match(self, lo: "LiveOrder", book: Book, events: dict | None, arrival: bool) -> None:
        inst = lo.inst
        maker = venue_maker(inst, lo.order.exchange)
        buy, limit = lo.buy, lo.work_price
        if limit is None or not lo.rested:
            fills: list[Fill] = []
            want = lo.remaining
            if maker is None and inst.sec_type in ("STK", "OPT"):
                hidden = book.hidden(self.rng(lo, 1), buy, want, limit)
                if hidden is not None:
                    fills.append(hidden)
                    want -= hidden.size
            fills += book.take(buy, want, maker, limit)
            self.broker.fill(lo, fills)
            if not lo.done and limit is not None:
                lo.rested = True
                self._join(lo, book, maker)
            return
        if lo.queue_price != limit:
            self._join(lo, book, maker)
        far = book.far(buy)
        if far and (far <= limit + 1e-9 if buy else far >= limit - 1e-9):
            self.broker.fill(lo, book.take(buy, lo.remaining, maker, limit, at_price=limit))
        if not lo.done:
            self._trades(lo, events, maker)
        if not lo.done and inst.is_derived:
            self._quiet_fill(lo, book)

    def _join(self, lo: "LiveOrder", book: Book, maker: str | None) -> None:
        """Rest at the work price behind what the market already shows there (time priority)."""
        lo.queue_price = lo.work_price
        lo.queue_ahead = book.size_at(lo.buy, lo.work_price, maker)

    def _trades(self, lo: "LiveOrder", events: dict | None, maker: str | None) -> None:
        """Prints of the step that reach a resting limit: through its price, or at it once the queue is gone."""
        ev = (events or {}).get(lo.inst.con_id)
        if ev is None:
            return
        limit = lo.work_price
        for i, tr in enumerate(ev.trades):
            if tr.aggressor_buy == lo.buy or (maker is not None and tr.exchange != maker):
                continue
            through = tr.price < limit - 1e-9 if lo.buy else tr.price > limit + 1e-9
            at = abs(tr.price - limit) < 1e-9
            if not (through or at):
                continue
            key = (lo.inst.con_id, i)
            left = self._trade_left.get(key, tr.size)
            usable = left
            if at:
                ahead = min(lo.queue_ahead, left)
                lo.queue_ahead -= ahead
                usable = left - ahead
            q = min(usable, lo.remaining)
            if q > 0:
                self._trade_left[key] = left - q
                self.broker.fill(lo, [Fill(limit, q, exec_venue(tr.exchange), 1)])
            if lo.done:
                return

    def _quiet_fill(self, lo: "LiveOrder", book: Book) -> None:
        """Options print rarely: a limit inside the spread sometimes meets a counterpart (seeded)."""
        if not (book.bids and book.asks) or book.ask <= book.bid:
            return
        limit = lo.work_price
        inside = (limit - book.bid) / (book.ask - book.bid) if lo.buy else (book.ask - limit) / (book.ask - book.bid)
        if inside <= 0:
            return
        rng = self.rng(lo, 5)
        if rng.random() < 0.03 + 0.3 * min(inside, 1.0):
            q = min(lo.remaining, float(rng.integers(1, 11)))
            near = book.bids[0] if lo.buy else book.asks[0]
            self.broker.fill(lo, [Fill(limit, q, exec_venue(near.maker), 1)])

    # --- auctions ---------------------------------------------------------------------------------
    def _auction(self, lo: "LiveOrder", which: str) -> None:
        """MOC/LOC at the close, OPG at the open: the whole order at the auction print, or nothing."""
        inst = lo.main_inst
        book = self.book(inst)
        if book is None:
            return
        price = book.last or book.mid
        limit = lo.order.lmtPrice if lo.kind in ("LOC", "LMT") else None
        if limit is not None and not (price <= limit + 1e-9 if lo.buy else price >= limit - 1e-9):
            self.broker.cancel(lo, reason="", completed=f"Not executed at the {which}")
            return
        venue = {"NASDAQ": "ISLAND"}.get(inst.primary_exchange, inst.primary_exchange or inst.exchange)
        self.broker.fill(lo, [Fill(price, lo.remaining, venue, 2)])

    # --- combos -----------------------------------------------------------------------------------------
    def _combo(self, lo: "LiveOrder", arrival: bool) -> None:
        """A BAG trades when its legs' top of book reaches the limit; every leg at its own price."""
        parts = []
        net = 0.0
        avail = math.inf
        for leg, inst in lo.legs:
            book = self.book(inst)
            if book is None:
                return
            leg_buy = (leg.action.upper() == "BUY") == lo.buy
            top = book.far(leg_buy)
            if top <= 0:
                return
            size = book.available(leg_buy, None, top)
            ratio = max(leg.ratio, 1)
            avail = min(avail, size // ratio)
            net += (ratio if leg.action.upper() == "BUY" else -ratio) * top
            parts.append((leg, inst, book, leg_buy, top, ratio))
        net = round(net, 10)
        o = lo.order
        limit = o.lmtPrice if o.orderType in ("LMT", "REL") and o.lmtPrice is not None else None
        if limit is not None and not (net <= limit + 1e-9 if lo.buy else net >= limit - 1e-9):
            return
        q = math.floor(min(lo.remaining, avail) + 1e-9)
        if q <= 0:
            return
        legs = []
        for leg, inst, book, leg_buy, top, ratio in parts:
            took = book.take(leg_buy, q * ratio, None, top)
            legs.append((leg, inst, leg_buy, top, q * ratio, took[0].venue if took else leg.exchange))
        self.broker.fill_combo(lo, q, net, legs)

    # --- algos -----------------------------------------------------------------------------------------
    def _algo(self, lo: "LiveOrder", book: Book, t: float, events: dict | None) -> None:
        """One step of an algo: the slice its schedule wants now, at the price it asks for; at the end
        of the window the rest is taken (and cancelled if it cannot be, unless the algo may run over)."""
        state = lo.algo
        self._algo_slice(lo, book, t, events)
        if not lo.done and algos.past_end(state, t) and not algos.finishing(state):
            self.broker.cancel(lo, reason="", completed="Algo end time reached")

    def _algo_slice(self, lo: "LiveOrder", book: Book, t: float, events: dict | None) -> None:
        state = lo.algo
        inst = lo.inst
        want = algos.due(state, lo.order.totalQuantity, lo.filled, t, book.lot, inst.size_increment or 1.0)
        if want <= 0:
            return
        mode, price = algos.slice_price(state, book, lo.buy, t, self.rng(lo, 9), self._step_vwap(inst, events))
        limit = lo.order.lmtPrice if lo.order.orderType == "LMT" else None
        if mode == "wait":
            return
        if mode == "take":
            self.broker.fill(lo, book.take(lo.buy, want, None, limit))
            return
        if limit is not None and (price > limit + 1e-9 if lo.buy else price < limit - 1e-9):
            inside = limit >= book.bid if lo.buy else limit <= book.ask
            if not inside:
                return
            price = limit
        if state.name == "Adaptive":
            top = book.asks[0] if lo.buy else book.bids[0]
            want = min(want, max(book.lot, top.size))
        near = book.bids[0] if lo.buy else book.asks[0]
        self.broker.fill(lo, [Fill(price, want, exec_venue(near.maker), 1)])

    @staticmethod
    def _step_vwap(inst: Instrument, events: dict | None) -> float | None:
        ev = (events or {}).get(inst.con_id)
        if ev is None or not ev.trades:
            return None
        size = sum(tr.size for tr in ev.trades)
        return sum(tr.price * tr.size for tr in ev.trades) / size if size else None
