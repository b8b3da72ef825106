"""What tests and benchmarks share: doubles for the ledger's surroundings (`doubles`), the
histories they write (`histories`), and the clock events are stamped by (`clock`).

The Alpaca sandbox itself is the package `sandbox`."""
