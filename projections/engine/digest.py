"""A view's rows in canonical order, its digest, and the rows two versions disagree on."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from projections.engine.store import Tx, ViewStore
from projections.engine.tables import Row, View

Dump = dict[str, list[Row]]  # live table name -> rows sorted by key


def dump(store: ViewStore, tx: Tx, view: View, suffix: str = "") -> Dump:
    """Every row of the view in key order (byte order for text, the same on both databases)."""
    return {table.name: store.select_in_key_order(tx, table, suffix) for table in view.tables}


def digest(view: View, rows: Dump) -> str:
    """sha256 over each table's name and its rows in key order, as one compact JSON array.

    Values are only text, integers and null, so the JSON of equal views is the same bytes
    on any machine, and anyone can recompute a digest from a plain dump of the tables.
    """
    hasher = hashlib.sha256()
    for table in view.tables:
        document = json.dumps(rows.get(table.name, []), ensure_ascii=False, separators=(",", ":"))
        hasher.update(f"{table.name}\n{document}\n".encode())
    return hasher.hexdigest()


def row_count(rows: Dump) -> int:
    return sum(len(table_rows) for table_rows in rows.values())


@dataclass(frozen=True)
class RowDifference:
    table: str
    key: dict[str, Any]
    change: str  # "added", "removed" or "changed"
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def changed_columns(self) -> list[str]:
        if self.before is None or self.after is None:
            return []
        return [c for c in self.after if self.before.get(c) != self.after.get(c)]


def differences(view: View, before: Dump, after: Dump) -> list[RowDifference]:
    """Every row that differs between two versions of a view, in key order."""
    found: list[RowDifference] = []
    for table in view.tables:
        names = table.column_names
        old = {table.key_of(row): row for row in before.get(table.name, ())}
        new = {table.key_of(row): row for row in after.get(table.name, ())}
        for key in sorted(set(old) | set(new)):
            was, now = old.get(key), new.get(key)
            if was == now:
                continue
            change = "added" if was is None else "removed" if now is None else "changed"
            found.append(
                RowDifference(
                    table=table.name,
                    key=dict(zip(table.key, key, strict=True)),
                    change=change,
                    before=None if was is None else dict(zip(names, was, strict=True)),
                    after=None if now is None else dict(zip(names, now, strict=True)),
                )
            )
    return found
