"""What a student sees first: the layer list grouped by block, a plain word per layer, a start.

- :func:`layer_group` finds the block a layer belongs to from the naming schemes of
  ``keras.applications`` (``block2a_…``, ``block3_conv1``, ``conv2_block1_…``, ``stem_…``).
- :func:`lesson_layers` keeps the layers a lesson needs (what a conv *produces* after its
  activation, pools, block outputs) when a network is long; ``show all layers`` lists the rest.
- :func:`explain_layer` says in one line what a layer does ("conv 3×3, 32 filters → 32 feature
  maps"), through the catalog, so it reads in the student's language.
- :func:`start_layer` and :func:`strongest_channel` choose the first view: the first activation
  after the first convolution (edges and colour dots show there), on a channel with contrast.

Nothing here imports TensorFlow: layers are read through their Python attributes.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..i18n import gettext_ as _

#: Networks with more spatial layers than this open with the short (lesson) list.
SHORT_LIST = 12

CONV_CLASSES = {"Conv2D", "SeparableConv2D", "Conv2DTranspose", "Convolution2D"}
ACTIVATION_CLASSES = {"ReLU", "Activation", "LeakyReLU", "ELU", "PReLU", "Softmax"}
POOL_CLASSES = {"MaxPooling2D", "AveragePooling2D", "MaxPool2D", "AvgPool2D"}
MERGE_CLASSES = {"Add", "Concatenate", "Multiply"}

# The block is a name's prefix when something follows it ("block2a_expand_conv"; "conv1" alone
# is a layer, not a block).
_GROUP = re.compile(r"^(conv\d+_block\d+|block\d+[a-z]?|stem|top|conv\d+|mixed\d+)(?=_)")


def _layer(adapter: Any, path: str) -> Any:
    step = getattr(adapter, "_step_of", {}).get(path)
    return getattr(step, "operation", None)


def _pair(value: Any, default: int) -> tuple[int, int]:
    """A layer's (height, width) setting from an int, a pair or None."""
    if value is None:
        return default, default
    if isinstance(value, int):
        return value, value
    first, *rest = (int(v) for v in value)
    return first, rest[0] if rest else first


def layer_group(path: str) -> str:
    """The block of a layer path (``"backbone/block2a"``), or ``""`` when the name shows none."""
    head, _sep, name = path.rpartition("/")
    found = _GROUP.match(name)
    if not found:
        return ""
    return f"{head}/{found.group(1)}" if head else found.group(1)


def layer_label(path: str) -> str:
    """The dropdown label: ``"block2a ▸ expand_activation"`` (the bare name without a block)."""
    group = layer_group(path)
    if not group:
        return path
    rest = path[len(group) :].lstrip("_") or path.rpartition("/")[2]
    return f"{group} ▸ {rest}"


def _activation_of(layer: Any) -> str | None:
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) or (str(activation) if activation else None)
    return None if name in (None, "linear") else name


def _is_lesson_layer(adapter: Any, info: Any, next_group: str | None) -> bool:
    kind = info.class_name
    if kind in ACTIVATION_CLASSES or kind in POOL_CLASSES or kind in MERGE_CLASSES:
        return True
    if kind in CONV_CLASSES | {"DepthwiseConv2D"} and _activation_of(_layer(adapter, info.path)):
        return True
    group = layer_group(info.path)
    return bool(group) and next_group != group  # the block's last layer: its output


def lesson_layers(adapter: Any) -> list[str]:
    """The layers a lesson needs, in order (every spatial layer for a short network)."""
    paths = list(adapter.layer_paths)
    if len(paths) <= SHORT_LIST or not getattr(adapter, "built", True):
        return paths
    groups = [layer_group(p) for p in paths]
    keep = [
        path
        for index, path in enumerate(paths)
        if _is_lesson_layer(
            adapter, adapter.layer_info(path), groups[index + 1] if index + 1 < len(paths) else None
        )
    ]
    return keep if len(keep) >= 2 else paths


def listed_layers(adapter: Any) -> list[str]:
    """The layers an explorer's dropdown lists at first: the lesson's when they are fewer."""
    paths = list(adapter.layer_paths)
    lesson = lesson_layers(adapter) if getattr(adapter, "built", True) else []
    return lesson if lesson and len(lesson) < len(paths) else paths


def layer_options(paths: list[str]) -> list[Any]:
    """Dropdown options: ``(label, path)`` pairs when the names show blocks, else the paths."""
    if not any(layer_group(p) for p in paths):
        return list(paths)
    return [(layer_label(p), p) for p in paths]


