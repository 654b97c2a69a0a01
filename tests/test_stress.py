"""Stress: thousands of rapid control changes on the explorers, as a restless user makes them.

Three questions, each on a tiny model with the recording comm (no browser):

* ActivationExplorer, 10,000 random changes of layer, channel, colormap, mode and page, made
  three ways (the trait, the control's value, and the browser's own ``set_state`` message): no
  exception escapes, the picture after the last change is exactly what a fresh explorer in that
  state draws (and what the render pipeline makes of ``activations(...)``), and memory stays
  bounded.
* FilterExplorer, settings changed while ascents run in the background: after the last change
  the finished images are exactly a direct ``filter_ascent`` of the final state, no stale frame
  is drawn afterwards, and ``close()`` leaves no thread behind.
* CamExplorer, classes, methods and layers changed rapidly: the final map is exactly a direct
  ``grad_cam``/``saliency`` of the final state, and ``close()`` leaves no thread behind.

Throughput and memory figures are printed (``pytest -s``) and kept in the test's
``user_properties`` (``--junitxml``).
"""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest
from widget_comm import recording_comms, updates  # noqa: F401  (fixture)

from cnnviz_widgets import render
from cnnviz_widgets.errors import CnnVizError

pytestmark = [pytest.mark.stress, pytest.mark.usefixtures("recording_comms")]

CHANGES = 10_000
#: Growth of the process's resident memory allowed over the 10,000 changes (after warm-up).
RSS_BUDGET_MB = 48


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paged_model(keras):
    """Layers of 8, 8, 130 (three grid pages) and 70 channels on a 16×16 input, 6 classes."""
    keras.utils.set_random_seed(11)
    L = keras.layers
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(130, 3, padding="same", name="conv2")(x)
    x = L.ReLU(name="relu2")(x)
    x = L.Conv2D(70, 3, padding="same", activation="relu", name="conv3")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    outputs = L.Dense(6, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="paged")


@pytest.fixture(scope="module")
def filters_model(paged_conv_model):
    """Accepts any size: conv1 (8 channels) → conv2 (40 channels, three pages of 16)."""
    return paged_conv_model


@pytest.fixture
def photo():
    return np.random.default_rng(5).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _forget_sent_messages() -> None:
    """Drop what the recording comms kept: they stand in for the browser, and 10,000 PNGs held
    by the harness would hide what the package itself keeps."""
    from ipywidgets.widgets import widget

    for instance in list(widget._instances.values()):
        messages = getattr(getattr(instance, "comm", None), "messages", None)
        if messages is not None:
            del messages[:-1]


def _threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive()}


def _report(record_property, **figures) -> None:
    for name, value in figures.items():
        record_property(name, value)
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


# --------------------------------------------------------------------------------------------
# (a) ActivationExplorer: 10,000 random changes
# --------------------------------------------------------------------------------------------
def _random_change(ex, rng: np.random.Generator) -> str:
    """One random control change, through the trait, the control, or the browser's message.

    About one change in twenty is an invalid value (a channel or page out of range): it must be
    refused with a CnnVizError and leave the state as it was.
    """
    from cnnviz_widgets.widgets.activations import COLORMAP_CHOICES, GRID_PAGE_SIZE, MODES

    what = rng.choice(["layer", "channel", "cmap", "mode", "page"], p=[0.2, 0.3, 0.15, 0.15, 0.2])
    how = rng.choice(["trait", "control", "browser"])
    count = ex.channel_slider.max + 1
    pages = render.page_count(count, GRID_PAGE_SIZE)
    if what in ("channel", "page") and rng.random() < 0.05:
        before = (ex.channel, ex.page)
        with pytest.raises(CnnVizError, match="out of range"):
            if what == "channel":
                ex.channel = count + int(rng.integers(0, 50))
            else:
                ex.page = pages + int(rng.integers(0, 5))
        assert (ex.channel, ex.page) == before
        assert "out of range" in ex.error and "out of range" in ex.message.value
        return "refused"
    if what == "layer":
        options = list(ex.layer_dropdown.options)
        index = int(rng.integers(len(options)))
        if how == "trait":
            ex.layer = options[index]
        elif how == "control":
            ex.layer_dropdown.value = options[index]
        else:
            ex.layer_dropdown.set_state({"index": index})
    elif what == "channel":
        value = int(rng.integers(count))
        if how == "trait":
            ex.channel = value
        elif how == "control":
            ex.channel_slider.value = value
        else:
            ex.channel_slider.set_state({"value": value})
    elif what == "cmap":
        index = int(rng.integers(len(COLORMAP_CHOICES)))
        if how == "trait":
            ex.cmap = COLORMAP_CHOICES[index]
        elif how == "control":
            ex.cmap_dropdown.value = COLORMAP_CHOICES[index]
        else:
            ex.cmap_dropdown.set_state({"index": index})
    elif what == "mode":
        index = int(rng.integers(len(MODES)))
        if how == "trait":
            ex.mode = MODES[index]
        elif how == "control":
            ex.mode_buttons.value = MODES[index]
        else:
            ex.mode_buttons.set_state({"index": index})
    else:
        page = int(rng.integers(pages))
        if how == "trait":
            ex.page = page
        elif how == "control":
            ex.page_slider.value = page + 1  # people count pages from 1
        else:
            ex.page_slider.set_state({"value": page + 1})
    return f"{what}:{how}"


