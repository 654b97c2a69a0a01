"""A Keras model read as a flat list of steps that can be replayed, with layer paths.

Keras keeps a functional model as nodes (one per layer call) grouped by depth. :func:`flatten`
walks them into one ordered list of steps — a :class:`LayerCall` per layer call, an
:class:`Alias` where a tensor enters or leaves a nested sub-model — and names each call by its
**layer path** (``"backbone/block3a_expand_conv"``; a second call of the same layer or sub-model
gets ``":2"``, numbered in the order Keras recorded the calls). :func:`needed_steps` keeps only
what a request depends on, so later layers never run.

Keras is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from ..i18n import gettext_ as _

__all__ = [
    "Alias",
    "LayerCall",
    "LayerInfo",
    "Ref",
    "ReluRule",
    "Replacement",
    "activation_name",
    "flatten",
    "graph_of",
    "needed_steps",
    "pass_input_through",
    "pre_activation",
    "producer",
    "shape_without_batch",
]

@dataclass(frozen=True)
class LayerInfo:
    """What the adapter knows about one layer call, in execution order.

    Attributes
    ----------
    path : str
        Layer path, nested sub-model names joined with ``/`` (``"vgg16/block3_conv1"``).
    class_name : str
        The layer's class (``"Conv2D"``).
    output_shape : tuple
        Output shape without the batch axis; ``None`` where the size depends on the input.
    params : int
        Number of weights the layer owns (0 for a nested model's own entry is not used: nested
        models are listed with the total of their layers).
    depth : int
        How many sub-models the layer sits inside (0 for top-level layers).
    """

    path: str
    class_name: str
    output_shape: tuple[int | None, ...]
    params: int
    depth: int

    @property
    def spatial(self) -> bool:
        """True when the output is a 4-D (batch, height, width, channels) feature map."""
        return len(self.output_shape) == 3

    @property
    def channels(self) -> int | None:
        """Number of channels of a spatial output (``None`` if not spatial or unknown)."""
        return self.output_shape[-1] if self.spatial else None


#: A tensor of the replayed graph: (scope, id of the symbolic Keras tensor). The scope is the
#: path of the sub-model *call* the tensor lives in ("" at the top), because a sub-model called
#: twice (a siamese base, a base applied to an image and to its mirror) reuses one set of
#: symbolic tensors for both calls: keyed by id alone, the second call would overwrite the
#: first call's values and both paths would read the same maps.
Ref = tuple[str, int]


def _refs(scope: str, tensors: Sequence[Any]) -> tuple[Ref, ...]:
    return tuple((scope, id(t)) for t in tensors)


class LayerCall:
    """Replay one layer call: read its inputs from the tensor table, write its outputs."""

    __slots__ = ("info", "input_ids", "node", "operation", "output_ids", "takes_training")

    def __init__(self, info: LayerInfo, node: Any, scope: str) -> None:
        self.info = info
        self.node = node
        self.operation = node.operation
        self.input_ids = _refs(scope, node.input_tensors)
        self.output_ids = _refs(scope, node.outputs)
        self.takes_training = bool(getattr(node.operation, "_call_has_training_arg", False))

    def run(self, values: dict[Ref, Any], replace: Replacement | None = None) -> None:
        # Keras fills a call's arguments from a table keyed by tensor id: give it this call's.
        tensors = self.node.input_tensors
        local = {id(t): values[ref] for t, ref in zip(tensors, self.input_ids, strict=True)}
        args, kwargs = self.node.arguments.fill_in(local)
        if self.takes_training:
            # Inference behaviour always: batch norm uses its moving statistics, dropout and
            # augmentation layers pass their input through.
            kwargs = {**kwargs, "training": False}
        if replace is None:
            outputs = self.operation(*args, **kwargs)
        else:
            outputs = replace(self.operation, args, kwargs)
        flat = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for ref, value in zip(self.output_ids, flat, strict=True):
            values[ref] = value


class Alias:
    """Make tensors of one graph stand for tensors of another (entering/leaving a sub-model)."""

    __slots__ = ("info", "input_ids", "output_ids")

    def __init__(
        self, sources: tuple[Ref, ...], targets: tuple[Ref, ...], info: LayerInfo | None
    ) -> None:
        self.input_ids = sources
        self.output_ids = targets
        self.info = info

    def run(self, values: dict[Ref, Any], replace: Replacement | None = None) -> None:
        for src, dst in zip(self.input_ids, self.output_ids, strict=True):
            values[dst] = values[src]


#: Computes a layer call differently (its inputs as Keras would pass them), e.g. without its
#: softmax, or with another ReLU rule.
Replacement = Callable[[Any, tuple, dict], Any]

#: A ReLU rule for guided backprop and deconvnet: ``relu(x, max_value)`` with max_value 6.0 for
#: ReLU6 and None for a plain ReLU.
ReluRule = Callable[[Any, "float | None"], Any]


class _WithoutActivation:
    """Stands in for a layer inside its own ``call`` with the activation made the identity.

    Reading every other attribute (kernel, bias, convolution_op, ...) goes to the real layer, so
    nothing is copied and nothing of the user's layer changes.
    """

    def __init__(self, layer: Any) -> None:
        object.__setattr__(self, "_layer", layer)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    @staticmethod
    def activation(x: Any) -> Any:
        return x


def pre_activation(layer: Any, args: tuple, kwargs: dict) -> Any:
    """The output of a Dense/Conv-like layer before its fused activation, in float32."""
    import keras

    # ``call`` is used without Keras' ``__call__``, which would cast inputs and weights for
    # mixed precision; computing in the variables' float32 sidesteps that.
    x = keras.ops.cast(args[0], layer.variable_dtype)
    kwargs = {k: v for k, v in kwargs.items() if k != "training" or layer._call_has_training_arg}
    return type(layer).call(_WithoutActivation(layer), x, *args[1:], **kwargs)


def activation_name(layer: Any) -> str | None:
    """'relu', 'relu6', 'softmax', 'sigmoid', 'linear', ... for a layer's own activation."""
    import keras

    if isinstance(layer, keras.layers.ReLU):
        plain = float(layer.negative_slope) == 0.0 and float(layer.threshold) == 0.0
        if not plain or layer.max_value not in (None, 6.0, 6):
            return "leaky_or_clipped_relu"
        return "relu" if layer.max_value is None else "relu6"
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) if callable(activation) else None


