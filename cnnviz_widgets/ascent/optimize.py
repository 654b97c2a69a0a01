"""Feature visualisation by gradient ascent: what image makes a channel, neuron or class fire?

The recipe is that of Olah, Mordvintsev and Schubert, "Feature Visualization" (Distill, 2017),
with the FFT parametrisation and colour decorrelation of Mordvintsev et al., "Differentiable
Image Parameterizations" (Distill, 2018): see :mod:`.param` for the parametrisations and the
random transforms, :mod:`.step` for the traced Adam step and the pre-ReLU targets,
:mod:`.objectives` for what is maximised, and :mod:`.results` for the cache.

This module runs the loop: batches of objectives that share a traced step advance together,
step by step, reporting progress and streaming frames, and stopping when cancelled.
:func:`optimize_image` maximises any objectives ("class model visualisation" is
``optimize_image(model, class_logit(285))``); :func:`filter_ascent` does the common case, one
image per channel of a layer.

TensorFlow is imported inside functions: importing this module is cheap.

Examples
--------
>>> import cnnviz_widgets as cv
>>> from cnnviz_widgets.ascent import filter_ascent
>>> model = cv.load_default_model()
>>> layer = "backbone/block5c_expand_activation"
>>> images = filter_ascent(model, layer, range(8))  # doctest: +SKIP
>>> images.shape, images.dtype                      # doctest: +SKIP
((8, 128, 128, 3), dtype('float32'))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from ..engine import backend
from ..engine.adapter import ModelAdapter, Preprocess, adapter_for
from ..errors import Cancelled, CnnVizError, ModelError, check_int
from ..i18n import gettext_ as _
from ..progress import bar as progress_bar
from . import results
from .objectives import Objective, as_objectives, channel, layer_name
from .param import random_draws, start_params, to_image, transforms
from .settings import DEFAULT_STEPS, Settings, default_steps, takes_settings
from .step import call_step, canvas, render_function

__all__ = [
    "DEFAULT_STEPS",
    "AscentCancelled",
    "default_steps",
    "filter_ascent",
    "optimize_image",
    "starting_images",
    "warm_up",
]

#: ``on_step(step, total, images)``: images float32 (N, size, size, 3) or None.
OnStep = Callable[[int, int, "np.ndarray | None"], None]


class AscentCancelled(Cancelled):
    """Raised by :func:`filter_ascent` when its ``cancel`` event is set; nothing was cached."""


def _is_cancelled(cancel: Any) -> bool:
    if cancel is None:
        return False
    is_set = getattr(cancel, "is_set", None)
    return bool(is_set() if is_set is not None else cancel())


def _planes(adapter: ModelAdapter) -> int:
    channels = adapter.input_shape[2]
    if channels not in (1, 3):
        raise ModelError(
            _(
                "Model {name!r} takes {channels}-channel images; feature visualisation draws "
                "RGB (3) or grayscale (1) images. Wrap the model so it takes one of those."
            ).format(name=adapter.model.name, channels=channels)
        )
    return channels


def _optimise(
    adapter: ModelAdapter,
    objectives: list[Objective],
    settings: Settings,
    *,
    report: Callable[[int, int, dict[int, np.ndarray] | None], None],
    cancel: Any,
    streaming: bool = True,
) -> list[np.ndarray]:
    """Optimise images for ``objectives`` (one shared structure); return uint8 (size, size, 3)."""
    tf = backend.tensorflow()

    planes = _planes(adapter)
    structure = objectives[0].structure
    shape = canvas(adapter, settings)
    hyper = tf.constant([settings.lr, settings.tv, settings.l2], tf.float32)
    chunks = []
    for start in range(0, len(objectives), settings.batch_size):
        group = objectives[start : start + settings.batch_size]
        params = tf.constant(np.stack([start_params(settings, o, planes) for o in group]))
        draws = np.stack([random_draws(settings, o) for o in group], axis=1)  # (steps, n, 4)
        moves = np.stack([transforms(settings, d, shape) for d in draws])
        zeros = tf.zeros_like(params)
        chunks.append(
            {
                "start": start,
                "state": (params, zeros, zeros),
                "indices": tf.constant([o.indices for o in group], tf.int32),
                "transforms": moves,
            }
        )
    render = render_function(adapter, settings, planes)
    total = settings.steps
    for step in range(total):
        for chunk in chunks:
            # Checked before every batch step, so a cancel waits at most one step.
            if _is_cancelled(cancel):
                raise AscentCancelled(
                    _("Filter ascent cancelled at step {step} of {total}.").format(
                        step=step, total=total
                    )
                )
            params, m, v = chunk["state"]
            args = (
                params,
                m,
                v,
                tf.constant(step + 1, tf.float32),
                chunk["indices"],
                tf.constant(chunk["transforms"][step]),
                hyper,
            )
            chunk["state"] = call_step(adapter, structure, settings, planes, args)
        done = step + 1
        # Frames are rendered only for someone who listens (render + copy cost a few ms).
        show = streaming and (done == 1 or done == total or done % settings.every == 0)
        frames = None
        if show:
            frames = {}
            for chunk in chunks:
                array = render(chunk["state"][0]).numpy()
                for i in range(array.shape[0]):
                    frames[chunk["start"] + i] = array[i]
        report(done, total, frames)
    images = []
    for chunk in chunks:
        array = render(chunk["state"][0]).numpy()
        if planes == 1:
            array = np.repeat(array, 3, axis=-1)
        # 8-bit levels: exactly what a screen shows, and what the cache stores losslessly.
        images.extend(np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8))
    return images


def _run(
    model: Any,
    items: list[Objective],
    settings: Settings,
    *,
    on_step: OnStep | None,
    cancel: Any,
    preprocess: Preprocess | None,
    cache: bool,
    progress: bool = True,
) -> np.ndarray:
    """What :func:`optimize_image` does once its arguments are checked."""
    adapter = adapter_for(model, preprocess=preprocess)
    # A never-built Sequential model learns its input here: RGB images of the asked size.
    adapter.build_for((settings.size, settings.size, 3))
    resolved = [o.resolved(adapter) for o in items]
    if _is_cancelled(cancel):
        raise AscentCancelled(_("Filter ascent cancelled before it started."))

    n = len(resolved)
    found: list[np.ndarray | None] = [None] * n
    keys: list[tuple] = [()] * n
    if cache:
        for i, objective in enumerate(resolved):
            keys[i] = results.entry_key(adapter, settings, objective)
            found[i] = results.lookup(keys[i], settings.size)

    # Each distinct missing objective is computed once, even if requested twice.
    todo: dict[Objective, list[int]] = {}
    for i, objective in enumerate(resolved):
        if found[i] is None:
            todo.setdefault(objective, []).append(i)
    groups: dict[tuple, list[Objective]] = {}
    for objective in todo:
        groups.setdefault(objective.structure, []).append(objective)

    def current(frames_by_slot: dict[int, np.ndarray]) -> np.ndarray:
        out = np.full((n, settings.size, settings.size, 3), 0.5, np.float32)
        for i, value in enumerate(found):
            if value is not None:
                out[i] = value.astype(np.float32) / 255.0
        for i, frame in frames_by_slot.items():
            out[i] = frame  # broadcasting turns a gray (…, 1) frame into RGB
        return out

    group_list = list(groups.values())
    # A tqdm.auto bar for calls from Python, shown once the run has taken a second.
    steps_bar = progress_bar(len(group_list) * settings.steps, f"filter ascent ({n})", progress)
    try:
        for g, group in enumerate(group_list):

            def report(done: int, total: int, frames: dict | None, g=g, group=group) -> None:
                steps_bar.update(1)
                if on_step is None:
                    return
                images = None
                if frames is not None:
                    slots = {slot: frames[j] for j, o in enumerate(group) for slot in todo[o]}
                    images = current(slots)
                # Several groups run one after another: report one continuous count.
                on_step(g * total + done, len(group_list) * total, images)

            computed = _optimise(
                adapter, group, settings, report=report, cancel=cancel,
                streaming=on_step is not None,
            )  # fmt: skip
            for objective, image in zip(group, computed, strict=True):
                for i in todo[objective]:
                    found[i] = image
                if cache:
                    results.store(keys[todo[objective][0]], image)
    finally:
        steps_bar.close()
    if not todo and on_step is not None:
        on_step(settings.steps, settings.steps, current({}))
    return np.stack([r.astype(np.float32) / 255.0 for r in found])


@takes_settings
def optimize_image(
    model: Any,
    objectives: Objective | Sequence[Objective],
    *,
    on_step: OnStep | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    preprocess: Preprocess | None = None,
    cache: bool = True,
    progress: bool = True,
    **options: Any,
) -> np.ndarray:
    """Images that maximise objectives: one image per objective, optimised in batches.

    Parameters are those of :func:`filter_ascent`, with ``objectives`` (one
    :class:`Objective` or a list) in place of ``layer`` and ``channels``. Objectives that
    differ only in their indices (``channel(L, 3)``, ``channel(L, 7)``) share batches and one
    traced step; others are optimised group by group.

    Returns
    -------
    np.ndarray
        float32 (N, size, size, 3) in [0, 1], in the order of ``objectives``.

    Raises
    ------
    CnnVizError, LayerError, AscentCancelled, TypeError
        As :func:`filter_ascent`.

    Examples
    --------
    >>> cat = optimize_image(model, class_logit(285), steps=128)  # doctest: +SKIP
    >>> mix = optimize_image(model, channel(L, 3) + channel(L, 9))  # doctest: +SKIP
    """
    items = as_objectives(objectives)
    settings = Settings.from_options("optimize_image", **options)
    return _run(
        model,
        items,
        settings,
        on_step=on_step,
        cancel=cancel,
        preprocess=preprocess,
        cache=cache,
        progress=progress,
    )


@takes_settings
def filter_ascent(
    model: Any,
    layer: str,
    channels: int | Iterable[int],
    *,
    on_step: OnStep | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    preprocess: Preprocess | None = None,
    cache: bool = True,
    progress: bool = True,
    **options: Any,
) -> np.ndarray:
    """Synthesise, for each channel, the image that excites it most (activation maximisation).

    All channels are optimised together, ``batch_size`` images per traced step; image ``i``
    maximises the mean activation of channel ``channels[i]``.

    Parameters
    ----------
    model : keras.Model
        Any Keras 3 CNN, nested sub-models included; or a :class:`ModelAdapter`.
    layer : str
        Layer path (``"backbone/block4a_expand_activation"``) or unambiguous layer name.
    channels : int or iterable of int
        Channel indices of ``layer``.
    size : int, default 128
        Side of the square images, in pixels (≥ 8): the size the model sees them at
        (fixed-size models see them resampled to their input size).
    steps : int, optional
        Adam steps. ``None`` means :data:`DEFAULT_STEPS` (256), capped by the environment
        variable ``CNNVIZ_MAX_STEPS`` if set (notebooks in CI set it).
    seed : int, default 0
        Seeds the starting image and the random transforms: the same seed gives the same
        images, bit for bit.
    lr : float, default 0.1
        Adam learning rate.
    param : {"fft", "pixel"}
        Image parametrisation: 1/f-scaled Fourier coefficients (clean, picture-like) or raw
        pixels (noisier; for comparison).
    decorrelate : bool, default True
        Optimise in decorrelated colour space (see :mod:`.param`).
    jitter : int, optional
        Largest random shift each step, in pixels (grey comes in at the edges). Default
        ``size / 16``.
    scale : (float, float) or float, default (0.8, 1.25)
        Range of the random zoom each step; a single ``s`` means ``(1/s, s)``.
    rotate : float, default 15.0
        Largest random rotation each step, in degrees.
    tv, l2 : float, default 1.0 and 0.0
        Weights of the total-variation penalty (mean absolute neighbour difference) and of the
        L2 penalty (mean squared distance from grey), against the mean activation.
    batch_size : int, default 16
        Images per step; more channels are split into batches that advance together.
    every : int, default 8
        ``on_step`` receives images after the first step, every ``every`` steps, and at the end.
    on_step : callable, optional
        ``on_step(step, total, images)`` after every step; ``images`` is a float32 (N, size,
        size, 3) array on the steps above, else ``None``.
    cancel : threading.Event or callable, optional
        Checked before every batch step: once set (or returning True) the run stops and raises
        :class:`AscentCancelled`. Nothing of a cancelled run is cached.
    preprocess : callable, optional
        For models whose preprocessing is outside them: applied to the 0–255 batch inside the
        optimisation, so it must use TensorFlow / ``keras.ops`` operations.
    cache : bool, default True
        Read and write the result cache (memory and :func:`cache_dir`).
    progress : bool, default True
        Show a ``tqdm.auto`` bar of the steps once the run has taken a second (a widget bar in
        a notebook, a text bar in a terminal); False shows nothing.

    Returns
    -------
    np.ndarray
        float32 (len(channels), size, size, 3), values in [0, 1] on 8-bit levels (k / 255).

    Raises
    ------
    CnnVizError
        A channel out of range, ``steps`` < 1, a setting of the wrong type or range, or a
        ``size`` too small for the layer.
    LayerError
        An unknown layer, or one without a spatial feature map.
    ModelError
        A ``preprocess`` that does not work on tensors, or a model that does not take 1- or
        3-channel images.
    TypeError
        An option that does not exist (the message suggests the closest).
    AscentCancelled
        When ``cancel`` was set.

    Examples
    --------
    >>> layer = "backbone/block5c_expand_activation"
    >>> images = filter_ascent(model, layer, [0, 1, 2])  # doctest: +SKIP
    >>> images.shape                                      # doctest: +SKIP
    (3, 128, 128, 3)
    """
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = [int(channels)]
    indices = [check_int(c, "channel") for c in channels]
    if not indices:
        raise CnnVizError(
            _("No channels given: pass at least one channel index, e.g. [0, 1, 2].")
        )
    layer = layer_name(layer)
    settings = Settings.from_options("filter_ascent", **options)
    return _run(
        model,
        [channel(layer, c) for c in indices],
        settings,
        on_step=on_step,
        cancel=cancel,
        preprocess=preprocess,
        cache=cache,
        progress=progress,
    )


def starting_images(
    objectives: Objective | Sequence[Objective],
    *,
    size: int = 128,
    seed: int = 0,
    param: str = "fft",
    decorrelate: bool = True,
    planes: int = 3,
) -> np.ndarray:
    """The images an ascent starts from (step 0) for these objectives and settings.

    Useful as the baseline when measuring how much an ascent raised its objective.

    Returns
    -------
    np.ndarray
        float32 (N, size, size, 3) in [0, 1] (grey planes repeated when ``planes`` is 1).

    Examples
    --------
    >>> starting_images(channel("conv2", 0), size=32).shape
    (1, 32, 32, 3)
    """
    tf = backend.tensorflow()

    settings = Settings.from_options(
        "starting_images", size=size, steps=1, seed=seed, param=param, decorrelate=decorrelate
    )
    items = as_objectives(objectives)
    params = tf.constant(np.stack([start_params(settings, o, planes) for o in items]))
    images = to_image(params, settings, planes).numpy()
    return np.repeat(images, 3, axis=-1) if planes == 1 else images


def warm_up(
    model: Any,
    layer: str,
    *,
    size: int = 128,
    param: str = "fft",
    decorrelate: bool = True,
    tv: float = 1.0,
    l2: float = 0.0,
    preprocess: Preprocess | None = None,
    cache: bool = True,
) -> None:
    """Trace the ascent step for ``layer`` now, so the first real request starts at once.

    Tracing a deep model's forward and backward pass, and TensorFlow's optimisation of the
    graph on its first run, take about a second; a widget can pay that in a background thread
    when it opens. Pass the settings the requests will use that change the graph: ``size``,
    ``param``, ``decorrelate`` and whether ``tv`` and ``l2`` are 0 (their values, like steps,
    seed, lr, jitter, scale, rotate and the channels, do not matter). With ``cache`` the
    model's weight fingerprint is computed now too.

    Examples
    --------
    >>> layer = "backbone/top_activation"
    >>> threading.Thread(target=warm_up, args=(model, layer)).start()  # doctest: +SKIP
    """
    tf = backend.tensorflow()

    adapter = adapter_for(model, preprocess=preprocess)
    objective = channel(layer, 0).resolved(adapter)
    settings = Settings.from_options(
        "warm_up",
        size=size,
        steps=1,
        param=param,
        decorrelate=decorrelate,
        scale=(1.0, 1.0),
        rotate=0.0,
        tv=tv,
        l2=l2,
    )
    if cache:
        results.fingerprint(adapter)
    planes = 1 if adapter.input_shape[2] == 1 else 3
    params = tf.constant(start_params(settings, objective, planes)[np.newaxis])
    moves = transforms(settings, np.full((1, 4), 0.5), canvas(adapter, settings))
    # One real step on one image: traces, and also lets TensorFlow optimise the graph, which
    # it does on the first run, not at trace time.
    call_step(
        adapter,
        objective.structure,
        settings,
        planes,
        (
            params,
            tf.zeros_like(params),
            tf.zeros_like(params),
            tf.constant(1.0),
            tf.constant([objective.indices], tf.int32),
            tf.constant(moves),
            tf.constant([0.0, 0.0, 0.0]),
        ),
    )
    render_function(adapter, settings, planes)(params).numpy()
