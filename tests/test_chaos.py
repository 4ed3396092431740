"""Chaos (issue 11, item 7): a strategy trades without a pause while the connection is broken 100 ways, and the
runner itself is killed with SIGKILL 20 times; nothing may be lost, doubled or reused.

1. One in-process Runner (rails, supervisor, `chaos_kit:ChaosTrader`) against its own simulated gateway takes
   100 scripted faults (`chaos_kit.FAULT_MIX`): socket drops, gateway restarts, 1100→1101, 1100→1102, drops
   the moment a reconciliation begins, drops while IB is away, drops and restarts with orders in flight. After
   each recovery every subscription is live again at the gateway under a request id never used before (or the
   same one after 1102) and delivers data; at the end the strategy's fills are exactly the gateway's executions
   for its client (each delivered to on_fill once), no order id was sent twice, and every trade shows the
   gateway's true state.
2. `python -m ibframe.run` (the same YAML every time) is killed with SIGKILL at seeded random moments, 20 times,
   against a gateway with a state file that outlives every run; a last clean run reconciles. The journal then
   holds the gateway's executions exactly, no order id was reused, and every run started cleanly.

The truth is always the simulator's own record (`chaos_kit.SimTruth`), never what ibframe says about itself.
"""
from __future__ import annotations

import random
import re
import time
from pathlib import Path

from conftest import wait_until
from chaos_kit import FAULT_MIX, RunnerProcess, SimTruth, fault_plan, median, write_config
from ibframe.config import load_config
from ibframe.journal import Journal
from ibframe.resilience.supervisor import BACK
from ibframe.run import Runner

SEED = 11
CLIENT_ID = 5100
KILL_CLIENT_ID = 5200
KINDS = {"quote": "mktdata", "depth": "depth", "ticks": "tickbytick", "bars": "historical"}   # ours -> the sim's
# A data request in flight when TWS says 1101 ("restored, data lost") can be served after the loss; ibframe then
# asks again under a fresh id without cancelling the old one, and the old stream lives on at the gateway (an
# orphan line, counted against the 100-line limit, its data dropped as an unknown id). Seen here when 1101 comes
# right after a reconnect. While ibframe does not cancel old ids on resubscribing, orphans are tolerated, counted
# and printed; set False to make every check demand exactly one stream per subscription.
ORPHANS_TOLERATED = False


# --- part 1 helpers ------------------------------------------------------------------------------------------

def live_ids(runner) -> dict[str, int | None]:
    """The request id each of the strategy's state objects answers to now (the router's registry)."""
    s = runner.strategies[0]
    router = runner.engine.router
    ids = runner.engine.on_dispatch(lambda: {id(o): rid for rid, r in router.requests.items()
                                             for o in (r.quote, r.bars, r.book, r.ticks) if o is not None})
    return {name: ids.get(id(obj)) for name, obj in (("quote", s.quote_obj), ("depth", s.book),
                                                      ("ticks", s.tick_ring), ("bars", s.bars_obj))}


def wait_served(truth: SimTruth, ids: dict[str, int], retired: set[int], what: str) -> set[tuple[str, int]]:
    """The gateway serves each of these request ids to the client; returns the other data streams it still
    serves (each must be an id ibframe used and left before: an orphan, see ORPHANS_TOLERATED)."""
    want = {KINDS[k]: v for k, v in ids.items()}

    def extra() -> set[tuple[str, int]]:
        subs = truth.subscriptions()
        return {(kind, rid) for kind in want for rid in subs.get(kind, set()) if rid != want[kind]}

    def served():
        subs = truth.subscriptions()
        return all(rid in subs.get(kind, set()) for kind, rid in want.items()) and \
            (ORPHANS_TOLERATED or not extra())
    try:
        wait_until(served, timeout=20, what="the gateway serving the subscriptions")
    except AssertionError:
        raise AssertionError(f"after {what} the gateway serves {truth.subscriptions()}, not {want}; its last "
                             f"errors to the client: {truth.errors[-8:]}") from None
    left = extra()
    unknown = {(kind, rid) for kind, rid in left if rid not in retired}
    assert not unknown, f"after {what} the gateway serves streams ibframe never asked for: {unknown}"
    return left


