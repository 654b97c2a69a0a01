"""What runs inside a Dask task: the model rebuilt from weights, a batch summarised, crops cut.

The model reaches a worker as a :class:`ModelSpec`: its architecture (``model.to_json()``),
its weights (numpy arrays), the ``preprocess`` callable and the image size. A worker process
rebuilds the model once per spec and keeps it for every later task; in the local threaded
scheduler the spec carries the user's model itself and nothing is rebuilt or copied.

A batch's feature maps never leave TensorFlow: one compiled function per set of layers returns,
per layer, each image's maximum and its first location per channel, and the batch's per-channel
mean, M2 and zero count. Only those small arrays reach numpy.
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CnnVizError, ImageConversionWarning, ModelError
from ..i18n import gettext_ as _
from .reduce import Moments, Top, top_of_batch
from .sources import Batch, load_item

__all__ = ["LayerPlan", "ModelSpec", "cut_crops", "run_batch"]


@dataclass(frozen=True)
class LayerPlan:
    """The chosen layers, their channel counts, and where each sits in the flat channel axis."""

    paths: tuple[str, ...]
    channels: tuple[int, ...]
    k: int

    @property
    def offsets(self) -> tuple[int, ...]:
        return tuple(int(v) for v in np.cumsum((0, *self.channels)))

    @property
    def total(self) -> int:
        return int(sum(self.channels))


class ModelSpec:
    """A model as weights plus a builder, to rebuild it in another process.

    Parameters
    ----------
    adapter : ModelAdapter
        The adapter of the user's model (its preprocess and image size travel with it).
    """

    def __init__(self, adapter: Any) -> None:
        model = adapter.model
        self.name = model.name
        self.built = bool(model.built)
        self.config = model.to_json()
        self.weights = [np.asarray(w) for w in model.get_weights()]
        self.preprocess = adapter.preprocess
        self.image_size = adapter.image_size
        digest = hashlib.sha256(self.config.encode())
        for weight in self.weights:
            digest.update(repr((weight.shape, weight.dtype.str)).encode())
            digest.update(np.ascontiguousarray(weight).tobytes())
        self.key = digest.hexdigest()
        self._adapter = adapter

    def __getstate__(self) -> dict[str, Any]:
        if not self.built:
            raise ModelError(
                _(
                    "Model {name!r} was never built, so it cannot be sent to workers; call "
                    "model.build((None, height, width, channels)) first."
                ).format(name=self.name)
            )
        state = dict(self.__dict__)
        state["_adapter"] = None  # the live model stays in the user's process
        return state

    def adapter(self) -> Any:
        """The adapter to compute with: the user's, or one rebuilt once in this process."""
        if self._adapter is None:
            with _rebuilt_lock:
                adapter = _rebuilt.get(self.key)
                if adapter is None:
                    adapter = _rebuilt[self.key] = self._rebuild()
            self._adapter = adapter
        return self._adapter

    def _rebuild(self) -> Any:
        from ..engine.adapter import adapter_for
        from ..engine.backend import keras

        model = keras().models.model_from_json(self.config)
        model.set_weights(self.weights)
        return adapter_for(model, preprocess=self.preprocess, image_size=self.image_size)


_rebuilt: dict[str, Any] = {}
_rebuilt_lock = threading.Lock()


# ------------------------------------------------------------------------------ one batch
def _summariser(adapter: Any, paths: tuple[str, ...]) -> Any:
    """A compiled function: input batch → per layer (max, first argmax, mean, M2, zeros, h, w)."""

    def build() -> Any:
        from ..engine.backend import compile, tensorflow

        tf = tensorflow()

        def summarise(batch: Any) -> list[Any]:
            features, _ = adapter.forward(batch, paths)
            out = []
            for feature in features:
                maps = tf.cast(feature, tf.float32)
                shape = tf.shape(maps)
                cells = shape[1] * shape[2]
                flat = tf.reshape(maps, [shape[0], cells, shape[3]])
                best = tf.reduce_max(flat, axis=1)
                # The first cell holding the maximum, row-major (not tf.argmax: its choice
                # among ties is not specified).
                position = tf.range(cells)[tf.newaxis, :, tf.newaxis]
                hit = tf.equal(flat, best[:, tf.newaxis, :])
                first = tf.reduce_min(tf.where(hit, position, cells), axis=1)
                first = tf.minimum(first, cells - 1)  # a NaN map has no hit
                wide = tf.cast(flat, tf.float64)
                count = tf.cast(shape[0] * cells, tf.float64)
                mean = tf.reduce_sum(wide, axis=[0, 1]) / count
                m2 = tf.reduce_sum(tf.square(wide - mean), axis=[0, 1])
                zeros = tf.reduce_sum(tf.cast(tf.equal(flat, 0.0), tf.float64), axis=[0, 1])
                out += [best, first, mean, m2, zeros, shape[1:3]]
            return out

        return compile(summarise, [adapter.input_spec()])

    return adapter.traced(("atlas.summarise", paths), build)


def _prepared(adapter: Any, item: Any) -> Any:
    """The prepared image of ``item``, or None when it cannot be read or used."""
    pixels = load_item(item)
    if pixels is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImageConversionWarning)
            return adapter.prepare(pixels)
    except CnnVizError:
        return None


