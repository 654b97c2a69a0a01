"""Top-k records and channel statistics, as values that merge: pure numpy, no model.

**The ranking rule.** An image's *score* for a channel is the channel's largest activation
anywhere in its feature map; its *location* is the first cell (row-major: smallest ``y``, then
smallest ``x``) holding that value. Images are ranked by score, highest first; equal scores
go to the **lower image index** first. NaN scores rank below every number. So the top-k of a
channel is exactly::

    order = np.lexsort((indices, -scores))[:k]      # numpy, over all images at once

and merging two top-k lists and keeping the first ``k`` by the same rule gives the same answer
whatever the order of merges (the rule is a total order on distinct images) — which is what lets
Dask reduce batches as a tree.

**Statistics** per channel, over every activation value of every image (every cell counts the
same): count, mean, M2 (the sum of squared deviations) and the number of zeros, merged with
Chan et al.'s pairwise update in float64. With a fixed tree of merges the floats come out the
same on any scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EMPTY_INDEX", "Moments", "Top", "top_of_batch"]

#: Index of an empty slot (fewer images than ``k``): sorts after every real image.
EMPTY_INDEX = np.iinfo(np.int64).max


@dataclass
class Top:
    """The best ``k`` images of ``C`` channels: arrays (C, k), best first.

    ``score`` float32 (``-inf`` for an empty slot or a NaN map), ``index`` int64
    (:data:`EMPTY_INDEX` when empty), ``y`` and ``x`` int32 (the location of the maximum).
    """

    score: np.ndarray
    index: np.ndarray
    y: np.ndarray
    x: np.ndarray

    @classmethod
    def empty(cls, channels: int, k: int) -> Top:
        return cls(
            np.full((channels, k), -np.inf, np.float32),
            np.full((channels, k), EMPTY_INDEX, np.int64),
            np.zeros((channels, k), np.int32),
            np.zeros((channels, k), np.int32),
        )

    @property
    def k(self) -> int:
        return int(self.score.shape[1])

    def merge(self, other: Top, k: int | None = None) -> Top:
        """The best ``k`` (default: this one's k) of both, by the ranking rule."""
        k = self.k if k is None else k
        score = np.concatenate([self.score, other.score], axis=1)
        index = np.concatenate([self.index, other.index], axis=1)
        order = np.lexsort((index, -score), axis=1)[:, :k]
        y = np.concatenate([self.y, other.y], axis=1)
        x = np.concatenate([self.x, other.x], axis=1)
        take = np.take_along_axis
        return Top(*(take(a, order, 1) for a in (score, index, y, x)))


def top_of_batch(
    score: np.ndarray, position: np.ndarray, width: int, indices: np.ndarray, k: int
) -> Top:
    """The best ``k`` of a batch, from per-image maxima.

    Parameters
    ----------
    score : (B, C) float32
        Each image's largest activation per channel.
    position : (B, C) int
        Row-major cell of the first maximum (``y * width + x``).
    width : int
        Width of the feature map.
    indices : (B,) int
        The images' indices in the source.
    """
    score = np.where(np.isnan(score), -np.inf, score).astype(np.float32).T  # (C, B)
    index = np.broadcast_to(np.asarray(indices, np.int64)[np.newaxis], score.shape)
    order = np.lexsort((index, -score), axis=1)[:, :k]
    take = np.take_along_axis
    where = take(np.asarray(position).T, order, 1)
    top = Top(
        take(score, order, 1),
        take(index, order, 1).copy(),
        (where // width).astype(np.int32),
        (where % width).astype(np.int32),
    )
    if top.k < k:  # fewer images than k: pad with empty slots
        top = top.merge(Top.empty(score.shape[0], k - top.k), k)
    return top


@dataclass
class Moments:
    """Per-channel count, mean, M2 and zero count: float64 arrays (C,)."""

    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray
    zeros: np.ndarray

    @classmethod
    def empty(cls, channels: int) -> Moments:
        return cls(*(np.zeros(channels, np.float64) for _ in range(4)))

    def merge(self, other: Moments) -> Moments:
        """Chan et al.'s parallel update: the moments of both sets of values together."""
        count = self.count + other.count
        safe = np.where(count > 0, count, 1.0)
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / safe)
        m2 = self.m2 + other.m2 + delta * delta * (self.count * other.count / safe)
        return Moments(count, mean, m2, self.zeros + other.zeros)

    def as_array(self) -> np.ndarray:
        """(C, 4) float64: count, mean, M2, zeros — how a batch's part is stored."""
        return np.stack([self.count, self.mean, self.m2, self.zeros], axis=1)

    @classmethod
    def from_array(cls, array: np.ndarray) -> Moments:
        array = np.asarray(array, np.float64)
        return cls(*(array[:, i].copy() for i in range(4)))

    def stats(self) -> dict[str, np.ndarray]:
        """``mean``, ``std`` (population) and ``zero_fraction`` per channel, float64."""
        count = np.where(self.count > 0, self.count, 1.0)
        return {
            "mean": self.mean.copy(),
            "std": np.sqrt(np.maximum(self.m2 / count, 0.0)),
            "zero_fraction": self.zeros / count,
        }
