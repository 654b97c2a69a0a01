"""The model-randomisation sanity check (Adebayo et al. 2018), and Spearman's rank correlation.

See :mod:`.trust` (which exports :func:`randomization_check` with :func:`~.trust.faithfulness`).
The layers of a *copy* of the model (``keras.models.clone_model`` with the weights copied in)
are re-initialised from the top down, one block at a time, and each new map is compared with
the original one. The user's model is never modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..errors import CnnVizError, ModelError, check_choice, check_positive
from ..i18n import gettext_ as _
from ..images import PreparedImage
from ..progress import Cancel, bar, check
from . import registry
from .cam import grad_cam
from .predictions import predict_top
from .saliency import saliency
from .targets import adapter_of, class_head, class_number

__all__ = ["FLAG_CORRELATION", "RandomizationCheck", "randomization_check", "spearman"]

#: A method is flagged when its map still correlates this much with the original after every
#: checked block was randomised.
FLAG_CORRELATION = 0.5


# ------------------------------------------------------------------------ rank correlation
def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 0 … n−1 of ``values``, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts_group) - 1
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + ends - 1) / 2.0)[group]
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman rank correlation of two maps of one shape (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise CnnVizError(
            _("spearman needs two maps of one size; got {a_size} and {b_size} values.").format(
                a_size=a.size, b_size=b.size
            )
        )
    ra, rb = _ranks(a), _ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = float(np.sqrt(np.dot(ra, ra) * np.dot(rb, rb)))
    return float(np.dot(ra, rb) / denominator) if denominator > 0.0 else float("nan")


# ------------------------------------------------------------------------ randomisation
@dataclass(frozen=True)
class RandomizationCheck:
    """The outcome of :func:`randomization_check`.

    Attributes
    ----------
    method : str
    class_index : int
    blocks : list of str
        The blocks randomised, top block first (cumulative: entry i has blocks 0 … i random).
    layers : list of list of str
        The layer paths of each block.
    correlations : list of float
        Spearman rank correlation of the map with the original after each cascading step, top
        block first (NaN when the map became constant, e.g. all zero).
    flagged : bool
        True when the map still correlates ≥ :data:`FLAG_CORRELATION` with the original after
        every checked block was randomised: it does not depend on what the model learned.
    """

    method: str
    class_index: int
    blocks: list[str]
    layers: list[list[str]]
    correlations: list[float]
    flagged: bool

    def __iter__(self) -> Iterator[float]:
        return iter(self.correlations)

    def __len__(self) -> int:
        return len(self.correlations)


def _weighted_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(path, layer) of every layer that owns weights, nested models looked through."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _weighted_layers(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            yield f"{prefix}{layer.name}", layer


def _block_name(path: str) -> str:
    """Keras applications name a block's layers ``block3a_expand_conv``, ``top_bn``: the part
    before the first underscore of the layer's name is its block."""
    head, _, name = path.rpartition("/")
    block = name.split("_", 1)[0]
    return f"{head}/{block}" if head else block


def _blocks(model: Any) -> list[tuple[str, list[tuple[str, Any]]]]:
    """Weighted layers grouped into consecutive blocks, top block first."""
    groups: list[tuple[str, list[tuple[str, Any]]]] = []
    for path, layer in reversed(list(_weighted_layers(model))):
        name = _block_name(path)
        if groups and groups[-1][0] == name:
            groups[-1][1].append((path, layer))
        else:
            groups.append((name, [(path, layer)]))
    return groups


def _initializer(layer: Any, variable: Any) -> Any:
    """The initializer ``layer`` made ``variable`` with, or None when it does not say."""
    name = variable.name.rsplit("/", 1)[-1].split(":")[0]
    for attribute in (f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer",
                      "depthwise_initializer" if name == "kernel" else ""):  # fmt: skip
        found = getattr(layer, attribute, None) if attribute else None
        if found is not None and callable(found):
            return found
    return None


def _reinitialise(layer: Any, rng: np.random.Generator) -> None:
    """Draw ``layer``'s weights anew, seeded from ``rng``.

    Each variable is drawn by the layer's own initializer (as at construction); a variable whose
    initializer the layer does not name gets its trained values shuffled (same distribution,
    no learned structure).
    """
    for variable in layer.weights:
        initializer = _initializer(layer, variable)
        seed = int(rng.integers(2**31 - 1))
        if initializer is None:
            values = np.asarray(variable.numpy()).ravel().copy()
            rng.shuffle(values)
            variable.assign(values.reshape(variable.shape))
            continue
        config = initializer.get_config()
        if "seed" in config:
            config["seed"] = seed
        fresh = type(initializer).from_config(config)
        variable.assign(fresh(shape=tuple(variable.shape), dtype=variable.dtype))


