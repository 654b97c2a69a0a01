"""Benchmark suite "activations": the foundation's speed and memory targets.

All figures use the offline default model (EfficientNet-Lite0, nested) and the ``chelsea``
sample photo, brought by the adapter to 224×337 (shorter side 224). Every floor and reference
is measured in the same run, interleaved with the operation it is compared with where that
makes sense.

Sections
--------
1. Widget views: ``ex.channel = k``, ``ex.cmap = name`` and grid ``ex.page = p`` end to end
   (new PNG assigned to ``ex.view.value``), beside a plain matplotlib (Agg) redraw of the same
   view.
2. First view of a new image: a layer's feature map through ``ActivationCache.activations``
   for an image never seen before, against one compiled forward pass of the whole model.
3. Switching layer for an image whose current view is cached, against a compiled forward pass
   truncated at that layer; plus the one-time trace cost of a layer's function.
4. Memory: 1,000 random control changes on one explorer; RSS growth and the cache budget.
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from report import Figure, Reference, SuiteResult
from timing import Stats, measure, measure_interleaved, section, time_once

NAME = "activations"
DESCRIPTION = "ActivationExplorer views, feature maps of new images and layers, memory"

#: The grid view: a layer with more than three pages of 64 channels (480 channels, 8 pages).
GRID_LAYER = "backbone/block5a_expand_activation"
#: The layer with the largest grid picture (96 channels of 112×169: 2 pages).
LARGEST_GRID_LAYER = "backbone/block2a_expand_activation"
#: The deepest spatial layer.
DEEPEST_LAYER = "backbone/top_activation"
#: Layers at different depths for the "switch layer" figures.
SWITCH_LAYERS = (
    "backbone/stem_conv",
    "backbone/block2b_add",
    "backbone/block4a_expand_conv",
    "backbone/block5c_add",
    "backbone/top_activation",
)
#: Layers the random control changes of the memory test pick from.
MEMORY_LAYERS = (
    "backbone/stem_activation",
    "backbone/block1a_project_bn",
    "backbone/block2a_expand_activation",
    "backbone/block2b_add",
    "backbone/block3a_expand_conv",
    "backbone/block4a_expand_activation",
    "backbone/block4c_add",
    "backbone/block5a_expand_activation",
    "backbone/block6a_expand_conv",
    "backbone/top_activation",
)
COLORMAPS = ("viridis", "magma", "gray", "RdBu_r", "inferno", "cividis", "coolwarm", "turbo")
SMALL_BUDGET = 8 * 2**20
MB = 1e6

#: Targets (from the issue).
CHANNEL_P95_MS = 25.0
CMAP_P95_MS = 25.0
GRID_P95_MS = 60.0
FIRST_VIEW_FACTOR = 1.2
SWITCH_FACTOR = 1.2
SWITCH_MIN_MS = 30.0
MEMORY_GROWTH_MB = 50.0


@dataclass(frozen=True)
class Plan:
    """How many times each kind of operation is repeated."""

    widget: int = 200  # ms-level widget operations
    widget_warmup: int = 20
    reference: int = 60  # matplotlib single-image redraws
    grid_reference: int = 30  # matplotlib 64-subplot redraws (~0.1 s each)
    reference_warmup: int = 3
    forward: int = 30  # feature maps and compiled forward passes
    forward_warmup: int = 3
    slow: int = 30  # eager call and model.predict (informational)
    changes: int = 1000  # random control changes of the memory test
    change_warmup: int = 100


FULL = Plan()
QUICK = Plan(
    widget=20,
    widget_warmup=3,
    reference=5,
    grid_reference=3,
    reference_warmup=1,
    forward=5,
    forward_warmup=2,
    slow=3,
    changes=60,
    change_warmup=10,
)


def short(path: str) -> str:
    """A layer path without the ``backbone/`` prefix, for table rows."""
    return path.rsplit("/", 1)[-1]


class Bench:
    """The model, adapter and image every section shares, plus a source of new images."""

    def __init__(self, plan: Plan) -> None:
        from cnnviz_widgets import load_default_model, sample_image
        from cnnviz_widgets.engine.adapter import adapter_for

        self.plan = plan
        start = time.perf_counter()
        self.model = load_default_model()
        self.load_seconds = time.perf_counter() - start
        self.adapter = adapter_for(self.model)
        self.chelsea = sample_image("chelsea")
        self.image = self.adapter.prepare(self.chelsea)
        self.pixels = self.image.pixels
        paths = self.adapter.layer_paths
        #: The layer an explorer shows first (the middle spatial layer).
        self.mid_layer = paths[len(paths) // 2]
        self._rng = np.random.default_rng(0)
        self._shapes: dict[str, tuple[int, int, int]] = {}

    def new_image(self) -> np.ndarray:
        """Chelsea with fresh ±2 grey-level noise: same size, pixels never seen before."""
        noise = self._rng.uniform(-2.0, 2.0, size=self.pixels.shape).astype(np.float32)
        return np.clip(self.pixels + noise, 0.0, 255.0)

    def prepared(self, pixels: np.ndarray, adapter: Any = None) -> Any:
        """``pixels`` as a PreparedImage of ``adapter`` (its fingerprint hashed, as a view does)."""
        from cnnviz_widgets.images import PreparedImage

        owner = (adapter or self.adapter).identity
        return PreparedImage.of(pixels, pixels.shape[:2], owner)

    def shape_of(self, layer: str) -> tuple[int, int, int]:
        """The feature-map shape of ``layer`` for the chelsea input (computed once)."""
        if layer not in self._shapes:
            maps = self.adapter.feature_maps(self.image, [layer])[0]
            self._shapes[layer] = tuple(int(d) for d in maps.shape)
        return self._shapes[layer]


# --------------------------------------------------------------------------------------------
# 1. widget views
# --------------------------------------------------------------------------------------------


def _png_of(canvas: Any) -> bytes:
    buffer = io.BytesIO()
    canvas.print_png(buffer)
    return buffer.getvalue()


def _figure_of_size(height: int, width: int) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    dpi = 100
    figure = MplFigure(figsize=(width / dpi, height / dpi), dpi=dpi)
    return figure, FigureCanvasAgg(figure)


def _mpl_redraw(canvas: Any, *, draw_first: bool) -> bytes:
    """``canvas.draw()`` + ``print_png`` (the recipe), or ``print_png`` alone (one render)."""
    if draw_first:
        canvas.draw()
    return _png_of(canvas)


def _check_view(explorer: Any) -> None:
    """The widget really holds a fresh PNG and no error."""
    value = explorer.view.value
    if not (value[:8] == b"\x89PNG\r\n\x1a\n" and value == explorer.png):
        raise AssertionError("the explorer's view does not hold its current PNG")
    if explorer.error:
        raise AssertionError(f"the explorer shows an error: {explorer.error}")


def _references(
    label: str,
    update: Callable[[int], None],
    canvas: Any,
    ours: Stats,
    *,
    repeats: int,
    warmup: int,
) -> list[Reference]:
    """Time a matplotlib redraw two ways: the recipe (draw + print_png) and one render."""
    refs = []
    for draw_first, name in [
        (True, f"matplotlib {label}: set_data + draw() + print_png"),
        (False, f"matplotlib {label}: set_data + print_png (1 render)"),
    ]:

        def redraw(i: int, draw_first: bool = draw_first) -> None:
            update(i)
            _mpl_redraw(canvas, draw_first=draw_first)

        stats = measure(redraw, repeats=repeats, warmup=warmup)
        refs.append(Reference.from_stats(name, "reference", stats, ours, ours_over_ref=False))
    return refs


def widget_views(bench: Bench) -> list[Figure]:
    """Channel, colormap and grid-page changes on a cached layer, with matplotlib beside."""
    from cnnviz_widgets import ActivationExplorer
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.render import page_channels, page_count
    from cnnviz_widgets.widgets.activations import GRID_PAGE_SIZE

    plan = bench.plan
    cache = ActivationCache()
    mid = bench.mid_layer
    explorer = ActivationExplorer(bench.model, bench.chelsea, layer=mid, cache=cache)
    if explorer.layer != mid:
        raise AssertionError(f"explorer opened {explorer.layer!r}, not {mid!r}")
    maps = cache.activations(bench.adapter, bench.image, mid)
    count = maps.shape[-1]
    figures = []

    # --- channel change ---------------------------------------------------------------------
    def change_channel(i: int) -> None:
        explorer.channel = (i + 1) % count

    ours = measure(change_channel, repeats=plan.widget, warmup=plan.widget_warmup)
    _check_view(explorer)
    view_h, view_w = explorer.rgb.shape[:2]
    mpl_figure, canvas = _figure_of_size(view_h, view_w)
    axes = mpl_figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    image = axes.imshow(maps[:, :, 0], cmap="viridis", interpolation="nearest", aspect="auto")

    def mpl_channel(i: int) -> None:
        image.set_data(maps[:, :, (i + 1) % count])
        image.autoscale()

    figure = Figure.timed(
        f"channel change → PNG ({short(mid)} {maps.shape[0]}×{maps.shape[1]}×{count})",
        ours,
        references=_references(
            "imshow", mpl_channel, canvas, ours,
            repeats=plan.reference, warmup=plan.reference_warmup,
        ),
        note=f"view {view_h}×{view_w} px; cycling channels; includes validation and PNG encode",
    )  # fmt: skip
    figure.check("p95", CHANNEL_P95_MS, f"p95 ≤ {CHANNEL_P95_MS:.0f} ms")
    figures.append(figure)

    # --- colormap change --------------------------------------------------------------------
    explorer.channel = 7
    image.set_data(maps[:, :, 7])
    image.autoscale()

    def change_cmap(i: int) -> None:
        explorer.cmap = COLORMAPS[(i + 1) % len(COLORMAPS)]

    ours = measure(change_cmap, repeats=plan.widget, warmup=plan.widget_warmup)
    _check_view(explorer)

    def mpl_cmap(i: int) -> None:
        image.set_cmap(COLORMAPS[(i + 1) % len(COLORMAPS)])

    figure = Figure.timed(
        f"colormap change → PNG ({short(mid)}, {len(COLORMAPS)} cmaps)",
        ours,
        references=_references(
            "imshow", mpl_cmap, canvas, ours,
            repeats=plan.reference, warmup=plan.reference_warmup,
        ),
        note="cycling " + "/".join(COLORMAPS),
    )  # fmt: skip
    figure.check("p95", CMAP_P95_MS, f"p95 ≤ {CMAP_P95_MS:.0f} ms")
    figures.append(figure)

    # --- grid page ----------------------------------------------------------------------------
    explorer.cmap = "viridis"
    explorer.layer = GRID_LAYER
    explorer.mode = "grid"
    explorer.page = 0
    grid_maps = cache.activations(bench.adapter, bench.image, GRID_LAYER)
    grid_count = grid_maps.shape[-1]
    pages = page_count(grid_count, GRID_PAGE_SIZE)
    if pages < 3:
        raise AssertionError(f"{GRID_LAYER} has only {pages} pages")

    def change_page(i: int) -> None:
        explorer.page = (i + 1) % pages

    ours = measure(change_page, repeats=plan.widget, warmup=plan.widget_warmup)
    _check_view(explorer)
    layout = explorer.grid_layout
    grid_h, grid_w = explorer.rgb.shape[:2]
    mpl_grid, grid_canvas = _figure_of_size(grid_h, grid_w)
    grid_axes = mpl_grid.subplots(layout.rows, layout.columns)
    mpl_grid.subplots_adjust(left=0, bottom=0, right=1, top=1, wspace=0.02, hspace=0.02)
    tiles = []
    for index, tile_axes in enumerate(grid_axes.flat):
        tile_axes.set_axis_off()
        tiles.append(
            tile_axes.imshow(
                grid_maps[:, :, index], cmap="viridis", interpolation="nearest", aspect="auto"
            )
        )

    def mpl_page(i: int) -> None:
        channels = page_channels(grid_count, (i + 1) % pages, GRID_PAGE_SIZE)
        for index, tile in enumerate(tiles):
            if index < len(channels):
                tile.set_data(grid_maps[:, :, channels[index]])
                tile.autoscale()
                tile.set_visible(True)
            else:
                tile.set_visible(False)

    figure = Figure.timed(
        f"grid page → PNG ({short(GRID_LAYER)}, 64 tiles of "
        f"{grid_maps.shape[0]}×{grid_maps.shape[1]}, {pages} pages)",
        ours,
        references=_references(
            "64 subplots", mpl_page, grid_canvas, ours,
            repeats=plan.grid_reference, warmup=plan.reference_warmup,
        ),
        note=f"grid {grid_h}×{grid_w} px; cycling pages",
    )  # fmt: skip
    figure.check("p95", GRID_P95_MS, f"p95 ≤ {GRID_P95_MS:.0f} ms")
    figures.append(figure)

    # --- grid page, largest picture ----------------------------------------------------------
    # Early layers have few channels but big maps: their grid is the largest PNG to encode.
    explorer.layer = LARGEST_GRID_LAYER
    big_h, big_w, big_count = bench.shape_of(LARGEST_GRID_LAYER)
    big_pages = page_count(big_count, GRID_PAGE_SIZE)

    def change_big_page(i: int) -> None:
        explorer.page = (i + 1) % big_pages

    ours = measure(change_big_page, repeats=plan.widget, warmup=plan.widget_warmup)
    _check_view(explorer)
    figure = Figure.timed(
        f"grid page → PNG, largest grid ({short(LARGEST_GRID_LAYER)}, tiles of "
        f"{big_h}×{big_w}, {big_pages} pages)",
        ours,
        note=f"{big_count} channels: pages of 64 and {big_count - 64} tiles alternate; "
        "no matplotlib reference",
    )
    figure.check("p95", GRID_P95_MS, f"p95 ≤ {GRID_P95_MS:.0f} ms")
    figures.append(figure)
    explorer.close()
    return figures


# --------------------------------------------------------------------------------------------
# 2. first view of a new image
# --------------------------------------------------------------------------------------------


def _compiled(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``tf.function`` of ``model(x, training=False)``, returning a numpy array."""
    import tensorflow as tf

    function = tf.function(lambda x: model(x, training=False))

    def forward(batch: np.ndarray) -> np.ndarray:
        return function(batch).numpy()

    return forward


