"""Positions and account values, kept current from TWS's account callbacks.

Owns: per (account, conId) positions with average cost and marks, and the account's tagged
values (NetLiquidation, ExcessLiquidity, …). Read as DataFrames. Dispatch thread only.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from ibapi.contract import Contract

from ..contracts import label


@dataclass(slots=True)
class Position:
    account: str
    contract: Contract
    quantity: float
    avg_cost: float
    market_price: float | None = None
    market_value: float | None = None
    unrealized_pnl: float | None = None
    realized_pnl: float | None = None


class Portfolio:
    def __init__(self):
        self.positions: dict[tuple[str, int], Position] = {}
        self.values: dict[tuple[str, str, str], str] = {}     # (account, key, currency) -> value

    def on_position(self, account: str, contract: Contract, quantity: float, avg_cost: float) -> None:
        key = (account, contract.conId)
        pos = self.positions.get(key)
        if pos is None:
            self.positions[key] = Position(account, contract, quantity, avg_cost)
        else:
            pos.quantity, pos.avg_cost = quantity, avg_cost

    def on_portfolio(self, contract, quantity, market_price, market_value, avg_cost, unrealized, realized,
                     account) -> None:
        self.on_position(account, contract, quantity, avg_cost)
        pos = self.positions[(account, contract.conId)]
        pos.market_price, pos.market_value = market_price, market_value
        pos.unrealized_pnl, pos.realized_pnl = unrealized, realized

    def on_account_value(self, key: str, value: str, currency: str, account: str) -> None:
        self.values[(account, key, currency)] = value

    def position(self, con_id: int, account: str | None = None) -> float:
        return sum(p.quantity for (acct, cid), p in self.positions.items()
                   if cid == con_id and (account is None or acct == account))

    def value(self, key: str, currency: str = "USD", account: str | None = None) -> float | None:
        for (acct, k, cur), v in self.values.items():
            if k == key and cur == currency and (account is None or acct == account):
                try:
                    return float(v)
                except ValueError:
                    return None
        return None

    def positions_frame(self) -> pd.DataFrame:
        rows = [{"account": p.account, "instrument": label(p.contract), "conId": p.contract.conId,
                 "quantity": p.quantity, "avg_cost": p.avg_cost, "market_price": p.market_price,
                 "unrealized_pnl": p.unrealized_pnl, "realized_pnl": p.realized_pnl}
                for p in self.positions.values()]
        return pd.DataFrame(rows)