def wait_flowing(s, what: str) -> None:
    """Quotes, depth and ticks reach the strategy again (counted from now), and the bars are reloaded."""
    seen = dict(s.seen)
    for kind in ("quote", "depth", "ticks"):
        wait_until(lambda: s.seen[kind] > seen.get(kind, 0), timeout=20, what=f"{kind} after {what}")
    wait_until(lambda: s.bars_obj.complete and not s.bars_obj.backfilling, timeout=20, what=f"bars after {what}")


def heard(strategy) -> str:
    """What the strategy was told, in order: v = on_disconnected, ^ = on_reconnected."""
    return "".join("v" if e[0] == "down" else "^" for e in list(strategy.events))


def trade_states(strategy, truth: SimTruth) -> list[str]:
    """Every trade whose state differs from the gateway's (an order it never got must have ended Inactive)."""
    sim = truth.orders()
    wrong = []
    for t in list(strategy.trades):
        theirs = sim.get(t.order_id)
        if theirs is None:
            if t.status != "Inactive":
                wrong.append(f"order {t.order_id}: {t.status}, the gateway never got it")
        elif (t.status, float(t.filled)) != theirs[:2]:
            wrong.append(f"order {t.order_id}: {t.status} {t.filled} here, {theirs[0]} {theirs[1]} at the gateway")
    return wrong


def assert_fills_are_the_gateways(engine, strategy, truth: SimTruth) -> list[str]:
    """Zero lost, zero duplicated: the strategy's fills are the gateway's executions for its client, each
    delivered to on_fill once and booked on the trade of its own order. Returns the execIds."""
    sim_execs = truth.executions()
    sim_ids = [e for _, e in sim_execs]
    assert len(sim_ids) == len(set(sim_ids)) and len(sim_ids) >= 30, f"{len(sim_ids)} fills: it hardly traded"
    wait_until(lambda: len(strategy.fill_calls) >= len(sim_ids), what="every execution reaching on_fill")
    engine.on_dispatch(lambda: None)
    assert len(strategy.fill_calls) == len(set(strategy.fill_calls)), "a fill reached on_fill twice"
    assert sorted(strategy.fill_calls) == sorted(sim_ids)
    booked = engine.on_dispatch(lambda: {(t.order_id, f.exec_id) for t in strategy.trades for f in t.fills})
    assert booked == set(sim_execs) and not engine.orders.foreign_fills
    return sim_ids


def assert_no_order_id_reused(engine, strategy, truth: SimTruth, sent: list[int]) -> None:
    """Each id sent once; the gateway never answered 103/104/105 (a reused id meets a known order); every order
    the gateway holds is one the strategy placed, with the same terms (a reuse would have modified it)."""
    assert len(sent) == len(set(sent)), "an order id was sent twice"
    assert not truth.id_errors(), truth.id_errors()[:5]
    assert not [e for e in engine.router.errors if e.code in (103, 104, 105)]
    sim_orders = truth.orders()
    assert set(sim_orders) <= set(sent)
    for t in strategy.trades:
        if t.order_id in sim_orders:
            action, quantity, kind, price = sim_orders[t.order_id][2:]
            assert (action, quantity, kind) == (t.order.action, float(t.order.totalQuantity), t.order.orderType)
            assert kind != "LMT" or price == t.order.lmtPrice


