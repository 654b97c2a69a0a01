"""The one cache of computed arrays: least-recently-used, bounded by one byte budget.

Heavy arrays (feature maps, gradients, filter-ascent images) live here, in the kernel; only PNG
bytes ever reach the browser. Entries are computed on first request and kept until the budget
forces the least recently used ones out. An optional disk tier (``diskcache``) keeps results
that are slow to make (filter ascent) across sessions.

Every cache the package makes (the explorers' shared cache, the filter-ascent images, the
caches a function makes for one call) draws from one :class:`MemoryBudget` per kernel, so
together they never hold more than its ``max_bytes``: a new entry in one pushes out the least
recently used entry of any. Set it with :func:`set_memory_budget` or ``$CNNVIZ_MEMORY_MIB``.

Keys start with the identity of what computed them (``ModelAdapter.identity`` in memory, a
weights fingerprint on disk), so two models never share an entry.
"""

from __future__ import annotations

import io
import itertools
import os
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import cachetools
import numpy as np

from .errors import CnnVizError
from .i18n import gettext_ as _

__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "ActivationCache",
    "CacheStats",
    "MemoryBudget",
    "memory_budget",
    "set_memory_budget",
    "shared_cache",
]

#: Default total for every cache in the kernel. mybinder.org guarantees 1 GiB; the quick start
#: with every tab open peaks at ~940 MiB (``bench/memory.py``: TensorFlow ~620 of it on import,
#: the default model, its traced graphs and one batch in flight the rest), which leaves about
#: this much for kept arrays. With memory to spare, raise it (``set_memory_budget``).
DEFAULT_BUDGET_BYTES = 64 * 2**20
#: Environment variable that sets the total in MiB (``set_memory_budget`` wins over it).
BUDGET_ENV = "CNNVIZ_MEMORY_MIB"
#: Disk budget of the on-disk tier; diskcache evicts least-recently-stored entries beyond it.
DEFAULT_DISK_BYTES = 1 * 2**30

_members = itertools.count()  # next() is atomic in CPython: every cache gets its own number


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
            _(
                "max_bytes must be a whole number of bytes ≥ 0 (e.g. 512 * 2**20); got {value!r}."
            ).format(value=value)
        )
    return int(value)


class MemoryBudget:
    """One byte budget that several caches draw from, with one least-recently-used order.

    The entries of every member cache live in one ``cachetools.LRUCache`` sized by ``nbytes``
    and keyed by (member, key): whichever member adds, the total stays within ``max_bytes`` and
    the least recently used entry of any member leaves first.

    Parameters
    ----------
    max_bytes : int
        The total, in bytes. Lowering it evicts at once.
    """

    def __init__(self, max_bytes: int) -> None:
        # Members call into the store under this lock; reentrant because a member's
        # get_or_compute may store while it holds it.
        self.lock = threading.RLock()
        self.store = self._new_store(_check_budget(max_bytes))
        # Members that were garbage-collected, purged at the next change under the lock: a
        # finaliser may run in the middle of a store operation of the same thread.
        self._dead: list[int] = []

    @staticmethod
    def _new_store(max_bytes: int) -> cachetools.LRUCache:
        return cachetools.LRUCache(maxsize=max_bytes, getsizeof=lambda a: a.nbytes)

    @property
    def max_bytes(self) -> int:
        """The total; setting it evicts the least recently used entries (any member's) to fit."""
        return int(self.store.maxsize)

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        budget = _check_budget(value)
        with self.lock:
            # cachetools fixes the budget at construction: move the entries, least recently used
            # first (popitem's order), into a store of the new size, which evicts from the old
            # end as they go in.
            old, self.store = self.store, self._new_store(budget)
            while old:
                key, array = old.popitem()
                if array.nbytes <= budget:
                    self.store[key] = array

    @property
    def nbytes(self) -> int:
        """Bytes held by all members together (always ≤ ``max_bytes``)."""
        with self.lock:
            self._purge()
            return int(self.store.currsize)

    def __len__(self) -> int:
        with self.lock:
            self._purge()
            return len(self.store)

    def add(self, key: Hashable, value: np.ndarray) -> None:
        """Keep ``value`` under ``(member, key)``, evicting the oldest entries to fit.

        An array larger than the whole total is not kept.
        """
        with self.lock:
            self._purge()
            if value.nbytes <= self.store.maxsize:
                self.store[key] = value

    def member_keys(self, member: int) -> list[Hashable]:
        """The store's keys that belong to ``member``."""
        with self.lock:
            return [key for key in self.store if key[0] == member]

    def member_bytes(self, member: int) -> int:
        """Bytes held by ``member`` (read without marking its entries recently used)."""
        with self.lock:
            peek = cachetools.Cache.__getitem__  # LRUCache's own would reorder the entries
            return sum(peek(self.store, key).nbytes for key in self.member_keys(member))

    def drop(self, member: int) -> None:
        """Forget every entry of ``member`` (a cache that is cleared)."""
        with self.lock:
            self._purge()
            for key in self.member_keys(member):
                del self.store[key]

    def forget(self, member: int) -> None:
        """``member`` was garbage-collected: its entries go at the next change."""
        self._dead.append(member)  # no lock: list.append is atomic

    def _purge(self) -> None:
        while self._dead:
            member = self._dead.pop()
            for key in self.member_keys(member):
                del self.store[key]

    def __repr__(self) -> str:
        return f"MemoryBudget({self.nbytes / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MiB)"


_budget: MemoryBudget | None = None
_budget_lock = threading.Lock()


