"""``build``: run a model over a dataset and keep, for every channel, the images that excite it.

Four phases, each Dask tasks:

1. **map** — one task per batch of images: the model's chosen layers reduced, inside
   TensorFlow, to each image's maximum per channel and its location, plus per-channel moments;
   the batch's own top-k and moments are written to the store as its *part*, then marked done.
   A rerun skips the batches marked done (resuming); a retried task rewrites identical bytes.
2. **reduce** — the parts read back in leaves of :data:`LEAF` batches and merged pairwise, a
   tree whose shape depends only on the number of batches (so every scheduler gives the same
   floats).
3. **crops** — the images in some top-k read again, and each unit's receptive field cut out.
4. **write** — per layer, the final arrays; the parts are deleted; the store marked complete.
"""

from __future__ import annotations

import itertools
import math
import os
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..engine.adapter import Preprocess, adapter_for
from ..errors import CnnVizError, check_positive
from ..i18n import gettext_ as _
from ..progress import Cancel, bar, check
from . import store as stores
from .reader import Atlas
from .receptive import receptive_fields
from .reduce import EMPTY_INDEX, Moments, Top
from .schedule import runner_for
from .sources import Source, as_source, load_item
from .worker import CropRequest, LayerPlan, ModelSpec, cut_crops, run_batch

__all__ = ["CONV_CLASSES", "LEAF", "build"]

#: The layers ``layers=None`` chooses: every convolution.
CONV_CLASSES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
#: Batches read and merged by one leaf task of the reduction tree.
LEAF = 8
#: Batches made room for at first when the source does not say how many images it has.
UNKNOWN_BATCHES = 64
#: Bytes of crops held in memory at once (layers are cropped in groups that fit).
CROP_BUDGET = 256 * 2**20
#: Images one crop task reads.
IMAGES_PER_CROP_TASK = 16


