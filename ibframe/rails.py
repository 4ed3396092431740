"""The safety rails of one run, installed in order on a connected engine: journal, risk layer, kill switch.

Owns: the order in which the rails go on and come off, and the wiring between them — risk events
into the journal, the PDT guard's restart-safe count read back from the journal, the margin
monitor's flatten through the kill switch's halting — so `run.py` only says "install" and "finish".
A replay gets the same rails (so it refuses, journals and asks TWS exactly what the live run did; its
journal goes where its config says, a temporary folder for `ibframe.replay`) but no kill file, signal
or console: it is not a live run.

Must never: trade, decide risk or write the journal itself; it only connects the parts that do.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

from .config import RunConfig
from .journal import Journal, install as install_journal, reconcile
from .journal.readback import ReadBack
from .risk import kill
from .risk.base import GLOBAL
from .risk.layer import RiskLayer

log = logging.getLogger("ibframe.rails")


@dataclass(slots=True)
class Rails:
    journal: Journal | None
    risk: RiskLayer
    kill_switch: kill.KillSwitch
    read_back: dict | None = None        # what the journal answered at start (the recording keeps it for a replay)

    @classmethod
    def install(cls, engine, cfg: RunConfig, strategies: Callable[[], Sequence], live: bool = True,
                past=None) -> "Rails":
        """After the strategies are built, before any of them starts (so no order can pass unguarded).

        `past` answers what a run reads back from its journal at start (the last execution, the PDT window's
        executions); default the journal itself, through a ReadBack that keeps the answers (`read_back`).

        Raises JournalError (the journal file cannot be opened) or kill.KillFileExists (a kill file is
        still there from an earlier kill): the runner turns both into a one-line error.
        """
        journal = install_journal(engine, cfg.journal, engine.account, reconcile_now=False)
        read_back = None
        if journal is not None:
            if past is None:
                past = read_back = ReadBack(journal)
            reconcile(engine, journal, past)
        layer = RiskLayer.install(engine, cfg.risk, strategies())
        if journal is not None:
            layer.events.append(journal.record_risk_event)
            if layer.pdt is not None:
                counted = layer.pdt.load_journal(past)
                log.info("pdt guard: %d executions of the last business days read back from the journal", counted)
        kill_cfg = (cfg.risk.kill if cfg.risk is not None and cfg.risk.kill is not None else kill.KillConfig())
        if not live:
            kill_cfg = kill.KillConfig(kill_cfg.flatten, kill_cfg.global_cancel, None, kill_cfg.poll, False, False)
        switch = kill.install(engine, layer.states, kill_cfg, strategies, cfg.state_dir)
        if layer.margin is not None and layer.margin.config.flatten_on_halt:
            layer.margin.flatten = lambda _reason: switch.halting.flatten(GLOBAL)
        return cls(journal, layer, switch, read_back.seen if read_back is not None else None)

    def finish(self, engine, on_stop: str) -> None:
        """At the end of a run, after the strategies stopped: no more kills, then cancel or leave what works."""
        self.kill_switch.stop()
        try:
            kill.finish_orders(engine.orders, engine.on_dispatch, on_stop,
                               lambda: not engine.router.connection_closed.is_set())
        except Exception:
            log.exception("on_stop: %s of the working orders failed; check TWS for orders left working", on_stop)

    def close(self) -> None:
        """Last: the journal takes a final snapshot and commits everything (before the engine disconnects)."""
        if self.journal is not None:
            self.journal.close()
