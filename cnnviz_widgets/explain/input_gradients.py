"""Gradients of the class logit with respect to the model input, for a batch of images.

One compiled function per adapter, output and ReLU rule serves every method that needs them:
the plain gradient, SmoothGrad's noisy copies, integrated gradients' path points, guided
backprop. It is a warm function (``compile(..., warm=True)``): its first answer is computed
eagerly while its graph is traced in the background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter
from ..engine.backend import compile, tensorflow
from .targets import KEY, Head, head_score, head_scores

__all__ = ["gradient_function", "resolve_class"]


def gradient_function(
    adapter: ModelAdapter,
    head: Head,
    relu: Callable[..., Any] | None = None,
    name: str = "vanilla",
) -> Any:
    """The compiled ``(batch, class_index) -> (d logit / d batch, class (N,))``.

    ``batch`` float32 (N, H, W, C) model input; the gradient float32, same shape, in logit
    units per input unit; ``class_index`` −1 explains each image's own top class. ``relu``
    replaces every ReLU's rule (guided backprop); ``name`` names that rule in the key.
    """

    def build() -> Any:
        tf = tensorflow()

        def gradient(batch: Any, class_index: Any) -> tuple[Any, Any]:
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(batch)
                _, logits = head_scores(adapter, batch, head, relu=relu)
                score, target = head_score(logits, class_index, head)
            return tf.cast(tape.gradient(score, batch), tf.float32), target

        signature = [adapter.input_spec(), tf.TensorSpec((), tf.int32)]
        return compile(gradient, signature, warm=True)

    return adapter.traced((KEY, "input_gradient", name, head.index, head.score), build)


def resolve_class(function: Any, batch: np.ndarray, class_index: int) -> int:
    """``class_index``, or the top class of ``batch`` (one image) when it is −1.

    Decided on the clean image once, so that noisy or interpolated copies are all explained
    for the same class. ``function`` is a :func:`gradient_function`.
    """
    if class_index >= 0:
        return int(class_index)
    _, chosen = function(batch[:1], -1)
    return int(np.asarray(chosen)[0])