def first_view(bench: Bench) -> list[Figure]:
    """A layer's feature map for a never-seen image vs one compiled whole-model forward pass."""
    from cnnviz_widgets.cache import ActivationCache

    plan = bench.plan
    forward = _compiled(bench.model)
    current: dict[str, np.ndarray] = {}

    def new_image(i: int) -> None:
        current["pixels"] = bench.new_image()

    def floor(i: int) -> None:
        forward(current["pixels"][np.newaxis])

    figures = []
    for layer in (bench.mid_layer, DEEPEST_LAYER):
        cache = ActivationCache()

        def ours(i: int, cache: ActivationCache = cache, layer: str = layer) -> None:
            pixels = current["pixels"]
            cache.activations(bench.adapter, bench.prepared(pixels), layer)

        stats = measure_interleaved(
            {"ours": ours, "floor": floor},
            repeats=plan.forward,
            warmup=plan.forward_warmup,
            setup=new_image,
        )
        if cache.misses != plan.forward + plan.forward_warmup or cache.hits:
            raise AssertionError(f"expected only misses, got {cache!r}")
        h, w, c = bench.shape_of(layer)
        figure = Figure.timed(
            f"first view, new image → {short(layer)} {h}×{w}×{c}",
            stats["ours"],
            references=[
                Reference.from_stats(
                    "compiled forward pass, whole model (tf.function)",
                    "floor",
                    stats["floor"],
                    stats["ours"],
                    ours_over_ref=True,
                )
            ],
            note="cache miss every time (noise-perturbed chelsea); includes image_key hashing",
        )
        figure.check(
            "median",
            FIRST_VIEW_FACTOR * stats["floor"].median,
            f"≤ {FIRST_VIEW_FACTOR}× floor",
        )
        figures.append(figure)

    # For scale: the ways a user might otherwise run the model.
    def eager(i: int) -> None:
        np.asarray(bench.model(current["pixels"][np.newaxis], training=False))

    def predict(i: int) -> None:
        bench.model.predict(current["pixels"][np.newaxis], verbose=0)

    stats = measure_interleaved(
        {"floor": floor, "eager": eager, "predict": predict},
        repeats=plan.slow,
        warmup=2,
        setup=new_image,
    )
    for key, name in [("eager", "eager model(x), whole model"), ("predict", "model.predict(x)")]:
        figures.append(
            Figure.timed(
                f"for scale: {name}",
                stats[key],
                references=[
                    Reference.from_stats(
                        "compiled forward pass, whole model (tf.function)",
                        "floor",
                        stats["floor"],
                        stats[key],
                        ours_over_ref=True,
                    )
                ],
            )
        )
    return figures