def build(
    model: Any,
    images: Any,
    layers: Sequence[str] | None = None,
    k: int = 9,
    store: str | os.PathLike[str] = "atlas.zarr",
    client: Any = None,
    batch_size: int = 16,
    *,
    crop_size: int = 64,
    ascent: bool | dict[str, Any] = False,
    preprocess: Preprocess | None = None,
    image_size: int | tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    cancel: Cancel = None,
) -> Atlas:
    """Build (or finish building) an atlas of ``model`` over ``images`` into a Zarr store.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN the package reads (see :class:`~cnnviz_widgets.ModelAdapter`).
    images : folder, list of paths, array or iterable
        See :func:`~cnnviz_widgets.atlas.sources.as_source`: read lazily, a batch at a time.
        Unreadable images are skipped and counted (``atlas.images``).
    layers : sequence of str, optional
        Layer paths (or unambiguous names) with spatial outputs; default every convolution.
    k : int
        Images kept per channel (≥ 1).
    store : str or path
        Where the Zarr store goes. If it holds an unfinished build with the same parameters the
        build continues from its finished batches; a finished one is opened as it is.
    client : distributed.Client, optional
        Run on that cluster; default: Dask's threads in this process. Workers need this package
        and Keras installed, and the store must be reachable from them (a shared disk, or an
        ``s3://`` URL with fsspec).
    batch_size : int
        Images per task. Memory per task is about ``batch_size`` × the chosen layers' maps.
    crop_size : int
        Largest side of the stored crops, in pixels (receptive fields larger are scaled down).
    ascent : bool or dict
        Also store each channel's filter-ascent image (:func:`cnnviz_widgets.filter_ascent`,
        run here, not on the cluster); a dict passes options (default ``size=64``).
    preprocess, image_size
        As for :class:`~cnnviz_widgets.ModelAdapter`.
    overwrite : bool
        Replace whatever ``store`` holds.
    progress : bool
        Show tqdm bars (after a second of work).
    cancel : threading.Event or callable, optional
        Checked between tasks: stops the build with :class:`~cnnviz_widgets.errors.Cancelled`;
        a rerun continues where it stopped.

    Returns
    -------
    Atlas
        The same object :func:`cnnviz_widgets.atlas.open` returns for ``store``.

    Raises
    ------
    CnnVizError
        ``k`` or ``batch_size`` < 1, an empty source, no readable image, a store built with
        other parameters.
    LayerError
        An unknown layer, or one without a spatial (height, width, channels) output.

    Examples
    --------
    >>> atlas = cv.atlas.build(model, "photos/", k=9, store="atlas.zarr")   # doctest: +SKIP
    >>> atlas.top("backbone/block3a_expand_conv", 5)[0].index               # doctest: +SKIP
    """
    k = check_positive(k, "k")
    batch_size = check_positive(batch_size, "batch_size")
    crop_size = check_positive(crop_size, "crop_size")
    source = as_source(images)
    adapter = adapter_for(model, preprocess=preprocess, image_size=image_size)
    if not adapter.built:
        adapter.prepare(load_item(source.first_item()))
    plan = LayerPlan(*_choose_layers(adapter, layers), k)
    spec = ModelSpec(adapter)
    url = os.fspath(store)
    params = {
        "model": adapter.model.name,
        "model_key": spec.key,
        "layers": list(plan.paths),
        "k": k,
        "batch_size": batch_size,
        "crop_size": crop_size,
        "source": source.description,
        "images": source.length,
        "image_size": list(image_size) if isinstance(image_size, tuple) else image_size,
        "preprocess": _name_of(preprocess),
        "ascent": ascent if isinstance(ascent, (bool, dict)) else bool(ascent),
    }
    expected = math.ceil(source.length / batch_size) if source.length else UNKNOWN_BATCHES
    root = stores.create_or_resume(url, params, plan.total, expected, overwrite=overwrite)
    if root.attrs.get("complete"):
        stores.drop_parts(root)  # left over when a finished build stopped just before
        return Atlas(url)
    runner = runner_for(client, spec)
    clock = _Clock()
    batches = _map_phase(runner, root, url, source, plan, batch_size, progress, cancel)
    clock.lap("map")
    status = stores.image_status(root)
    if status.size == 0:
        raise CnnVizError(
            _("The image source ({description}) is empty: no images to read.").format(
                description=source.description
            )
        )
    if not status.any():
        raise CnnVizError(
            _(
                "None of the {status_size} images of {description} could be read or used (broken "
                "files, NaN values, or images too small for the model)."
            ).format(status_size=status.size, description=source.description)
        )
    top, moments = runner.compute(_reduction(url, batches))
    clock.lap("reduce")
    check(cancel, "the atlas")
    tops = _split(plan, top)
    crops = _crop_phase(runner, root, adapter, source, plan, tops, crop_size, progress, cancel)
    clock.lap("crops")
    ascents = _ascent_images(adapter, plan, ascent, progress, cancel)
    clock.lap("ascent")
    _write(root, source, plan, tops, moments, crops, ascents, status)
    clock.lap("write")
    root.attrs.update({"timings": clock.seconds})
    return Atlas(url)


class _Clock:
    """Seconds spent in each phase of this run (kept in the store's ``timings``)."""

    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self._last = self._now()
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = self._now()
        self.seconds[phase] = round(now - self._last, 4)
        self._last = now


def _name_of(fn: Any) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def _choose_layers(adapter: Any, layers: Sequence[str] | None) -> tuple[tuple, tuple]:
    if layers is None:
        infos = [adapter.layer_info(p) for p in adapter.layer_paths]
        paths = [i.path for i in infos if i.class_name in CONV_CLASSES]
        if not paths:
            raise CnnVizError(
                _(
                    "Model {model!r} has no convolution layer; name the layers to keep with "
                    "layers=[...] (see layer_paths(model))."
                ).format(model=adapter.model.name)
            )
    else:
        if isinstance(layers, str):
            layers = [layers]
        paths = list(dict.fromkeys(adapter.resolve_layer(layer) for layer in layers))
        if not paths:
            raise CnnVizError(_("layers is empty: name at least one layer, or pass None."))
    channels = tuple(int(adapter.layer_info(p).channels) for p in paths)
    return tuple(paths), channels


