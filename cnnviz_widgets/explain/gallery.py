"""Side by side: several methods for one class, or one method over several images.

:func:`compare_methods` puts the maps of several methods for one image and class in one row;
:func:`compare_images` puts one method's maps of several images (a list, a folder, or every
bundled photo) in a small grid. Both return a :class:`Gallery`: the picture as an RGB array
(laid out with :mod:`cnnviz_widgets.render`), what each tile shows, and standalone HTML export
(:mod:`cnnviz_widgets.export`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import render
from ..engine.adapter import Preprocess
from ..errors import CnnVizError, ImageError, check_choice, check_positive
from ..export import Section, html_page, write_file
from ..i18n import gettext_ as _
from ..images import load_image, resize_image
from ..progress import Cancel, bar, check
from . import registry
from .cam import grad_cam
from .predictions import class_labels, predict_top
from .saliency import saliency
from .targets import adapter_of, class_head, class_number

__all__ = ["Gallery", "Tile", "compare_images", "compare_methods"]

#: Height of every tile in pixels (widths keep each photo's proportions).
TILE_HEIGHT = 224
#: Pixels between tiles.
GAP = 8
#: Picture files a folder is read for.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class Tile:
    """One map of a gallery: which image, class and method, and the map itself (H, W)."""

    image: str
    class_index: int
    label: str
    method: str
    heatmap: np.ndarray = field(repr=False)

    @property
    def title(self) -> str:
        """``"chelsea · Egyptian cat (285) · Grad-CAM"``."""
        return f"{self.image} · {self.label} ({self.class_index}) · {_label(self.method)}"


@dataclass
class Gallery:
    """Maps laid out side by side: ``rgb`` (uint8 H×W×3), ``tiles`` in reading order.

    ``columns`` tiles a row. ``png`` encodes the picture; :meth:`export_html` writes a page
    with the picture and a table of what each tile shows.
    """

    rgb: np.ndarray
    tiles: list[Tile]
    columns: int
    title: str = "Side by side"

    @property
    def png(self) -> bytes:
        """The picture as PNG bytes."""
        return render.encode_png(self.rgb)

    def _repr_png_(self) -> bytes:
        return self.png

    def to_html(self) -> str:
        """A standalone HTML page: the picture, then one table row per tile (reading order)."""
        rows = [(n, t.image, t.class_index, t.label, _label(t.method))
                for n, t in enumerate(self.tiles, 1)]  # fmt: skip
        section = Section(
            self.title,
            self.png,
            f"{len(self.tiles)} maps, {self.columns} a row, left to right, top to bottom.",
            rows,
            ("tile", "image", "class", "label", "method"),
        )
        return html_page(self.title, [section])

    def export_html(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_html` to ``path``; returns the path."""
        return write_file(path, self.to_html())

    def export_png(self, path: str | os.PathLike[str]) -> Path:
        """Write the picture to a PNG file; returns the path."""
        return write_file(path, self.png)


def _label(method: str) -> str:
    for kind in registry.KINDS:
        for known in registry.methods(kind):
            if known.name == method:
                return known.label
    return method


def _method_names() -> dict[str, str]:
    return {m.name: kind for kind in registry.KINDS for m in registry.methods(kind)}


def attribution(
    model: Any, image: Any, class_index: int, method: str, layer: str | None, output: Any
) -> np.ndarray:
    """The (H, W) map of any registered method, through the public grad_cam or saliency."""
    kind = _method_names()[method]
    if kind == "cam":
        return grad_cam(model, image, class_index, layer=layer, method=method, output=output)
    needs_layer = registry.get(kind, method).needs_layer
    return saliency(model, image, class_index, method=method, output=output,
                    layer=layer if needs_layer else None)  # fmt: skip


def _overlay(photo: np.ndarray, heat: np.ndarray, cmap: str, alpha: float) -> np.ndarray:
    """The map over the photo, both brought to :data:`TILE_HEIGHT` rows."""
    h, w = photo.shape[:2]
    size = (TILE_HEIGHT, max(1, round(w * TILE_HEIGHT / h)))
    shown = render.as_rgb_uint8(resize_image(photo, size) if (h, w) != size else photo)
    return render.overlay(shown, np.clip(resize_image(heat, size), 0, 1), cmap=cmap, alpha=alpha)


def _arrange(pictures: Sequence[np.ndarray], columns: int) -> np.ndarray:
    """Rows of ``columns`` pictures (render.side_by_side), stacked with :data:`GAP` between."""
    rows = [render.side_by_side(pictures[i : i + columns], pad=GAP)
            for i in range(0, len(pictures), columns)]  # fmt: skip
    width = max(row.shape[1] for row in rows)
    canvas = np.full(
        (sum(r.shape[0] for r in rows) + GAP * (len(rows) - 1), width, 3), 255, np.uint8
    )
    top = 0
    for row in rows:
        canvas[top : top + row.shape[0], : row.shape[1]] = row
        top += row.shape[0] + GAP
    return canvas