# --------------------------------------------------------------------------------------------
# 3. switching layer
# --------------------------------------------------------------------------------------------


def _truncated(model: Any, layer: str) -> Callable[[np.ndarray], np.ndarray]:
    """Compiled ``preprocess`` → backbone truncated at ``layer``: the same computation."""
    import keras

    backbone = model.get_layer("backbone")
    head = keras.Model(backbone.input, backbone.get_layer(short(layer)).output)
    config = dict(model.get_layer("preprocess").get_config(), name="floor_preprocess")
    rescale = keras.layers.Rescaling.from_config(config)
    inputs = keras.Input((None, None, 3))
    return _compiled(keras.Model(inputs, head(rescale(inputs))))


def layer_switch(bench: Bench) -> list[Figure]:
    """First computation of another layer of a viewed image vs a truncated forward pass."""
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.engine.adapter import ModelAdapter

    plan = bench.plan
    figures = []

    # One-time cost of a layer's traced function: a new adapter has traced nothing yet.
    fresh = ModelAdapter(bench.model)
    trace_ms = {}
    for layer in SWITCH_LAYERS:
        image = bench.prepared(bench.new_image(), fresh)
        trace_ms[layer] = time_once(functools.partial(fresh.feature_maps, image, [layer]))
    del fresh

    current: dict[str, Any] = {}
    for layer in SWITCH_LAYERS:
        floor_forward = _truncated(bench.model, layer)
        cache = ActivationCache()

        def viewed_image(i: int, cache: ActivationCache = cache) -> None:
            pixels = bench.new_image()
            image = bench.prepared(pixels)
            # The image the explorer shows: its current layer is cached already.
            cache.activations(bench.adapter, image, bench.mid_layer)
            current.update(pixels=pixels, image=image)

        def ours(i: int, cache: ActivationCache = cache, layer: str = layer) -> None:
            cache.activations(bench.adapter, current["image"], layer)

        def floor(i: int, floor_forward: Callable = floor_forward) -> None:
            floor_forward(current["pixels"][np.newaxis])

        # The warm-up calls trace the adapter's function for this layer on other images.
        stats = measure_interleaved(
            {"ours": ours, "floor": floor},
            repeats=plan.forward,
            warmup=plan.forward_warmup,
            setup=viewed_image,
        )
        expected = 2 * (plan.forward + plan.forward_warmup)
        if cache.misses != expected or cache.hits:
            raise AssertionError(f"expected {expected} misses and no hits, got {cache!r}")
        floor_median = stats["floor"].median
        h, w, c = bench.shape_of(layer)
        figure = Figure.timed(
            f"switch layer → {short(layer)} {h}×{w}×{c}",
            stats["ours"],
            references=[
                Reference.from_stats(
                    f"compiled forward truncated at {short(layer)}",
                    "floor",
                    stats["floor"],
                    stats["ours"],
                    ours_over_ref=True,
                )
            ],
            extra={"first_request_ever_ms": trace_ms[layer]},
        )
        figure.check(
            "median",
            max(SWITCH_MIN_MS, SWITCH_FACTOR * floor_median),
            f"≤ max({SWITCH_MIN_MS:.0f} ms, {SWITCH_FACTOR}× floor)",
        )
        figures.append(figure)
        cache.clear()

    for layer in SWITCH_LAYERS:
        figures.append(
            Figure(
                f"one-time: first request ever → {short(layer)} (trace + run)",
                "ms",
                trace_ms[layer],
                None,
                1,
                trace_ms[layer],
                note="a new ModelAdapter traces this layer's tf.function, then runs it"
                if layer == SWITCH_LAYERS[0]
                else "",
            )
        )
    return figures