# ------------------------------------------------------------------------------ map
def _map_phase(runner, root, url, source: Source, plan, batch_size, show, cancel) -> int:
    """Run every unfinished batch; return how many batches the source has."""
    done = set(stores.done_batches(root).tolist())
    total = math.ceil(source.length / batch_size) if source.length else None
    seen = [0]

    def arguments() -> Iterator[tuple[Any, ...]]:
        for batch in source.batches(batch_size, skip=lambda n: _seen(n) in done):
            capacity = stores.batch_capacity(root)
            if batch.number >= capacity:  # an iterable longer than expected: make room
                stores.grow(root, max(2 * capacity, batch.number + 1))
            yield (plan, url, batch)

    def _seen(number: int) -> int:
        seen[0] = max(seen[0], number + 1)
        return number

    with bar(total, "atlas: batches", show) as shown:
        shown.update(len(done))
        runner.map(run_batch, arguments(), lambda result: shown.update(1), cancel, "the atlas")
    return total if total is not None else seen[0]


# ------------------------------------------------------------------------------ reduce
def _merge(a: tuple[Top, Moments], b: tuple[Top, Moments]) -> tuple[Top, Moments]:
    return a[0].merge(b[0]), a[1].merge(b[1])


def _reduction(url: str, batches: int) -> Any:
    """The tree of merges over the parts, as a ``dask.delayed`` graph."""
    import dask

    # pure=False: a key must never name the result of an earlier build at the same path.
    read = dask.delayed(stores.read_parts, pure=False)
    merge = dask.delayed(_merge, pure=False)
    level = [read(url, a, min(a + LEAF, batches)) for a in range(0, batches, LEAF)]
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [merge(*pair) if len(pair) == 2 else pair[0] for pair in pairs]
    return level[0]


def _split(plan: LayerPlan, top: Top) -> list[Top]:
    offsets = plan.offsets
    return [
        Top(*(getattr(top, n)[a:b] for n in ("score", "index", "y", "x")))
        for a, b in itertools.pairwise(offsets)
    ]


# ------------------------------------------------------------------------------ crops
def crop_shapes(
    adapter: Any, plan: LayerPlan, crop_size: int, reference: tuple[int, int]
) -> tuple[list[tuple[int, int]], dict[str, Any]]:
    """Each layer's crop (height, width) and receptive fields at the ``reference`` input size."""
    fields = receptive_fields(adapter, plan.paths, reference)
    fixed = adapter.input_shape[0] is not None and adapter.input_shape[1] is not None
    shapes = []
    for path in plan.paths:
        field = fields.get(path)
        if field is None or field.is_global:
            side = reference if fixed else (crop_size, crop_size)
        else:
            side = tuple(
                min(s, r) if fixed else s for s, r in zip(field.size, reference, strict=True)
            )
        scale = min(1.0, crop_size / max(side))
        shapes.append((max(1, round(side[0] * scale)), max(1, round(side[1] * scale))))
    return shapes, fields


def _crop_phase(runner, root, adapter, source, plan, tops, crop_size, show, cancel) -> dict | None:
    """Cut every kept unit's receptive field out of its image and write the crops.

    Layers are taken in groups whose crops fit in :data:`CROP_BUDGET` bytes, each group's
    images read once: memory stays bounded at the price of reading an image once per group.
    Returns the crop shapes and receptive fields, or None when the images cannot be read again.
    """
    if not source.reiterable:
        warnings.warn(
            "The images came from a one-shot iterator, which cannot be read a second time, so "
            "the atlas has no crops. Pass a list, a tf.data dataset, or a function that returns "
            "a fresh iterator to get them.",
            UserWarning,
            stacklevel=3,
        )
        return None
    first = int(min(int(t.index[t.index != EMPTY_INDEX].min()) for t in tops if
                    (t.index != EMPTY_INDEX).any()))  # fmt: skip
    reference = adapter.prepare(load_item(next(source.select([first]))[1])).shape[:2]
    shapes, fields = crop_shapes(adapter, plan, crop_size, reference)
    channels = int(adapter.input_shape[2])
    sizes = [
        c * plan.k * s[0] * s[1] * channels for c, s in zip(plan.channels, shapes, strict=True)
    ]
    groups: list[list[int]] = [[]]
    for layer, size in enumerate(sizes):
        if groups[-1] and sum(sizes[i] for i in groups[-1]) + size > CROP_BUDGET:
            groups.append([])
        groups[-1].append(layer)
    with bar(sum(len(g) for g in groups), "atlas: crops (layers)", show) as shown:
        for group in groups:
            _crop_group(runner, root, source, plan, tops, shapes, channels, group, cancel)
            shown.update(len(group))
    return {"shapes": shapes, "fields": fields}