def _model_copy(adapter: ModelAdapter, image: PreparedImage) -> Any:
    """A copy of the adapter's model with the same weights; the model itself is untouched."""
    import keras

    original = adapter.model
    copy = keras.models.clone_model(original)
    twin = adapter_for(copy, preprocess=adapter.preprocess, image_size=adapter.image_size)
    twin.prepare(image.pixels)  # builds a never-built Sequential's layers, as for the original
    pairs = list(zip(_weighted_layers(original), _weighted_layers(copy), strict=False))
    for (_path, source), (_other, target) in pairs:
        target.set_weights(source.get_weights())
    return copy


def randomization_check(
    model: Any,
    image: Any,
    method: str = "gradcam",
    target: int | None = None,
    *,
    layer: str | None = None,
    blocks: int | None = None,
    seed: int = 0,
    output: int | str | None = None,
    preprocess: Preprocess | None = None,
    options: dict[str, Any] | None = None,
    progress: bool = True,
    cancel: Cancel = None,
) -> RandomizationCheck:
    """Model-randomisation sanity check (Adebayo et al. 2018) of an attribution method.

    A copy of the model is made (``keras.models.clone_model`` with the weights copied in; the
    model you pass is never changed). Its layers with weights are grouped into blocks by name —
    Keras applications' ``block3a_…`` layers are one block, ``top_conv``/``top_bn`` another, a
    layer without an underscore its own — and, from the top (the class head) down, one block
    after another is re-initialised with the layers' own seeded initializers, cumulatively.
    After each block the map is computed again and compared with the original map by Spearman
    rank correlation. A trustworthy method's map changes (ρ falls towards 0) as the network it
    explains is destroyed.

    Parameters
    ----------
    model : keras.Model or ModelAdapter
    image : array, path, PIL image or PreparedImage
    method : str
        A :func:`~cnnviz_widgets.explain.grad_cam` or
        :func:`~cnnviz_widgets.explain.saliency` method name (``registry.methods(kind)``).
    target : int, optional
        The class, fixed for every map; ``None``: the original model's top class.
    layer : str, optional
        For methods that read a layer (default: the deepest spatial map).
    blocks : int, optional
        Randomise only this many blocks from the top (default: all).
    seed : int
        Seed of the new weights.
    output, preprocess
        As for :func:`~cnnviz_widgets.explain.grad_cam`.
    options : dict, optional
        More keyword options for the method (e.g. ``{"samples": 10}`` for SmoothGrad).
    progress, cancel
        See :mod:`cnnviz_widgets.progress`.

    Returns
    -------
    RandomizationCheck
        ``.correlations`` (one per block, top block first; iterating the result gives them),
        ``.blocks``, ``.flagged``.

    Raises
    ------
    ModelError
        For a model without weights to randomise.
    CnnVizError
        For an unknown method (with close matches), or ``blocks`` not ≥ 1.
    """
    names = {m.name: m for kind in registry.KINDS for m in registry.methods(kind)}
    chosen = names[check_choice(method, names, _("attribution method"))]
    adapter = adapter_of(model, preprocess)
    prepared = adapter.prepare(image)
    if not adapter.model.weights:
        raise ModelError(
            _(
                "Model {model!r} has no weights, so the randomisation check has nothing to "
                "re-initialise: it tests whether a map depends on what the model learned. Run it "
                "on a model with trained (or at least initialised) layers."
            ).format(model=adapter.model.name)
        )
    head = class_head(adapter, output)
    if blocks is not None:
        blocks = check_positive(blocks, "blocks")
    index = class_number(target, head)
    if index < 0:
        index = predict_top(adapter, prepared, k=1, output=output)[0][0]
    extra = dict(options or {})
    if chosen.kind == "cam":
        compute, extra["layer"] = grad_cam, layer
    else:
        compute, extra["layer"] = saliency, layer if chosen.needs_layer else None

    def explain(on: Any) -> np.ndarray:
        return compute(on, prepared, index, method=chosen.name, output=output, **extra)

    original_map = explain(adapter)
    copy = _model_copy(adapter, prepared)
    twin = adapter_for(copy, preprocess=adapter.preprocess, image_size=adapter.image_size)
    groups = _blocks(copy)[:blocks]
    rng = np.random.default_rng(seed)
    correlations: list[float] = []
    with bar(len(groups), f"randomising {chosen.label}", progress) as tick:
        for _block, members in groups:
            check(cancel, "the randomisation check")
            for _path, member in members:
                _reinitialise(member, rng)
            correlations.append(spearman(original_map, explain(twin)))
            tick.update(1)
    last = correlations[-1] if correlations else float("nan")
    return RandomizationCheck(
        method=chosen.name,
        class_index=index,
        blocks=[name for name, _ in groups],
        layers=[[path for path, _ in members] for _, members in groups],
        correlations=correlations,
        flagged=bool(last >= FLAG_CORRELATION),
    )
