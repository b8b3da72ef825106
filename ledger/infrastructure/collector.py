"""Python's cycle collector, paused for a block of work that makes many objects and no cycles.

A rebuild, a reconcile run with thousands of symbols and a save of thousands of events each
allocate hundreds of thousands of small objects (events, rows, decimals, records) that
never form reference cycles. Every 700 allocations start a collection that walks the young
ones, and now and then one walks the whole heap, for a large share of the block's time
(docs/performance.md, "The cycle collector paused for large blocks of work"). Reference
counting still frees all of it; the collector resumes when the block ends, however it
ends. A collector the caller had already turned off stays off, so blocks nest.
"""

from __future__ import annotations

import gc


class CollectorPaused:
    """`with CollectorPaused():` pauses the collector for the block; `when=False` leaves it
    alone (small saves start no collection anyway).

    A class, not a generator: leaving a generator allocates (its StopIteration), and the
    first allocation after the collector is back would walk everything the block is about
    to hand back (a save's recordings)."""

    def __init__(self, *, when: bool = True) -> None:
        self.pausing = when and gc.isenabled()

    def __enter__(self) -> None:
        if self.pausing:
            gc.disable()

    def __exit__(self, *exc_info: object) -> None:
        if self.pausing:
            gc.enable()