def _crop_group(runner, root, source, plan, tops, shapes, channels, group, cancel) -> None:
    requests: dict[int, list[CropRequest]] = defaultdict(list)
    for layer in group:
        top = tops[layer]
        for channel, rank in zip(*np.nonzero(top.index != EMPTY_INDEX), strict=True):
            index = int(top.index[channel, rank])
            requests[index].append(
                CropRequest(index, layer, int(channel), int(rank),
                            int(top.y[channel, rank]), int(top.x[channel, rank]))
            )  # fmt: skip
    crops = {layer: np.zeros((plan.channels[layer], plan.k, *shapes[layer], channels), np.uint8)
             for layer in group}  # fmt: skip
    boxes = {layer: np.zeros((plan.channels[layer], plan.k, 4), np.int32) for layer in group}

    def arguments() -> Iterator[tuple[Any, ...]]:
        chunk: list[tuple[int, Any]] = []
        for index, item in source.select(sorted(requests)):
            chunk.append((index, item))
            if len(chunk) == IMAGES_PER_CROP_TASK:
                yield (plan, shapes, chunk, [r for i, _ in chunk for r in requests[i]])
                chunk = []
        if chunk:
            yield (plan, shapes, chunk, [r for i, _ in chunk for r in requests[i]])

    def keep(results: list) -> None:
        for request, crop, box in results:
            crops[request.layer][request.channel, request.rank] = crop
            boxes[request.layer][request.channel, request.rank] = box

    runner.map(cut_crops, arguments(), keep, cancel, "the atlas")
    for layer in group:
        stores.write_layer(root, layer, plan.paths[layer],
                           {"crops": crops.pop(layer), "box": boxes.pop(layer)})  # fmt: skip


def _ascent_images(adapter, plan, ascent, show, cancel) -> list[np.ndarray] | None:
    if not ascent:
        return None
    from ..ascent.optimize import filter_ascent

    options = {"size": 64, **(ascent if isinstance(ascent, dict) else {})}
    images = []
    with bar(len(plan.paths), "atlas: filter ascent", show) as shown:
        for path, count in zip(plan.paths, plan.channels, strict=True):
            result = filter_ascent(adapter, path, range(count), cancel=cancel, **options)
            images.append(np.round(np.clip(result, 0, 1) * 255).astype(np.uint8))
            shown.update(1)
    return images


# ------------------------------------------------------------------------------ write
def _write(root, source, plan, tops, moments, crops, ascents, status) -> None:
    offsets = plan.offsets
    layers = []
    for position, (path, top) in enumerate(zip(plan.paths, tops, strict=True)):
        empty = top.index == EMPTY_INDEX
        chunk = Moments(*(getattr(moments, n)[offsets[position] : offsets[position + 1]]
                          for n in ("count", "mean", "m2", "zeros")))  # fmt: skip
        arrays = {
            "score": np.where(empty, np.nan, top.score).astype(np.float32),
            "index": np.where(empty, -1, top.index).astype(np.int64),
            "y": top.y.astype(np.int32),
            "x": top.x.astype(np.int32),
            **chunk.stats(),
        }
        entry: dict[str, Any] = {"path": path, "key": stores.layer_key(position),
                                 "channels": plan.channels[position]}  # fmt: skip
        if crops is not None:
            field = crops["fields"].get(path)
            entry["crop_shape"] = list(crops["shapes"][position])
            if field is not None and not field.is_global:
                entry["receptive_field"] = {"size": list(field.size), "jump": list(field.jump)}
        if ascents is not None:
            arrays["ascent"] = ascents[position]
        stores.write_layer(root, position, path, arrays)
        layers.append(entry)
    if source.paths is not None:
        stores.write_paths(root, source.paths)
    skipped = np.flatnonzero(status == 0)
    if skipped.size:
        warnings.warn(
            f"Skipped {skipped.size} of {status.size} images that could not be read or used "
            f"(indices {skipped[:10].tolist()}{' …' if skipped.size > 10 else ''}).",
            UserWarning,
            stacklevel=3,
        )
    root.attrs.update(
        {
            "layers": layers,
            "images": {"count": int(status.size), "read": int(status.sum()),
                       "skipped": skipped.tolist()},
            "crops": crops is not None,
            "ascent": ascents is not None,
            "complete": True,
        }
    )  # fmt: skip
    stores.drop_parts(root)  # scratch: the final arrays hold everything now
