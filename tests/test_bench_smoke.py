"""`python -m ibframe.bench --quick` runs every case to the end: the table prints and every run verified.

A smoke test only: the benchmark's numbers are not checked (no timing assertion belongs in the test
suite); what is checked is that each case ran in its processes, that every burst, round trip, book,
replay, stream and bar series arrived complete (each run verifies its own counts), and that the
table and the JSON report say so.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from ibframe.bench import CASES

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_prints_one_table_and_every_case_verified_its_counts(tmp_path):
    report = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, "-m", "ibframe.bench", "--quick", "--json", str(report)],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-4000:]}"
    table = done.stdout
    assert "median" in table and "min" in table and "max" in table
    for number, name in enumerate(CASES, 1):
        title = importlib.import_module(f"ibframe.bench.{name}").TITLE
        assert f"{number:<3}{title}" in table
    assert "FAILED" not in table and "failed run" not in table

    data = json.loads(report.read_text())
    assert data["quick"] is True and data["machine"]["nproc"] >= 1 and data["machine"]["python"]
    assert [case["name"] for case in data["cases"]] == list(CASES)
    for case in data["cases"]:
        assert case["rows"] and case["failures"] == [], case
        for row in case["rows"]:
            assert row["verified"] and row["samples"], (case["name"], row)
            assert row["min"] <= row["median"] <= row["max"]