class Injector:
    """Plays one fault of the plan on the gateway; returns (outages it makes, whether ids must be fresh)."""

    def __init__(self, gw, runner, truth, rng: random.Random):
        self.gw, self.runner, self.truth, self.rng = gw, runner, truth, rng
        self.sup, self.s = runner.supervisor, runner.strategies[0]
        self.arm_drop = False
        self.cut = False
        self.reconciling_when_cut: list[bool] = []
        self.in_flight = 0
        runner.engine.on_dispatch(lambda: (runner.engine.router.on_error_hooks.append(self._on_event),
                                           self.sup.disconnected_hooks.append(self._on_down)))

    def _on_event(self, err) -> None:
        """Dispatch thread. The supervisor reports BACK, then starts the reconciliation in the same call: a drop
        queued on the gateway's loop now lands while that reconciliation runs (nothing here waits)."""
        if err.code == BACK and self.arm_drop:
            self.arm_drop, self.cut = False, True
            self.gw.loop.call_soon_threadsafe(self.gw.faults.drop_client, CLIENT_ID)

    def _on_down(self, _reason) -> None:
        if self.cut:
            self.cut = False
            self.reconciling_when_cut.append(self.runner.engine.orders.reconciling)

    def _drop_after_firing(self) -> int:
        """Dispatch thread: orders out, then the drop queued on the gateway's loop (nothing waits)."""
        n = self.s.fire()
        self.gw.loop.call_soon_threadsafe(self.gw.faults.drop_client, CLIENT_ID)
        return n

    def _lost(self) -> None:
        self.gw.faults.connectivity_lost()
        wait_until(lambda: self.sup.state == "down", timeout=10, what="ibframe to see 1100")

    def play(self, kind: str) -> tuple[int, bool]:
        faults, engine = self.gw.faults, self.runner.engine
        if kind == "drop":
            assert faults.drop_client(CLIENT_ID)
        elif kind == "restart":
            faults.restart(keep_state=True, pause=self.rng.uniform(0.1, 0.4))
        elif kind in ("lost_1101", "lost_1102"):
            self._lost()
            faults.connectivity_restored(data_lost=kind == "lost_1101")
            return 1, kind == "lost_1101"
        elif kind == "lost_timed":
            data_lost = self.rng.random() < 0.5
            faults.connectivity_lost(seconds=0.3, data_lost=data_lost)
            return 1, data_lost
        elif kind == "drop_in_reconcile":
            self.arm_drop = True
            assert faults.drop_client(CLIENT_ID)
            return 2, True
        elif kind == "lost_then_drop":
            done = self.sup.recoveries
            self._lost()
            assert faults.drop_client(CLIENT_ID)
            wait_until(lambda: self.sup.recoveries > done, timeout=30, what="the reconnect while IB is away")
            reconnected = live_ids(self.runner)
            faults.connectivity_restored(data_lost=True)     # 1101 on the new socket: market data again
            wait_until(lambda: all(v != reconnected[k] for k, v in live_ids(self.runner).items()), timeout=10,
                       what="the market data asked again after 1101")
        elif kind == "drop_in_flight":
            self.in_flight += engine.on_dispatch(self._drop_after_firing)
        elif kind == "restart_in_flight":
            self.in_flight += engine.on_dispatch(self.s.fire)
            faults.restart(keep_state=True, pause=self.rng.uniform(0.1, 0.4))
        else:
            raise AssertionError(f"unknown fault {kind}")
        return 1, True


# --- part 1 --------------------------------------------------------------------------------------------------

