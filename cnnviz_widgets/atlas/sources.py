"""Where an atlas's images come from: a folder, paths, an array, or any iterable, read lazily.

A source hands out **batches**: numbered runs of ``batch_size`` consecutive images, each image
named by its index in the source. Files are opened by the task that computes the batch (so on a
cluster only paths travel); arrays travel as slices; other iterables are read where
:func:`~cnnviz_widgets.atlas.build` runs, one batch at a time. An image that cannot be read or
used (a broken file, NaN values, too small for the model) is skipped and counted, never an error
in the middle of a run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CnnVizError, ImageError
from ..i18n import gettext_ as _

__all__ = ["IMAGE_SUFFIXES", "Batch", "Source", "as_source", "load_item"]

#: File name endings a folder is searched for (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")


@dataclass(frozen=True)
class Batch:
    """Images ``indices`` of the source, and what a task needs to read them (``items``)."""

    number: int
    indices: tuple[int, ...]
    items: tuple[Any, ...]  # a path (str) or an image array per index


class Source:
    """Images in a fixed order, read in batches.

    Attributes
    ----------
    length : int or None
        How many images there are (None: an iterable that does not say).
    paths : list of str or None
        The file of every image, when the images are files.
    reiterable : bool
        Whether the images can be read a second time (for the crops).
    description : str
        What the source is, for the store's parameters.
    """

    def __init__(
        self,
        description: str,
        *,
        paths: Sequence[str] | None = None,
        array: Any = None,
        iterable: Callable[[], Iterable[Any]] | None = None,
        length: int | None = None,
        reiterable: bool = True,
    ) -> None:
        self.description = description
        self.paths = list(paths) if paths is not None else None
        self._array = array
        self._iterable = iterable
        self.length = length if length is not None else _length_of(paths, array)
        self.reiterable = reiterable

    def batches(self, batch_size: int, skip: Callable[[int], bool] = lambda n: False):
        """Yield every :class:`Batch` whose number ``skip`` does not refuse, in order.

        Skipped batches of an iterable are still read (an iterator cannot jump), not loaded.
        """
        if self._iterable is None:
            for number, start in enumerate(range(0, self.length, batch_size)):
                if not skip(number):
                    indices = tuple(range(start, min(start + batch_size, self.length)))
                    yield Batch(number, indices, self._items(indices))
            return
        index, number, items = 0, 0, []
        for element in _images_of(self._iterable()):
            items.append(element)
            index += 1
            if len(items) == batch_size:
                if not skip(number):
                    yield Batch(number, tuple(range(index - len(items), index)), tuple(items))
                number, items = number + 1, []
        if items and not skip(number):
            yield Batch(number, tuple(range(index - len(items), index)), tuple(items))

    def _items(self, indices: Sequence[int]) -> tuple[Any, ...]:
        if self.paths is not None:
            return tuple(self.paths[i] for i in indices)
        return tuple(self._array[i] for i in indices)

    def select(self, indices: Sequence[int]) -> Iterator[tuple[int, Any]]:
        """Yield (index, item) for the sorted ``indices`` (one more pass over an iterable)."""
        if self._iterable is None:
            for index in indices:
                yield index, self._items([index])[0]
            return
        wanted = sorted(set(indices))
        position = 0
        for index, element in enumerate(_images_of(self._iterable())):
            if position == len(wanted):
                return
            if index == wanted[position]:
                yield index, element
                position += 1

    def first_item(self) -> Any:
        """The first image's item (a never-built Sequential model is built for its size)."""
        for _index, item in self.select([0]):
            return item
        raise _empty(self.description)


def _length_of(paths: Sequence[str] | None, array: Any) -> int | None:
    if paths is not None:
        return len(paths)
    if array is not None:
        return len(array)
    return None


def _empty(description: str) -> CnnVizError:
    return CnnVizError(
        _("The image source ({description}) is empty: there are no images to read.").format(
            description=description
        )
    )