def _expected_view(maps: np.ndarray, channel: int, cmap: str, mode: str, page: int):
    """The activation view by the render pipeline alone, from the feature maps."""
    from cnnviz_widgets.widgets.activations import (
        GRID_COLUMNS,
        GRID_PAGE_SIZE,
        GRID_TILE_MAX_SIDE,
        GRID_TILE_MIN_SIDE,
        VIEW_MIN_SIDE,
    )

    if mode == "channel":
        rgb = render.apply_colormap(render.normalize_channels(maps[:, :, channel]), cmap)
        return render.upscale_nearest(rgb, VIEW_MIN_SIDE)
    if mode == "sum":
        rgb = render.apply_colormap(render.normalize_channels(render.channel_sum(maps)), cmap)
        return render.upscale_nearest(rgb, VIEW_MIN_SIDE)
    channels = render.page_channels(maps.shape[-1], page, GRID_PAGE_SIZE)
    grid, _ = render.channel_grid(
        maps, channels, columns=min(GRID_COLUMNS, len(channels)), cmap=cmap,
        tile_min_side=GRID_TILE_MIN_SIDE, tile_max_side=GRID_TILE_MAX_SIDE,
    )  # fmt: skip
    return grid


def test_activation_explorer_survives_10000_random_changes(paged_model, photo, record_property):
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.engine.adapter import activations
    from cnnviz_widgets.widgets.activations import ActivationExplorer

    ex = ActivationExplorer(paged_model, photo, cache=ActivationCache())
    rng = np.random.default_rng(2024)
    for _ in range(300):  # warm-up: every layer's traced function, LUTs, PNG encoder
        _random_change(ex, rng)
    _forget_sent_messages()
    gc.collect()
    rss_before = _rss_mb()
    kinds: dict[str, int] = {}
    started = time.perf_counter()
    for i in range(CHANGES):
        kind = _random_change(ex, rng)
        kinds[kind] = kinds.get(kind, 0) + 1
        if i % 500 == 499:
            _forget_sent_messages()
    elapsed = time.perf_counter() - started
    _forget_sent_messages()
    gc.collect()
    rss_after = _rss_mb()

    # Every kind of change was made, through every path.
    assert kinds.get("refused", 0) > 50
    for what in ("layer", "channel", "cmap", "mode", "page"):
        for how in ("trait", "control", "browser"):
            assert kinds.get(f"{what}:{how}", 0) > 100, kinds

    # The controls show the state ...
    assert ex.layer_dropdown.value == ex.layer and ex.channel_slider.value == ex.channel
    assert ex.cmap_dropdown.value == ex.cmap and ex.mode_buttons.value == ex.mode
    assert ex.page_slider.value == ex.page + 1
    # ... and the picture is exactly the one for it: from the render pipeline ...
    maps = activations(paged_model, photo, ex.layer)
    want = _expected_view(maps, ex.channel, ex.cmap, ex.mode, ex.page)
    np.testing.assert_array_equal(ex.rgb, want)
    assert ex.view.value == ex.png == render.encode_png(want)
    # ... the bytes last sent to the browser ...
    sent = [buffers for _, buffers in updates(ex.view) if buffers]  # the PNG travels as a buffer
    assert sent and bytes(sent[-1][0]) == ex.view.value
    # ... and a fresh explorer opened in the final state.
    fresh = ActivationExplorer(
        paged_model, photo, layer=ex.layer, channel=ex.channel, cmap=ex.cmap, mode=ex.mode,
        cache=ActivationCache(),
    )  # fmt: skip
    fresh.page = ex.page
    np.testing.assert_array_equal(fresh.rgb, ex.rgb)
    assert fresh.view.value == ex.view.value and fresh.caption.value == ex.caption.value
    # A refused value must not leave its message up once a good change came after it.
    ex.cmap = "magma" if ex.cmap != "magma" else "viridis"
    assert ex.error == "" and "out of range" not in ex.message.value

    growth = rss_after - rss_before
    _report(
        record_property,
        changes=CHANGES,
        changes_per_second=round(CHANGES / elapsed),
        seconds=round(elapsed, 1),
        rss_before_mb=round(rss_before, 1),
        rss_after_mb=round(rss_after, 1),
        rss_growth_mb=round(growth, 1),
    )
    assert growth < RSS_BUDGET_MB, f"RSS grew by {growth:.1f} MB over {CHANGES} changes"
    ex.close()
    fresh.close()


