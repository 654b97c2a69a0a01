"""Explorer: tabs sharing one adapter and one cache; switching tabs recomputes nothing."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets import ascent, render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.engine.adapter import adapter_for
from cnnviz_widgets.widgets.explorer import Explorer

pytestmark = pytest.mark.usefixtures("recording_comms")


@pytest.fixture(autouse=True)
def small_ascent(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_MAX_STEPS", "8")
    ascent.clear_memory_cache()


@pytest.fixture
def explorer(tiny_functional, rgb16):
    ex = Explorer(tiny_functional, rgb16, labels=["a", "b", "c", "d", "e"], cache=ActivationCache())
    yield ex
    ex.close()


def test_tabs_and_lazy_views(explorer):
    titles = [explorer.tabs.get_title(i) for i in range(4)]
    assert titles == ["Activations", "Filters", "Class activation", "Summary"]
    assert explorer.filters is None and explorer.cam is None
    assert explorer.png == explorer.activations.png


def test_switching_tabs_recomputes_nothing(explorer, tiny_functional):
    explorer.tabs.selected_index = 2
    assert explorer.cam.wait(30)
    explorer.tabs.selected_index = 1
    assert explorer.filters.wait(60)
    cache = explorer.cache
    adapter = adapter_for(tiny_functional)
    misses, compiled, traces = cache.misses, adapter.compiled_keys, adapter.trace_count
    pictures = (explorer.activations.png, explorer.cam.png, explorer.filters.png)
    for tab in [0, 2, 1, 3, 0, 1, 2]:
        explorer.tabs.selected_index = tab
    assert cache.misses == misses
    assert (adapter.compiled_keys, adapter.trace_count) == (compiled, traces)
    assert (explorer.activations.png, explorer.cam.png, explorer.filters.png) == pictures
    assert explorer.cam.adapter is explorer.activations.adapter is explorer.filters.adapter
    assert explorer.cam.cache is explorer.activations.cache is cache


def test_filters_open_on_the_layer_being_looked_at(explorer):
    explorer.activations.layer = "conv1"
    explorer.tabs.selected_index = 1
    assert explorer.filters.layer == "conv1"


def test_summary_pick_opens_the_layer_in_activations(explorer):
    explorer.tabs.selected_index = 3
    explorer.summary.table.value = "conv2"
    assert explorer.tabs.selected_index == 0 and explorer.activations.layer == "conv2"
    assert "tiny_functional" in explorer.summary.header.value
    explorer.summary.table.value = "probs"  # not a feature map: explained, no exception
    assert "Layer &#x27;probs&#x27; (Dense)" in explorer.activations.message.value


def test_saved_notebook_shows_the_current_tab(explorer):
    explorer.tabs.selected_index = 2
    assert explorer.cam.wait(30)
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert base64.b64decode(data["image/png"]) == render.encode_png(explorer.cam.static_rgb())
    np.testing.assert_array_equal(explorer.rgb, explorer.cam.rgb)


def test_a_refused_image_leaves_nothing_behind(tiny_functional):
    # The ImageError is the only thing the user sees: the half-built explorer is collected
    # without an "Exception ignored in Widget.__del__" traceback.
    import gc
    import sys

    from cnnviz_widgets.errors import ImageError

    unraisable = []
    previous, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with pytest.raises(ImageError, match="image"):
            Explorer(tiny_functional, [1, 2], cache=ActivationCache())
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert [str(u.exc_value) for u in unraisable] == []