def _budget_from_environment() -> int:
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_BUDGET_BYTES
    try:
        mib = int(raw)
    except ValueError:
        mib = -1
    if mib < 0:
        raise CnnVizError(
            _(
                "The environment variable {budget_env}={raw!r} must be a whole number of MiB ≥ 0 "
                "(e.g. {budget_env}=256)."
            ).format(budget_env=BUDGET_ENV, raw=raw)
        )
    return mib * 2**20


def memory_budget() -> MemoryBudget:
    """The kernel's one budget, shared by every cache that was not given its own.

    Made on first use with ``$CNNVIZ_MEMORY_MIB`` MiB if set, else :data:`DEFAULT_BUDGET_BYTES`.
    """
    global _budget
    with _budget_lock:
        if _budget is None:
            _budget = MemoryBudget(_budget_from_environment())
        return _budget


def set_memory_budget(max_bytes: int) -> None:
    """Set the total every cache in the kernel may hold together, in bytes.

    Lowering it evicts the least recently used arrays at once; nothing already shown changes.

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> cv.set_memory_budget(256 * 2**20)  # doctest: +SKIP
    """
    memory_budget().max_bytes = max_bytes


class ActivationCache:
    """Least-recently-used cache of numpy arrays with a byte budget.

    Parameters
    ----------
    max_bytes : int, optional
        A budget of its own for the arrays held in memory; lowering it evicts at once. By
        default the cache draws from the kernel's one budget (:func:`memory_budget`), shared
        with every other cache. An array larger than the whole budget is returned but not kept.
    directory : str or path-like, optional
        Also keep arrays on disk there (a ``diskcache`` store with a 1 GiB budget): entries that
        leave memory, or a later session, are read back from it. Arrays are stored as ``.npy``
        bytes and read with ``allow_pickle=False``.
    budget : MemoryBudget, optional
        Draw from this budget instead (with ``max_bytes``: not both).

    Notes
    -----
    Thread-safe: background workers and widget callbacks may share one cache. Stored arrays are
    made read-only, so a caller cannot corrupt what later views will read; copy before editing.
    ``max_bytes`` and ``stats.max_bytes`` are the budget's total; ``nbytes``, ``len()`` and
    ``stats.entries`` count this cache's own entries.

    Examples
    --------
    >>> cache = ActivationCache(max_bytes=1024)
    >>> a = cache.get_or_compute(("img", "conv1"), lambda: np.zeros((4, 4, 8), np.float32))
    >>> cache.nbytes, ("img", "conv1") in cache
    (512, True)
    """

    def __init__(
        self,
        max_bytes: int | None = None,
        *,
        directory: str | os.PathLike | None = None,
        budget: MemoryBudget | None = None,
    ) -> None:
        if budget is not None and max_bytes is not None:
            raise CnnVizError(_("Give an ActivationCache max_bytes or a budget, not both."))
        if budget is None:
            budget = memory_budget() if max_bytes is None else MemoryBudget(max_bytes)
        self._budget = budget
        self._lock = budget.lock
        # Entries are stored under (member, key): one store serves every member of a budget.
        self._member = next(_members)
        # A cache that is dropped takes its entries with it (the budget outlives it).
        weakref.finalize(self, budget.forget, self._member)
        self._disk: Any = None
        if directory is not None:
            import diskcache

            self._disk = diskcache.Cache(os.fspath(directory), size_limit=DEFAULT_DISK_BYTES)
        self.hits = 0
        self.misses = 0

    @property
    def budget(self) -> MemoryBudget:
        """The budget this cache draws from (the kernel's one, unless it was given its own)."""
        return self._budget

    @property
    def max_bytes(self) -> int:
        """The budget's total; setting it evicts least-recently-used entries until it holds.

        For a cache on the kernel's budget this sets the total of every cache, like
        :func:`set_memory_budget`.
        """
        return self._budget.max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        self._budget.max_bytes = value

    @property
    def nbytes(self) -> int:
        """Bytes this cache holds in memory right now (all members together ≤ ``max_bytes``)."""
        return self._budget.member_bytes(self._member)

    @property
    def stats(self) -> CacheStats:
        """Entries, bytes, budget, hits and misses, read together."""
        with self._lock:
            entries, nbytes = len(self), self.nbytes
            return CacheStats(entries, nbytes, self.max_bytes, self.hits, self.misses)

    def __len__(self) -> int:
        return len(self._budget.member_keys(self._member))

    def __contains__(self, key: Hashable) -> bool:
        return (self._member, key) in self._budget.store

    def get(self, key: Hashable) -> np.ndarray | None:
        """The array stored under ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._budget.store.get((self._member, key))
        if value is None and self._disk is not None:
            value = self._disk_get(key)
            if value is not None:
                with self._lock:
                    self._budget.add((self._member, key), value)
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
            self._budget.store.pop((self._member, key), None)
            self._budget.add((self._member, key), value)
        if self._disk is not None:
            self._disk_put(key, value)
        return value

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
        """Drop this cache's entries in memory (and on disk too with ``disk=True``)."""
        self._budget.drop(self._member)
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
            f"ActivationCache({len(self)} arrays, {self.nbytes / 2**20:.1f} MiB; budget "
            f"{self._budget.nbytes / 2**20:.1f} of {self.max_bytes / 2**20:.0f} MiB, "
            f"{self.hits} hits, {self.misses} misses)"
        )


_shared: ActivationCache | None = None
_shared_lock = threading.Lock()


def shared_cache() -> ActivationCache:
    """The cache every explorer uses unless given its own (on the kernel's one budget)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ActivationCache()
        return _shared
