"""A counter that threads can bump without a lock and without losing a count."""

from __future__ import annotations

import itertools
from collections.abc import Callable


class Count:
    """An exact, lock-free counter for hot paths (registry stats, per-config use counts).

    ``hit()`` is the bound ``__next__`` of an ``itertools.count``: one C call, no Python
    frame, made atomic by the GIL, so concurrent threads never lose an increment (``x += 1``
    can). `total` reads the count from its repr (``count(41)``) without consuming a tick, so
    it takes no lock either: nothing here can be held by another thread when a process forks.
    """

    __slots__ = ("_count", "hit")

    hit: Callable[[], int]
    """Count one; returns the count before this one (a tick of a clock)."""

    def __init__(self) -> None:
        self._count = itertools.count()
        self.hit = self._count.__next__

    def total(self) -> int:
        """How many times `hit` was called so far."""
        return int(repr(self._count)[6:-1])  # "count(N)": N is the next value, so N calls so far