def test_100_faults_while_trading_every_recovery_fresh_and_no_fill_lost_doubled_or_id_reused(make_gateway, tmp_path):
    t0 = time.monotonic()
    # pace_tick_by_tick=False: IB allows one tick-by-tick request per instrument per 15 s (10189), and every
    # recovery here asks for the AAPL tick line again within a second; that limit is test_pacing's subject
    gw = make_gateway(seed=SEED, pace_tick_by_tick=False)
    truth = SimTruth(gw, CLIENT_ID)
    runner = Runner(load_config(write_config(tmp_path, "chaos.yaml", gw.port, CLIENT_ID, tmp_path / "var")))
    runner.start()
    try:
        engine, sup, s = runner.engine, runner.supervisor, runner.strategies[0]
        sent: list[int] = []                           # order id of every new order sent, in order
        summaries = []
        retired: set[int] = set()                      # every request id ibframe has left (ended or resubscribed)

        def watch():
            sent.extend(t.order_id for t in s.trades)  # orders on_start sent before this hook was in place
            engine.router.finish_hooks.append(lambda req: retired.add(req.req_id))
            engine.orders.sent_hooks.append(lambda t, action: sent.append(t.order_id) if action == "place" else None)
            engine.orders.reconcile_hooks.append(summaries.append)
        engine.on_dispatch(watch)
        rng = random.Random(SEED)
        inject = Injector(gw, runner, truth, rng)
        wait_flowing(s, "the start")
        ids = live_ids(runner)
        used = set(ids.values())
        wait_served(truth, ids, retired, "the start")
        orphans: set[tuple[str, int]] = set()
        orphans_by_kind: dict[str, int] = {}
        wait_until(lambda: len(s.fill_calls) >= 3, what="the strategy trading")

        plan = fault_plan(SEED)
        per_kind: dict[str, list[float]] = {}
        heard_expected = ""
        for n, kind in enumerate(plan):
            what = f"fault {n} ({kind})"
            started, done, before = time.monotonic(), sup.recoveries, live_ids(runner)
            outages, fresh = inject.play(kind)
            wait_until(lambda: sup.recoveries >= done + outages, timeout=30,
                       what=f"{what}: {outages} recovery(ies); outages {sup.outages[done:]}")
            assert sup.recoveries == done + outages, f"{what} made {sup.recoveries - done} outages"
            after = live_ids(runner)
            if fresh:
                stale = {k: v for k, v in after.items() if v in used or v in retired}
                assert not stale, f"{what}: request ids used before came back: {stale} (was {before})"
                used |= set(after.values())
            else:
                assert after == before, f"{what}: 1102 keeps the lines, yet ids went {before} -> {after}"
            new_orphans = wait_served(truth, after, retired, what) - orphans
            orphans |= new_orphans
            orphans_by_kind[kind] = orphans_by_kind.get(kind, 0) + len(new_orphans)
            wait_flowing(s, what)
            # the recovery ends: reconciled, then on_reconnected (a recovery cut short by the next drop never
            # announces itself: the strategy hears on_disconnected again)
            heard_expected += "vv^" if kind == "drop_in_reconcile" else "v^"
            wait_until(lambda: heard(s) == heard_expected and not engine.orders.reconciling, timeout=30,
                       what=f"{what}: the reconciliation and on_reconnected (heard {heard(s)[-12:]})")
            per_kind.setdefault(kind, []).append(time.monotonic() - started)
        faults_took = time.monotonic() - t0

        # 100 outages, each ended by a recovery, none given up
        assert len(sup.outages) == 100 and sup.recoveries == 100 and sup.state == "connected"
        assert all(o.end is not None and o.how in ("reconnected", "restored 1101", "restored 1102")
                   for o in sup.outages), [o for o in sup.outages if o.how not in ("reconnected", "restored 1101",
                                                                                  "restored 1102")]
        assert sum(1 for o in sup.outages if o.how == "restored 1102") >= FAULT_MIX["lost_1102"][0]
        # the drop the moment a reconciliation began really cut one short, every time, and only those
        assert inject.reconciling_when_cut == [True] * FAULT_MIX["drop_in_reconcile"][0]
        assert sum(x.abandoned for x in summaries) == FAULT_MIX["drop_in_reconcile"][0]

        # settle: no new orders, the last reconciliation done, the trades' states as the gateway's
        engine.on_dispatch(lambda: setattr(s, "trading", False))
        wait_until(lambda: not engine.orders.reconciling, what="the last reconciliation")
        try:
            wait_until(lambda: not trade_states(s, truth), timeout=20, what="every trade in its true state")
        except AssertionError:
            raise AssertionError(f"trades not in the gateway's state: {trade_states(s, truth)[:10]}") from None

        sim_ids = assert_fills_are_the_gateways(engine, s, truth)
        assert_no_order_id_reused(engine, s, truth, sent)
        refused = dict(s.refused)
        assert not s.refused_while_up, s.refused_while_up[:3]
        assert refused.get("connection", 0) > 0            # it kept trying while down: refused, never queued

        durations = [o.duration for o in sup.outages]
        announced = [at - max(o.start for o in sup.outages if o.start <= at) for kind, _, at in s.events
                     if kind == "up"]          # outage start -> on_reconnected (resubscribed and reconciled)
        attempts = [o.attempts for o in sup.outages if o.how == "reconnected"]
        print(f"\nchaos: 100 outages in {faults_took:.1f}s ({len(plan)} faults); recovery median "
              f"{median(durations):.3f}s, max {max(durations):.3f}s; until on_reconnected (reconciled) median "
              f"{median(announced):.3f}s, max {max(announced):.3f}s; reconnect attempts median {median(attempts)}, "
              f"max {max(attempts)}; {len(sent)} orders sent, {len(s.trades)} trades, {len(sim_ids)} fills, "
              f"{inject.in_flight} in flight at a cut, refused {refused}; "
              f"on_reconnected {heard(s).count('^')}x; reconciliations abandoned "
              f"{sum(x.abandoned for x in summaries)}; "
              f"orphan streams at the gateway {len(orphans)} {orphans_by_kind}; per fault kind (s, median/max): "
              + ", ".join(f"{k} {median(v):.2f}/{max(v):.2f}" for k, v in sorted(per_kind.items())))
    finally:
        runner.stop()
    # the journal the rails kept through all of it holds the same executions, once each
    assert sorted(journal_rows(tmp_path / "var")) == sorted((e, o) for o, e in truth.executions())


