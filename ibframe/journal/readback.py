"""What a run reads back from its journal at start, kept so a replay reads the same.

A live run reads two things from its journal before any strategy starts: when its last execution was (the
reconciliation asks TWS for executions from a little before it) and the executions of the last business days
(the PDT guard's restart-safe count of day trades). A replay journals into an empty temporary file, so without
help it would ask TWS for other executions than the live run did (a divergence from the recording) and count no
earlier day trades (other PDT decisions).

Owns: `ReadBack`, which answers those two questions from a Journal and keeps each answer (`seen`, plain JSON
the runner writes into the recording as the mark 'journal_read'), and `Replayed`, which answers them from that
mark. Must never: write to the journal, or answer a question the mark does not hold (it says None / nothing).
"""
from __future__ import annotations

MARK = "journal_read"


class ReadBack:
    """A Journal's answers to the start-up questions, remembered for the recording."""

    def __init__(self, journal):
        self.journal = journal
        self.seen: dict = {}

    def last_execution_time(self) -> float | None:
        value = self.journal.last_execution_time()
        self.seen["last_execution_time"] = value
        return value

    def day_trade_executions(self, since, account: str | None = None) -> list[tuple[float, int, str, float]]:
        rows = self.journal.day_trade_executions(since, account)
        self.seen["day_trade_executions"] = [list(r) for r in rows]
        return rows


class Replayed:
    """The live run's answers, from its recording's 'journal_read' mark."""

    def __init__(self, mark: dict):
        self.mark = mark

    def last_execution_time(self) -> float | None:
        value = self.mark.get("last_execution_time")
        return float(value) if value is not None else None

    def day_trade_executions(self, since, account: str | None = None) -> list[tuple[float, int, str, float]]:
        return [(float(t), int(c), str(side), float(shares))
                for t, c, side, shares in self.mark.get("day_trade_executions") or []]
