"""Regenerate recordings/ma_cross.jsonl.gz, the session `make sweep` replays.

    .venv/bin/python recordings/record_ma_cross.py [recordings/ma_cross.jsonl.gz]

Runs config/ma_cross.yaml live for 60 s against the embedded simulator (the config's seed and speed,
so 10 minutes of market) at a pinned start, at the simulator's newest server version (orders and most
answers travel as protobuf). Its state (order ids, journal) goes to a temporary folder, so the order ids
start where the simulator's nextValidId says.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = "2026-11-18 10:00"                 # a Wednesday, New York time: a regular session
SECONDS = 60.0


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from ibframe.config import GatewayConfig, load_config
    from ibframe.run import Runner, prepare_process
    from ibframe.sim import SimConfig, SimGateway
    from ibframe.sim.market.hours import start_time

    target = Path(argv[0]) if argv else ROOT / "recordings" / "ma_cross.jsonl.gz"
    cfg = load_config(ROOT / "config" / "ma_cross.yaml")
    prepare_process(cfg)
    sim = SimConfig(port=0, seed=cfg.sim.seed, speed=cfg.sim.speed, any_symbol=True, start_time=start_time(START))
    with SimGateway(sim) as gw, tempfile.TemporaryDirectory(prefix="ibframe-record-") as tmp:
        cfg.gateway = GatewayConfig("tws", "127.0.0.1", gw.port, cfg.gateway.client_id)
        cfg.state_dir, cfg.record = tmp, str(target)
        runner = Runner(cfg)
        try:
            runner.start()
            time.sleep(SECONDS)
        finally:
            runner.stop()
    print(f"wrote {target} ({target.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