# --- part 2 --------------------------------------------------------------------------------------------------

# where a run is killed: the first log line containing the marker, then a seeded random delay (seconds)
KILL_POINTS = (("connected to", 0.0, 0.0),                 # connected, the journal not yet reconciled
               ("asked TWS for executions", 0.0, 0.05),    # the journal's reconciliation in flight
               ("started on", 0.0, 2.0))                   # trading
KILL_WEIGHTS = (3, 3, 14)
PLACED = re.compile(r"placed order (\d+):")
CLEAN_START_BREAKERS = re.compile(r"Traceback|^\S+ \S+ ERROR |^error:", re.M)   # a crash, an ERROR log, a refusal


def journal_rows(state_dir: Path) -> list[tuple[str, int]]:
    """(execId, orderId) of every execution in the run's journal (<state_dir>/journal-<account>.sqlite); none
    before a run got as far as opening it."""
    paths = list(state_dir.glob("journal-*.sqlite"))
    if not paths:
        return []
    (path,) = paths
    frame = Journal(path).executions()
    return list(zip(frame.exec_id, frame.order_id))


def journal_placed(state_dir: Path) -> list[int]:
    (path,) = state_dir.glob("journal-*.sqlite")
    orders = Journal(path).orders()
    return [int(i) for i in orders[orders.action == "place"].order_id]


def id_file_floor(state_dir: Path) -> int:
    """The next order id the runner's id file allows (it must stay above every id the gateway saw)."""
    (path,) = state_dir.glob("order-ids-*.txt")
    return int(path.read_text().strip())