def _model_batch(adapter: Any, pixels: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(pixels).astype(np.float32)
    if adapter.preprocess is not None:
        batch = np.asarray(adapter.preprocess(batch.copy()), dtype=np.float32)
    return batch


@dataclass
class BatchResult:
    """A batch summarised: flat top-k and moments over every chosen channel, and what was read."""

    number: int
    top: Top
    moments: np.ndarray  # (total channels, 4)
    status: np.ndarray  # per image of the batch: 1 read, 0 skipped
    indices: tuple[int, ...] = field(default_factory=tuple)


def summarise_batch(spec: ModelSpec, plan: LayerPlan, batch: Batch) -> BatchResult:
    """Run the model over one batch and reduce every chosen layer to top-k and moments."""
    adapter = spec.adapter()
    groups: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = defaultdict(list)
    status = np.zeros(len(batch.indices), np.int8)
    for slot, (index, item) in enumerate(zip(batch.indices, batch.items, strict=True)):
        prepared = _prepared(adapter, item)
        if prepared is not None:
            groups[prepared.shape].append((index, prepared.pixels))
            status[slot] = 1
    tops = [Top.empty(c, plan.k) for c in plan.channels]
    moments = [Moments.empty(c) for c in plan.channels]
    function = _summariser(adapter, plan.paths)
    for shape in sorted(groups):  # a fixed order: the same floats on every run
        members = groups[shape]
        indices = np.array([index for index, _ in members], np.int64)
        outputs = function(_model_batch(adapter, [pixels for _, pixels in members]))
        for layer in range(len(plan.paths)):
            best, first, mean, m2, zeros, size = (
                np.asarray(v) for v in outputs[6 * layer : 6 * layer + 6]
            )
            width = int(size[1])
            tops[layer] = tops[layer].merge(top_of_batch(best, first, width, indices, plan.k))
            count = np.full(mean.shape, float(len(members) * int(size[0]) * width))
            moments[layer] = moments[layer].merge(Moments(count, mean, m2, zeros))
    flat = Top(
        *(np.concatenate([getattr(t, name) for t in tops]) for name in ("score", "index", "y", "x"))
    )
    return BatchResult(
        batch.number,
        flat,
        np.concatenate([m.as_array() for m in moments]),
        status,
        batch.indices,
    )


def run_batch(spec: ModelSpec, plan: LayerPlan, store_url: str, batch: Batch) -> dict[str, Any]:
    """The map task: summarise a batch, write its part to the store, mark it done.

    Writing the same batch twice writes the same bytes (a retried task is harmless); the done
    mark is written last, so a task killed mid-write leaves the batch to be computed again.
    """
    from .store import write_part

    result = summarise_batch(spec, plan, batch)
    write_part(store_url, result)
    return {"number": batch.number, "read": int(result.status.sum()), "size": len(batch.indices)}


# ------------------------------------------------------------------------------ crops
@dataclass(frozen=True)
class CropRequest:
    """A crop to cut: from image ``index``, for layer ``layer`` (position), channel, rank."""

    index: int
    layer: int
    channel: int
    rank: int
    y: int
    x: int


def cut_crops(
    spec: ModelSpec,
    plan: LayerPlan,
    shapes: Sequence[tuple[int, int]],
    items: Sequence[tuple[int, Any]],
    requests: Sequence[CropRequest],
) -> list[tuple[CropRequest, np.ndarray, tuple[int, int, int, int]]]:
    """The crop task: for every request, the window of its unit in its image, as uint8.

    Each crop is letterboxed (aspect kept, grey around) into its layer's ``shapes`` entry.
    Returns (request, crop (h, w, channels) uint8, box (top, left, bottom, right)).
    """
    from .receptive import crop_box, receptive_fields

    adapter = spec.adapter()
    by_index: dict[int, list[CropRequest]] = defaultdict(list)
    for request in requests:
        by_index[request.index].append(request)
    fields: dict[tuple[int, int], dict[str, Any]] = {}
    out = []
    for index, item in items:
        prepared = _prepared(adapter, item)
        if prepared is None:
            continue
        pixels = prepared.pixels
        size = (int(pixels.shape[0]), int(pixels.shape[1]))
        if size not in fields:
            fields[size] = receptive_fields(adapter, plan.paths, size)
        # Channels often share a window (deep layers see the whole image): cut each once.
        cut: dict[tuple, np.ndarray] = {}
        for request in by_index.get(index, ()):
            path = plan.paths[request.layer]
            box = crop_box(fields[size][path], request.y, request.x, size)
            shape = tuple(shapes[request.layer])
            crop = cut.get((shape, box))
            if crop is None:
                window = pixels[box[0] : box[2], box[1] : box[3]]
                crop = cut[(shape, box)] = letterbox(window, shape)
            out.append((request, crop, box))
    return out


def letterbox(crop: np.ndarray, shape: tuple[int, int], grey: float = 128.0) -> np.ndarray:
    """``crop`` (h, w, c) 0–255 scaled to fit ``shape`` with its aspect kept, grey around; uint8."""
    from ..images import resize_image

    h, w = crop.shape[:2]
    if (h, w) != tuple(shape):
        scale = min(shape[0] / h, shape[1] / w)
        size = (max(1, min(shape[0], round(h * scale))), max(1, min(shape[1], round(w * scale))))
        crop = resize_image(crop, size)
    canvas = np.full((*shape, crop.shape[2]), grey, np.float32)
    top, left = (shape[0] - crop.shape[0]) // 2, (shape[1] - crop.shape[1]) // 2
    canvas[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return np.clip(np.round(canvas), 0, 255).astype(np.uint8)
