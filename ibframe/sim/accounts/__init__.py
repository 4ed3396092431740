"""The simulated accounts: the ledger, margin, day trades, and the account requests.

Owns: cash, positions, P&L and the book-keeping of every fill (`account`), margin requirements and
commissions (`margin`), day trades and the PDT rule (`daytrades`), the figures TWS reports about an
account (`account_values`) and the account, position and P&L requests (`account_requests`).

Must never: decide anything about orders (the broker asks `Ledger.check_order`), move the market,
or change the ledger from a request handler (requests only read valuations and listen).
"""