def test_20_kill_9_restarts_of_the_runner_lose_no_fill_and_reuse_no_order_id(make_gateway, tmp_path):
    t0 = time.monotonic()
    # the gateway outlives every run; its orders, executions and ids are in its state file (--state).
    # pace_tick_by_tick=False as above (each run asks for the same lines again within seconds)
    gw = make_gateway(seed=SEED + 1, pace_tick_by_tick=False, state_file=str(tmp_path / "sim-state.json"))
    truth = SimTruth(gw, KILL_CLIENT_ID)
    state_dir = tmp_path / "var"
    config = write_config(tmp_path, "chaos.yaml", gw.port, KILL_CLIENT_ID, state_dir, subscribe=["quote"])
    rng = random.Random(SEED)
    logs: list[str] = []
    to_start, kills = [], []
    for k in range(20):
        marker, low, high = rng.choices(KILL_POINTS, KILL_WEIGHTS)[0]
        run = RunnerProcess(config, tmp_path / f"run-{k:02d}.log").start()
        try:
            wait_until(lambda: run.saw(marker) or run.proc.poll() is not None, timeout=60,
                       what=f"run {k} reaching {marker!r}")
            assert run.proc.poll() is None, f"run {k} ended by itself (exit {run.proc.returncode}):\n" \
                                            f"{run.text()[-3000:]}"
            if marker == "started on":
                to_start.append(time.monotonic() - run.started_at)
            time.sleep(rng.uniform(low, high))
            kills.append(marker)
        finally:
            code = run.kill9()
        text = run.text()
        logs.append(text)
        assert code == -9, f"run {k} was not killed by SIGKILL (exit {code})"
        assert not CLEAN_START_BREAKERS.search(text), f"run {k} did not start cleanly:\n{text[-3000:]}"
        assert not re.search(r"IB error 10[345]\b", text), f"run {k}: an order id was refused as reused"
        # what a kill -9 left behind is whole: the journal reads back, each execution once and made by the
        # gateway; the id file holds a number above every id the gateway saw from this client
        wait_until(lambda: not truth.connected(), what=f"the gateway noticing run {k} is gone")
        rows = journal_rows(state_dir)
        sim_ids = {e for _, e in truth.executions()}
        assert len(rows) == len({e for e, _ in rows}), f"after run {k} the journal holds an execution twice"
        assert {e for e, _ in rows} <= sim_ids, f"after run {k} the journal holds executions the gateway never made"
        sim_orders = truth.orders()
        assert not sim_orders or id_file_floor(state_dir) > max(sim_orders), \
            f"after run {k} the id file ({id_file_floor(state_dir)}) is not above the gateway's ids ({max(sim_orders)})"
    killed_took = time.monotonic() - t0

    # a last run with the same settings but not trading: it must start, reconcile, and stop cleanly
    quiet = write_config(tmp_path, "chaos-quiet.yaml", gw.port, KILL_CLIENT_ID, state_dir, subscribe=["quote"],
                         trade=False)
    sim_execs = truth.executions()
    last = RunnerProcess(quiet, tmp_path / "run-last.log").start()
    try:
        wait_until(lambda: last.saw("started on"), timeout=60, what="the last run starting")
        wait_until(lambda: {e for e, _ in journal_rows(state_dir)} >= {e for _, e in sim_execs}, timeout=30,
                   what="the journal catching up with the gateway's executions")
    finally:
        code = last.interrupt()
    assert code == 0, last.text()[-3000:]
    logs.append(last.text())
    assert not CLEAN_START_BREAKERS.search(logs[-1]), logs[-1][-3000:]
    assert not re.search(r"IB error 10[345]\b", logs[-1])

    # zero lost, zero duplicated fills: the journal holds exactly the gateway's executions for this client
    sim_execs = truth.executions()
    rows = journal_rows(state_dir)
    assert sorted(rows) == sorted((e, o) for o, e in sim_execs), "the journal and the gateway disagree"
    assert len(sim_execs) >= 30, f"only {len(sim_execs)} fills in 20 runs: the strategy hardly traded"
    # zero reused order ids: each id sent once by all runs together, never refused as reused by the gateway
    per_run = [[int(i) for i in PLACED.findall(text)] for text in logs]
    placed = [i for ids in per_run for i in ids]
    assert len(placed) == len(set(placed)), "two runs sent the same order id"
    journaled = journal_placed(state_dir)
    assert len(journaled) == len(set(journaled)), "the journal holds an order id placed twice"
    assert not truth.id_errors(), truth.id_errors()[:5]
    sim_orders = truth.orders()
    # an order the gateway got from a run killed before it could log or journal the send: only ever the last
    # orders of a run, above its last logged id and below the next run's first
    unlogged = sorted(set(sim_orders) - set(placed) - set(journaled))
    gaps = [(max(ids), min([i for later in per_run[k + 1:] for i in later], default=10 ** 9))
            for k, ids in enumerate(per_run) if ids]
    assert all(any(low < i < high for low, high in gaps) for i in unlogged), \
        f"the gateway holds orders {unlogged} no run logged or journaled, not from the moment of a kill"
    # and the other way: orders a run sent in its last moment that never reached the gateway (lost with the
    # killed socket) are each the last of their run: above every id the gateway got from it
    never_arrived = sorted(set(placed) - set(sim_orders))
    for ids in per_run:
        arrived = [i for i in ids if i in sim_orders]
        assert not arrived or all(i > max(arrived) for i in ids if i not in sim_orders), \
            f"a run's order {sorted(set(ids) - set(sim_orders))} never reached the gateway, yet later ones did"
    assert all(status in ("Filled", "Cancelled", "Inactive") for status, *_ in sim_orders.values()), \
        "the last run's on_stop: cancel left orders working"
    print(f"\nkill -9: 20 runs killed ({', '.join(f'{m!r} x{kills.count(m)}' for m, _, _ in KILL_POINTS)}) in "
          f"{killed_took:.1f}s; start to trading median {median(to_start):.2f}s, max {max(to_start):.2f}s; "
          f"{len(sim_execs)} fills, {len(sim_orders)} orders at the gateway, {len(placed)} placed in the logs, "
          f"{len(unlogged)} sent in a run's last moment and neither logged nor journaled {unlogged}, "
          f"{len(never_arrived)} logged as placed in a run's last moment and lost with its socket; "
          f"whole test {time.monotonic() - t0:.1f}s")
