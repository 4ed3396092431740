"""A trading process for tests/test_journal_crash.py, killed with SIGKILL while it trades.

`python tests/journal_crash_child.py PORT JOURNAL STATE_DIR CLIENT_ID`: an Engine connected to the
simulator the test runs, the compliance journal installed, and a strategy that buys and sells one
AAPL share alternately, one market order at a time, as fast as they fill (every 50 ms at most), until
the process is killed. Prints READY once the strategy trades. No clean stop exists on purpose.
"""
from __future__ import annotations

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ibframe.contracts import Stock  # noqa: E402
from ibframe.engine import Engine  # noqa: E402
from ibframe.journal import JournalConfig, install  # noqa: E402
from ibframe.strategy import Strategy  # noqa: E402


class Churner(Strategy):
    def on_start(self):
        self.q = self.quote("AAPL")
        self.side = "BUY"
        self.working = None
        self.schedule(every=0.05)

    def on_timer(self):
        if self.q.ask is None or (self.working is not None and not self.working.done):
            return
        self.working = self.buy("AAPL", 1) if self.side == "BUY" else self.sell("AAPL", 1)
        self.side = "SELL" if self.side == "BUY" else "BUY"


def main(port: int, journal_path: str, state_dir: str, client_id: int) -> None:
    engine = Engine("127.0.0.1", port, client_id, state_dir=state_dir).start()
    install(engine, JournalConfig(path=journal_path, snapshot_every=0.5))
    aapl = engine.qualify(Stock("AAPL"))
    engine.subscribe_account()
    churner = Churner(engine, "churner", {}, {"AAPL": aapl})
    engine.on_dispatch(churner._start)
    print("READY", flush=True)
    threading.Event().wait()            # trade until SIGKILL


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]))
