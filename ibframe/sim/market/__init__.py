"""The simulated market: instruments, sessions, price paths, books, history, options — and the
market-data requests that read them.

Owns: the universe of instruments and its sec-def queries (`universe`, `lookup`, `contracts`), the
instruments --any-symbol generates for unknown US stock symbols (`any_symbol`),
trading hours and session clocks (`hours`, `trading_time`, `ordertime`), the seeded live market
and its books (`market`), the synthetic past (`price_path`, `history`, `bars`), option pricing and
quoting (`blackscholes`, `options`, `option_market`), price shocks (`shocks`), and the market-data
request handlers (`mktdata` + `tick_sources`, `depth`, `tickbytick`, `historical`,
`historical_ticks`, `realtime_bars`), which reach the gateway through `host.MarketHost`.

Must never: import the broker, the accounts or the faults, touch orders or accounts, or use
unseeded randomness; the market only moves when the server steps it.
"""