def _images_of(iterable: Iterable[Any]) -> Iterator[Any]:
    """Single images from an iterable of images, (image, label) pairs, or batches of images."""
    for element in iterable:
        if isinstance(element, (tuple, list)) and element and not isinstance(element[0], str):
            element = element[0]  # (image, label) pairs, as tf.data datasets often yield
        if isinstance(element, dict):
            element = element.get("image", next(iter(element.values())))
        if isinstance(element, (str, os.PathLike)):
            yield os.fspath(element)
            continue
        array = np.asarray(element) if hasattr(element, "__array__") else element
        if isinstance(array, np.ndarray) and array.ndim == 4:
            yield from array  # a batched dataset: one image at a time
        else:
            yield array


def as_source(images: Any) -> Source:
    """Turn what :func:`~cnnviz_widgets.atlas.build` accepts into a :class:`Source`.

    Parameters
    ----------
    images : folder, list of paths, array or iterable
        - a folder (str or Path): its image files (:data:`IMAGE_SUFFIXES`), found recursively,
          in sorted order of their path;
        - a list or tuple of paths (or of image arrays);
        - an array (N, H, W, C) or (N, H, W);
        - any other iterable of images, (image, label) pairs or batches — a ``tf.data``
          dataset, a generator — or a function that returns a fresh one each time it is
          called (then it is read twice: once for the activations, once for the crops).

    Raises
    ------
    CnnVizError
        An empty source, or a folder with no image file.
    ImageError
        A path that does not exist, or an array of the wrong rank.
    """
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.exists():
            raise ImageError(_("No such folder or file: {folder!r}.").format(folder=str(folder)))
        if folder.is_file():
            return _checked(Source(f"file {folder}", paths=[str(folder)]))
        files = sorted(
            str(p) for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not files:
            raise CnnVizError(
                _(
                    "The folder {folder!r} holds no image file (looked for {value}, in sub-folders "
                    "too)."
                ).format(folder=str(folder), value=", ".join(IMAGE_SUFFIXES))
            )
        return Source(f"folder {folder} ({len(files)} files)", paths=files)
    if isinstance(images, np.ndarray):
        if images.ndim not in (3, 4):
            raise ImageError(
                _(
                    "An array of images must be (N, H, W, C) or (N, H, W); got shape "
                    "{images_shape}."
                ).format(images_shape=images.shape)
            )
        return _checked(Source(f"array {images.shape} {images.dtype}", array=images))
    if isinstance(images, (list, tuple)):
        if all(isinstance(p, (str, os.PathLike)) for p in images):
            return _checked(Source(f"{len(images)} paths", paths=[os.fspath(p) for p in images]))
        return _checked(Source(f"list of {len(images)} images", array=list(images)))
    if callable(images) and not hasattr(images, "__iter__"):
        return Source(f"images from {getattr(images, '__name__', 'a function')}", iterable=images)
    if not hasattr(images, "__iter__"):
        raise ImageError(
            _(
                "Cannot read images from an object of type {kind}: pass a folder, a list of paths, "
                "an array (N, H, W, C) or an iterable of images."
            ).format(kind=type(images).__name__)
        )
    one_shot = iter(images) is images  # a generator or iterator: it can be read only once
    return Source(
        f"{type(images).__name__} of images",
        iterable=lambda: images,
        length=_known_length(images),
        reiterable=not one_shot,
    )


def _known_length(images: Any) -> int | None:
    cardinality = getattr(images, "cardinality", None)  # tf.data: -1 infinite, -2 unknown
    if cardinality is not None:
        return None
    try:
        return len(images)
    except TypeError:
        return None


def _checked(source: Source) -> Source:
    if source.length == 0:
        raise _empty(source.description)
    return source


def load_item(item: Any) -> np.ndarray | None:
    """The pixels of one item (a path or an image), or None when it cannot be read."""
    from ..images import load_image

    try:
        return load_image(item)
    except (ImageError, OSError, ValueError):
        return None
