"""Reading an atlas back: :class:`Atlas`, what ``build`` returns and ``open`` opens.

Nothing here needs TensorFlow or the model: a store built on a cluster and copied to a laptop
opens with numpy and zarr alone, and arrays are read per channel when asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..errors import CnnVizError, LayerError, check_index, close_matches
from ..i18n import gettext_ as _
from . import store as stores

__all__ = ["Atlas", "Record", "open_atlas"]


@dataclass(frozen=True)
class Record:
    """One of a channel's top images.

    Attributes
    ----------
    rank : int
        0 for the best.
    index : int
        The image's index in the source (files: sorted order of the folder, or the list's).
    path : str or None
        The image's file, when the source was files.
    score : float
        The channel's maximum activation in this image.
    y, x : int
        Where that maximum is, in the layer's feature map (first such cell, row-major).
    box : (int, int, int, int) or None
        (top, left, bottom, right) of the crop, in the image as the model was fed it.
    """

    rank: int
    index: int
    path: str | None
    score: float
    y: int
    x: int
    box: tuple[int, int, int, int] | None = None


class Atlas:
    """A finished atlas store, read lazily.

    Parameters
    ----------
    store : str or path
        The Zarr store :func:`cnnviz_widgets.atlas.build` wrote.

    Examples
    --------
    >>> atlas = cv.atlas.open("atlas.zarr")                          # doctest: +SKIP
    >>> [r.index for r in atlas.top("conv2", 3)]                     # doctest: +SKIP
    [17, 4, 30, ...]
    >>> atlas.stats("conv2")["zero_fraction"].round(2)               # doctest: +SKIP
    """

    def __init__(self, store: str | os.PathLike[str]) -> None:
        self.store = os.fspath(store)
        try:
            self._root = stores.open_group(self.store, mode="r")
        except Exception as exc:
            raise CnnVizError(
                _("No atlas store at {store!r} ({exc}).").format(store=self.store, exc=exc)
            ) from exc
        attrs = dict(self._root.attrs)
        if attrs.get("cnnviz_atlas") is None:
            raise CnnVizError(
                _("{store!r} is a Zarr store but not an atlas.").format(store=self.store)
            )
        if not attrs.get("complete"):
            raise CnnVizError(
                _(
                    "The atlas at {store!r} is not finished: run cnnviz_widgets.atlas.build again "
                    "with the same arguments to continue it."
                ).format(store=self.store)
            )
        self._attrs = attrs
        self._layers = {entry["path"]: entry for entry in attrs["layers"]}

    def __repr__(self) -> str:
        images = self.images
        skipped = f" ({len(images['skipped'])} skipped)" if images["skipped"] else ""
        return (
            f"<Atlas {self.store!r}: model {self.params['model']!r}, {len(self.layers)} layers, "
            f"{self.channel_count} channels, k={self.k}, {images['read']} images{skipped}>"
        )

    # ------------------------------------------------------------------ what it holds
    @property
    def params(self) -> dict[str, Any]:
        """The parameters it was built with (model, model_key, layers, k, batch_size, ...)."""
        return dict(self._attrs["params"])

    @property
    def layers(self) -> list[str]:
        """The layer paths, in the model's order."""
        return list(self._layers)

    @property
    def k(self) -> int:
        return int(self._attrs["params"]["k"])

    @property
    def images(self) -> dict[str, Any]:
        """``count`` images in the source, ``read`` of them, ``skipped`` indices."""
        return dict(self._attrs["images"])

    @property
    def has_crops(self) -> bool:
        return bool(self._attrs.get("crops"))

    @property
    def has_ascent(self) -> bool:
        return bool(self._attrs.get("ascent"))

    @property
    def channel_count(self) -> int:
        return sum(int(e["channels"]) for e in self._layers.values())

    def channels(self, layer: str) -> int:
        """How many channels ``layer`` has."""
        return int(self._entry(layer)["channels"])

    def layer_info(self, layer: str) -> dict[str, Any]:
        """What is known of ``layer``: channels, crop shape, receptive field size and jump."""
        return dict(self._entry(layer))

    @cached_property
    def paths(self) -> list[str] | None:
        """Every image's file, by index (None when the source was not files)."""
        return stores.read_paths(self._root)

    def path(self, index: int) -> str | None:
        """The file of image ``index`` (None when the source was not files)."""
        return self.paths[index] if self.paths is not None and index >= 0 else None

    # ------------------------------------------------------------------ per channel
    def top(self, layer: str, channel: int) -> list[Record]:
        """The channel's top images, best first (fewer than k when fewer images were read)."""
        group, channel = self._channel(layer, channel)
        score, index = group["score"][channel], group["index"][channel]
        y, x = group["y"][channel], group["x"][channel]
        boxes = group["box"][channel] if "box" in group else None
        records = []
        for rank in np.flatnonzero(index >= 0):
            box = tuple(int(v) for v in boxes[rank]) if boxes is not None else None
            image = int(index[rank])
            records.append(
                Record(int(rank), image, self.path(image), float(score[rank]),
                       int(y[rank]), int(x[rank]), box)
            )  # fmt: skip
        return records

    def crops(self, layer: str, channel: int) -> np.ndarray:
        """The crops of the channel's top images, uint8 (n, h, w, channels), best first."""
        group, channel = self._channel(layer, channel)
        if "crops" not in group:
            raise CnnVizError(
                _("This atlas has no crops (its images came from a one-shot iterator).")
            )
        valid = int((group["index"][channel] >= 0).sum())
        return np.asarray(group["crops"][channel])[:valid]

    def ascent(self, layer: str, channel: int) -> np.ndarray | None:
        """The channel's filter-ascent image, uint8 (size, size, 3); None if not built."""
        group, channel = self._channel(layer, channel)
        return np.asarray(group["ascent"][channel]) if "ascent" in group else None

    def stats(self, layer: str) -> dict[str, np.ndarray]:
        """Per-channel ``mean``, ``std`` and ``zero_fraction`` of ``layer``: float64 (C,).

        Over every value of every read image's feature map (every cell counts the same).
        """
        group = self._group(layer)
        return {name: np.asarray(group[name][:]) for name in ("mean", "std", "zero_fraction")}

    def scores(self, layer: str) -> np.ndarray:
        """float32 (C, k): every channel's top scores (NaN in empty slots)."""
        return np.asarray(self._group(layer)["score"][:])

    def indices(self, layer: str) -> np.ndarray:
        """int64 (C, k): every channel's top image indices (-1 in empty slots)."""
        return np.asarray(self._group(layer)["index"][:])

    # ------------------------------------------------------------------ lookups
    def resolve(self, layer: str) -> str:
        """The full path of ``layer`` (a path, or a bare name one layer ends with)."""
        if layer in self._layers:
            return layer
        tails = [p for p in self._layers if p.rsplit("/", 1)[-1] == layer]
        if len(tails) == 1:
            return tails[0]
        matches = close_matches(str(layer), self._layers)
        hint = (
            _(" Did you mean: {matches}?").format(matches=", ".join(repr(m) for m in matches))
            if matches
            else ""
        )
        raise LayerError(
            _(
                "The atlas has no layer {layer!r}.{hint} It holds {n_layers} layers: see "
                "atlas.layers."
            ).format(layer=layer, hint=hint, n_layers=len(self._layers))
        )

    def _entry(self, layer: str) -> dict[str, Any]:
        return self._layers[self.resolve(layer)]

    def _group(self, layer: str) -> Any:
        return self._root["layers"][self._entry(layer)["key"]]

    def _channel(self, layer: str, channel: int) -> tuple[Any, int]:
        path = self.resolve(layer)
        count = int(self._layers[path]["channels"])
        channel = check_index(
            channel, count, _("channel"), _("layer {path!r}").format(path=path),
            things=_("channels"),
        )  # fmt: skip
        return self._group(path), channel


def open_atlas(store: str | os.PathLike[str]) -> Atlas:
    """Open a finished atlas store (what :func:`~cnnviz_widgets.atlas.build` returned)."""
    return Atlas(store)
