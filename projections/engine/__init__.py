"""How the views are stored, kept current and sped up: the view tables (`tables`, `store`,
`reads`), reading events in pages (`runner`, `read_ahead`), folding them into tables
(`tracked_fold`, `writer`, `rebuilder`), the audit index of trading days (`audit_index`),
the one paged replay (`replay`, `day_replay`), the in-memory fold (`memory_fold`) and
digests (`digest`)."""
