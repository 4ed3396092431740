"""Connecting a Journal to a running engine: hooks, minute snapshots, NBBO marks, reconciliation with TWS.

Owns: `install(engine, config, account)` — opens the account's journal for writing, appends its
record methods to the order manager's sent / status / execution / commission hooks and the router's
error hooks, snapshots the account values and positions on a dispatcher timer, records the NBBO at each
order's arrival, each fill and every few seconds (`ibframe.trading.nbbo`), and asks TWS for its
executions (`reconcile`) so fills made while ibframe was down are journaled, each once — and the
closing step that undoes all of it (`Journal.close()` runs it).

Must never: block the dispatch thread (the snapshot copies the values there and hands the copy to
the writer), or read another object's private state (only the engine's public attributes).
"""
from __future__ import annotations

import datetime as dt
import logging

from ibapi.execution import ExecutionFilter

from ..trading.nbbo import NbboMarks
from .config import JournalConfig
from .journal import Journal
from .reader import NEW_YORK

log = logging.getLogger("ibframe.journal")

RECONCILE_MARGIN = 300.0         # seconds before the last journaled execution that reconciliation asks from
MAX_DAYS = 7                     # TWS keeps executions for up to 7 days
PARAMETRIZED_DAYS = 200          # server version from which ExecutionFilter.lastNDays is sent


def install(engine, config: JournalConfig | None = None, account: str | None = None, *,
            reconcile_now: bool = True, journal: Journal | None = None) -> Journal | None:
    """The account's journal, recording everything `engine` does from now on; None when disabled.

    Call after `engine.start()` (the account is known then) from any thread but the dispatch thread;
    close it with `journal.close()` before `engine.stop()` (that also takes a last snapshot).
    `journal`: a journal already opened for writing (e.g. with other writer settings) to install
    instead of opening the configured path. `reconcile_now=False`: call `reconcile` yourself (the rails do, with
    what the run read back from the journal, readback.py).
    """
    config = config or JournalConfig()
    if not config.enabled:
        log.info("journal disabled (journal.enabled: false)")
        return None
    if engine.dispatcher.in_dispatch_thread():
        raise RuntimeError("install the journal from the runner's thread (after engine.start()), not from a "
                           "strategy callback: it opens a file")
    account = account if account is not None else engine.account
    if journal is None:
        journal = Journal(config.path_for(engine.state_dir, account), write=True, account=account,
                          client_id=engine.client_id, now=engine.clock.now)
    path = journal.path
    marks = NbboMarks(engine, engine.clock.now, snapshots=config.nbbo_snapshots)

    def record_quote(why, source, contract, quote, trade, exec_id, order_id) -> None:
        journal.record_quote(why, source, contract, quote.bid, quote.ask, quote.last, order_id=order_id,
                             exec_id=exec_id, strategy=trade.strategy if trade is not None else None)
    marks.hooks.append(record_quote)
    # the order row first, then its arrival snapshot; the execution row first, then its fill-time quote
    hooks = [(engine.orders.sent_hooks, journal.record_order),
             (engine.orders.sent_hooks, marks.on_sent),
             (engine.orders.status_hooks, journal.record_status),
             (engine.orders.execution_hooks, journal.record_execution),
             (engine.orders.execution_hooks, marks.on_execution),
             (engine.orders.commission_hooks, journal.record_commission),
             (engine.router.on_error_hooks, journal.record_error)]
    timer = []

    def attach() -> None:
        for hooks_list, fn in hooks:
            hooks_list.append(fn)
        if config.snapshot_every > 0:
            timer.append(engine.dispatcher.call_every(config.snapshot_every, snapshot))
        if config.sample_every > 0:
            timer.append(engine.dispatcher.call_every(config.sample_every, marks.sample))

    def snapshot() -> None:
        portfolio = engine.portfolio
        if portfolio.values or portfolio.positions:
            journal.record_snapshot(portfolio.values, list(portfolio.positions.values()))

    def detach(last_snapshot: bool) -> None:
        for handle in timer:
            handle.cancel()
        for hooks_list, fn in hooks:
            if fn in hooks_list:
                hooks_list.remove(fn)
        if last_snapshot:
            snapshot()

    def close() -> None:
        if engine.conn.isConnected():
            try:
                engine.on_dispatch(detach, True, timeout=5.0)
                return
            except Exception:
                log.exception("journal: the last snapshot failed")
        detach(False)                   # the dispatch thread has ended: nothing runs the hooks any more

    engine.on_dispatch(attach)
    journal.add_closer(close)
    log.info("journal %s records orders, executions, errors, the NBBO at arrival and fill%s%s", path,
             f", live quotes every {config.sample_every:g}s" if config.sample_every > 0 else "",
             f" and a snapshot every {config.snapshot_every:g}s" if config.snapshot_every > 0 else "")
    if reconcile_now:
        reconcile(engine, journal)
    return journal


def execution_filter(last: float | None, now: float, account: str, server_version: int) -> ExecutionFilter:
    """What to ask TWS for: executions from a little before the last one journaled (up to 7 days back),
    or today's when the journal has none."""
    f = ExecutionFilter()
    f.acctCode = account or ""
    days = 1
    if last is not None:
        start = last - RECONCILE_MARGIN         # TWS itself keeps at most MAX_DAYS: it sends what it has
        f.time = dt.datetime.fromtimestamp(start, dt.timezone.utc).strftime("%Y%m%d-%H:%M:%S")
        today, first = (dt.datetime.fromtimestamp(t, NEW_YORK).date() for t in (now, start))
        days = max(1, min(MAX_DAYS, (today - first).days + 1))
    if server_version >= PARAMETRIZED_DAYS:
        f.lastNDays = days
    return f


def reconcile(engine, journal: Journal, past=None) -> int:
    """Ask TWS for its executions (reqExecutions); each one ibframe has not seen reaches the execution
    hooks and is journaled once (execId is unique in the journal). Returns the request id. Call again
    after a reconnect. Not from the dispatch thread (it reads the journal's last execution time; `past`, when
    given, answers that instead: readback.py)."""
    last = (past if past is not None else journal).last_execution_time()
    box: dict = {}

    def send() -> None:
        f = execution_filter(last, engine.clock.now(), journal.account_id, engine.conn.serverVersion() or 0)
        box["id"] = req_id = engine.request_ids.take()
        engine.conn.reqExecutions(req_id, f)
        log.info("journal: asked TWS for executions%s (request %d) to record fills made while ibframe was down",
                 f" since {f.time} UTC" if f.time else " of today", req_id)
    engine.on_dispatch(send)
    return box["id"]
