"""Where finished ascent images are kept: the project's one cache, with a disk tier.

One :class:`~cnnviz_widgets.cache.ActivationCache` holds them: in memory on the kernel's one
budget (:func:`~cnnviz_widgets.cache.memory_budget`, shared with feature maps and class maps, so
the least recently used of all leaves first) and in a ``diskcache`` store in
``cache_dir() / "filter_ascent"``, so a page seen once comes back at once, even in a later
session. Each entry is one image, uint8 (size, size, 3), so a grid page that mixes seen and new
channels only computes the new ones.

Keys are plain tuples of str, int, float, bool and None (readable with ``ast.literal_eval``):
``("filter_ascent", version, weights fingerprint, preprocess id, objective structure,
objective indices, settings)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..cache import ActivationCache
from ..engine.adapter import ModelAdapter, Preprocess
from .objectives import Objective
from .settings import Settings

__all__ = [
    "cache_dir",
    "clear_memory_cache",
    "entry_key",
    "fingerprint",
    "results_cache",
]

#: Bump when the algorithm changes so old cache entries are no longer found.
ALGORITHM_VERSION = 1

_lock = threading.Lock()
_cache: ActivationCache | None = None
_cache_folder: Path | None = None


def cache_dir() -> Path:
    """Folder of the on-disk result cache.

    ``$CNNVIZ_CACHE_DIR`` if set, else the user cache folder
    (``platformdirs.user_cache_dir("cnnviz_widgets")``, e.g. ``~/.cache/cnnviz_widgets``).
    Ascent images live in its ``filter_ascent/`` sub-folder (a ``diskcache`` store with a 1 GiB
    budget); delete the folder to empty the cache.
    """
    override = os.environ.get("CNNVIZ_CACHE_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cnnviz_widgets"))


def results_cache() -> ActivationCache:
    """The cache of ascent images (memory and disk); read ``results_cache().stats``.

    Made on first use and kept; its memory tier draws from the kernel's one budget. It follows
    :func:`cache_dir`: when ``$CNNVIZ_CACHE_DIR`` points elsewhere, the next call starts a new
    cache there (with an empty memory tier; the old one's images leave memory with it).
    """
    global _cache, _cache_folder
    folder = cache_dir() / "filter_ascent"
    with _lock:
        if _cache is None or folder != _cache_folder:
            _cache = ActivationCache(directory=folder)
            _cache_folder = folder
        return _cache


def clear_memory_cache() -> None:
    """Forget the in-memory copies of ascent images (the disk cache is left alone)."""
    with _lock:
        cache = _cache
    if cache is not None:
        cache.clear()


def lookup(key: tuple, size: int) -> np.ndarray | None:
    """The cached uint8 (size, size, 3) image for ``key`` (memory, then disk), or None.

    Counts a hit or a miss in ``results_cache().stats``.
    """
    cache = results_cache()
    value = cache.get(key)
    if value is not None and (value.shape != (size, size, 3) or value.dtype != np.uint8):
        value = None  # not what this key stores: compute again, never trust it
    # The cache counts only in get_or_compute, which computes one key at a time; ascent images
    # are computed in batches, so the lookup counts here.
    if value is None:
        cache.misses += 1
    else:
        cache.hits += 1
    return value


def store(key: tuple, image: np.ndarray) -> None:
    """Keep a finished uint8 image in memory and on disk."""
    results_cache().put(key, image)


def fingerprint(adapter: ModelAdapter) -> str:
    """SHA-256 (hex) of the architecture (layer paths, classes, shapes) and every weight's bytes.

    This, not ``adapter.identity``, names the model in cache keys: the identity is a counter
    that is unique only within one Python process, so on disk ``adapter-1`` of tomorrow's
    session would find the images of today's ``adapter-1``, a different model. The hash names
    the same weights in every session, and two models with equal weights share entries.

    Computed once per adapter and kept with it (``adapter.traced``), since hashing every weight
    of a large model takes a noticeable fraction of a second. A model trained in place after
    its first ascent keeps its old fingerprint.
    """
    return adapter.traced(("filter_ascent.fingerprint",), lambda: _hash_weights(adapter))


def _hash_weights(adapter: ModelAdapter) -> str:
    digest = hashlib.sha256()
    for info in adapter.layers:
        digest.update(repr((info.path, info.class_name, info.output_shape)).encode())
    for weight in adapter.model.weights:
        array = np.ascontiguousarray(np.asarray(weight.numpy()))
        digest.update(repr((weight.path, array.shape, str(array.dtype))).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _preprocess_id(preprocess: Preprocess | None) -> str | None:
    """A stable name for a preprocess callable (its module, name and code), for cache keys."""
    if preprocess is None:
        return None
    func = getattr(preprocess, "__func__", preprocess)
    name = (
        f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', type(func).__name__)}"
    )
    code = getattr(func, "__code__", None)
    if code is None:
        return name
    cells = [repr(c.cell_contents) for c in (getattr(func, "__closure__", None) or ())]
    parts = (
        code.co_code.hex(),
        repr(code.co_consts),
        cells,
        repr(getattr(func, "__defaults__", None)),
    )
    text = json.dumps(parts, sort_keys=True, default=str)
    return f"{name}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def entry_key(adapter: ModelAdapter, settings: Settings, objective: Objective) -> tuple[Any, ...]:
    """The cache key of one image: model weights, preprocess, objective and every setting."""
    return (
        "filter_ascent",
        ALGORITHM_VERSION,
        fingerprint(adapter),
        _preprocess_id(adapter.preprocess),
        objective.structure,
        objective.indices,
        settings.result_key,
    )