# --------------------------------------------------------------------------------------------
# 4. memory
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, choices: Any, exclude: Any) -> Any:
    options = [c for c in choices if c != exclude]
    return options[int(rng.integers(len(options)))]


def memory(bench: Bench, budget: int | None) -> list[Figure]:
    """1,000 random control changes: RSS growth, cache budget held after every change."""
    import gc

    import psutil

    from cnnviz_widgets import ActivationExplorer
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.render import page_count
    from cnnviz_widgets.widgets.activations import GRID_PAGE_SIZE, MODES

    plan = bench.plan
    cache = ActivationCache() if budget is None else ActivationCache(max_bytes=budget)
    budget_text = f"{cache.max_bytes / 2**20:.0f} MiB cache"
    explorer = ActivationExplorer(bench.model, bench.chelsea, layer=bench.mid_layer, cache=cache)
    channels = {layer: bench.adapter.layer_info(layer).channels for layer in MEMORY_LAYERS}
    channels[bench.mid_layer] = bench.adapter.layer_info(bench.mid_layer).channels
    rng = np.random.default_rng(1)
    process = psutil.Process()
    tally = {"over_budget": 0, "max_nbytes": cache.nbytes, "errors": 0}
    by_control: dict[str, list[float]] = {}

    def check_budget() -> None:
        tally["max_nbytes"] = max(tally["max_nbytes"], cache.nbytes)
        if cache.nbytes > cache.max_bytes:
            tally["over_budget"] += 1
        if explorer.error:
            tally["errors"] += 1

    def change() -> str:
        count = channels[explorer.layer]
        pages = page_count(count, GRID_PAGE_SIZE)
        controls = ["layer", "channel", "cmap", "mode"]
        if explorer.mode == "grid" and pages > 1:
            controls.append("page")
        control = controls[int(rng.integers(len(controls)))]
        if control == "layer":
            explorer.layer = _pick(rng, MEMORY_LAYERS, explorer.layer)
        elif control == "channel":
            explorer.channel = _pick(rng, range(count), explorer.channel)
        elif control == "cmap":
            explorer.cmap = _pick(rng, COLORMAPS, explorer.cmap)
        elif control == "mode":
            explorer.mode = _pick(rng, MODES, explorer.mode)
        else:
            explorer.page = _pick(rng, range(pages), explorer.page)
        check_budget()
        return control

    # Warm-up: every layer once (so each layer's traced function exists, as in a session that
    # has visited them), every colormap once, then random changes.
    warmup_changes = 0
    for layer in MEMORY_LAYERS:
        explorer.layer = layer
        check_budget()
        warmup_changes += 1
    for name in COLORMAPS:
        explorer.cmap = name
        check_budget()
        warmup_changes += 1
    for _ in range(plan.change_warmup):
        change()
        warmup_changes += 1
    gc.collect()
    rss_before = process.memory_info().rss
    rss_trace = []
    hits_before, misses_before = cache.hits, cache.misses
    samples = []
    for index in range(plan.changes):
        start = time.perf_counter()
        control = change()
        elapsed = (time.perf_counter() - start) * 1e3
        samples.append(elapsed)
        by_control.setdefault(control, []).append(elapsed)
        if index % 100 == 99:
            rss_trace.append(process.memory_info().rss / MB)
    gc.collect()
    rss_after = process.memory_info().rss
    growth = (rss_after - rss_before) / MB
    hits, misses = cache.hits - hits_before, cache.misses - misses_before
    _check_view(explorer)
    explorer.close()

    extra = {
        "rss_before_mb": rss_before / MB,
        "rss_after_mb": rss_after / MB,
        "rss_every_100_changes_mb": rss_trace,
        "warmup_changes": warmup_changes,
    }
    growth_figure = Figure(
        f"RSS growth over {plan.changes:,} random changes ({budget_text})",
        "MB",
        value=growth,
        n=plan.changes,
        note=f"after {warmup_changes} warm-up changes; {len(MEMORY_LAYERS)} layers, "
        "channel, cmap, mode, page",
        extra=extra,
    )
    growth_figure.check("value", MEMORY_GROWTH_MB, f"< {MEMORY_GROWTH_MB:.0f} MB", strict=True)
    budget_figure = Figure(
        f"cache nbytes ≤ max_bytes after every change ({budget_text})",
        "bool",
        value=float(tally["over_budget"] == 0),
        n=plan.changes + warmup_changes,
        note=f"peak {tally['max_nbytes'] / 2**20:.1f} MiB of {cache.max_bytes / 2**20:.0f} MiB; "
        f"{hits} hits, {misses} misses; {len(cache)} arrays held at the end",
        extra={
            "max_bytes": cache.max_bytes,
            "peak_nbytes": tally["max_nbytes"],
            "changes_over_budget": tally["over_budget"],
            "hits": hits,
            "misses": misses,
            "entries_at_end": len(cache),
            "errors_shown": tally["errors"],
        },
    )
    # Also fails if the explorer ever showed an error message during the random changes.
    budget_figure.target = "never over budget"
    budget_figure.statistic = "value"
    budget_figure.passed = tally["over_budget"] == 0 and tally["errors"] == 0
    per_control = {name: Stats(tuple(values)) for name, values in sorted(by_control.items())}
    latency = Figure.timed(
        f"random control change, end to end ({budget_text})",
        Stats(tuple(samples)),
        note="p95 by control: "
        + ", ".join(
            f"{name} {stats.p95:.1f} ms (n={stats.n})" for name, stats in per_control.items()
        ),
        extra={"by_control": {name: stats.summary() for name, stats in per_control.items()}},
    )
    return [growth_figure, budget_figure, latency]


