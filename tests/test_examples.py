"""Every example config runs end to end against the embedded simulator and trades."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["ma_cross", "mean_reversion", "book_imbalance"])
def test_example_runs_and_reports(name, tmp_path):
    cfg = (ROOT / "config" / f"{name}.yaml").read_text() + f"state_dir: {tmp_path}\n"
    path = tmp_path / f"{name}.yaml"
    path.write_text(cfg)
    proc = subprocess.run([sys.executable, "-m", "ibframe.run", str(path), "--duration", "12s"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "== " in proc.stdout and "orders" in proc.stdout and "Traceback" not in proc.stderr
