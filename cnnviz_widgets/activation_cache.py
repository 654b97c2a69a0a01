"""A plain-Python LRU cache of computed arrays, bounded by a byte budget.

Heavy arrays (feature maps, gradients) live here, in the kernel; only PNG bytes ever reach the
browser. Entries are computed on first request and kept until the budget forces the least
recently used ones out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

from .errors import CnnVizError

DEFAULT_BUDGET_BYTES = 512 * 2**20


class ActivationCache:
    """Least-recently-used cache of numpy arrays with a byte budget.

    Parameters
    ----------
    max_bytes : int
        Budget for the arrays held (default 512 MiB). Lowering it evicts at once. An array
        larger than the whole budget is returned but not kept.

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

    def __init__(self, max_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._nbytes = 0
        self.hits = 0
        self.misses = 0
        self._max_bytes = 0
        self.max_bytes = max_bytes

    @property
    def max_bytes(self) -> int:
        """The byte budget; setting it evicts least-recently-used entries until it holds."""
        return self._max_bytes

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise CnnVizError(
                f"max_bytes must be a whole number of bytes ≥ 0 (e.g. 512 * 2**20); got {value!r}."
            )
        with self._lock:
            self._max_bytes = int(value)
            self._evict()

    @property
    def nbytes(self) -> int:
        """Bytes held right now (always ≤ ``max_bytes``)."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> np.ndarray | None:
        """The array stored under ``key`` (marking it recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
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

        Returns the stored read-only array (a view of ``value``).
        """
        value = np.asarray(value)
        if value.flags.writeable:
            # A read-only view: the caller's own array keeps its flags.
            value = value.view()
            value.setflags(write=False)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= old.nbytes
            if value.nbytes <= self._max_bytes:
                self._entries[key] = value
                self._nbytes += value.nbytes
                self._evict()
        return value

    def activations(
        self, adapter: Any, pixels: np.ndarray, image_key: str, layer: str
    ) -> np.ndarray:
        """Feature map of ``layer`` for an image prepared by ``adapter``, computed once.

        Parameters
        ----------
        adapter : ModelAdapter
            The model adapter that computes it.
        pixels : ndarray
            The image from ``adapter.prepare_image``.
        image_key : str
            Fingerprint of ``pixels`` (:func:`cnnviz_widgets.images.image_key`).
        layer : str
            Layer path or name.
        """
        path = adapter.resolve_layer(layer)
        return self.get_or_compute(
            (adapter.key(), image_key, path, "activations"),
            lambda: adapter.activations_of_prepared(pixels, [path])[0],
        )

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def _evict(self) -> None:
        while self._nbytes > self._max_bytes and self._entries:
            _, value = self._entries.popitem(last=False)
            self._nbytes -= value.nbytes

    def __repr__(self) -> str:
        return (
            f"ActivationCache({len(self)} arrays, {self._nbytes / 2**20:.1f} of "
            f"{self._max_bytes / 2**20:.0f} MiB, {self.hits} hits, {self.misses} misses)"
        )
