"""ReLUs with the backward rules of guided backpropagation and of the deconvnet.

Pass one as ``relu=`` to :meth:`~cnnviz_widgets.engine.adapter.ModelAdapter.forward`: every
ReLU/ReLU6 of the model then runs forward as usual and sends gradients back by the rule. The
forward value is never changed, so the scores (and anything computed from them) stay the
model's own.
"""

from __future__ import annotations

from typing import Any

from ..engine.backend import tensorflow

__all__ = ["deconvnet_relu", "guided_relu"]


def _relu_value(x: Any, max_value: float | None) -> Any:
    """The forward value: ``relu(x)``, capped at ``max_value`` for ReLU6-style layers."""
    tf = tensorflow()
    y = tf.nn.relu(x)
    return y if max_value is None else tf.minimum(y, tf.cast(max_value, y.dtype))


def guided_relu(x: Any, max_value: float | None = None) -> Any:
    """ReLU (or ReLU6) whose backward pass is guided backpropagation's.

    Springenberg et al. 2015, "Striving for Simplicity: The All Convolutional Net": the gradient
    goes back only where the forward input was positive (the ordinary ReLU gradient) **and** the
    incoming gradient is positive (the deconvnet part), so only evidence *for* the output
    survives. With a cap (ReLU6) also only where the input is below it, where the ordinary
    gradient of the cap is zero too.

    Parameters
    ----------
    x : tf.Tensor
        The layer's input, any shape and float dtype.
    max_value : float, optional
        The layer's cap (6 for ReLU6); ``None`` for a plain ReLU.

    Returns
    -------
    tf.Tensor
        ``relu(x)`` (capped), same shape and dtype as ``x``.
    """
    tf = tensorflow()

    @tf.custom_gradient
    def rule(x: Any) -> Any:
        def backward(dy: Any) -> Any:
            # relu(dy) keeps the positive incoming gradient; ReluGrad / Relu6Grad then pass it
            # where 0 < x (< 6): TF's own fused kernels, one pass each over the tensor.
            if max_value is None:
                return tf.raw_ops.ReluGrad(gradients=tf.nn.relu(dy), features=x)
            if float(max_value) == 6.0:
                return tf.raw_ops.Relu6Grad(gradients=tf.nn.relu(dy), features=x)
            passes = tf.logical_and(x > 0, x < tf.cast(max_value, x.dtype))
            return tf.where(passes, tf.nn.relu(dy), tf.zeros_like(dy))

        return _relu_value(x, max_value), backward

    return rule(x)


def deconvnet_relu(x: Any, max_value: float | None = None) -> Any:
    """ReLU (or ReLU6) whose backward pass is the deconvnet's rectification.

    Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks": the
    reconstruction rectifies the *signal coming back*, whatever the forward pass did:
    ``g_out = relu(g_in)``. The forward sign is ignored, and so is the cap.

    Parameters
    ----------
    x : tf.Tensor
        The layer's input, any shape and float dtype.
    max_value : float, optional
        The layer's cap (6 for ReLU6), applied to the forward value only.

    Returns
    -------
    tf.Tensor
        ``relu(x)`` (capped), same shape and dtype as ``x``.
    """
    tf = tensorflow()

    @tf.custom_gradient
    def rule(x: Any) -> Any:
        def backward(dy: Any) -> Any:
            return tf.nn.relu(dy)

        return _relu_value(x, max_value), backward

    return rule(x)
