"""The model adapter: the one place that understands Keras models.

A :class:`ModelAdapter` reads a Keras 3 model once (:mod:`.graph`: steps named by layer paths)
and computes intermediate outputs by replaying only the steps a request needs inside a compiled
function kept per request, so repeating a request never retraces. Replaying the graph ourselves,
instead of building ``keras.Model(model.input, inner.output)`` sub-models, reaches layers deep
inside nested bases without "Graph disconnected" and never changes the user's model.

TensorFlow and Keras are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import cachetools
import numpy as np

from .. import errors
from ..errors import LayerError, ModelError
from ..images import PreparedImage, load_image, resize_image, to_channels
from . import heads
from .backend import compile, tensorflow, trace_count
from .geometry import check_big_enough, minimum_input_size, model_image_size
from .graph import (
    Alias,
    LayerCall,
    LayerInfo,
    ReluRule,
    Replacement,
    check_is_keras_model,
    needed_steps,
    read_model,
    release_after,
    top_ref,
)

#: Optional preprocessing: float32 batch (N, H, W, C) of 0–255 pixels in, model input out.
Preprocess = Callable[[np.ndarray], Any]
#: Compiled functions (and facts) kept per adapter, least recently used dropped first: a graph
#: of a deep layer holds ~3 MiB, and walking all 141 layers of the default model kept 380 MiB.
MAX_TRACED = 32


class ModelAdapter:
    """Read a Keras model once; compute intermediate outputs fast, as often as asked.

    Parameters
    ----------
    model : keras.Model
        A functional or Sequential model with one image input. Nested sub-models are flattened
        into layer paths. A Sequential model that was never built is read for the first image's
        size by calling its layers on an input of ours (the model object itself stays unbuilt;
        its layers create their weights, as on Keras' own first call).
    preprocess : callable, optional
        For models whose preprocessing lives outside them (e.g.
        ``keras.applications.vgg16.preprocess_input``): called on a float32 batch of 0–255 RGB
        pixels, shaped ``(1, H, W, C)``, before the model.
    image_size : int or (int, int), optional
        Only for models that accept any input size: the size images are brought to. An int
        resizes the *shorter* side to it (up or down) and keeps the aspect ratio; a pair is
        (height, width). ``None`` (the default) scales images whose shorter side exceeds
        224 px (ImageNet's scale) down to 224 and leaves smaller ones as they are. Models with
        a fixed input size always get the whole image resized to it (never a silent crop).
        (Examples: :func:`activations`, :attr:`layer_paths`.)
    """

    def __init__(
        self,
        model: Any,
        *,
        preprocess: Preprocess | None = None,
        image_size: int | tuple[int, int] | None = None,
    ) -> None:
        check_is_keras_model(model)
        self.model = model
        self.preprocess = preprocess
        self.image_size = image_size
        self._lock = threading.RLock()
        self._identity = f"adapter-{next(_serial)}"
        self._functions: cachetools.LRUCache = cachetools.LRUCache(MAX_TRACED)
        self._minimum_size: tuple[int, int] | None = None
        self._steps: list[LayerCall | Alias] | None = None
        self._layers: list[LayerInfo] | None = None
        self._graph = None
        self._read_graph()

    # ------------------------------------------------------------------ reading the model
    def _read_graph(self, image_shape: tuple[int, ...] | None = None) -> None:
        read = read_model(self.model, image_shape)
        if read is None:
            return  # a never-built Sequential model: built on the first image
        self._graph, self._steps, self._layers = read.graph, read.steps, read.layers
        self._by_path = {info.path: info for info in read.layers}
        self._step_of = {s.info.path: s for s in read.steps if s.info is not None}
        self._input = read.graph.inputs[0]
        self.input_shape: tuple[int | None, int | None, int] = read.input_shape

    def build_for(self, image_shape: tuple[int, int, int]) -> None:
        """Build a never-built Sequential model for images of ``(height, width, channels)``.

        Does nothing for a model that is built already. Views that take no image (filter
        ascent) call it with the size they will synthesise.
        """
        self._ensure_graph(tuple(int(d) for d in image_shape))

    def _ensure_graph(self, image_shape: tuple[int, ...]) -> None:
        if self._steps is None:
            with self._lock:
                if self._steps is None:
                    self._read_graph(image_shape)

    # ------------------------------------------------------------------ layer names
    @property
    def built(self) -> bool:
        """False only for a Sequential model that was never built (until the first image)."""
        return self._steps is not None

    @property
    def layers(self) -> list[LayerInfo]:
        """Every layer call in execution order, nested sub-models flattened (and listed too)."""
        self._require_built()
        return list(self._layers)

    @property
    def layer_paths(self) -> list[str]:
        """Paths of the layers with a spatial (4-D) output, in execution order.

        For a Sequential model that was never built (and no image given yet) the shapes are not
        known: every layer's name is listed.
        """
        if not self.built:
            return [layer.name for layer in self.model.layers]
        return [info.path for info in self.layers if info.spatial and not self._is_submodel(info)]

    def _is_submodel(self, info: LayerInfo) -> bool:
        return isinstance(self._step_of.get(info.path), Alias)

    def _require_built(self) -> None:
        if self._steps is None:
            raise ModelError(errors.not_built_message(self.model.name))

    def layer_info(self, layer: str) -> LayerInfo:
        """The :class:`LayerInfo` of ``layer`` (a path or an unambiguous layer name)."""
        return self._by_path[self.resolve_layer(layer, spatial=False)]

    def resolve_layer(self, layer: str, *, spatial: bool = True) -> str:
        """Turn a layer path or bare layer name into its full path, with a clear error.

        A bare name (``"block3_conv1"``) is accepted when exactly one nested layer carries it.
        With ``spatial=True`` the layer must have a 4-D output.
        """
        self._require_built()
        if not isinstance(layer, str):
            raise LayerError(errors.layer_type_message(self.layer_paths[-1], layer))
        path = layer if layer in self._by_path else None
        if path is None:
            tails = [p for p in self._by_path if p.rsplit("/", 1)[-1] == layer]
            if len(tails) == 1:
                path = tails[0]
            elif len(tails) > 1:
                raise LayerError(errors.ambiguous_layer_message(layer, tails))
        choices = self.layer_paths if spatial else list(self._by_path)
        if path is None:
            raise LayerError(
                errors.no_layer_message(layer, self.model.name, choices, spatial=spatial)
            )
        info = self._by_path[path]
        if spatial and not info.spatial:
            last = self.layer_paths[-1]
            raise LayerError(
                errors.not_spatial_message(path, info.class_name, info.output_shape, last)
            )
        return path

    # ------------------------------------------------------------------ images
    def prepare(self, image: Any) -> PreparedImage:
        """Turn any accepted image into what the model sees, once; pass the result on.

        Converts the channel count to the model's (with an ``ImageConversionWarning``) and
        resizes the whole image for fixed-size models (or to ``image_size``). The caller's image
        is never modified. A :class:`~cnnviz_widgets.images.PreparedImage` made by this adapter
        is returned as it is, so views that call each other decode and resize an image once.

        Returns
        -------
        PreparedImage
            ``pixels`` float32 (H, W, C) 0–255 at the model's size (read-only), ``size`` the
            (height, width) of the image as given, ``key`` a content fingerprint.
        """
        if isinstance(image, PreparedImage) and image.owner == self.identity:
            return image
        pixels = load_image(image.pixels if isinstance(image, PreparedImage) else image)
        size = (int(pixels.shape[0]), int(pixels.shape[1]))
        if isinstance(image, PreparedImage):
            size = image.size
        channels = self.input_shape[2] if self.built else pixels.shape[2]
        pixels = to_channels(pixels, channels)
        target = self.target_size(pixels.shape[:2])
        self._ensure_graph((*target, channels))
        self._check_big_enough(target)
        if target != pixels.shape[:2]:
            pixels = resize_image(pixels, target)
        return PreparedImage.of(pixels, size, self.identity)

    @property
    def minimum_size(self) -> tuple[int, int]:
        """The smallest (height, width) the model takes without an empty feature map."""
        self._require_built()
        with self._lock:
            if self._minimum_size is None:
                self._minimum_size = minimum_input_size(self._steps, top_ref(self._input))
            return self._minimum_size

    def _check_big_enough(self, size: tuple[int, int]) -> None:
        check_big_enough(self.model.name, size, self.minimum_size)

    def target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (height, width) an image of ``size`` is brought to before the model."""
        fixed = self.input_shape[:2] if self.built else (None, None)
        return model_image_size(size, fixed, self.image_size)

    def model_input(self, image: PreparedImage) -> np.ndarray:
        """The batch of one the model is fed for a prepared image (after ``preprocess``)."""
        batch = image.pixels[np.newaxis]
        if self.preprocess is not None:
            batch = np.asarray(self.preprocess(batch.copy()), dtype=np.float32)
        return batch

    # ------------------------------------------------------------------ computing
    def input_spec(self) -> Any:
        """The ``tf.TensorSpec`` of the model's input batch (any batch size, any free H/W)."""
        tf = tensorflow()
        h, w, c = self.input_shape
        return tf.TensorSpec((None, h, w, c), tf.float32)

    def traced(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """The function ``build()`` makes for ``key``, made once and kept (the last
        :data:`MAX_TRACED` used).

        Algorithms keep their ``tf.function`` objects here, keyed by everything that changes the
        traced graph (layer, method, ...), so repeating a request never retraces.
        """
        with self._lock:
            fn = self._functions.get(key)
            if fn is None:
                fn = self._functions[key] = build()
            return fn

    def _function(self, paths: tuple[str, ...]) -> Any:
        """A compiled function from an input batch to the outputs at ``paths`` (kept per paths)."""

        def build() -> Any:
            tf = tensorflow()

            def outputs(batch: Any) -> list[Any]:
                features, _ = self.forward(batch, paths)
                return [tf.cast(f, tf.float32) for f in features]

            return compile(outputs, [self.input_spec()], warm=True)

        return self.traced(("activations", paths), build)

    def forward(
        self,
        batch: Any,
        paths: Sequence[str] = (),
        *,
        logits: bool = False,
        output: int | str | None = None,
        relu: ReluRule | None = None,
        watch: Callable[[Any], None] | None = None,
        any_output: bool = False,
        edit: tuple[str, Callable[[Any], Any]] | None = None,
    ) -> tuple[list[Any], Any | None]:
        """Replay the model on ``batch``; call it inside a ``tf.function`` or ``GradientTape``.

        Parameters
        ----------
        batch : tf.Tensor
            Model input, (N, H, W, C) float32, as :meth:`model_input` makes it.
        paths : sequence of str
            Layer paths whose outputs to return (resolved paths, see :meth:`resolve_layer`).
        logits : bool
            Also run to the class head and return its pre-softmax scores, float32 (N, classes).
            A softmax or sigmoid fused into the last layer, or a Softmax/Activation layer at the
            end, is left out — on the fly, the model itself is not changed. A single sigmoid
            unit's logit ``z`` comes as two classes, ``[-z, z]`` (N, 2).
        output : int or str, optional
            Which model output is the class head, for models with several outputs.
        relu : callable, optional
            Replaces every ReLU and ReLU6 (standalone layers and activations fused into conv or
            dense layers) by ``relu(x, max_value)``: how guided backprop and deconvnet change
            the backward pass.
        watch : callable, optional
            Called with each requested output the moment it is computed (``tape.watch``).
        any_output : bool
            With ``logits``: the output may have any shape (N, ...) — a segmentation map, a
            regression vector — for a caller's own target function; it comes as computed, minus
            a final softmax or sigmoid, and a single sigmoid unit stays one unit.
        edit : (path, callable), optional
            That layer's output replaced by ``callable(output)`` for the layers after it and
            ``paths`` (AblationCAM zeroes channels so).

        Returns
        -------
        features : list of tf.Tensor
            The outputs at ``paths``, in the layer's compute dtype (float16 under mixed
            precision); these are the tensors the rest of the pass was computed from, so
            gradients with respect to them are defined.
        logits : tf.Tensor or None
        """
        import keras

        self._require_built()
        targets = [self._step_of[p].output_ids[0] for p in paths]
        replace: dict[int, Replacement] = {}
        needed = list(targets)
        edit_ref = None if edit is None else self._step_of[edit[0]].output_ids[0]
        head_ref = None
        if logits:
            head = self._head(output, vector=not any_output)
            head_ref = head.ref
            needed.append(head_ref)
            if head.replacement is not None:
                replace[id(head.step)] = head.replacement
        if relu is not None:
            for step_id, replacement in heads.relu_replacements(self._steps, relu).items():
                replace.setdefault(step_id, replacement)
        values: dict[Any, Any] = {top_ref(self._input): batch}
        steps = needed_steps(self._steps, needed)
        for step, drop in zip(steps, release_after(steps, {*needed, edit_ref}), strict=True):
            step.run(values, replace.get(id(step)))
            if edit_ref in step.output_ids:
                values[edit_ref] = edit[1](values[edit_ref])
            if watch is not None:
                for ref in set(targets).intersection(step.output_ids):
                    watch(values[ref])
            for ref in drop:
                values.pop(ref, None)
        features = [values[ref] for ref in targets]
        if head_ref is None:
            return features, None
        scores = keras.ops.cast(values[head_ref], "float32")
        if head.binary:
            # One sigmoid unit offered as two classes: evidence against (-z) and for (z).
            scores = keras.ops.concatenate([-scores, scores], axis=-1)
        return features, scores

    @property
    def output_names(self) -> list[str]:
        """Paths of the layers that produce the model's outputs, in output order."""
        self._require_built()
        return heads.output_names(self._graph, self._steps)

    def _head(self, output: int | str | None, vector: bool = True) -> heads.Head:
        self._require_built()
        return heads.find_head(self.model.name, self._graph, self._steps, self._by_path, output,
                               vector)  # fmt: skip

    def output_index(self, output: int | str | None = None) -> int:
        """Position of the output ``output=`` names, of any shape (ModelError for none)."""
        return self._head(output, vector=False).index

    def class_count(self, output: int | str | None = None) -> int:
        """How many classes the class-score output has (see :meth:`forward` for ``output``)."""
        return self._head(output).classes

    def head_activation(self, output: int | str | None = None) -> str:
        """'softmax', 'sigmoid' or 'linear': what turns the head's scores into what is reported.

        A head of several units without a softmax of its own is taken to output logits, read
        with a softmax; a single unit without activation is a regression value ('linear').
        """
        return self._head(output).activation

    def activations(self, image: Any, layer: str) -> np.ndarray:
        """The feature map of ``layer`` for ``image``: float32 (H, W, C).

        Parameters
        ----------
        image : array, path, PIL image or PreparedImage
            Any image :func:`cnnviz_widgets.load_image` accepts.
        layer : str
            A layer path from :attr:`layer_paths` (or an unambiguous bare layer name).
        """
        return self.feature_maps(self.prepare(image), [layer])[0]

    def feature_maps(self, image: PreparedImage, layers: Sequence[str]) -> list[np.ndarray]:
        """Feature maps of several layers in one pass, each float32 (H, W, C)."""
        paths = tuple(self.resolve_layer(name) for name in layers)
        outputs = self._function(paths)(self.model_input(image))
        return [np.asarray(out[0]) for out in outputs]

    @property
    def identity(self) -> str:
        """This adapter in shared caches: unique in the process, never reused by another model.

        ``id(model)`` is not an identity: a model that is freed hands its id to the next one,
        whose feature maps would then be served from the first one's cache entries.
        """
        return self._identity

    @property
    def trace_count(self) -> int:
        """How many graphs this adapter's compiled functions have traced so far."""
        with self._lock:
            return sum(trace_count(fn) for fn in self._functions.values())

    @property
    def compiled_keys(self) -> list[Hashable]:
        """Keys of the functions and facts kept by :meth:`traced`, in the order they were made."""
        with self._lock:
            return list(self._functions)


# Adapters live in a private attribute of the model they read, not in a global registry (even
# a weak-keyed one would keep every model explored alive: an adapter holds its model). On the
# model, the pair is one cycle the garbage collector frees with it; object.__setattr__ keeps
# Keras from tracking or saving it: weights, layers and behaviour are untouched.
_ADAPTERS_ATTRIBUTE = "_cnnviz_adapters"
_serial = itertools.count(1)
_adapters_lock = threading.Lock()


def adapter_for(
    model: Any,
    *,
    preprocess: Preprocess | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> ModelAdapter:
    """The shared :class:`ModelAdapter` for ``model`` (made once, kept while the model lives).

    Every view goes through this, so traced functions are shared between widgets and calls.
    Passing a ``ModelAdapter`` returns it unchanged.
    """
    if isinstance(model, ModelAdapter):
        return model
    check_is_keras_model(model)
    options = (preprocess, image_size)
    with _adapters_lock:
        per_model = model.__dict__.get(_ADAPTERS_ATTRIBUTE)
        if per_model is None:
            per_model = {}
            object.__setattr__(model, _ADAPTERS_ATTRIBUTE, per_model)
        adapter = per_model.get(options)
        if adapter is None:
            adapter = ModelAdapter(model, preprocess=preprocess, image_size=image_size)
            per_model[options] = adapter
        return adapter


def layer_paths(model: Any, *, image: Any = None) -> list[str]:
    """Paths of the layers of ``model`` that have a spatial (4-D) output, in execution order.

    Nested sub-models are flattened: ``["vgg16/block1_conv1", ..., "vgg16/block5_pool"]``.
    A Sequential model that was never built needs an ``image`` to learn its input shape.
    """
    adapter = adapter_for(model)
    if image is not None:
        adapter.prepare(image)
    return adapter.layer_paths


def activations(
    model: Any,
    image: Any,
    layer: str,
    *,
    preprocess: Preprocess | None = None,
) -> np.ndarray:
    """Feature map of ``layer`` for ``image``: float32 array of shape (H, W, C).

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN (functional, Sequential, nested sub-models).
    image : array, path or PIL image
        H×W×3 or H×W, uint8 or float; for fixed-size models the whole image is resized.
    layer : str
        A path from :func:`layer_paths` such as ``"backbone/block3a_expand_conv"``.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> model = cv.load_default_model()
    >>> cv.activations(model, cv.sample_image("chelsea"), "backbone/stem_conv").shape
    (150, 226, 32)
    """
    return adapter_for(model, preprocess=preprocess).activations(image, layer)


__all__ = ["LayerInfo", "ModelAdapter", "activations", "adapter_for", "layer_paths"]
