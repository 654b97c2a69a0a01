"""The model's head, read on the fly: which output holds the class scores, and its logits.

Gradient views differentiate the **logits** (after a saturated softmax gradients all but
vanish), so the head's softmax or sigmoid is left out while replaying — by a replacement for
that one layer call, never by changing the user's model. Guided backprop and deconvnet change
the backward pass of every ReLU the same way (:func:`relu_replacements`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError
from ..i18n import gettext_ as _
from .graph import (
    Alias,
    LayerCall,
    LayerInfo,
    Ref,
    ReluRule,
    Replacement,
    activation_name,
    pass_input_through,
    pre_activation,
    producer,
    shape_without_batch,
    top_ref,
)

__all__ = ["Head", "find_head", "output_names", "relu_replacements"]


@dataclass(frozen=True)
class Head:
    """The output chosen as class scores.

    Attributes
    ----------
    index : int
        Position among the model's outputs.
    name : str
        Layer path of the layer that computes it.
    ref : Ref
        Its tensor in the replayed graph.
    step : LayerCall
        The layer call that computes it.
    replacement : callable or None
        How to compute that call without its softmax/sigmoid (None: it outputs logits already).
    classes : int
        How many classes the views offer: the length of the score vector, except for a single
        sigmoid unit, which offers two (0 "negative", 1 "positive"; see :attr:`binary`).
    activation : str
        What turns the scores into the numbers reported: ``"softmax"``, ``"sigmoid"``
        (multi-label, or the two classes of a single sigmoid unit) or ``"linear"`` (a single
        unit without activation: a regression value, reported as it is).
    binary : bool
        A single sigmoid unit (a cats-vs-dogs head). Its logit ``z`` is offered as two class
        scores ``[-z, z]``: the evidence against and for, whose sigmoids are 1 − p and p.
    """

    index: int
    name: str
    ref: Ref
    step: LayerCall
    replacement: Replacement | None
    classes: int
    activation: str
    binary: bool = False

    @property
    def regression(self) -> bool:
        """A single unit without activation: a value, not a class."""
        return self.activation == "linear"


def output_names(graph: Any, steps: Sequence[LayerCall | Alias]) -> list[str]:
    """Paths of the layers that produce the model's outputs, in output order."""
    return [producer(steps, top_ref(t)).info.path for t in graph.outputs]


def _output_index(
    model_name: str, names: list[str], shapes: list[tuple], output: int | str | None
) -> int:
    if output is None:
        if len(names) > 1:
            listed = ", ".join(f"{i}: {n!r} {shapes[i]}" for i, n in enumerate(names))
            raise ModelError(
                _(
                    "Model {model_name!r} has {n_names} outputs ({listed}). Choose the class "
                    "scores with output=<index or name>."
                ).format(model_name=model_name, n_names=len(names), listed=listed)
            )
        return 0
    if isinstance(output, str):
        matches = [i for i, n in enumerate(names) if output in (n, n.rsplit("/", 1)[-1])]
        if not matches:
            raise ModelError(
                _(
                    "No output {output!r}; the model's outputs are {names} (or use an index)."
                ).format(output=output, names=names)
            )
        return matches[0]
    if not 0 <= int(output) < len(names):
        raise ModelError(
            _(
                "output={output} is out of range: model {model_name!r} has {n_names} output(s), "
                "0–{last}."
            ).format(output=output, model_name=model_name, n_names=len(names), last=len(names) - 1)
        )
    return int(output)


def find_head(
    model_name: str,
    graph: Any,
    steps: Sequence[LayerCall | Alias],
    by_path: dict[str, LayerInfo],
    output: int | str | None,
    vector: bool = True,
) -> Head:
    """The class-score output chosen by ``output`` (index, name, or None for the only one).

    ``vector=False`` accepts an output of any shape (a segmentation map, a box regressor) for
    scores a caller's own target function reduces; its units are then never split in two.

    Raises
    ------
    ModelError
        Several outputs and no ``output=``; an unknown or out-of-range output; an output that is
        not a vector of scores.
    """
    import keras

    names = output_names(graph, steps)
    shapes = [by_path[n].output_shape for n in names]
    index = _output_index(model_name, names, shapes, output)
    tensor = graph.outputs[index]
    ref = top_ref(tensor)
    step = producer(steps, ref)
    shape = shape_without_batch(tensor)
    if vector and len(shape) != 1:
        raise ModelError(
            _(
                "Output {value!r} has shape {shape}, not a vector of class scores (batch, "
                "classes), so there is no class to explain. Class views need a classifier head; "
                "pass output=<index> if another output is the classifier."
            ).format(value=names[index], shape=shape)
        )
    activation = activation_name(step.operation)
    replacement: Replacement | None = None
    if activation in ("softmax", "sigmoid"):
        if isinstance(step.operation, (keras.layers.Activation, keras.layers.Softmax)):
            replacement = pass_input_through
        else:
            replacement = pre_activation
    units = int(shape[-1]) if shape and shape[-1] is not None else 1
    binary = vector and activation == "sigmoid" and units == 1
    if activation == "sigmoid":
        reported = "sigmoid"
    elif units == 1 and activation != "softmax":
        reported = "linear"  # one unit, no squashing: a regression value
    else:
        reported = "softmax"  # softmax heads, and heads that output logits
    return Head(
        index=index,
        name=names[index],
        ref=ref,
        step=step,
        replacement=replacement,
        classes=2 if binary else units,
        activation=reported,
        binary=binary,
    )


def relu_replacements(steps: Sequence[LayerCall | Alias], relu: ReluRule) -> dict[int, Replacement]:
    """For every ReLU/ReLU6 call (standalone or fused into a layer): compute it with ``relu``."""
    import keras

    replacements: dict[int, Replacement] = {}
    for step in steps:
        if not isinstance(step, LayerCall):
            continue
        layer = step.operation
        kind = activation_name(layer)
        if kind not in ("relu", "relu6"):
            continue
        max_value = 6.0 if kind == "relu6" else None
        standalone = isinstance(layer, (keras.layers.ReLU, keras.layers.Activation))

        def replacement(op, args, kwargs, _max=max_value, _standalone=standalone):
            x = args[0] if _standalone else pre_activation(op, args, kwargs)
            return relu(x, _max)

        replacements[id(step)] = replacement
    return replacements