# --------------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------------


def run(quick: bool = False) -> SuiteResult:
    """Run every section and return the figures (see the module docstring)."""
    plan = QUICK if quick else FULL
    start = time.perf_counter()
    with section("loading the default model"):
        bench = Bench(plan)
    figures: list[Figure] = []
    with section("1/4 widget views (channel, colormap, grid page) and matplotlib references"):
        figures += widget_views(bench)
    with section("2/4 first view of a new image"):
        figures += first_view(bench)
    with section("3/4 switching layer"):
        figures += layer_switch(bench)
    with section("4/4 memory, the default cache budget"):
        figures += memory(bench, None)
    with section(f"4/4 memory, {SMALL_BUDGET / 2**20:.0f} MiB cache"):
        figures += memory(bench, SMALL_BUDGET)
    context = {
        "model": bench.model.name,
        "model_params": int(bench.model.count_params()),
        "model_load_seconds": bench.load_seconds,
        "image": "chelsea",
        "image_shape_original": list(bench.chelsea.shape),
        "image_shape_model": list(bench.pixels.shape),
        "mid_layer": bench.mid_layer,
        "grid_layer": GRID_LAYER,
        "switch_layers": list(SWITCH_LAYERS),
        "memory_layers": list(MEMORY_LAYERS),
        "small_budget_bytes": SMALL_BUDGET,
        "plan": plan.__dict__,
    }
    return SuiteResult(NAME, DESCRIPTION, figures, context, time.perf_counter() - start)
