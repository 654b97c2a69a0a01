from __future__ import annotations

import gc

import numpy as np
import pytest

from cnnviz_widgets import cache as cache_module
from cnnviz_widgets.ascent import results as ascent_results
from cnnviz_widgets.cache import (
    DEFAULT_BUDGET_BYTES,
    ActivationCache,
    memory_budget,
    set_memory_budget,
    shared_cache,
)
from cnnviz_widgets.errors import CnnVizError


def _array(nbytes: int, fill: float = 1.0) -> np.ndarray:
    return np.full(nbytes // 4, fill, dtype=np.float32)


def test_computes_once_then_serves_from_cache():
    cache = ActivationCache(max_bytes=1000)
    calls = []

    def compute():
        calls.append(1)
        return _array(400, 7.0)

    first = cache.get_or_compute("a", compute)
    second = cache.get_or_compute("a", compute)
    assert len(calls) == 1
    assert second is first
    assert float(second[0]) == 7.0
    assert (cache.hits, cache.misses, cache.nbytes, len(cache)) == (1, 1, 400, 1)


def test_evicts_least_recently_used_to_stay_within_budget():
    cache = ActivationCache(max_bytes=1000)
    cache.put("a", _array(400))
    cache.put("b", _array(400))
    cache.get("a")  # "a" is now the most recent
    cache.put("c", _array(400))
    assert "b" not in cache
    assert "a" in cache and "c" in cache
    assert cache.nbytes == 800 <= cache.max_bytes


def test_lowering_the_budget_evicts_at_once():
    cache = ActivationCache(max_bytes=2000)
    for key in "abcd":
        cache.put(key, _array(400))
    cache.max_bytes = 500
    assert list(k for k in "abcd" if k in cache) == ["d"]
    assert cache.nbytes == 400


def test_array_larger_than_budget_is_returned_not_kept():
    cache = ActivationCache(max_bytes=100)
    value = cache.get_or_compute("big", lambda: _array(400))
    assert value.nbytes == 400
    assert "big" not in cache and cache.nbytes == 0


def test_stored_arrays_are_read_only_and_callers_array_keeps_its_flags():
    cache = ActivationCache()
    mine = _array(40)
    cache.put("k", mine)
    assert mine.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        cache.get("k")[0] = 3.0


def test_replacing_a_key_does_not_double_count():
    cache = ActivationCache(max_bytes=1000)
    cache.put("a", _array(400))
    cache.put("a", _array(200))
    assert cache.nbytes == 200 and len(cache) == 1


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True])
def test_bad_budget_is_refused_with_an_example(bad):
    with pytest.raises(
        CnnVizError, match=r"max_bytes must be a whole number of bytes ≥ 0 \(e\.g\. 512"
    ):
        ActivationCache(max_bytes=bad)


# ------------------------------------------------------------------ one budget for every cache
@pytest.fixture
def kernel_budget(tmp_path, monkeypatch):
    """The kernel's one budget, lowered to 1000 bytes for the test and restored after it."""
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))  # ascent images on disk go here
    budget = memory_budget()
    saved = budget.max_bytes
    budget.max_bytes = 0  # evicts everything earlier tests left (small entries included)
    budget.max_bytes = 1000
    yield budget
    budget.max_bytes = saved


def _image(nbytes: int, fill: int = 1) -> np.ndarray:
    """An ascent-like uint8 image of ``nbytes`` (a square of RGB pixels)."""
    side = round((nbytes / 3) ** 0.5)
    assert side * side * 3 == nbytes
    return np.full((side, side, 3), fill, dtype=np.uint8)


def test_feature_maps_and_ascent_images_share_one_budget_and_one_lru_order(kernel_budget):
    features, images = shared_cache(), ascent_results.results_cache()
    # The explorers' cache and the ascent images draw from the kernel's one budget.
    assert features.budget is images.budget is kernel_budget
    assert features.max_bytes == images.max_bytes == 1000
    assert kernel_budget.nbytes == 0

    def held():
        # Never more than the one total, whichever cache added last.
        assert kernel_budget.nbytes == features.nbytes + images.nbytes <= 1000
        return sorted(k for k in "abxy" if k in features or k in images)

    images.put("x", _image(300))
    features.put("a", _array(400))
    assert held() == ["a", "x"]
    # A feature map that does not fit pushes out the oldest entry, an ascent image.
    features.put("b", _array(400))
    assert held() == ["a", "b"] and images.nbytes == 0
    # Reading "a" makes "b" the oldest: a new ascent image pushes out that feature map.
    assert features.get("a") is not None
    images.put("y", _image(300, fill=2))
    assert held() == ["a", "y"]
    assert (features.nbytes, images.nbytes) == (400, 300)
    # The evicted image left memory only: the disk tier brings it back (and it takes its room).
    assert images.get("x") is not None and images.get("x").shape == (10, 10, 3)
    assert held() == ["a", "x", "y"] and kernel_budget.nbytes == 1000


def test_lowering_the_one_budget_evicts_across_caches_oldest_first(kernel_budget):
    first, second = ActivationCache(), ActivationCache()
    assert first.budget is second.budget is kernel_budget
    first.put("a", _array(200))
    second.put("b", _array(200))
    first.put("c", _array(200))
    second.get("b")  # order now a, c, b
    set_memory_budget(400)
    assert ("a" in first, "c" in first, "b" in second) == (False, True, True)
    assert kernel_budget.nbytes == 400 and first.max_bytes == 400
    # Clearing one cache leaves the other's entries.
    first.clear()
    assert len(first) == 0 and second.nbytes == 200 and len(kernel_budget) == 1


def test_a_dropped_cache_gives_its_bytes_back_to_the_budget(kernel_budget):
    keeper = ActivationCache()
    temporary = ActivationCache()  # as a function makes for one call
    keeper.put("k", _array(200))
    temporary.put("t", _array(400))
    assert kernel_budget.nbytes == 600
    del temporary
    gc.collect()
    assert kernel_budget.nbytes == 200 and "k" in keeper


def test_a_cache_with_its_own_max_bytes_is_outside_the_one_budget(kernel_budget):
    own = ActivationCache(max_bytes=2000)
    own.put("big", _array(1600))
    assert own.nbytes == 1600 and kernel_budget.nbytes == 0
    assert own.budget is not kernel_budget
    with pytest.raises(CnnVizError, match="max_bytes or a budget, not both"):
        ActivationCache(max_bytes=10, budget=kernel_budget)


def test_default_total_and_the_environment_variable(monkeypatch):
    monkeypatch.setattr(cache_module, "_budget", None)  # made again on the next use
    monkeypatch.delenv("CNNVIZ_MEMORY_MIB", raising=False)
    assert memory_budget().max_bytes == DEFAULT_BUDGET_BYTES == 64 * 2**20
    monkeypatch.setattr(cache_module, "_budget", None)
    monkeypatch.setenv("CNNVIZ_MEMORY_MIB", "300")
    assert memory_budget().max_bytes == 300 * 2**20
    monkeypatch.setattr(cache_module, "_budget", None)
    monkeypatch.setenv("CNNVIZ_MEMORY_MIB", "lots")
    with pytest.raises(CnnVizError, match="CNNVIZ_MEMORY_MIB='lots' must be a whole number"):
        memory_budget()