def graph_of(layer: Any) -> Any | None:
    """The functional graph behind a model-like layer, or None for a plain layer."""
    import keras

    if isinstance(layer, keras.Sequential):
        return layer._functional  # Keras builds it as soon as the input shape is known
    if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
        return layer
    return None


def shape_without_batch(tensor: Any) -> tuple[int | None, ...]:
    shape = tuple(tensor.shape)
    return tuple(None if d is None else int(d) for d in shape[1:])


def count_params(layer: Any) -> int:
    # Bare keras.ops applied to symbolic tensors (MobileNetV3's hard-sigmoid, ConvNeXt's adds)
    # appear in the graph as weightless Operations, not Layers.
    return int(sum(int(np.prod(w.shape)) for w in getattr(layer, "weights", ())))


def pass_input_through(layer: Any, args: tuple, kwargs: dict) -> Any:
    """A :data:`Replacement` that returns the call's input (drops a head's Softmax layer)."""
    return args[0]


def _calls_in_order(graph: Any) -> dict[int, int]:
    """For each node of ``graph``: which call of its operation it is (1, 2, ...), Keras' order.

    The order in which a layer's calls were recorded (its inbound nodes) is the order the user
    wrote them; the depth order of the graph is not (a call behind a flip layer is deeper).
    """
    by_op: dict[int, list[Any]] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.operation is not None and not node.is_input:
                by_op.setdefault(id(node.operation), []).append(node)
    number: dict[int, int] = {}
    for nodes in by_op.values():
        recorded = [id(n) for n in getattr(nodes[0].operation, "_inbound_nodes", [])]
        nodes.sort(key=lambda n: recorded.index(id(n)) if id(n) in recorded else len(recorded))
        for i, node in enumerate(nodes, start=1):
            number[id(node)] = i
    return number


