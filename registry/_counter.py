"""A counter that threads can bump without a lock and without losing a count."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable


class Count:
    """An exact, lock-free counter for hot paths (registry stats, per-config use counts).

    ``hit()`` is the bound ``__next__`` of an ``itertools.count``: one C call, no Python
    frame, made atomic by the GIL, so concurrent threads never lose an increment (``x += 1``
    can). `total` calls ``next()`` too and subtracts the reads it made itself.
    """

    __slots__ = ("_count", "_lock", "_reads", "hit")

    hit: Callable[[], object]
    """Count one."""

    def __init__(self) -> None:
        self._count = itertools.count()
        self._reads = 0
        self._lock = threading.Lock()
        self.hit = self._count.__next__

    def total(self) -> int:
        """How many times `hit` was called so far."""
        with self._lock:
            value = next(self._count) - self._reads
            self._reads += 1
            return value
