"""Real-time bars: reqRealTimeBars / cancelRealTimeBars, 5-second bars of the live tape.

Owns: parsing REQ_REAL_TIME_BARS as ibapi's client.py writes it at the negotiated version, its
checks (what to show, a ticker id already streaming: 322; the shared checks are `historical`'s),
and the `RealTimeBars` stream: one REAL_TIME_BARS per completed 5-second bucket, fed from the
market's steps through `gateway.on_step`.

Must never: compute prices itself (history.py owns the data) or keep work per market step beyond
folding the seconds that just completed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from ibapi import server_versions as sv
from ibapi.message import IN, OUT

from ..protocol.handlers import handles
from ..protocol.session import Session
from ..protocol.wire import FieldReader
from . import history
from .bars import reduce
from .historical import DATA_LABEL, _applies, _bar_fields, _duplicate, _invalid, _route
from .lookup import read_contract, resolve
from .universe import Instrument


RT_WHATS = ("TRADES", "MIDPOINT", "BID", "ASK")
@dataclass(eq=False)
class RealTimeBars:
    """reqRealTimeBars: one REAL_TIME_BARS per completed 5-second bucket of the live tape."""
    session: Session
    req_id: int
    inst: Instrument
    what: str
    use_rth: bool
    next_end: int = 0
    remove: Callable[[], None] = field(default=lambda: None)

    def __post_init__(self) -> None:
        gateway = self.session.gateway
        self.next_end = (int(gateway.now()) // 5 + 1) * 5
        self.remove = gateway.on_step(history.root_of(gateway, self.inst).con_id, self.on_step)

    def close(self) -> None:
        self.remove()

    def on_step(self, ev) -> None:
        while ev.time >= self.next_end:
            start = self.next_end - 5
            self.next_end += 5
            units = history.series_units(self.session.gateway, self.inst, self.what, start, start + 5, 1,
                                         self.use_rth)
            if len(units) == 0:             # closed: skip to the bucket before the current one
                self.next_end = max(self.next_end, int(ev.time) // 5 * 5)
                continue
            rows, _ = reduce(units, np.zeros(len(units), np.int64))
            rows = history.finish_bars(self.inst, rows, self.what)
            o, h, l, c, v, wap, count = _bar_fields(rows, 0, self.what)
            self.session.send(IN.REAL_TIME_BARS, 3, self.req_id, start, o, h, l, c, v, wap, count)


@handles(OUT.REQ_REAL_TIME_BARS)
def req_real_time_bars(session: Session, r: FieldReader) -> None:
    r.int("version")
    req_id = r.int("reqId")
    q = read_contract(r, con_id=session.version >= sv.MIN_SERVER_VER_TRADING_CLASS,
                      trading_class=session.version >= sv.MIN_SERVER_VER_TRADING_CLASS)
    bar_size = r.int("barSize")
    what = r.str("whatToShow").strip().upper()
    use_rth = r.int("useRTH") != 0
    if session.version >= sv.MIN_SERVER_VER_LINKING:
        r.str("realTimeBarsOptions")
    if _duplicate(session, req_id):
        return
    inst = resolve(session, req_id, q, "bY")
    if inst is None:
        return
    if bar_size != 5:
        _invalid(session, req_id, f"Invalid bar size {bar_size}: real-time bars are 5 seconds", "bY")
        return
    if what not in RT_WHATS:
        _invalid(session, req_id, f"Invalid whatToShow '{what}' for real-time bars. Legal ones are: "
                                  f"{', '.join(RT_WHATS)}", "bY")
        return
    if not _applies(inst, what):
        session.error(req_id, 420, f"Invalid Real-time Query:No market data for {inst.symbol}/{inst.sec_type}@"
                                   f"{_route(inst, q)} {DATA_LABEL[what]}")
        return
    session.add_subscription("realtimebars", RealTimeBars(session, req_id, inst, what, use_rth))


@handles(OUT.CANCEL_REAL_TIME_BARS)
def cancel_real_time_bars(session: Session, r: FieldReader) -> None:
    r.int("version")
    session.end_subscription("realtimebars", r.int("reqId"))
