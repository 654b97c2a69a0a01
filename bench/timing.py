"""Timing helpers shared by every benchmark suite: repeat, warm up, summarise.

Everything is timed with :func:`time.perf_counter` and reported in milliseconds. A measured
callable receives the repeat index ``i`` so that it can cycle through values (a different
channel, a new image) on every call; warm-up calls get indexes too, and the timed calls carry
on from where the warm-up stopped, so the first timed call is a real change as well.
"""

from __future__ import annotations

import gc
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Stats",
    "measure",
    "measure_interleaved",
    "percentile",
    "section",
    "time_once",
]


def percentile(values: list[float] | tuple[float, ...], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation (numpy's default method)."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Stats:
    """Timings of one measured operation, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def n(self) -> int:
        """Number of timed calls."""
        return len(self.samples_ms)

    @property
    def median(self) -> float:
        """Median time in ms."""
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        """95th percentile in ms."""
        return percentile(self.samples_ms, 95)

    @property
    def mean(self) -> float:
        """Mean time in ms."""
        return statistics.fmean(self.samples_ms)

    @property
    def min(self) -> float:
        """Fastest call in ms."""
        return min(self.samples_ms)

    @property
    def max(self) -> float:
        """Slowest call in ms."""
        return max(self.samples_ms)

    def summary(self) -> dict[str, float | int]:
        """The statistics as a JSON-friendly dict."""
        return {
            "median": self.median,
            "p95": self.p95,
            "mean": self.mean,
            "min": self.min,
            "max": self.max,
            "n": self.n,
        }


def time_once(fn: Callable[[], Any]) -> float:
    """Milliseconds taken by one call of ``fn()``."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def measure(
    fn: Callable[[int], Any],
    *,
    repeats: int,
    warmup: int = 3,
    setup: Callable[[int], Any] | None = None,
) -> Stats:
    """Time ``fn(i)`` ``repeats`` times after ``warmup`` untimed calls.

    Parameters
    ----------
    fn : callable
        Called with the call index ``i`` (warm-up calls use ``0 .. warmup-1``, timed calls
        continue from ``warmup``).
    repeats : int
        Number of timed calls (at least 1).
    warmup : int
        Untimed calls made first (traces, lazily built tables, caches of the code path).
    setup : callable, optional
        ``setup(i)`` runs untimed right before each call of ``fn(i)`` (e.g. make a new image).
    """
    return measure_interleaved({"fn": fn}, repeats=repeats, warmup=warmup, setup=setup)["fn"]


def measure_interleaved(
    fns: Mapping[str, Callable[[int], Any]],
    *,
    repeats: int,
    warmup: int = 3,
    setup: Callable[[int], Any] | None = None,
) -> dict[str, Stats]:
    """Time several callables on the same inputs, alternating their order every repeat.

    For each index ``i`` the untimed ``setup(i)`` runs once, then every callable is timed on it;
    the order is reversed on odd repeats so that neither side always runs "second" (after the
    other warmed the CPU caches). Used to compare an operation with its floor in the same run,
    under the same machine load.
    """
    if repeats < 1:
        raise ValueError("repeats must be at least 1")
    names = list(fns)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(warmup + repeats):
        if setup is not None:
            setup(i)
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            fn = fns[name]
            start = time.perf_counter()
            fn(i)
            elapsed = (time.perf_counter() - start) * 1e3
            if i >= warmup:
                samples[name].append(elapsed)
    return {name: Stats(tuple(values)) for name, values in samples.items()}


@contextmanager
def section(title: str) -> Iterator[None]:
    """Announce a benchmark section on stderr and collect garbage before and after it."""
    gc.collect()
    start = time.perf_counter()
    print(f"  · {title} …", file=sys.stderr, flush=True)
    try:
        yield
    finally:
        gc.collect()
        print(f"    done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
