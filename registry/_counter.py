"""A counter that threads can bump without a lock and without losing a count."""

from __future__ import annotations

import itertools
import threading


class Count:
    """An exact, lock-free counter for hot paths.

    ``add()`` is ``next()`` on an ``itertools.count``, a single C call that the GIL makes
    atomic, so concurrent threads never lose an increment (``x += 1`` can). Reading calls
    ``next()`` too, and subtracts the reads it made itself.
    """

    __slots__ = ("_lock", "_reads", "add")

    def __init__(self) -> None:
        counter = itertools.count()
        self.add = counter.__next__
        self._reads = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        """How many times ``add()`` was called."""
        with self._lock:
            current = self.add() - self._reads
            self._reads += 1
            return current
