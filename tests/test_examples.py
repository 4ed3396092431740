"""Every example config runs end to end against the embedded simulator and trades."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ibframe.journal import Journal

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["ma_cross", "mean_reversion", "book_imbalance"])
def test_example_runs_and_reports_and_its_journal_holds_the_run(name, tmp_path):
    """The example as shipped (default rails, default journal), with snapshots every 2 s instead of every minute
    so a 12-second run takes several; the journal it leaves opens in pandas and agrees with the summary."""
    cfg = (ROOT / "config" / f"{name}.yaml").read_text() + f"state_dir: {tmp_path}\njournal: {{snapshot_every: 2s}}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(cfg)
    proc = subprocess.run([sys.executable, "-m", "ibframe.run", str(path), "--duration", "12s"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = re.search(r"^== (.*): (\d+) orders?, (\d+) fills?", proc.stdout, re.M)
    assert summary, proc.stdout
    assert "Traceback" not in proc.stderr

    strategy, orders, fills = summary[1], int(summary[2]), int(summary[3])
    [journal_file] = tmp_path.glob("journal-*.sqlite")
    journal = Journal(journal_file)
    placed = journal.orders(strategy=strategy)
    assert (placed["action"] == "place").sum() == orders
    executions = journal.executions(strategy=strategy)
    assert len(executions) == fills and executions["exec_id"].is_unique
    assert set(executions["order_id"]) <= set(placed["order_id"])
    snapshots = journal.account()
    assert snapshots["time"].nunique() >= 2 and "NetLiquidation" in set(snapshots["key"])


def test_ctrl_c_stops_cleanly_with_exit_0(tmp_path):
    import signal
    import time
    cfg = (ROOT / "config" / "ma_cross.yaml").read_text().replace("duration: 60s", "duration: 10m")
    path = tmp_path / "ma.yaml"
    path.write_text(cfg + f"state_dir: {tmp_path}\n")
    proc = subprocess.Popen([sys.executable, "-m", "ibframe.run", str(path)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    started = False
    lines = []
    while time.monotonic() < deadline and not started:     # wait for the strategy to start
        line = proc.stderr.readline()
        lines.append(line)
        started = "strategy ma-cross started" in line
    assert started, "".join(lines)[-2000:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "== ma-cross:" in out and "Traceback" not in err