def flatten(
    graph: Any,
    scope: str,
    depth: int,
    steps: list[LayerCall | Alias],
    layers: list[LayerInfo],
) -> None:
    """Append the steps and layer infos of ``graph`` (a functional model) in execution order.

    ``scope`` is the path prefix of this graph's call (``""`` at the top, ``"base:2/"`` inside
    the second call of sub-model ``base``); nested sub-models are flattened recursively.
    """
    number = _calls_in_order(graph)
    for node_depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[node_depth]:
            if node.operation is None or node.is_input:
                continue
            op = node.operation
            call = number[id(node)]
            path = scope + (op.name if call == 1 else f"{op.name}:{call}")
            inner = graph_of(op)
            out_shape = shape_without_batch(node.outputs[0]) if node.outputs else ()
            info = LayerInfo(path, type(op).__name__, out_shape, count_params(op), depth)
            if inner is not None:
                if len(inner.inputs) != len(node.input_tensors):
                    raise ModelError(
                        _(
                            "Nested model {path!r} is called with {n_input_tensors} tensors but "
                            "has {n_inputs} inputs; not supported yet."
                        ).format(
                            path=path,
                            n_input_tensors=len(node.input_tensors),
                            n_inputs=len(inner.inputs),
                        )
                    )
                inner_scope = path + "/"
                steps.append(
                    Alias(_refs(scope, node.input_tensors), _refs(inner_scope, inner.inputs), None)
                )
                flatten(inner, inner_scope, depth + 1, steps, layers)
                # The sub-model's own entry: its output, reached when its last layer is.
                steps.append(
                    Alias(_refs(inner_scope, inner.outputs), _refs(scope, node.outputs), info)
                )
            else:
                steps.append(LayerCall(info, node, scope))
            layers.append(info)


def top_ref(tensor: Any) -> Ref:
    """The reference of a tensor of the top-level graph (its inputs and outputs)."""
    return ("", id(tensor))


def needed_steps(steps: Sequence[LayerCall | Alias], refs: Sequence[Ref]) -> list:
    """Only the steps the tensors ``refs`` depend on, in execution order."""
    needed: set[Ref] = set(refs)
    keep: list[LayerCall | Alias] = []
    for step in reversed(steps):
        if needed.intersection(step.output_ids):
            keep.append(step)
            needed.update(step.input_ids)
    keep.reverse()
    return keep


def release_after(steps: Sequence[LayerCall | Alias], keep: set[Ref]) -> list[list[Ref]]:
    """For each step, the tensors no later step reads and nobody asked for: drop them then.

    Run eagerly (a first answer before the graph is traced), a replay would otherwise hold
    every intermediate tensor of the network until its end.
    """
    last: dict[Ref, int] = {}
    for index, step in enumerate(steps):
        for ref in step.input_ids:
            last[ref] = index
    drops: list[list[Ref]] = [[] for _ in steps]
    for ref, index in last.items():
        if ref not in keep:
            drops[index].append(ref)
    return drops


def producer(steps: Sequence[LayerCall | Alias], ref: Ref) -> LayerCall:
    """The layer call that computes tensor ``ref`` (looking through sub-model boundaries)."""
    for step in reversed(steps):
        if ref in step.output_ids:
            if isinstance(step, Alias):
                ref = step.input_ids[step.output_ids.index(ref)]
                continue
            return step
    raise ModelError(_("No layer of the model computes that output."))


def check_is_keras_model(model: Any) -> None:
    """Refuse anything but a Keras 3 model, naming what it is and what to do instead."""
    from .backend import keras as backend_keras

    keras = backend_keras()

    if not isinstance(model, keras.Model):
        kind = type(model).__module__ + "." + type(model).__qualname__
        hint = ""
        if "torch" in kind:
            hint = _(
                " PyTorch modules are not supported; cnnviz_widgets works with Keras 3 models."
            )
        elif "tf_keras" in kind or "tensorflow.python.keras" in kind:
            hint = _(
                " This looks like a legacy tf.keras (Keras 2) model; save it to .h5 and load it "
                "with Keras 3's keras.models.load_model."
            )
        raise ModelError(
            _("Expected a Keras 3 model (keras.Model, keras.Sequential); got {kind}.{hint}").format(
                kind=kind, hint=hint
            )
        )


@dataclass(frozen=True)
class ModelGraph:
    """A model read once: its functional graph, its steps, its layers and its input shape."""

    graph: Any
    steps: list[LayerCall | Alias]
    layers: list[LayerInfo]
    input_shape: tuple[int | None, int | None, int]


