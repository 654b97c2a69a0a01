"""The pair every gradient CAM is made from: a layer's feature map and the class gradient there.

Grad-CAM, Grad-CAM++, LayerCAM, HiResCAM, XGradCAM, EigenGradCAM and the element-wise variant
differ only in the arithmetic they do on the same two arrays, ``A = features`` and
``g = d logit_c / d A`` (Grad-CAM++'s higher-order terms follow from ``g`` for a head that is
linear after the layer's ReLUs, as its paper derives). So the pair is computed **once** per
(image, layer, output, class) by **one** compiled function per (layer, output) and kept in the
shared :class:`~cnnviz_widgets.cache.ActivationCache`; changing the method at a layer is numpy
work. The compiled function answers its first call eagerly while its graph is traced in the
background (``compile(..., warm=True)``), so a new layer answers in about half a trace's time.

Where the pair is kept is the caller's choice (``cache=``): the explorers pass their
:class:`~cnnviz_widgets.cache.ActivationCache`, so trying another method at a layer is a
lookup; the public functions, given none, keep it for the one call only — so weights changed in
place between two calls (a training step, the randomisation check re-initialising a copy's
layers) are always seen. Keys start with the adapter's identity and the image's content key:

* ``(..., path, "features")`` — the feature map, float32 (h, w, K);
* ``(..., path, "class_gradients", output, class)`` — the gradient, float32 (h, w, K);
* ``(..., "top_class", output)`` — the top class of the image, int32 () — so "the top class"
  finds the entries of the class it turned out to be.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cache import ActivationCache
from ..engine.adapter import ModelAdapter
from ..engine.backend import compile, tensorflow
from ..images import image_key
from .targets import KEY, Head, Target, head_score, head_scores, no_gradient_error

__all__ = ["LayerGradients", "gradient_noise_scale", "layer_gradients", "pair_function"]


@dataclass(frozen=True)
class LayerGradients:
    """A layer's feature map and the class-logit gradient there, for one image.

    Attributes
    ----------
    features : numpy.ndarray
        float32 (h, w, K), read-only: the layer's output ``A``.
    grads : numpy.ndarray
        float32 (h, w, K), read-only: ``d logit_c / d A`` (logit units per activation unit).
    class_index : int
        The class ``c`` (the top class resolved, when the top class was asked for).
    """

    features: np.ndarray
    grads: np.ndarray
    class_index: int


def pair_function(adapter: ModelAdapter, path: str, head: Head) -> Any:
    """The compiled ``(batch, class_index) -> (features, grads, class (N,))`` of one layer.

    ``features`` and ``grads`` are float32 (N, h, w, K); ``class_index`` −1 means each image's
    top class. Made once per adapter, layer and output (a warm function: eager until traced).
    Raises :class:`~cnnviz_widgets.errors.LayerError` (on its first call) if ``path`` does not
    feed the head.
    """
    key = (KEY, "gradients", path, head.index, head.score)
    return adapter.traced(key, lambda: _build(adapter, path, head))


def _build(adapter: ModelAdapter, path: str, head: Head) -> Any:
    tf = tensorflow()

    def pair(batch: Any, class_index: Any) -> tuple[Any, Any, Any]:
        # Only the ops after the feature map are recorded: the backward pass stops there.
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            (features,), logits = head_scores(adapter, batch, head, [path], watch=tape.watch)
            score, target = head_score(logits, class_index, head)
        grads = tape.gradient(score, features)
        if grads is None:
            raise no_gradient_error(adapter, path, head, batch)
        # Mixed precision computes the features (and so their gradients) in float16.
        return tf.cast(features, tf.float32), tf.cast(grads, tf.float32), target

    return compile(pair, [adapter.input_spec(), tf.TensorSpec((), tf.int32)], warm=True)


def _image_key(target: Target) -> str:
    key = getattr(target, "image_key", None)
    return key if key is not None else image_key(target.batch)


def layer_gradients(target: Target, *, cache: ActivationCache | None = None) -> LayerGradients:
    """The feature map of ``target.layer`` and the class gradient there, computed once.

    Parameters
    ----------
    target : Target
        Image batch of one, head, class (−1: the top class) and layer path.
    cache : ActivationCache, optional
        Where the pair is kept and looked up; None: computed afresh (nothing kept).

    Returns
    -------
    LayerGradients
        Read-only float32 (h, w, K) arrays; the same objects on a repeated request.

    Raises
    ------
    LayerError
        If the class output does not depend on the layer.
    """
    adapter, head, path = target.adapter, target.head, target.layer
    if head.score is not None or cache is None:
        # A caller's own target function is not a cache key that outlives the call.
        cache = ActivationCache()
    base = (adapter.identity, _image_key(target))
    top_key = (*base, "top_class", head.index)
    class_index = target.class_index
    if class_index < 0:
        top = cache.get(top_key)
        class_index = -1 if top is None else int(top)
    if class_index >= 0:
        features = cache.get((*base, path, "features"))
        grads = cache.get((*base, path, "class_gradients", head.index, class_index))
        if features is not None and grads is not None:
            cache.hits += 1
            return LayerGradients(features, grads, class_index)
    cache.misses += 1
    features, grads, chosen = pair_function(adapter, path, head)(target.batch, class_index)
    chosen = int(chosen[0])
    if target.class_index < 0:
        cache.put(top_key, np.array(chosen, np.int32))
    features = cache.put((*base, path, "features"), np.asarray(features[0]))
    grads = cache.put((*base, path, "class_gradients", head.index, chosen), np.asarray(grads[0]))
    return LayerGradients(features, grads, chosen)


def gradient_noise_scale(pair: LayerGradients) -> float:
    """The largest value a gradient-weighted sum of these maps could reach at one position.

    ``max over positions of Σ_k |A_k|``, times ``max |g|``, times ``h·w`` (weights that sum
    gradients over positions, as Grad-CAM++'s do): a map whose peak stays a tiny fraction of it
    is float rounding noise (see ``cam.below_noise``).
    """
    features, grads = pair.features, pair.grads
    if features.size == 0:
        return 0.0
    height, width = features.shape[:2]
    reach = float(np.abs(features).sum(axis=-1, dtype=np.float64).max())
    return reach * float(np.abs(grads).max()) * height * width
