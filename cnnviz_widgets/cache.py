"""The one cache of computed arrays: least-recently-used, bounded by a byte budget.

Heavy arrays (feature maps, gradients, filter-ascent images) live here, in the kernel; only PNG
bytes ever reach the browser. Entries are computed on first request and kept until the budget
forces the least recently used ones out. An optional disk tier (``diskcache``) keeps results
that are slow to make (filter ascent) across sessions.

Keys start with the identity of what computed them (``ModelAdapter.identity`` in memory, a
weights fingerprint on disk), so two models never share an entry.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cachetools
import numpy as np

from .errors import CnnVizError

__all__ = ["DEFAULT_BUDGET_BYTES", "ActivationCache", "CacheStats", "shared_cache"]

DEFAULT_BUDGET_BYTES = 512 * 2**20
#: Disk budget of the on-disk tier; diskcache evicts least-recently-stored entries beyond it.
DEFAULT_DISK_BYTES = 1 * 2**30


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of a cache: entries, bytes held and the budget, hits and misses."""

    entries: int
    nbytes: int
    max_bytes: int
    hits: int
    misses: int


def _check_budget(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise CnnVizError(
            f"max_bytes must be a whole number of bytes ≥ 0 (e.g. 512 * 2**20); got {value!r}."
        )
    return int(value)


class ActivationCache:
    """Least-recently-used cache of numpy arrays with a byte budget.

    Parameters
    ----------
    max_bytes : int
        Budget for the arrays held in memory (default 512 MiB). Lowering it evicts at once. An
        array larger than the whole budget is returned but not kept.
    directory : str or path-like, optional
        Also keep arrays on disk there (a ``diskcache`` store with a 1 GiB budget): entries that
        leave memory, or a later session, are read back from it. Arrays are stored as ``.npy``
        bytes and read with ``allow_pickle=False``.

    Notes
    -----
    Thread-safe: background workers and widget callbacks may share one cache. Stored arrays are
    made read-only, so a caller cannot corrupt what later views will read; copy before editing.

    Examples
    --------
    >>> cache = ActivationCache(max_bytes=1024)
    >>> a = cache.get_or_compute(("img", "conv1"), lambda: np.zeros((4, 4, 8), np.float32))
    >>> cache.nbytes, ("img", "conv1") in cache
    (512, True)
    """

    def __init__(
        self, max_bytes: int = DEFAULT_BUDGET_BYTES, *, directory: str | os.PathLike | None = None
    ) -> None:
        self._lock = threading.RLock()
        self._entries = self._new_store(_check_budget(max_bytes))
        self._disk: Any = None
        if directory is not None:
            import diskcache

            self._disk = diskcache.Cache(os.fspath(directory), size_limit=DEFAULT_DISK_BYTES)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _new_store(max_bytes: int) -> cachetools.LRUCache:
        return cachetools.LRUCache(maxsize=max_bytes, getsizeof=lambda a: a.nbytes)

    @property
    def max_bytes(self) -> int:
        """The byte budget; setting it evicts least-recently-used entries until it holds."""
        return int(self._entries.maxsize)

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        budget = _check_budget(value)
        with self._lock:
            # cachetools fixes the budget at construction: move the entries, oldest first, into
            # a store of the new size, which evicts from the old end as they go in.
            old, self._entries = self._entries, self._new_store(budget)
            for key, array in old.items():
                self._store(key, array)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory right now (always ≤ ``max_bytes``)."""
        return int(self._entries.currsize)

    @property
    def stats(self) -> CacheStats:
        """Entries, bytes, budget, hits and misses, read together."""
        with self._lock:
            entries, nbytes = len(self._entries), self.nbytes
            return CacheStats(entries, nbytes, self.max_bytes, self.hits, self.misses)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> np.ndarray | None:
        """The array stored under ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
        if value is None and self._disk is not None:
            value = self._disk_get(key)
            if value is not None:
                with self._lock:
                    self._store(key, value)
        return value

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> np.ndarray:
        """Return the array for ``key``, calling ``compute()`` only if it is not cached."""
        value = self.get(key)
        if value is not None:
            self.hits += 1
            return value
        self.misses += 1
        # Computed outside the lock: a slow computation must not stall readers of other keys.
        return self.put(key, compute())

    def put(self, key: Hashable, value: np.ndarray) -> np.ndarray:
        """Store ``value`` under ``key`` read-only, evicting old entries to fit the budget.

        Returns the stored read-only array (a view of ``value``; the caller's array keeps its
        flags).
        """
        value = np.asarray(value)
        if value.flags.writeable:
            value = value.view()
            value.setflags(write=False)
        with self._lock:
            self._entries.pop(key, None)
            self._store(key, value)
        if self._disk is not None:
            self._disk_put(key, value)
        return value

    def _store(self, key: Hashable, value: np.ndarray) -> None:
        if value.nbytes <= self._entries.maxsize:
            self._entries[key] = value

    # ------------------------------------------------------------------ disk tier
    def _disk_get(self, key: Hashable) -> np.ndarray | None:
        data = self._disk.get(repr(key))
        if data is None:
            return None
        try:
            value = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError):
            return None  # a damaged entry is recomputed, never trusted
        value.setflags(write=False)
        return value

    def _disk_put(self, key: Hashable, value: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(value), allow_pickle=False)
        # diskcache writes inside a SQLite transaction: a crash leaves the old entry or none.
        self._disk.set(repr(key), buffer.getvalue())

    def clear(self, *, disk: bool = False) -> None:
        """Drop every entry in memory (and on disk too with ``disk=True``)."""
        with self._lock:
            self._entries.clear()
        if disk and self._disk is not None:
            self._disk.clear()

    # ------------------------------------------------------------------ feature maps
    def activations(self, adapter: Any, image: Any, layer: str) -> np.ndarray:
        """Feature map of ``layer`` for an image prepared by ``adapter``, computed once.

        Parameters
        ----------
        adapter : ModelAdapter
            The model adapter that computes it.
        image : PreparedImage
            The image from ``adapter.prepare``.
        layer : str
            Layer path or name.
        """
        path = adapter.resolve_layer(layer)
        return self.get_or_compute(
            (adapter.identity, image.key, path, "activations"),
            lambda: adapter.feature_maps(image, [path])[0],
        )

    def __repr__(self) -> str:
        return (
            f"ActivationCache({len(self)} arrays, {self.nbytes / 2**20:.1f} of "
            f"{self.max_bytes / 2**20:.0f} MiB, {self.hits} hits, {self.misses} misses)"
        )


_shared: ActivationCache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> ActivationCache:
    """The cache every explorer uses unless given its own (one budget for the whole kernel)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ActivationCache()
        return _shared
