"""ibframe's risk layer: the one door every order passes before it may reach TWS.

Modules: `base` (shared types), `gate` (RiskGate, Deferred, the OrderDoor at placeOrder), `limits`
(the pre-trade rules), `config` (the `risk:` YAML section), `layer` (RiskLayer.install builds it all on
an engine), `state` (ACTIVE / REDUCING / HALTED), `kill` (the kill switch), `pdt`, `margin`, `whatif`.
This package file imports nothing, so the order manager can import the gate without a cycle.
"""