def explain_layer(adapter: Any, path: str) -> str:
    """One plain sentence on what the layer does, in the current language."""
    try:
        info = adapter.layer_info(path)
    except Exception:  # an unbuilt model: nothing is known yet
        return ""
    layer = _layer(adapter, path)
    kind = info.class_name
    channels = info.channels
    get = lambda name, default=None: getattr(layer, name, default)  # noqa: E731
    if kind in CONV_CLASSES:
        kh, kw = _pair(get("kernel_size"), 0)
        filters = get("filters", channels)
        stride = max(tuple(get("strides", (1, 1))) or (1,))
        activation = _activation_of(layer)
        if activation:
            text = _(
                "conv {kh}×{kw}, {filters} filters, then {activation} → {filters} feature maps"
            )
        else:
            text = _("conv {kh}×{kw}, {filters} filters → {filters} feature maps")
        if stride > 1:
            text += _(" (stride {stride}: maps {stride}× smaller)")
        return text.format(kh=kh, kw=kw, filters=filters, activation=activation, stride=stride)
    if kind == "DepthwiseConv2D":
        kh, kw = _pair(get("kernel_size"), 0)
        return _(
            "depthwise conv {kh}×{kw}: one filter per channel, channels not mixed → {channels} "
            "feature maps"
        ).format(kh=kh, kw=kw, channels=channels)
    if kind == "BatchNormalization":
        return _("batch norm: each feature map shifted and rescaled by learned numbers")
    if kind == "ReLU":
        if get("max_value") is not None:
            return _("ReLU6: negative values become 0, values above {top:g} become {top:g}").format(
                top=float(get("max_value"))
            )
        return _("ReLU: negative values become 0, only evidence for a pattern is kept")
    if kind in ACTIVATION_CLASSES:
        return _("activation {name}: applied to every value").format(
            name=_activation_of(layer) or kind
        )
    if kind in POOL_CLASSES:
        ph, pw = _pair(get("pool_size"), 2)
        if kind.startswith("Max"):
            text = _("max pool {ph}×{pw}: keeps the largest value of each {ph}×{pw} patch")
        else:
            text = _("average pool {ph}×{pw}: the mean of each {ph}×{pw} patch")
        return (text + _(" → smaller maps, the same {channels} channels")).format(
            ph=ph, pw=pw, channels=channels
        )
    if kind == "Add":
        return _("add: the block's input added to its output (a skip connection)")
    if kind == "Concatenate":
        return _("concatenate: the maps of several branches side by side → {channels} maps").format(
            channels=channels
        )
    if kind == "Rescaling":
        return _("rescaling: pixel values moved into the range the network was trained on")
    if kind == "InputLayer":
        return _("the input image")
    return _("{kind} layer → {channels} feature maps").format(kind=kind, channels=channels)


def start_layer(adapter: Any) -> str:
    """The first layer to show: the first activation after the first convolution.

    That is where edge and colour-dot detectors are visible. A convolution with its activation
    built in (``Conv2D(..., activation="relu")``) is its own activation. Networks with no
    convolution open on their middle layer.
    """
    paths = list(adapter.layer_paths)
    if not getattr(adapter, "built", True):
        return paths[len(paths) // 2]
    infos = [adapter.layer_info(p) for p in paths]
    first_conv = next((i for i, info in enumerate(infos) if info.class_name in CONV_CLASSES), None)
    if first_conv is None:
        return paths[len(paths) // 2]
    if _activation_of(_layer(adapter, paths[first_conv])):
        return paths[first_conv]
    for info in infos[first_conv + 1 :]:
        if info.class_name in ACTIVATION_CLASSES:
            return info.path
        if info.class_name in CONV_CLASSES | POOL_CLASSES:
            break  # no activation before the next stage: show the conv itself
    return paths[first_conv]


def filters_layer(adapter: Any) -> str:
    """The layer the Filters tab opens on: the activation two thirds down the lesson list.

    Deep enough that filter ascent draws patterns (textures, parts), not yet whole objects; the
    first layers only give colours and stripes. An activation's output, not a block's residual
    sum: a channel after ReLU is "how strongly this pattern is present", the reading a lesson
    gives, and its response to the grey start is a baseline the ascent's gain is measured from
    (``bench/suite_teaching.py``). Networks without activation layers use the whole list.
    """
    listed = listed_layers(adapter)
    if getattr(adapter, "built", True):
        activated = [
            path for path in listed
            if adapter.layer_info(path).class_name in ACTIVATION_CLASSES
            or _activation_of(_layer(adapter, path))
        ]  # fmt: skip
        listed = activated or listed
    return listed[(2 * len(listed)) // 3]


def strongest_channel(maps: np.ndarray) -> int:
    """The channel with the most spatial contrast (standard deviation), lowest index on ties.

    A channel stuck at one value (dead, or saturated at ReLU6's cap) has none and is never
    chosen over one that draws a pattern.
    """
    spread = np.asarray(maps, dtype=np.float64).reshape(-1, maps.shape[-1]).std(axis=0)
    spread = np.where(np.isfinite(spread), spread, -1.0)
    return int(np.argmax(spread))
