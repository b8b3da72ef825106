"""The write path's hot loop: eventsourcing's transcoder, with less Python per value.

A sync that brings thousands of fills maps every event to JSON in one save. The JSON
encoder is C, but each Decimal, datetime and UUID in an event goes back to Python twice
(`JSONTranscoder._encode_obj`, then the transcoding's `encode`), and the encoder keeps a
table of every container it enters to catch cycles that event state cannot have. The
subclass here writes exactly the bytes eventsourcing's own transcoder writes, so stores
written by either read with either.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from operator import attrgetter
from typing import Any

from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Transcoding,
    UUIDAsHex,
)

# What eventsourcing's own transcodings compute, as the C functions they call. Only
# these exact classes are short-cut: a subclass may encode differently.
_SAME_AS: dict[type[Transcoding], Callable[[Any], Any]] = {
    UUIDAsHex: attrgetter("hex"),
    DecimalAsStr: Decimal.__str__,
    DatetimeAsISO: datetime.isoformat,
}

class LedgerTranscoder(JSONTranscoder):
    """`JSONTranscoder` whose encoding of a registered type is one Python call, not two."""

    def __init__(self) -> None:
        super().__init__()
        # An event's state is a tree of plain values, never a cycle: the encoder's check
        # for one (a dict entry per container) changes nothing it writes.
        self.encoder = json.JSONEncoder(
            default=self._encode_obj,
            separators=(",", ":"),
            ensure_ascii=False,
            check_circular=False,
        )
        self._encoders: dict[type, tuple[str, Callable[[Any], Any]]] = {}

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        encode = _SAME_AS.get(type(transcoding), transcoding.encode)
        self._encoders[transcoding.type] = (transcoding.name, encode)

    def _encode_obj(self, o: Any) -> dict[str, Any]:
        try:
            name, encode = self._encoders[type(o)]
        except KeyError:
            # Not registered: the library's own error.
            return super()._encode_obj(o)
        return {"_type_": name, "_data_": encode(o)}

