from __future__ import annotations

import numpy as np
import pytest

from cnnviz_widgets.cache import ActivationCache
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


def test_default_budget_is_512_mib():
    assert ActivationCache().max_bytes == 512 * 2**20
