"""What the CLI and the web read: the live views (`views`), the books at a past instant
(`as_of`), a day's audit (`audit`), the books page (`books`, `explained`), the chart
(`history`), the transactions page (`transactions`), the documents of `positions --json`
(`positions`), reconciliation runs (`reconciliations`) and a reconciliation's facts
(`reconcile_books`)."""