def read_model(model: Any, image_shape: tuple[int, ...] | None = None) -> ModelGraph | None:
    """Flatten ``model`` into steps; build a never-built Sequential model for ``image_shape``.

    Returns None for a never-built Sequential model when no ``image_shape`` is given yet.

    Raises
    ------
    ModelError
        Subclassed models (no graph), several inputs, an input that is not an image batch, or
        a Sequential model that cannot be built for the image.
    """
    import keras

    graph = graph_of(model)
    if graph is None and isinstance(model, keras.Sequential):
        if image_shape is None:
            return None
        graph = _sequential_graph(model, image_shape)
    if graph is None:
        raise ModelError(
            _(
                "{kind} {name!r} is a subclassed Keras model: it has no layer graph to read "
                "intermediate outputs from. Rebuild it as a functional model (x = "
                "keras.Input(shape); y = layer(x) ...; keras.Model(x, y)) or a keras.Sequential, "
                "reusing the same layer objects, and pass that."
            ).format(kind=type(model).__name__, name=model.name)
        )
    if len(graph.inputs) != 1:
        raise ModelError(
            _(
                "Model {name!r} has {n_inputs} inputs; models with several inputs are not "
                "supported yet. Wrap the image branch in a model of its own and pass that."
            ).format(name=model.name, n_inputs=len(graph.inputs))
        )
    shape = tuple(graph.inputs[0].shape)
    if len(shape) != 4:
        raise ModelError(_not_an_image_input(model, graph, shape))
    steps: list[LayerCall | Alias] = []
    layers: list[LayerInfo] = []
    flatten(graph, "", 0, steps, layers)
    _refuse_channels_first(model, steps)
    return ModelGraph(graph, steps, layers, (shape[1], shape[2], int(shape[3])))


def _sequential_graph(model: Any, image_shape: tuple[int, ...]) -> Any:
    """A functional graph over a never-built Sequential model's own layers, for one image size.

    ``model.build()`` would fix the user's model to that size and mark it built; calling its
    layers on an input of ours gives the same graph (same layer objects, same weights) and
    leaves the model object as it was.
    """
    import keras

    try:
        inputs = keras.Input(shape=tuple(image_shape), name=f"{model.name}_input")
        x = inputs
        for layer in model.layers:
            x = layer(x)
        return keras.Model(inputs, x, name=model.name)
    except Exception as exc:  # Keras raises ValueError/TypeError here
        raise ModelError(
            _(
                "Could not build the Sequential model {name!r} for images of shape {image_shape}: "
                "{exc}. Give it an input shape, e.g. keras.Input(shape=(224, 224, 3)) as its first "
                "layer."
            ).format(name=model.name, image_shape=tuple(image_shape), exc=exc)
        ) from exc


def _not_an_image_input(model: Any, graph: Any, shape: tuple) -> str:
    """The message for a model whose input is not one image batch (video, sequences, vectors)."""
    import keras

    wrapped = [
        layer
        for layer in graph.layers
        if isinstance(layer, keras.layers.TimeDistributed) and len(shape) == 5
    ]
    if wrapped:
        inner = wrapped[0].layer
        return (
            f"Model {model.name!r} takes a sequence of frames (input shape {shape}); "
            "cnnviz_widgets explains one image at a time. Pass the per-frame model instead: "
            f"model.get_layer({wrapped[0].name!r}).layer (the {type(inner).__name__} "
            f"{inner.name!r}), with one frame as the image."
        )
    return (
        f"Model {model.name!r} takes inputs of shape {shape}; cnnviz_widgets needs an "
        "image input of shape (batch, height, width, channels)."
    )


def _refuse_channels_first(model: Any, steps: Sequence[LayerCall | Alias]) -> None:
    for step in steps:
        if isinstance(step, LayerCall):
            if getattr(step.operation, "data_format", None) == "channels_first":
                raise ModelError(
                    _(
                        "Model {name!r} uses data_format='channels_first' (layer {path!r}): its "
                        "feature maps are (channels, height, width). cnnviz_widgets reads "
                        "channels-last models, Keras' default. Rebuild the model with "
                        "data_format='channels_last' and copy the weights over "
                        "(new.set_weights(old.get_weights()) for the same layers), or set "
                        "keras.config.set_image_data_format('channels_last') before building it."
                    ).format(name=model.name, path=step.info.path)
                )
