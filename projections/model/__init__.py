"""What the views mean, with no storage: positions and lines (`positions`), one book
(`book`), the order and account records (`records`), the event catalogue (`catalogue`:
what each event class does to each view, `effects`; how the audit describes it,
`timeline`) and the fold over events (`fold`)."""
