"""Orders out and what comes back: builders, trades, the order manager and the portfolio."""
