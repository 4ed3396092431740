"""The paper broker: order entry and rules, working orders, matching, fills, algos, order messages.

Owns: every order's lifecycle (`broker`), TWS's checks before an order exists (`order_entry`,
`order_rules`, `order_precautions`, `validation`, `algos`), working orders against the market
(`work`, `live`, `matching`), executions (`fills`), what clients ask about orders
(`order_queries`), the order requests' handlers (`orders`), the order wire layer (`order_records`,
`order_requests_wire`, `order_answers_wire`), its messages (`notify`) and its `--state` data
(`broker_state`).

Must never: change the market (it only reads books and quotes) or compute margin itself (the
ledger in `accounts` answers check_order).
"""