def test_a_refused_page_is_shown_in_the_widget(paged_model, photo):
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.widgets.activations import ActivationExplorer

    ex = ActivationExplorer(paged_model, photo, layer="conv2", cache=ActivationCache())
    with pytest.raises(CnnVizError, match=r"page 3 is out of range: this layer has 3 pages"):
        ex.page = 3
    assert ex.page == 0
    assert "page 3 is out of range" in ex.error
    assert "page 3 is out of range" in ex.message.value


# --------------------------------------------------------------------------------------------
# (b) FilterExplorer: changes while ascents run
# --------------------------------------------------------------------------------------------
@pytest.fixture
def private_ascent_cache(tmp_path, monkeypatch):
    from cnnviz_widgets import ascent as fa

    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    fa.clear_memory_cache()
    yield tmp_path / "cache"
    fa.clear_memory_cache()


def _random_filter_change(fx, rng: np.random.Generator) -> str:
    from cnnviz_widgets.widgets.filters import PAGE_SIZE

    what = rng.choice(["layer", "page", "channel", "size", "steps", "tv", "param"])
    count = fx.channel_slider.max + 1
    if what == "layer":
        fx.layer = str(rng.choice(["conv1", "conv2"]))
    elif what == "page":
        fx.page = int(rng.integers(render.page_count(count, PAGE_SIZE)))
    elif what == "channel":
        fx.channel_slider.value = int(rng.integers(count))  # as a drag of the slider
    elif what == "size":
        fx.size = int(rng.choice([24, 32, 40]))
    elif what == "steps":
        fx.steps = int(rng.choice([8, 16, 40]))
    elif what == "tv":
        fx.tv = float(rng.choice([0.0, 0.5, 1.0]))
    else:
        fx.param_buttons.set_state({"index": int(rng.integers(2))})  # a click in the browser
    return what


