"""Class activation maps that run the network once per channel: Score-CAM and AblationCAM.

Both weigh each channel ``k`` of a layer by what the network does without (AblationCAM) or with
only (Score-CAM) that channel, so they cost one forward pass per channel. The passes run in
batches **from Python**, through one compiled batch function per (layer, output), so that the
work can be stopped between batches (``cancel=``, checked with
:func:`cnnviz_widgets.progress.check`) and shows a progress bar after a second
(``progress=``). A cancelled run raises :class:`~cnnviz_widgets.errors.Cancelled` and keeps
nothing; a finished one keeps its channel weights in the ``cache=`` it was given (the
explorers'), so coming back to the method is instant.

Each ``compute`` returns the *weighted feature maps* ``w_k · A_k``, float32 (h, w, K), and a
noise scale; :mod:`.cam` sums them over channels (or takes their principal component).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..cache import ActivationCache
from ..engine.adapter import ModelAdapter
from ..engine.backend import compile, tensorflow
from ..errors import LayerError, check_positive
from ..i18n import gettext_ as _
from ..progress import Cancel, bar, check
from .gradients import LayerGradients, _image_key, layer_gradients
from .targets import (
    KEY,
    Head,
    Target,
    deepest_spatial_layer,
    head_score,
    head_scores,
    probabilities,
)

__all__ = ["SCORECAM_BATCH", "SCORECAM_CHANNELS", "ablation_cam", "score_cam"]

#: Score-CAM and AblationCAM run one forward pass per channel; a 1280-channel layer would take
#: ~10 s on a laptop CPU. By default 128 channels are kept: for Score-CAM those whose maps vary
#: most over the image (a flat map masks the image uniformly and says nothing about *where*, as
#: in "Faster Score-CAM"), for AblationCAM those with the most activation (removing a silent
#: channel changes nothing).
SCORECAM_CHANNELS = 128
#: Copies of the image per forward pass: enough to keep both CPU cores busy, few enough for a
#: 224 px EfficientNet's activations to stay in the hundreds of MB, and short enough (~0.3 s)
#: that a stop request is honoured at once.
SCORECAM_BATCH = 32
#: Weight differences below this many float32 roundings of the scores are no evidence: a dead
#: network's probabilities differ by ~1e-9 and would be stretched into a full map.
_ROUNDINGS = 64 * 1.2e-7


def _channels(adapter: ModelAdapter, path: str, method: str) -> int:
    channels = adapter.layer_info(path).channels
    if channels is None:
        raise LayerError(
            _(
                "Layer {path!r} has an unknown number of channels; {method} needs it. Pick another "
                "layer, e.g. {value!r}."
            ).format(path=path, method=method, value=deepest_spatial_layer(adapter))
        )
    return channels


def _options(max_channels: Any, batch_size: Any) -> tuple[int | None, int]:
    if max_channels is not None:
        max_channels = check_positive(max_channels, "max_channels")
    return max_channels, check_positive(batch_size, "batch_size")


def _in_batches(
    run: Any, items: np.ndarray, batch_size: int, cancel: Cancel, progress: Any, what: str
) -> np.ndarray:
    """``run(chunk)`` over ``items`` in chunks of ``batch_size``, stoppable between chunks."""
    out = []
    with bar(len(items), what, progress) as shown:
        for start in range(0, len(items), batch_size):
            check(cancel, what)
            chunk = items[start : start + batch_size]
            out.append(np.asarray(run(chunk), np.float32))
            shown.update(len(chunk))
    return np.concatenate(out)


def _no_noise(weights: np.ndarray, level: float) -> np.ndarray:
    """``weights``, or zeros when they all sit at float32 rounding level of ``level``."""
    if not float(np.abs(weights).max(initial=0.0)) > _ROUNDINGS * level:
        return np.zeros_like(weights)
    return weights


# ------------------------------------------------------------------ Score-CAM
def _scores_function(adapter: ModelAdapter, head: Head) -> Any:
    """``(batch (1,H,W,C), maps (n,h,w), class) -> (n,)``: the class probability of the image
    masked by each map (upsampled, scaled to [0, 1]); an all-zero map masks everything out."""
    tf = tensorflow()

    def scores(batch: Any, maps: Any, class_index: Any) -> Any:
        # The half-pixel-centre bilinear resize_image uses when enlarging (PIL cannot run
        # inside the graph).
        upsampled = tf.image.resize(maps[..., tf.newaxis], tf.shape(batch)[1:3], method="bilinear")
        low = tf.reduce_min(upsampled, axis=(1, 2, 3), keepdims=True)
        high = tf.reduce_max(upsampled, axis=(1, 2, 3), keepdims=True)
        masks = tf.math.divide_no_nan(upsampled - low, high - low)
        # Masks multiply the model input (after any preprocess=), so a masked-out pixel is
        # whatever 0 means to the model: black for raw pixels, the mean for centred inputs.
        _, logits = head_scores(adapter, batch[:1] * masks, head)
        if head.score is not None:  # the caller's own target, on the raw scores
            return head_score(logits, class_index, head)[0]
        return tf.gather(probabilities(logits, head.activation), class_index, axis=1)

    signature = [
        adapter.input_spec(),
        tf.TensorSpec((None, None, None), tf.float32),
        tf.TensorSpec((), tf.int32),
    ]
    return adapter.traced(
        (KEY, "scorecam_scores", head.index, head.score),
        lambda: compile(scores, signature, warm=True),
    )


def score_cam(
    target: Target,
    *,
    max_channels: int | None = SCORECAM_CHANNELS,
    batch_size: int = SCORECAM_BATCH,
    cancel: Cancel = None,
    progress: Any = True,
    cache: ActivationCache | None = None,
    **options: Any,
) -> tuple[np.ndarray, float]:
    """Score-CAM's weighted maps (Wang et al. 2020), float32 (h, w, K), and noise scale 0.

    ``w_k = p_c(x ⊙ M_k) − p_c(0)``: the class probability of the input masked by channel k's
    map ``M_k`` (upsampled to the input, scaled to [0, 1]) over that of an all-masked input.
    Channels not kept (``max_channels``) weigh 0.
    """
    max_channels, batch_size = _options(max_channels, batch_size)
    cache = ActivationCache() if cache is None else cache
    adapter, path, head = target.adapter, target.layer, target.head
    channels = _channels(adapter, path, "Score-CAM")
    pair = layer_gradients(target, cache=cache)  # the maps, the class, and the layer checked
    maps = pair.features
    kept = channels if max_channels is None else min(channels, max_channels)
    order = np.argsort(-maps.std(axis=(0, 1)), kind="stable")[:kept]
    key = (adapter.identity, _image_key(target), path, "scorecam_weights", head.index,
           pair.class_index, kept)  # fmt: skip
    weights = cache.get(key)
    if weights is None:
        # The all-zero map first: its mask removes everything, the baseline the weights are
        # measured from.
        stack = np.concatenate([np.zeros((1, *maps.shape[:2]), np.float32),
                                np.transpose(maps[..., order], (2, 0, 1))])  # fmt: skip
        function = _scores_function(adapter, head)
        scores = _in_batches(
            lambda chunk: function(target.batch, chunk, pair.class_index),
            stack, batch_size, cancel, progress, "Score-CAM",
        )  # fmt: skip
        baseline, scores = float(scores[0]), scores[1:]
        level = max(float(np.abs(scores).max(initial=0.0)), abs(baseline))
        weights = np.zeros(channels, np.float32)
        weights[order] = _no_noise(scores - baseline, level)
        weights = cache.put(key, weights)
    return maps * weights, 0.0


# ------------------------------------------------------------------ AblationCAM
def _ablation_function(adapter: ModelAdapter, path: str, head: Head, channels: int) -> Any:
    """``(batch (1,H,W,C), channels (n,), class) -> (n,)``: the class logit with each channel
    of ``path`` set to zero (channel −1: nothing removed)."""
    tf = tensorflow()

    def ablated(batch: Any, removed: Any, class_index: Any) -> Any:
        copies = tf.repeat(batch[:1], tf.shape(removed)[0], axis=0)
        keep = 1.0 - tf.one_hot(removed, channels, dtype=tf.float32)  # one_hot(−1) is zeros

        def edit(features: Any) -> Any:
            return features * tf.cast(keep, features.dtype)[:, tf.newaxis, tf.newaxis, :]

        _, logits = head_scores(adapter, copies, head, edit=(path, edit))
        if head.score is not None:
            return head_score(logits, class_index, head)[0]
        return tf.gather(logits, class_index, axis=1)

    signature = [adapter.input_spec(), tf.TensorSpec((None,), tf.int32),
                 tf.TensorSpec((), tf.int32)]  # fmt: skip
    return adapter.traced(
        (KEY, "ablation", path, head.index, head.score),
        lambda: compile(ablated, signature, warm=True),
    )


def ablation_cam(
    target: Target,
    *,
    max_channels: int | None = SCORECAM_CHANNELS,
    batch_size: int = SCORECAM_BATCH,
    cancel: Cancel = None,
    progress: Any = True,
    cache: ActivationCache | None = None,
    **options: Any,
) -> tuple[np.ndarray, float]:
    """AblationCAM's weighted maps (Desai & Ramaswamy 2020), float32 (h, w, K), noise scale 0.

    ``w_k = (y_c − y_c^k) / y_c``: the relative drop of the class logit ``y_c`` when channel k
    of the layer is set to zero (the paper's eq. 3, as pytorch-grad-cam computes it). Channels
    not kept (``max_channels``: those with the largest total activation) weigh 0; a logit of
    exactly 0 gives all-zero weights.
    """
    max_channels, batch_size = _options(max_channels, batch_size)
    cache = ActivationCache() if cache is None else cache
    adapter, path, head = target.adapter, target.layer, target.head
    channels = _channels(adapter, path, "AblationCAM")
    pair: LayerGradients = layer_gradients(target, cache=cache)
    maps = pair.features
    kept = channels if max_channels is None else min(channels, max_channels)
    order = np.argsort(-np.abs(maps).sum(axis=(0, 1)), kind="stable")[:kept]
    key = (adapter.identity, _image_key(target), path, "ablation_weights", head.index,
           pair.class_index, kept)  # fmt: skip
    weights = cache.get(key)
    if weights is None:
        function = _ablation_function(adapter, path, head, channels)
        removed = np.concatenate([[-1], order]).astype(np.int32)  # −1: the intact logit first
        logits = _in_batches(
            lambda chunk: function(target.batch, chunk, pair.class_index),
            removed, batch_size, cancel, progress, "AblationCAM",
        )  # fmt: skip
        score, ablated = float(logits[0]), logits[1:]
        drops = _no_noise(score - ablated, float(np.abs(logits).max(initial=0.0)))
        weights = np.zeros(channels, np.float32)
        if score != 0.0:
            weights[order] = drops / np.float32(score)
        weights = cache.put(key, weights)
    return maps * weights, 0.0
