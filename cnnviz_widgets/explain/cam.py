"""Class activation maps: where in the image the evidence for a class lies.

:func:`grad_cam` reads one layer's feature maps ``A_k`` (k = channel) and weighs them into one
map, ``relu(Σ_k w_k A_k)``. The methods differ only in the weights, so each is a registered
:class:`~.registry.Method` whose ``compute`` says how it weighs channels:

* ``"gradcam"`` — Selvaraju et al. 2017: the class-score gradient averaged over positions;
* ``"gradcam++"`` — Chattopadhay et al. 2018: positive gradients with per-position
  coefficients;
* ``"layercam"`` — Jiang et al. 2021: every position by its own positive gradient;
* ``"scorecam"`` — Wang et al. 2020: gradient-free, how much each channel's map, used as a mask
  on the input, raises the class probability;
* ``"hirescam"``, ``"gradcam_elementwise"``, ``"xgradcam"``, ``"eigengradcam"`` — other
  weighings of the same gradients; ``"eigencam"`` — the maps' principal component;
  ``"ablationcam"`` — how much the class logit drops without each channel.

Gradients are always taken of the **logits** (the scores before the head's softmax or sigmoid,
which the adapter leaves out on the fly): after a saturated softmax they would all but vanish.
The gradient methods are numpy arithmetic on one (feature map, gradient) pair per (image,
layer, class, output) — :mod:`.gradients` computes it with one compiled function per layer and
keeps it in the shared cache — so trying another method at a layer costs milliseconds. Score-CAM
and AblationCAM run batches from Python (:mod:`.batched`) so they can be stopped. Every method
takes ``eigen_smooth`` and ``aug_smooth`` (:mod:`.smoothing`). TensorFlow is imported inside the
functions only.

Examples
--------
>>> import cnnviz_widgets as cv
>>> from cnnviz_widgets.explain import grad_cam
>>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
>>> grad_cam(model, cat).shape                          # doctest: +SKIP
(300, 451)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..cache import ActivationCache
from ..engine.adapter import Preprocess
from ..progress import Cancel
from . import registry
from .batched import SCORECAM_BATCH, SCORECAM_CHANNELS, ablation_cam, score_cam
from .gradients import LayerGradients, layer_gradients
from .registry import Method
from .smoothing import principal_projection, smooth_over_views
from .targets import Target, adapter_of, cam_layer, explained, to_size, to_unit

__all__ = ["CAM_METHODS", "SCORECAM_BATCH", "SCORECAM_CHANNELS", "below_noise", "grad_cam"]


# ------------------------------------------------------------------ gradient-weighted CAMs
# Each takes the feature maps A and their class-logit gradients g, float32 (h, w, K) twice,
# and returns the weighted maps (h, w, K) whose channel sum is the map before its ReLU.
def _gradcam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return a * g.mean(axis=(0, 1))


def _gradcam_plus_plus(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Eq. 19 with the exponential trick: for Y = exp(S) the 2nd and 3rd derivatives of Y are
    # exp(S)·g² and exp(S)·g³, and exp(S) cancels in alpha (and is a common positive factor in
    # the weights, which the final scaling removes).
    g2 = g * g
    denominator = 2.0 * g2 + a.sum(axis=(0, 1)) * (g2 * g)
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0.0)
    return a * (alpha * np.maximum(g, 0.0)).sum(axis=(0, 1))


def _layercam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Per-position weights keep fine detail, and a region whose activations cannot reach the
    # score gets nothing at all (Grad-CAM's global weights would spread onto it).
    return np.maximum(g, 0.0) * a


def _hirescam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Grad-CAM averages g over positions before multiplying; HiResCAM keeps each position's own
    # gradient, so the map is exactly what each position adds to the score's linearisation.
    return g * a


def _gradcam_elementwise(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    # HiResCAM with each channel's contribution rectified before the sum: a channel that
    # speaks against the class cannot cancel one that speaks for it.
    return np.maximum(g * a, 0.0)


def _xgradcam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    # Weights are the gradients averaged with the channel's own activations as the weights
    # (Fu et al.'s sensitivity and conservation axioms); a silent channel weighs 0.
    total = a.sum(axis=(0, 1))
    weights = np.divide((g * a).sum(axis=(0, 1)), total, out=np.zeros_like(total),
                        where=total != 0.0)  # fmt: skip
    return a * weights


def _eigencam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return a  # gradient-free: the maps themselves, always projected


#: A map whose peak is below this share of the largest sum it could reach is rounding noise:
#: float32 sums of thousands of terms carry relative errors of ~1e-7 each.
NOISE_FRACTION = 1e-5


def below_noise(heatmap: np.ndarray, scale: float) -> np.ndarray:
    """``heatmap``, or zeros when its peak is at the level of float rounding.

    A dead or nearly dead network (random weights, a class the image gives no evidence for)
    leaves maps of ~1e-9 that scaling to [0, 1] would blow up into confident-looking noise.
    """
    if not float(np.max(heatmap, initial=0.0)) > NOISE_FRACTION * scale:
        return np.zeros_like(heatmap)
    return heatmap


def _finish(weighted: np.ndarray, scale: float, project: bool) -> np.ndarray:
    """``relu`` of the channel sum (or of the principal component) of the weighted maps."""
    if project:
        heatmap = principal_projection(weighted)
        # |projection| ≤ the norm of a centred row ≤ twice its largest absolute sum.
        scale = max(scale, 2.0 * float(np.abs(weighted).sum(axis=-1).max(initial=0.0)))
    else:
        heatmap = weighted.sum(axis=-1, dtype=np.float32)
    return below_noise(np.maximum(heatmap, 0.0).astype(np.float32), scale)


@dataclass(frozen=True)
class CamMethod:
    """``compute`` of a class activation map: weighted feature maps, then one map.

    Attributes
    ----------
    weigh : callable
        ``weigh(target, **options) -> (weighted (h, w, K), noise scale)``.
    project : bool
        Always take the principal component (Eigen-CAM, EigenGradCAM), not the channel sum.

    Notes
    -----
    Options every CAM takes: ``eigen_smooth`` (the principal component of the weighted maps
    instead of their sum) and ``aug_smooth`` (the mean over flipped and zoomed views, see
    :mod:`.smoothing`). With ``aug_smooth`` the map comes at the model input's resolution,
    otherwise at the layer's.
    """

    weigh: Callable[..., tuple[np.ndarray, float]]
    project: bool = False

    def __call__(
        self, target: Target, *, eigen_smooth: bool = False, aug_smooth: bool = False,
        **options: Any,
    ) -> np.ndarray:  # fmt: skip
        if aug_smooth:
            # The class is decided on the image itself, then explained in every view.
            chosen = layer_gradients(target, cache=options.get("cache")).class_index
            size = target.batch.shape[1:3]

            def view(batch: np.ndarray) -> np.ndarray:
                seen = dataclasses.replace(target, batch=batch, class_index=chosen, image_key=None)
                return self(seen, eigen_smooth=eigen_smooth, **options)

            return smooth_over_views(target.batch, size, view)
        weighted, scale = self.weigh(target, **options)
        return _finish(weighted, scale, self.project or eigen_smooth)


def _from_gradients(
    combine: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> Callable[..., tuple[np.ndarray, float]]:
    """A ``weigh`` that is numpy arithmetic on the cached (features, gradient) pair."""

    def weigh(
        target: Target, *, cache: ActivationCache | None = None, **options: Any
    ) -> tuple[np.ndarray, float]:
        pair: LayerGradients = layer_gradients(target, cache=cache)
        weighted = combine(pair.features, pair.grads)
        # Gradients of the logits are exact; rounding enters only where the channel sum
        # cancels, so the sum of the terms' magnitudes is the scale noise is judged against (a
        # bound with max|g|·h·w zeroed real maps of max-pooled heads, whose gradient is sparse).
        magnitude = float(np.abs(weighted).sum(axis=-1, dtype=np.float64).max(initial=0.0))
        return weighted, magnitude

    return weigh


def _from_features(target: Target, *, cache: ActivationCache | None = None, **options: Any):
    pair = layer_gradients(target, cache=cache)
    return pair.features, 0.0


# ------------------------------------------------------------------ the registry
def _cam(name: str, label: str, paper: str, compute: Callable[..., np.ndarray]) -> None:
    registry.register(Method(name, label, "cam", True, paper, compute))


_cam(
    "gradcam",
    "Grad-CAM",
    "Selvaraju et al. 2017, Grad-CAM: Visual Explanations from Deep Networks via "
    "Gradient-based Localization",
    CamMethod(_from_gradients(_gradcam)),
)
_cam(
    "gradcam++",
    "Grad-CAM++",
    "Chattopadhay et al. 2018, Grad-CAM++: Generalized Gradient-based Visual Explanations for "
    "Deep Convolutional Networks",
    CamMethod(_from_gradients(_gradcam_plus_plus)),
)
_cam(
    "scorecam",
    "Score-CAM",
    "Wang et al. 2020, Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural "
    "Networks",
    CamMethod(score_cam),
)
_cam(
    "layercam",
    "LayerCAM",
    "Jiang et al. 2021, LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
    CamMethod(_from_gradients(_layercam)),
)
_cam(
    "hirescam",
    "HiResCAM",
    "Draelos and Carin 2020, Use HiResCAM instead of Grad-CAM for faithful explanations of "
    "convolutional neural networks",
    CamMethod(_from_gradients(_hirescam)),
)
_cam(
    "gradcam_elementwise",
    "Grad-CAM element-wise",
    "Gildenblat et al. 2021, pytorch-grad-cam: Advanced AI explainability for PyTorch "
    "(GradCAMElementWise, after HiResCAM)",
    CamMethod(_from_gradients(_gradcam_elementwise)),
)
_cam(
    "xgradcam",
    "XGrad-CAM",
    "Fu et al. 2020, Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs",
    CamMethod(_from_gradients(_xgradcam)),
)
_cam(
    "ablationcam",
    "AblationCAM",
    "Desai and Ramaswamy 2020, Ablation-CAM: Visual Explanation for Deep Convolutional Network "
    "via Gradient-free Localization",
    CamMethod(ablation_cam),
)
_cam(
    "eigencam",
    "Eigen-CAM",
    "Muhammad and Yeasin 2020, Eigen-CAM: Class Activation Map using Principal Components",
    CamMethod(_from_features, project=True),
)
_cam(
    "eigengradcam",
    "EigenGrad-CAM",
    "Gildenblat et al. 2021, pytorch-grad-cam: Advanced AI explainability for PyTorch "
    "(EigenGradCAM: Eigen-CAM of gradient × activation)",
    CamMethod(_from_gradients(_hirescam), project=True),
)

#: Names of the :func:`grad_cam` methods, in registration order.
CAM_METHODS = tuple(method.name for method in registry.methods("cam"))


# ------------------------------------------------------------------ public
def grad_cam(
    model: Any,
    image: Any,
    class_index: int | None = None,
    *,
    layer: str | None = None,
    method: str = "gradcam",
    output: int | str | None = None,
    target: Callable[[Any], Any] | None = None,
    preprocess: Preprocess | None = None,
    max_channels: int | None = SCORECAM_CHANNELS,
    batch_size: int = SCORECAM_BATCH,
    eigen_smooth: bool = False,
    aug_smooth: bool = False,
    cancel: Cancel = None,
    progress: Any = True,
    cache: ActivationCache | None = None,
) -> np.ndarray:
    """Class activation map: where in ``image`` the evidence for a class lies.

    Every gradient method reads the same two arrays, the layer's feature maps ``A`` and the
    class-logit gradient ``g`` there, computed once per (image, layer, class, output) and kept
    in ``cache`` when one is given: switching between them at a layer is then numpy work.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
        Any Keras 3 CNN classifier (functional, Sequential, nested sub-models, mixed precision).
    image : array, path, PIL image or PreparedImage
        Anything :func:`cnnviz_widgets.load_image` accepts, of any size; prepared once.
    class_index : int, optional
        The class to explain; ``None`` explains the model's top class.
    layer : str, optional
        The feature map to explain from (a path from ``layer_paths(model)`` or a bare layer
        name). Default: :func:`~.targets.default_cam_layer`, the deepest spatial map larger
        than 1×1 — the usual choice, coarse but the most class-specific.
    method : str
        Any name in :data:`CAM_METHODS`: "gradcam", "gradcam++", "scorecam", "layercam",
        "hirescam", "gradcam_elementwise", "xgradcam", "ablationcam", "eigencam",
        "eigengradcam". Sums run over channels k, ``⊙`` is per position.

        * ``"gradcam"`` (Selvaraju et al. 2017): channels weighted by their average gradient,
          ``relu(Σ_k w_k A_k)``.
        * ``"gradcam++"`` (Chattopadhay et al. 2018): weights from positive gradients with
          per-position coefficients; better when the class appears several times.
        * ``"layercam"`` (Jiang et al. 2021): every position weighted by its own positive
          gradient, ``relu(Σ_k relu(g_k) ⊙ A_k)``; sharper, and usable on earlier layers.
        * ``"scorecam"`` (Wang et al. 2020): gradient-free. Each channel's map, scaled to
          [0, 1] and upsampled, masks the input; the channel's weight is how much that raises
          the class probability over an all-masked input. One forward pass per channel, run
          ``batch_size`` at a time, over at most ``max_channels`` channels.
        * ``"hirescam"`` (Draelos and Carin 2020): ``relu(Σ_k g_k ⊙ A_k)``, each position's own
          gradient instead of Grad-CAM's average: faithful to what the model computed.
        * ``"gradcam_elementwise"`` (pytorch-grad-cam, Gildenblat et al. 2021):
          ``Σ_k relu(g_k ⊙ A_k)``.
        * ``"xgradcam"`` (Fu et al. 2020): ``relu(Σ_k w_k A_k)`` with
          ``w_k = Σ_ij A_k,ij g_k,ij / Σ_ij A_k,ij``.
        * ``"ablationcam"`` (Desai and Ramaswamy 2020): gradient-free,
          ``w_k = (y_c − y_c^k) / y_c``, the relative drop of the class logit when channel k is
          set to zero; one forward pass per channel, batched like Score-CAM, over at most
          ``max_channels`` channels (those with the largest total activation).
        * ``"eigencam"`` (Muhammad and Yeasin 2020): gradient-free and class-agnostic, the first
          principal component of the maps (positions as samples, channels as features).
        * ``"eigengradcam"`` (pytorch-grad-cam): the first principal component of ``g ⊙ A``.
    output : int or str, optional
        Which output is the class head, for models with several outputs (with ``target``:
        the output ``target`` reads, of any shape).
    target : callable, optional
        Explain your own score instead of a class (not with ``class_index``): called inside a
        compiled function with the output's scores, a float32 tensor ``(N, ...)`` shaped like
        that output, before a final softmax or sigmoid; returns one value per image ``(N,)``
        (anything else is summed per image). E.g. a regression value
        ``lambda s: s[:, 0]``, a region of a segmentation map
        ``lambda s: tf.reduce_sum(s[..., 12] * mask, axis=(1, 2))``, one unit of a multi-label
        head. Score-CAM, AblationCAM and occlusion read the same value; its compiled
        functions are kept per function object, so reuse one object across calls.
    preprocess : callable, optional
        Preprocessing for models that do not include it (see :class:`ModelAdapter`).
    max_channels : int or None
        Score-CAM and AblationCAM: explain with at most this many channels (default 128;
        ``None`` = all — 1280 for EfficientNet's last layer, ~10 s on CPU).
    batch_size : int
        Score-CAM and AblationCAM: images per forward pass, ≥ 1.
    eigen_smooth : bool
        Any method: the first principal component of the weighted maps ``w_k A_k`` instead of
        their sum (less channel noise; pytorch-grad-cam's option).
    aug_smooth : bool
        Any method: test-time augmentation, the mean of the maps of 6 views (as is and
        mirrored, zoomed by 0.9, 1 and 1.1), each undone onto the image; 6× the work.
    cancel : threading.Event or callable, optional
        Score-CAM and AblationCAM: checked between batches; when set, the work stops within a
        batch and :class:`~cnnviz_widgets.errors.Cancelled` is raised (nothing is kept).
    progress : bool
        Score-CAM and AblationCAM: a progress bar once the work takes over a second.
    cache : ActivationCache, optional
        Keep the layer's (features, gradient) pair and Score-CAM/AblationCAM channel weights
        there and look them up first, as the explorers do (keys: adapter identity, image
        content, layer, output, class). None (default): computed afresh, nothing kept — weights
        changed in place between calls are always seen; with a cache, clear it after changing
        weights.

    Returns
    -------
    numpy.ndarray
        float32 ``(H, W)`` with values in [0, 1] (maximum 1, unless the map is all zero), the
        height and width of ``image`` as given: the map covers the whole image, resized from
        the layer's resolution with :func:`~cnnviz_widgets.images.resize_image`.

    Raises
    ------
    CnnVizError
        For a class index out of range, an unknown method (with close matches), Score-CAM /
        AblationCAM options that are not ints ≥ 1, ``class_index`` together with ``target``, or
        a ``target`` that is not callable or fails on the scores (its error and their shape
        named).
    Cancelled
        When ``cancel`` asks to stop.
    LayerError
        For an unknown layer, one with no spatial map (after global pooling), or one the class
        output does not depend on.
    ModelError
        For a model whose output is not a class vector, or several outputs without ``output=``.

    Examples
    --------
    >>> model, cat = cv.load_default_model(), cv.sample_image("chelsea")
    >>> heat = grad_cam(model, cat, 285)                    # "Egyptian cat"
    >>> heat.shape, heat.dtype, float(heat.max())           # doctest: +SKIP
    ((300, 451), dtype('float32'), 1.0)
    >>> sharper = grad_cam(model, cat, method="layercam", layer="block6a_expand_activation")
    """
    chosen = registry.get("cam", method)
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    head, index = explained(adapter, output, class_index, target)
    question = Target(adapter, adapter.model_input(prepared), head, index,
                      cam_layer(adapter, layer), prepared.key)  # fmt: skip
    heatmap = chosen.compute(
        question, max_channels=max_channels, batch_size=batch_size, eigen_smooth=bool(eigen_smooth),
        aug_smooth=bool(aug_smooth), cancel=cancel, progress=progress,
        cache=ActivationCache() if cache is None else cache,  # shared within this call
    )  # fmt: skip
    # Resize first, then scale to a maximum of 1: bilinear upsampling lowers peaks a little.
    return to_unit(to_size(heatmap, prepared.size))
