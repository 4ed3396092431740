"""Shared helpers of the simulator's account and margin tests: a universe with chosen accounts,
a gateway started on a known Wednesday morning, and direct ledger fills."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from ibframe.sim import SimGateway
from ibframe.sim.market.universe import DEFAULT_UNIVERSE

AAPL, SPY, EURUSD, BOND = 265598, 756733, 12087792, 652386178
# a Wednesday morning in regular trading hours, so days and sessions are known
START = dt.datetime(2026, 11, 18, 10, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()


def universe_with(tmp_path: Path, *accounts: dict) -> str:
    raw = yaml.safe_load(DEFAULT_UNIVERSE.read_text())
    raw["accounts"] = list(accounts)
    path = tmp_path / "universe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.fixture
def sim(make_gateway, tmp_path):
    """sim(*accounts) -> a gateway whose universe has exactly these accounts, started at START."""
    def build(*accounts: dict, **options) -> SimGateway:
        return make_gateway(universe=universe_with(tmp_path, *accounts), start_time=START, seed=5, **options)
    return build

def fill(gw: SimGateway, con_id: int, side: str, quantity: float, price: float | None = None,
         order_id: int = 1, account: str | None = None) -> float:
    def run():
        inst = gw.universe.get(con_id)
        px = price if price is not None else gw.ledger.mark(inst)
        fee = gw.ledger.commission_for(inst, quantity, px)
        return gw.ledger.apply_fill(account or gw.ledger.default_account(), inst, side, quantity, px, fee,
                                    gw.now(), order_id)
    return gw.call(run)
