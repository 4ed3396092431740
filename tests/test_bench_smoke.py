"""`python -m ibframe.bench --quick --case NAME` runs each case to the end: its row prints and every run verified.

A smoke test only: the benchmark's numbers are not checked (no timing assertion belongs in the test
suite); what is checked is that each case ran in its processes, that every burst, round trip, book,
replay, stream and bar series arrived complete (each run verifies its own counts), that the cases
with peers measured them in the same run (ib_async and stock ibapi rows and their ratios), and that
the table and the JSON report say so.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ibframe.bench import CASES

ROOT = Path(__file__).resolve().parents[1]

# rows a case must print: the peers measured next to ibframe in the same run
PEER_ROWS = {
    "throughput": ["ib_async", "stock ibapi", "ratio ibframe / ib_async", "ratio ibframe / stock"],
    "latency": ["ib_async tick -> updateEvent -> placeOrder: p50", "ibframe p50 above the echo floor",
                "ib_async p50 above the echo floor", "ratio ibframe / ib_async"],
    "latency_load": ["ibframe (risk rules on) tick -> order under load: p99", "ib_async tick -> order under load: p99",
                     "background rate achieved"],
    "memory": ["per instrument, subscribed", "per instrument, end", "growth from halfway to the end"],
}


@pytest.mark.parametrize("name", CASES)
def test_each_quick_case_prints_its_table_row_and_verified_its_counts(tmp_path, name):
    """One case per test (each in its own processes, so the suite's workers share them out), one run per part."""
    report = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "ibframe.bench", "--quick", "--repeat", "1", "--case", name,
                           "--json", str(report)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    table = done.stdout
    assert "median" in table and "min" in table and "max" in table
    title = importlib.import_module(f"ibframe.bench.{name}").TITLE
    assert f"{1:<3}{title}" in table
    assert "FAILED" not in table and "failed run" not in table

    data = json.loads(report.read_text())
    assert data["quick"] is True and data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    assert [case["name"] for case in data["cases"]] == [name]
    for case in data["cases"]:
        assert case["rows"] and case["failures"] == [], case
        for row in case["rows"]:
            assert row["verified"] and row["samples"], (case["name"], row)
            assert row["min"] <= row["median"] <= row["max"]
        labels = [row["label"] for row in case["rows"]]
        for fragment in PEER_ROWS.get(name, []):
            assert any(fragment in label for label in labels), (name, fragment, labels)
