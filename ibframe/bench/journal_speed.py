"""Case 7: the compliance journal — executions committed per second, and what a hook costs the dispatch thread.

Owns: the part "journal": N executions (100,000; --quick 20,000), each a real ibapi Execution with its
contract, recorded through `Journal.record_execution` (the execution hook) as fast as one thread can
call it, while the journal's writer thread cleans and commits them (WAL, synchronous=FULL, batches);
then the same for `record_order` (the sent hook, a full order copy). It reports executions per second
from the first hook call until all N are committed (flush), and the per-call cost of each hook on the
calling thread (p50 and p99, microseconds; the writer thread runs at the same time, so GIL hand-offs
are in the numbers). A run verifies that the file holds exactly N distinct executions and N orders.
Must never: count a run whose journal lost or doubled a row.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from . import Row, all_verified, values

TITLE = "compliance journal (SQLite WAL, its own writer thread)"


def size(quick: bool) -> int:
    return 20_000 if quick else 100_000


def parts(quick: bool) -> list[str]:
    return ["journal"]


def _inputs(n: int):
    from decimal import Decimal

    from ibapi.contract import Contract
    from ibapi.execution import Execution
    from ibapi.order import Order

    from ..trading.trade import Fill, Trade
    contract = Contract()
    contract.conId, contract.symbol, contract.secType, contract.exchange, contract.currency = \
        265598, "AAPL", "STK", "SMART", "USD"
    executions, trades = [], []
    for i in range(n):
        e = Execution()
        e.execId, e.time, e.acctNumber, e.exchange = f"0000e1a2.{i:08d}.01.01", "20261118 11:30:00 US/Eastern", \
            "DU1234567", "ISLAND"
        e.side, e.shares, e.price, e.permId, e.clientId, e.orderId = "BOT" if i % 2 else "SLD", Decimal(100), \
            190.0 + (i % 100) / 100, 1_000_000 + i, 1, i + 1
        e.cumQty, e.avgPrice, e.orderRef = Decimal(100), e.price, "bench"
        fill = Fill(e.execId, e.time, e.side, 100.0, e.price, e.exchange, contract=contract, order_ref="bench")
        executions.append((None, fill, e))
        o = Order()
        o.action, o.totalQuantity, o.orderType, o.lmtPrice, o.orderRef = "BUY", Decimal(100), "LMT", e.price, "bench"
        trades.append(Trade(i + 1, contract, o, strategy="bench"))
    return executions, trades


def _timed(calls, fn) -> list[float]:
    clock = time.perf_counter_ns
    out = []
    for args in calls:
        t = clock()
        fn(*args)
        out.append((clock() - t) / 1000.0)
    return out


def run(part: str, quick: bool) -> dict:
    from ..journal import Journal
    n = size(quick)
    executions, trades = _inputs(n)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite"
        journal = Journal(path, write=True, account="DU1234567", client_id=1)
        try:
            started = time.perf_counter()
            exec_costs = _timed(executions, journal.record_execution)
            flushed = journal.flush(600)
            seconds = time.perf_counter() - started
            order_costs = _timed(((t, "place") for t in trades), journal.record_order)
            flushed = journal.flush(600) and flushed
            dropped = journal.stats["dropped"]
        finally:
            journal.close()
        book = Journal(path)
        stored = book.executions()
        orders = len(book.orders())
    ok = flushed and not dropped and len(stored) == n and stored.exec_id.is_unique and orders == n
    exec_costs.sort()
    order_costs.sort()
    return {"values": {"execs_per_s": n / seconds,
                       "exec_hook_p50_us": statistics.median(exec_costs),
                       "exec_hook_p99_us": exec_costs[int(0.99 * (n - 1))],
                       "order_hook_p50_us": statistics.median(order_costs),
                       "order_hook_p99_us": order_costs[int(0.99 * (n - 1))]},
            "verified": ok,
            "detail": f"{len(stored)} executions and {orders} orders of {n} stored, {dropped} dropped"}


def rows(runs: dict[str, list[dict]], quick: bool) -> list[Row]:
    got = runs.get("journal", [])
    ok = all_verified(got)
    return [Row("executions hooked and committed (target >= 10,000/s)", "exec/s", values(got, "execs_per_s"), ok,
                note=f"{size(quick):,} executions, synchronous=FULL"),
            Row("execution hook on the dispatch thread, p50", "us", values(got, "exec_hook_p50_us"), ok, digits=2),
            Row("execution hook on the dispatch thread, p99", "us", values(got, "exec_hook_p99_us"), ok, digits=2,
                note="the writer thread runs meanwhile (GIL)"),
            Row("order (sent) hook on the dispatch thread, p50", "us", values(got, "order_hook_p50_us"), ok, digits=2),
            Row("order (sent) hook on the dispatch thread, p99", "us", values(got, "order_hook_p99_us"), ok, digits=2)]
