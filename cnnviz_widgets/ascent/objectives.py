"""What a feature visualisation maximises: channel, neuron and class-logit objectives.

An :class:`Objective` is a weighted sum of terms, each reading one channel of a layer (its mean
over the feature map, or its value at the centre) or one class logit. Objectives add, subtract
and scale like numbers, in the manner of Lucid's objectives (Olah et al., "Feature
Visualization", Distill 2017), and are evaluated on tensors: one value per image.

Objectives that differ only in their indices (``channel(L, 3)`` and ``channel(L, 7)``) share a
:attr:`Objective.structure`, so one traced step optimises all of them in one batch, each image
reading its own indices.

TensorFlow is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine import backend
from ..engine.adapter import ModelAdapter
from ..errors import CnnVizError, LayerError, check_index, check_int, check_number
from ..i18n import gettext_ as _

__all__ = ["Objective", "as_objectives", "channel", "class_logit", "evaluate", "neuron"]

_KINDS = ("channel", "neuron", "class_logit")

#: (weight, kind, layer path or None) per term: everything of an objective but its indices.
Structure = tuple[tuple[float, str, "str | None"], ...]


@dataclass(frozen=True)
class _Term:
    weight: float
    kind: str  # one of _KINDS
    layer: str | None  # layer path (None for class_logit)
    index: int


class Objective:
    """A quantity to maximise, per image: a weighted sum of channel, neuron and logit terms.

    Build them with :func:`channel`, :func:`neuron` and :func:`class_logit`, and combine them
    with ``+``, ``-``, ``*`` by a number and unary ``-``. An objective knows the layer paths it
    needs (:attr:`layers`) and whether it needs the class logits (:attr:`needs_logits`).

    Called on a dict of layer outputs (``{path: (N, H, W, C) tensor}``) and the logits
    ((N, classes) tensor, or ``None``), it returns one float32 value per image, shape (N,).

    Raises
    ------
    CnnVizError
        When scaled by something that is not a finite number.

    Examples
    --------
    >>> objective = channel("conv2", 3) - 0.5 * channel("conv2", 5) + class_logit(1)
    >>> objective
    Objective(channel('conv2', 3) - 0.5 * channel('conv2', 5) + class_logit(1))
    >>> objective.layers, objective.needs_logits
    (('conv2',), True)
    """

    __slots__ = ("terms",)

    def __init__(self, terms: Iterable[_Term]) -> None:
        self.terms: tuple[_Term, ...] = tuple(terms)

    # ---------------------------------------------------------------- algebra
    def __add__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + (-other)

    def __mul__(self, factor: float) -> Objective:
        if isinstance(factor, bool) or not isinstance(factor, (int, float, np.number)):
            return NotImplemented
        number = check_number(factor, _("An objective's scale factor"))
        return Objective(_Term(t.weight * number, t.kind, t.layer, t.index) for t in self.terms)

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return self * -1.0

    # ---------------------------------------------------------------- description
    @property
    def layers(self) -> tuple[str, ...]:
        """Layer paths the objective reads, in first-use order (no duplicates)."""
        return tuple(dict.fromkeys(t.layer for t in self.terms if t.layer is not None))

    @property
    def needs_logits(self) -> bool:
        """True when a term reads the class logits (the model then runs to its head)."""
        return any(t.kind == "class_logit" for t in self.terms)

    @property
    def structure(self) -> Structure:
        """Everything but the indices: objectives that share it are optimised in one batch."""
        return tuple((t.weight, t.kind, t.layer) for t in self.terms)

    @property
    def indices(self) -> tuple[int, ...]:
        """The channel / neuron / class index of each term."""
        return tuple(t.index for t in self.terms)

    @property
    def digest(self) -> str:
        """SHA-256 (hex) of the structure and indices: the same in every session and process.

        Seeds each objective's own random start and transforms (see ``param.image_rngs``).
        """
        text = json.dumps([self.structure, self.indices], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def __repr__(self) -> str:
        parts = []
        for i, t in enumerate(self.terms):
            call = (
                f"{t.kind}({t.index})" if t.layer is None else f"{t.kind}({t.layer!r}, {t.index})"
            )
            weight = abs(t.weight)
            text = call if weight == 1.0 else f"{weight:g} * {call}"
            if i == 0:
                parts.append(text if t.weight >= 0 else f"-{text}")
            else:
                parts.append(("+ " if t.weight >= 0 else "- ") + text)
        return f"Objective({' '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Objective) and other.terms == self.terms

    def __hash__(self) -> int:
        return hash(self.terms)

    # ---------------------------------------------------------------- evaluation
    def __call__(self, features: dict[str, Any], logits: Any = None) -> Any:
        """The objective per image, (N,) float32, from layer outputs and logits (tensors)."""
        tf = backend.tensorflow()

        indices = tf.constant([self.indices], tf.int32)
        batch = tf.shape(next(iter(features.values())) if features else logits)[0]
        return evaluate(self.structure, features, logits, tf.tile(indices, [batch, 1]))

    def resolved(self, adapter: ModelAdapter) -> Objective:
        """The same objective with full layer paths, every index checked against the model.

        Raises
        ------
        LayerError
            An unknown layer, or one without a spatial (height, width, channels) output.
        CnnVizError
            A channel or class index out of range.
        """
        terms = []
        for t in self.terms:
            if t.kind == "class_logit":
                _check_class_index(adapter, t.index)
                terms.append(t)
                continue
            path = _spatial_layer(adapter, t.layer, t.kind)
            owner = _("layer {path!r}").format(path=path)
            check_index(
                t.index, adapter.layer_info(path).channels, _("channel"), owner,
                things=_("channels"),
            )  # fmt: skip
            terms.append(_Term(t.weight, t.kind, path, t.index))
        return Objective(terms)


def layer_name(layer: Any) -> str:
    """``layer`` if it is a str (a layer path or name), else a :class:`LayerError`."""
    if not isinstance(layer, str):
        raise LayerError(
            _(
                "A layer is named by its path, a str such as "
                "'backbone/block3a_expand_activation'; got {kind}."
            ).format(kind=type(layer).__name__)
        )
    return layer


def channel(layer: str, index: int) -> Objective:
    """The mean activation of channel ``index`` of ``layer`` over the whole feature map.

    During an ascent, a layer that ends in a ReLU is read before its ReLU (see
    ``ascent.step``); called directly on layer outputs, the objective is the plain mean.

    Examples
    --------
    >>> channel("backbone/block4a_expand_activation", 7)
    Objective(channel('backbone/block4a_expand_activation', 7))
    """
    return Objective([_Term(1.0, "channel", layer_name(layer), check_int(index, "index"))])


def neuron(layer: str, index: int) -> Objective:
    """The activation of channel ``index`` of ``layer`` at the centre of the feature map.

    One unit has a limited receptive field, so its image shows one pattern in the middle with
    little structure around it, where :func:`channel` tiles the pattern everywhere.

    Examples
    --------
    >>> neuron("conv2", 0)
    Objective(neuron('conv2', 0))
    """
    return Objective([_Term(1.0, "neuron", layer_name(layer), check_int(index, "index"))])


def class_logit(index: int) -> Objective:
    """The pre-softmax score of class ``index`` (the model's softmax is left out).

    Maximising a logit rather than a probability makes the image look like the class, not
    like "not every other class".

    Examples
    --------
    >>> class_logit(285)  # Egyptian cat, for the default model
    Objective(class_logit(285))
    """
    return Objective([_Term(1.0, "class_logit", None, check_int(index, "index"))])


def as_objectives(objectives: Objective | Sequence[Objective]) -> list[Objective]:
    """One objective or a non-empty sequence of them, as a list (else a :class:`CnnVizError`)."""
    if isinstance(objectives, Objective):
        return [objectives]
    items = list(objectives)
    if not items:
        raise CnnVizError(
            _("No objectives given: pass at least one, e.g. channel('conv2', 0).")
        )
    for item in items:
        if not isinstance(item, Objective):
            raise CnnVizError(
                _(
                    "Expected Objective values (channel(...), neuron(...), class_logit(...)); "
                    "got {kind}."
                ).format(kind=type(item).__name__)
            )
    return items


def evaluate(structure: Structure, features: dict[str, Any], logits: Any, indices: Any) -> Any:
    """Batched evaluation of objectives sharing ``structure``.

    Parameters
    ----------
    structure : tuple
        :attr:`Objective.structure`, J terms.
    features : dict of str to tf.Tensor
        Layer outputs (N, H, W, C) by path, any float dtype.
    logits : tf.Tensor or None
        Class scores (N, classes), needed when a term is a ``class_logit``.
    indices : tf.Tensor
        int32 (N, J): image i uses ``indices[i, j]`` for term j.

    Returns
    -------
    tf.Tensor
        float32 (N,).
    """
    tf = backend.tensorflow()

    total = None
    for j, (weight, kind, layer) in enumerate(structure):
        idx = indices[:, j]
        if kind == "class_logit":
            value = tf.gather(tf.cast(logits, tf.float32), idx, axis=1, batch_dims=1)
        else:
            maps = tf.cast(features[layer], tf.float32)
            if kind == "channel":
                # Averaging first and gathering second touches (N, C) values, not (N, H, W).
                value = tf.gather(tf.reduce_mean(maps, axis=(1, 2)), idx, axis=1, batch_dims=1)
            else:
                h, w = tf.shape(maps)[1] // 2, tf.shape(maps)[2] // 2
                value = tf.gather(maps[:, h, w, :], idx, axis=1, batch_dims=1)
        term = weight * value
        total = term if total is None else total + term
    return total


def _spatial_layer(adapter: ModelAdapter, layer: str | None, kind: str) -> str:
    path = adapter.resolve_layer(layer, spatial=False)
    info = adapter.layer_info(path)
    if not info.spatial or not info.channels:
        convs = [p for p in adapter.layer_paths if adapter.layer_info(p).channels]
        message = _(
            "Layer {path!r} ({kind}) has output shape {shape}: it has no channels of a feature "
            "map for {objective}() to maximise. Pick a layer with a spatial (height, width, "
            "channels) output, e.g. {example!r}."
        ).format(path=path, kind=info.class_name, shape=info.output_shape, objective=kind,
                 example=convs[-1])  # fmt: skip
        if len(info.output_shape) == 1:
            message += " " + _("For a class score, use class_logit(i).")
        raise LayerError(message)
    return path


def _check_class_index(adapter: ModelAdapter, index: int) -> None:
    outputs = [adapter.layer_info(p).output_shape for p in adapter.output_names]
    classes = outputs[0][-1] if len(outputs) == 1 and len(outputs[0]) == 1 else None
    owner = _("model {model!r}").format(model=adapter.model.name)
    check_index(index, classes, _("class"), owner, things=_("classes"))
