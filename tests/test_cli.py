"""The `ibframe` command: its help names every tool, each subcommand is that tool, mistakes are named."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ibframe.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[1]


def ibframe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ibframe", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_help_lists_every_command_with_what_it_does():
    out = ibframe("--help")
    assert out.returncode == 0
    for name in ("run", "sim", "replay", "journal", "report", "history", "sweep", "bench"):
        assert f"  {name} " in out.stdout, out.stdout
    assert "ibframe run config/ma_cross.yaml" in out.stdout


def test_no_command_or_an_unknown_one_says_what_the_commands_are_and_exits_2():
    bare = ibframe()
    assert bare.returncode == 2 and "usage: ibframe" in bare.stdout
    wrong = ibframe("sweeep")
    assert wrong.returncode == 2
    assert "unknown command 'sweeep'" in wrong.stderr and "run, sim, replay" in wrong.stderr


def test_each_command_is_its_tool(tmp_path):
    for name in SUBCOMMANDS:
        out = ibframe(name, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, (name, out.stderr)
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategies: [\n")
    via_command = ibframe("run", str(bad))
    direct = subprocess.run([sys.executable, "-m", "ibframe.run", str(bad)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert via_command.returncode == direct.returncode != 0
    assert via_command.stderr == direct.stderr and "bad.yaml" in direct.stderr


def test_the_console_script_is_installed_beside_the_interpreter():
    script = Path(sys.executable).parent / "ibframe"
    assert script.exists(), "pip install -e . (make install) creates the ibframe command"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "  sim " in out.stdout


def test_run_and_history_read_gateway_the_same_way_and_refuse_a_live_port(capsys):
    from ibframe.history_cli import main as history_main
    from ibframe.run import main as run_main
    config = str(ROOT / "config" / "ma_cross.yaml")
    for main, args, live_hint in ((run_main, [config], "set 'live: true' under gateway"),
                                  (history_main, ["AAPL", "--start", "2026-11-02", "--end", "2026-11-03"],
                                   "pass --live")):
        assert main([*args, "--gateway", "localhost"]) == 2
        assert "--gateway 'localhost': write 'sim' (the embedded simulator) or HOST:PORT" in capsys.readouterr().err
        assert main([*args, "--gateway", "127.0.0.1:7496"]) == 2
        err = capsys.readouterr().err
        assert "7496 is a LIVE trading port (TWS 7496, IB Gateway 4001)" in err and live_hint in err
        assert main([*args, "--gateway", "127.0.0.1:70000"]) == 2
        assert "70000 is not a TCP port" in capsys.readouterr().err