def compare_methods(
    model: Any,
    image: Any,
    methods: Sequence[str] | None = None,
    target: int | None = None,
    *,
    layer: str | None = None,
    cmap: str = "jet",
    alpha: float = 0.5,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
    name: str = "image",
    progress: bool = True,
    cancel: Cancel = None,
) -> Gallery:
    """Several methods' maps of one class over one image, in one row.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    image : array, path, PIL image
    methods : sequence of str, optional
        Registered :func:`grad_cam`/:func:`saliency` method names; default: every CAM method.
    target : int, optional
        The class, the same for every map; ``None``: the model's top class.
    layer : str, optional
        For the methods that read a layer.
    cmap, alpha
        How maps are laid over the photo (:func:`cnnviz_widgets.render.overlay`).
    output, preprocess
        As for :func:`grad_cam`.
    name : str
        What the image is called in titles and exports.
    progress, cancel
        See :mod:`cnnviz_widgets.progress`.

    Returns
    -------
    Gallery
        ``rgb`` is one row of tiles :data:`TILE_HEIGHT` px high, in the order of ``methods``.
    """
    known = _method_names()
    names = [m.name for m in registry.methods("cam")] if methods is None else list(methods)
    if not names:
        raise CnnVizError(_("methods is empty; name at least one method, e.g. ['gradcam']."))
    names = [check_choice(m, known, _("attribution method")) for m in names]
    adapter = adapter_of(model, preprocess)
    photo = load_image(image)
    prepared = adapter.prepare(photo)
    head = class_head(adapter, output)
    index = class_number(target, head)
    if index < 0:
        index = predict_top(adapter, prepared, k=1, output=output)[0][0]
    label = class_labels(None, head.classes, head)(index)
    tiles, pictures = [], []
    with bar(len(names), "comparing methods", progress) as tick:
        for method in names:
            check(cancel, "the comparison")
            heat = attribution(adapter, prepared, index, method, layer, output)
            tiles.append(Tile(name, int(index), label, method, heat))
            pictures.append(_overlay(photo, heat, cmap, alpha))
            tick.update(1)
    return Gallery(_arrange(pictures, len(pictures)), tiles, len(pictures),
                   f"{label} ({index}) · {len(names)} methods")  # fmt: skip


def gallery_images(images: Any = None) -> list[tuple[str, Any]]:
    """(name, image) pairs: every bundled photo (``None``), a folder's pictures, or a list."""
    from ..samples import sample_image, sample_image_names

    if images is None:
        return [(n, sample_image(n)) for n in sample_image_names()]
    if isinstance(images, (str, os.PathLike)) and Path(images).is_dir():
        files = sorted(p for p in Path(images).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ImageError(
                _(
                    "Folder {images} has no pictures ({value}); pass another folder, a list of "
                    "images, or None for the bundled photos."
                ).format(images=images, value=", ".join(IMAGE_SUFFIXES))
            )
        return [(p.name, p) for p in files]
    if isinstance(images, (str, os.PathLike, np.ndarray)) or not isinstance(images, Iterable):
        images = [images]
    pairs = []
    for n, item in enumerate(images):
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            pairs.append(item)
        else:
            named = isinstance(item, (str, os.PathLike))
            pairs.append((Path(item).name if named else f"image {n}", item))
    if not pairs:
        raise ImageError(
            _("images is empty; pass pictures, a folder, or None for the bundled ones.")
        )
    return pairs


def compare_images(
    model: Any,
    images: Any = None,
    method: str = "gradcam",
    target: int | None = None,
    *,
    layer: str | None = None,
    columns: int = 3,
    cmap: str = "jet",
    alpha: float = 0.5,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
    progress: bool = True,
    cancel: Cancel = None,
) -> Gallery:
    """One method's maps over several images, ``columns`` a row.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    images : None, folder, or sequence
        ``None``: every photo of :func:`cnnviz_widgets.sample_image_names`; a folder: its
        picture files in name order; a sequence of images, paths or ``(name, image)`` pairs.
    method : str
        A registered :func:`grad_cam`/:func:`saliency` method name.
    target : int, optional
        One class for every image; ``None``: each image's own top class.
    layer, cmap, alpha, output, preprocess, progress, cancel
        As for :func:`compare_methods`.

    Returns
    -------
    Gallery
        Tiles :data:`TILE_HEIGHT` px high in the order of ``images``.
    """
    method = check_choice(method, _method_names(), _("attribution method"))
    columns = check_positive(columns, "columns")
    adapter = adapter_of(model, preprocess)
    head = class_head(adapter, output)
    names = class_labels(None, head.classes, head)
    pairs = gallery_images(images)
    tiles, pictures = [], []
    with bar(len(pairs), f"{_label(method)} over images", progress) as tick:
        for name, item in pairs:
            check(cancel, "the gallery")
            photo = load_image(item)
            prepared = adapter.prepare(photo)
            index = class_number(target, head)
            if index < 0:
                index = predict_top(adapter, prepared, k=1, output=output)[0][0]
            heat = attribution(adapter, prepared, index, method, layer, output)
            tiles.append(Tile(str(name), int(index), names(int(index)), method, heat))
            pictures.append(_overlay(photo, heat, cmap, alpha))
            tick.update(1)
    columns = min(columns, len(pictures))
    return Gallery(_arrange(pictures, columns), tiles, columns,
                   f"{_label(method)} · {len(pairs)} images")  # fmt: skip