def test_filter_explorer_rapid_changes_during_runs(
    filters_model, private_ascent_cache, record_property
):
    from cnnviz_widgets import ascent as fa
    from cnnviz_widgets.widgets.filters import FRAME_EVERY, PAGE_SIZE, FilterExplorer

    threads_before = _threads()
    fx = FilterExplorer(filters_model, layer="conv2", size=32, steps=40)
    assert fx.wait(120)  # traced once; the changes below are about runs, not tracing
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    changes = 0
    caught_running = 0
    while changes < 400:
        caught_running += fx.busy
        _random_filter_change(fx, rng)
        changes += 1
        time.sleep(float(rng.choice([0.0, 0.0, 0.001, 0.005, 0.02])))
    last_change = time.perf_counter()
    assert caught_running > 100  # the changes really landed on runs in flight
    assert fx.wait(120)
    settled = time.perf_counter()

    # The final state, read from the widget's own controls.
    state = {
        "layer": fx.layer_dropdown.value, "page": fx.page_slider.value - 1,
        "size": fx.size_dropdown.value, "steps": fx.steps_slider.value,
        "tv": fx.tv_slider.value, "param": fx.param_buttons.value,
    }  # fmt: skip
    assert (fx.layer, fx.page, fx.size, fx.steps, fx.tv, fx.param) == tuple(state.values())
    count = 8 if state["layer"] == "conv1" else 40
    channels = render.page_channels(count, state["page"], PAGE_SIZE)
    assert fx.channel in channels
    want = fa.filter_ascent(
        filters_model, state["layer"], list(channels), size=state["size"], steps=state["steps"],
        tv=state["tv"], param=state["param"], seed=0, every=FRAME_EVERY, cache=False,
    )  # fmt: skip
    assert fx.images is not None and not fx.busy
    np.testing.assert_array_equal(fx.images, want)
    # Each tile carries its channel number, as the explorer draws it.
    grid = render.number_tiles(
        *render.image_grid(want, channels, columns=min(8, len(channels)), tile_min_side=64)
    )
    np.testing.assert_array_equal(fx.rgb, grid)
    assert fx.view.value == fx.png
    assert fx.progress_label.value == "done" and fx.progress_bar.value == state["steps"]
    caption = fx.caption.value
    assert f"<b>{state['layer']}</b> · channels {channels[0]}–{channels[-1]}" in caption
    assert f"{state['size']} px, {state['steps']} steps" in caption and "forming" not in caption
    # No stale frame arrives later: the finished picture stays.
    shown = []
    fx.view.observe(lambda change: shown.append(change["new"]), names="value")
    time.sleep(1.0)
    assert shown == [] and fx.png == render.encode_png(grid)
    assert not list(private_ascent_cache.rglob("*.tmp*"))  # cancelled runs leave no partial file

    fx.close()
    leaked = {t for t in _threads() - threads_before if t.is_alive()}
    assert not leaked, f"threads left after close(): {[t.name for t in leaked]}"
    _report(
        record_property,
        filter_changes=changes,
        filter_changes_per_second=round(changes / (last_change - started)),
        filter_runs_caught_running=caught_running,
        filter_settle_seconds=round(settled - last_change, 2),
    )


# --------------------------------------------------------------------------------------------
# (c) CamExplorer: classes, methods and layers changed rapidly
# --------------------------------------------------------------------------------------------
def test_cam_explorer_rapid_changes(paged_model, photo, record_property):
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.explain import CAM_METHODS, grad_cam, saliency
    from cnnviz_widgets.widgets.cam import _LAYER_METHODS, METHODS, CamExplorer

    threads_before = _threads()
    cam = CamExplorer(paged_model, photo, k=3, cache=ActivationCache())
    assert cam.wait(120)
    rng = np.random.default_rng(9)
    layers = list(cam.layer_dropdown.options)
    started = time.perf_counter()
    for i in range(600):
        what = rng.choice(["class", "bar", "picker", "method", "layer", "look"])
        if what == "class":
            cam.class_index = int(rng.integers(6))
        elif what == "bar":
            cam.bars.selected = [int(rng.integers(len(cam.top)))]  # a click on a bar
        elif what == "picker":
            index = int(rng.integers(6))
            cam.class_picker.value = cam.class_picker.options[index]
        elif what == "method":
            cam.method_dropdown.set_state({"index": int(rng.integers(len(METHODS)))})
        elif what == "layer":
            cam.layer = str(rng.choice(layers))
        else:
            cam.alpha = float(rng.choice([0.3, 0.5, 0.8]))
            cam.cmap = str(rng.choice(["jet", "viridis", "magma"]))
        if i % 50 == 49:
            time.sleep(0.05)  # let some jobs finish and enter the cache, others get cancelled
    last_change = time.perf_counter()
    assert cam.wait(120)
    settled = time.perf_counter()

    method, layer, index = cam.method, cam.layer, cam.class_index
    assert cam.method_dropdown.value == method and cam.layer_dropdown.value == layer
    if method in CAM_METHODS:
        want = grad_cam(paged_model, photo, index, layer=layer, method=method)
    else:
        chosen = layer if method == "guided_gradcam" else None
        want = saliency(paged_model, photo, index, method=method, layer=chosen)
    assert not cam.busy and cam.error == ""
    np.testing.assert_array_equal(cam.heatmap, want)
    np.testing.assert_array_equal(
        cam.rgb, render.overlay(photo, np.clip(want, 0, 1), cmap=cam.cmap, alpha=cam.alpha)
    )
    assert cam.view.value == cam.png
    assert f"(class {index})" in cam.caption.value
    assert (f"layer {layer}" in cam.caption.value) == (method in _LAYER_METHODS)
    shown = []
    cam.view.observe(lambda change: shown.append(change["new"]), names="value")
    time.sleep(1.0)
    assert shown == [], "a stale map was drawn after the last change had been shown"

    cam.close()
    leaked = {t for t in _threads() - threads_before if t.is_alive()}
    assert not leaked, f"threads left after close(): {[t.name for t in leaked]}"
    _report(
        record_property,
        cam_changes=600,
        cam_changes_per_second=round(600 / (last_change - started)),
        cam_settle_seconds=round(settled - last_change, 2),
        cam_final=f"{method}/{layer}/class {index}",
    )


