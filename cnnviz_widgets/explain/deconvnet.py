"""Deconvnet: what one channel of one layer responds to, projected back to pixels.

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks". The projection is
the backward pass of the network with :func:`~.relu_rules.deconvnet_relu` in place of every
ReLU, seeded with the channel's own map.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess
from ..engine.backend import compile, tensorflow
from ..errors import check_choice, check_index
from ..i18n import gettext_ as _
from .relu_rules import deconvnet_relu
from .targets import KEY, adapter_of, to_size

__all__ = ["DECONVNET_KEEP", "deconvnet"]

#: What :func:`deconvnet` projects: the strongest activation only, or the whole map.
DECONVNET_KEEP = ("max", "map")


def _build(adapter: ModelAdapter, path: str, keep: str) -> Any:
    tf = tensorflow()

    def project(batch: Any, channel: Any) -> Any:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(batch)
            (features,), _ = adapter.forward(batch, [path], relu=deconvnet_relu)
        activation = tf.cast(features, tf.float32)
        chosen = activation[..., channel]  # (N, h, w)
        if keep == "max":
            # The paper projects single strong activations: keep only the largest one. ReLU6
            # saturates: dozens of positions can tie at exactly 6, and argmax would take the
            # first in reading order (often a corner). A small share of the 3×3 neighbourhood
            # mean breaks ties toward the centre of the strongest region.
            around = tf.nn.avg_pool2d(chosen[..., tf.newaxis], 3, 1, "SAME")[..., 0]
            score = tf.reshape(chosen + 1e-3 * around, (tf.shape(chosen)[0], -1))
            flat = tf.reshape(chosen, (tf.shape(chosen)[0], -1))
            strongest = tf.one_hot(tf.argmax(score, axis=-1), tf.shape(flat)[1], dtype=tf.float32)
            seed_map = tf.nn.relu(tf.reshape(flat * strongest, tf.shape(chosen)))
        else:
            seed_map = tf.nn.relu(chosen)
        # The starting signal: this channel's rectified map, zeros in every other channel.
        onehot = tf.one_hot(channel, tf.shape(activation)[-1], dtype=tf.float32)
        seed = seed_map[..., tf.newaxis] * onehot
        # The backward pass *is* the deconvnet: conv transposes are the gradients of the
        # convolutions (filters flipped and transposed), deconvnet_relu rectifies the signal
        # coming back, and TF's max-pool gradient sends each value to the position that won
        # the forward max — exactly the paper's "switches".
        return tf.cast(
            tape.gradient(features, batch, output_gradients=tf.cast(seed, features.dtype)),
            tf.float32,
        )

    return compile(project, [adapter.input_spec(), tf.TensorSpec((), tf.int32)], warm=True)


def deconvnet(
    model: Any,
    image: Any,
    layer: str,
    channel: int,
    *,
    keep: str = "max",
    preprocess: Preprocess | None = None,
) -> np.ndarray:
    """Zeiler & Fergus's deconvnet (2014): one channel's activation projected to pixel space.

    The channel's feature map (every other channel set to zero) is sent back through the
    network to the input: through each convolution transposed, each max-pooling by its switches
    (where the forward maximum came from), and each ReLU/ReLU6 applied to the *backward* signal
    (``relu(g)``, whatever the forward sign was). The result shows the input pattern that
    drives the channel, at the place it occurs.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    image : array, path, PIL image or PreparedImage
        Prepared once.
    layer : str
        A layer with a spatial map (path or bare name).
    channel : int
        The channel of ``layer``, 0-based.
    keep : {"max", "map"}
        ``"max"`` (default, as in the paper's figures): project only the channel's strongest
        activation — one clear pattern. ``"map"``: project the whole rectified map — every
        place the channel fires.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).

    Returns
    -------
    numpy.ndarray
        float32 (H, W, C), signed, in model-input units, the height and width of ``image`` as
        given (C is the model's input channels, 3 for RGB). Show it with
        :func:`~.saliency.normalize_signed`. All zero when the channel is not active anywhere.

    Raises
    ------
    CnnVizError
        For an unknown ``keep``, or a channel that is not an int in 0 … channels − 1.
    LayerError
        For an unknown layer or one without a spatial map.

    Examples
    --------
    >>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
    >>> projection = deconvnet(model, cat, "block3a_expand_activation", 5)  # doctest: +SKIP
    >>> picture = normalize_signed(projection)  # (300, 451, 3) in [0, 1], 0 → 0.5 gray
    """
    keep = check_choice(keep, DECONVNET_KEEP, _("deconvnet keep"))
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    path = adapter.resolve_layer(layer)
    channels = adapter.layer_info(path).channels
    channel = check_index(
        channel, channels, _("channel"), _("layer {path!r}").format(path=path), things=_("channels")
    )
    function = adapter.traced((KEY, "deconvnet", path, keep), lambda: _build(adapter, path, keep))
    projection = function(adapter.model_input(prepared), channel)[0].numpy()
    return np.ascontiguousarray(to_size(projection, prepared.size), np.float32)
