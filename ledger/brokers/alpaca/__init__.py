"""The Alpaca broker, on alpaca-py: `broker` (the adapter the router calls), `client`
(alpaca-py's clients with timeouts, exact decimals and the ledger's retry rule), `models`
(Alpaca's JSON read tolerantly into the port's types) and `errors` (Alpaca's failures as
`FailureKind`s: the one place that reads Alpaca's codes)."""