# --------------------------------------------------------------------------------------------
# The race the random changes above can only hit by chance, made certain: the worker thread is
# pre-empted right after LatestWinsRunner._run checked `job.cancelled` and before the widget
# drew the result, and the user's next change lands in that window.
# --------------------------------------------------------------------------------------------
def _pause_once_on_the_worker(function, paused: threading.Event, seconds: float = 0.3):
    armed = [True]

    def wrapper(*args, **kwargs):
        if armed[0] and threading.current_thread() is not threading.main_thread():
            armed[0] = False
            paused.set()
            time.sleep(seconds)  # a busy kernel: the main thread runs meanwhile
        return function(*args, **kwargs)

    return wrapper


def test_cam_explorer_never_keeps_a_stale_map(paged_model, photo, monkeypatch):
    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.explain import grad_cam
    from cnnviz_widgets.widgets import cam as cam_explorer

    cam = cam_explorer.CamExplorer(paged_model, photo, k=3, cache=ActivationCache())
    try:
        assert cam.wait(60)
        shown = cam.heatmap.copy()  # Grad-CAM of the top class: cached
        paused = threading.Event()
        draw = _pause_once_on_the_worker(cam_explorer.CamExplorer._draw, paused)
        monkeypatch.setattr(cam_explorer.CamExplorer, "_draw", draw)
        cam.method = "layercam"  # not cached: a background job
        assert paused.wait(30)  # ... which has passed its cancel check and is drawing
        cam.method = "gradcam"  # back: a cache hit, drawn at once
        assert cam.wait(30)
        want = grad_cam(paged_model, photo, cam.class_index, layer=cam.layer)
        np.testing.assert_array_equal(shown, want)
        np.testing.assert_array_equal(cam.heatmap, want)
    finally:
        cam.close()


def test_filter_explorer_survives_a_run_finishing_as_the_layer_changes(
    filters_model, private_ascent_cache, monkeypatch
):
    from cnnviz_widgets import ascent as fa
    from cnnviz_widgets.widgets import filters as filter_explorer

    fx = filter_explorer.FilterExplorer(filters_model, layer="conv2", size=32, steps=8)
    try:
        assert fx.wait(60)
        paused = threading.Event()
        finished = _pause_once_on_the_worker(filter_explorer.FilterExplorer._finished, paused)
        monkeypatch.setattr(filter_explorer.FilterExplorer, "_finished", finished)
        fx.page = 1  # a run for channels 16–31
        assert paused.wait(30)  # ... finished, past its cancel check, about to draw
        fx.layer = "conv1"  # 8 channels
        assert fx.wait(10), "the explorer never settles: its worker thread died"
        want = fa.filter_ascent(filters_model, "conv1", range(8), size=32, steps=8, cache=False)
        np.testing.assert_array_equal(fx.images, want)
    finally:
        fx.close()


def test_a_model_the_user_drops_is_freed(keras, photo):
    import weakref

    from cnnviz_widgets.engine import backend
    from cnnviz_widgets.engine.adapter import activations
    from cnnviz_widgets.explain import grad_cam

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs, name="dropped")
    activations(model, photo, "conv")
    grad_cam(model, photo)
    alive = weakref.ref(model)
    del model, inputs, x, outputs
    # First answers are eager while the graphs trace in the background (issue 16): the tracer
    # holds the functions until it is done, then lets them go.
    assert backend.wait_for_traces(120)
    gc.collect()
    assert alive() is None, "the model outlives every reference the user had to it"
