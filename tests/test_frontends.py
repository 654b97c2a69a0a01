"""Every front end: stock stand-ins, the static picture, the one-line text form, Stop, progress.

No browser: a recording comm stands in for it (``widget_comm``); ``tests/browser/`` renders the
same explorers in JupyterLab with the three lab extensions disabled.
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import re
import threading
import time

import numpy as np
import pytest
from PIL import Image
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets import ascent as fa
from cnnviz_widgets import render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.explain import grad_cam
from cnnviz_widgets.widgets import frontend
from cnnviz_widgets.widgets.activations import ActivationExplorer
from cnnviz_widgets.widgets.cam import CamExplorer
from cnnviz_widgets.widgets.detail import DetailFigure, DetailPicture
from cnnviz_widgets.widgets.filters import FilterExplorer
from cnnviz_widgets.widgets.snapshot import MARGIN, compose

pytestmark = pytest.mark.usefixtures("recording_comms")

LABELS = ["cat", "dog", "cup", "car", "tree"]
#: The features whose Python package is installed here (detection needs it).
INSTALLED = {f for f in frontend.FEATURES if importlib.util.find_spec(f) is not None}


@pytest.fixture(autouse=True)
def frontend_auto(monkeypatch, tmp_path):
    """Each test starts from 'auto', with no host markers and a private ascent cache."""
    for name in ("CNNVIZ_FRONTEND", "COLAB_RELEASE_TAG", "VSCODE_PID", "VSCODE_CWD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path / "cache"))
    frontend.set_frontend("auto")
    fa.clear_memory_cache()
    yield
    frontend.set_frontend("auto")
    fa.clear_memory_cache()


@pytest.fixture
def stock():
    frontend.set_frontend("stock")


@pytest.fixture
def photo():
    return np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)


def _png(data: str | bytes) -> np.ndarray:
    raw = base64.b64decode(data) if isinstance(data, str) else data
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _static(explorer) -> tuple[np.ndarray, str]:
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data
    return _png(data["image/png"]), data["text/plain"]


# ----------------------------------------------------------------------------- the rule
def test_set_frontend_env_var_and_precedence(monkeypatch):
    assert frontend.set_frontend("stock") == frozenset()
    assert not frontend.has_feature("ipyevents")
    assert frontend.set_frontend("ipympl, bqplot") == {"ipympl", "bqplot"}
    assert frontend.has_feature("bqplot") and not frontend.has_feature("ipyevents")
    frontend.set_frontend("auto")
    monkeypatch.setenv("CNNVIZ_FRONTEND", "ipyevents")
    assert frontend.frontend_features() == {"ipyevents"}
    frontend.set_frontend("full")  # the call wins over the variable
    assert frontend.frontend_features() == set(frontend.FEATURES)
    with pytest.raises(ValueError, match=r"Unknown front-end feature\(s\) \['plotly'\]"):
        frontend.set_frontend("plotly")


def test_auto_detection_reads_hosts_and_disabled_lab_extensions(monkeypatch, tmp_path):
    config, data = tmp_path / "config", tmp_path / "data"
    for name in frontend.LAB_EXTENSIONS.values():
        (data / "labextensions" / name).mkdir(parents=True)
    (config / "labconfig").mkdir(parents=True)
    monkeypatch.setattr(frontend, "_jupyter_dirs", lambda: ([str(config)], [str(data)]))
    assert frontend.detect() == INSTALLED
    # What `jupyter labextension disable bqplot jupyter-matplotlib` writes.
    page = {"disabledExtensions": {"bqplot": True, "jupyter-matplotlib": True}}
    (config / "labconfig" / "page_config.json").write_text(json.dumps(page))
    assert frontend.detect() == INSTALLED - {"ipympl", "bqplot"}
    (data / "labextensions" / "ipyevents").rmdir()  # not installed in any data directory
    assert frontend.detect() == INSTALLED - {"ipympl", "bqplot", "ipyevents"}
    (config / "labconfig" / "page_config.json").unlink()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20260101")
    assert frontend.detect() == frozenset()  # Colab: no third-party widget JavaScript
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    monkeypatch.setenv("VSCODE_PID", "1234")
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert frontend.detect() == frozenset()  # VS Code's own kernel
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/nb.ipynb")  # a Jupyter server's kernel
    assert frontend.detect() == INSTALLED - {"ipyevents"}


# ----------------------------------------------------------------------------- stand-ins
def test_stock_activation_explorer_opens_tiles_from_a_menu(stock, tiny_functional, photo):
    ex = ActivationExplorer(tiny_functional, photo, layer="conv2", mode="grid")
    assert ex._click_events is None
    assert "ipyevents front end, not found here: use the Open menu" in ex.frontend_note.value
    assert ex.frontend_note.layout.display == ""
    assert ex.open_dropdown.layout.display == ""
    assert [v for _, v in ex.open_dropdown.options] == [None, 0, 1, 2, 3, 4, 5]
    assert "pick one in Open to open that channel" in ex.caption.value
    ex.open_dropdown.value = 4  # what the browser sets when a person picks "4"
    assert (ex.mode, ex.channel) == ("channel", 4)
    assert ex.open_dropdown.layout.display == "none"
    maps = ex.cache.activations(ex.adapter, ex._image, "conv2")
    want = render.apply_colormap(render.normalize_channels(maps[:, :, 4]), "viridis")
    np.testing.assert_array_equal(ex.rgb, render.upscale_nearest(want, 320))
    ex.close()


def test_stock_detail_tab_is_a_plain_figure(stock, tiny_functional, photo):
    ex = ActivationExplorer(tiny_functional, photo, layer="conv1", channel=2)
    ex.tabs.selected_index = 1
    assert isinstance(ex._detail, DetailPicture)
    figure = _png(ex._detail.canvas.value)
    assert figure.shape == (320, 400, 3)  # 5×4 inches at 80 dpi
    assert len(np.unique(figure.reshape(-1, 3), axis=0)) > 50  # map and colorbar, not blank
    first = ex._detail.canvas.value
    ex.channel = 3  # the Detail tab follows the channel
    assert ex._detail.canvas.value != first
    assert "ipympl front end, not found here: showing a plain figure" in ex.frontend_note.value
    ex.close()


def test_full_front_end_uses_the_extensions(tiny_functional, photo):
    frontend.set_frontend("ipyevents,ipympl,bqplot")
    ex = ActivationExplorer(tiny_functional, photo, layer="conv2", mode="grid")
    assert ex._click_events is not None and ex.open_dropdown.layout.display == "none"
    assert ex.frontend_note.layout.display == "none"
    ex.tabs.selected_index = 1
    assert isinstance(ex._detail, DetailFigure)
    ex.close()


def test_stock_cam_explorer_lists_the_classes(stock, tiny_functional, photo):
    cam = CamExplorer(tiny_functional, photo, labels=LABELS, k=3, cache=ActivationCache())
    assert cam.wait(30)
    assert cam.bars is None
    names = [label.split(" · ")[0] for label, _ in cam.chart.options]
    assert names == [label for _, label, _ in cam.top]
    assert [value for _, value in cam.chart.options] == [i for i, _, _ in cam.top]
    assert cam.chart.value == cam.top[0][0]
    assert "pick a class from the list" in cam.frontend_note.value
    cam.chart.value = cam.top[1][0]  # a person picks the second class
    assert cam.wait(30)
    assert cam.class_index == cam.top[1][0]
    np.testing.assert_allclose(
        cam.heatmap, grad_cam(tiny_functional, photo, cam.top[1][0], layer="conv2"), atol=1e-6
    )
    cam.class_index = next(i for i in range(5) if i not in [c for c, _, _ in cam.top])
    assert cam.chart.value is None  # not among the listed classes
    cam.close()


def test_stock_filter_explorer_says_how_to_enlarge(stock, paged_conv_model):
    fx = FilterExplorer(paged_conv_model, layer="conv2", size=32, steps=8)
    assert fx.wait(60)
    assert "use the Channel slider instead" in fx.frontend_note.value
    assert "click" not in fx.caption.value
    fx.close()


# ----------------------------------------------------------------------------- static picture
def test_static_picture_is_photo_view_and_caption(tiny_functional, photo):
    ex = ActivationExplorer(tiny_functional, photo, layer="conv2", channel=1)
    picture, text = _static(ex)
    assert text == (
        "ActivationExplorer(model='tiny_functional', layer='conv2', channel=1, "
        "cmap='viridis', mode='channel', page=0)"
    )
    # The photo first, then the view, then the caption below, on white.
    np.testing.assert_array_equal(picture[MARGIN : MARGIN + 16, MARGIN : MARGIN + 16], photo)
    x = MARGIN + 16 + 8
    view = ex.rgb
    np.testing.assert_array_equal(
        picture[MARGIN : MARGIN + view.shape[0], x : x + view.shape[1]], view
    )
    below = picture[MARGIN + view.shape[0] + 8 :]
    assert below.size and (below < 128).any()  # caption text drawn
    np.testing.assert_array_equal(picture, compose([photo, view], ex.caption.value))
    ex.close()


def test_cam_static_picture_needs_no_wait(tiny_functional, photo):
    cam = CamExplorer(tiny_functional, photo, labels=LABELS, k=3, cache=ActivationCache())
    picture, text = _static(cam)  # straight after construction: the map is waited for
    assert text.startswith("CamExplorer(model='tiny_functional', class_index=")
    assert "method='gradcam', layer='conv2'" in text and "\n" not in text
    heat = grad_cam(tiny_functional, photo, cam.top[0][0], layer="conv2")
    overlay = render.overlay(photo, heat, cmap="jet", alpha=0.5)
    x = MARGIN + 16 + 8
    np.testing.assert_array_equal(picture[MARGIN : MARGIN + 16, x : x + 16], overlay)
    cam.close()


def test_filter_static_picture_needs_no_wait(paged_conv_model):
    fx = FilterExplorer(paged_conv_model, layer="conv2", size=32, steps=16)
    picture, text = _static(fx)
    assert text.startswith("FilterExplorer(model='paged_conv', layer='conv2', show='ascent'")
    assert fx.images is not None  # the capped run finished within the static wait
    grid = fx.rgb
    np.testing.assert_array_equal(
        picture[MARGIN : MARGIN + grid.shape[0], MARGIN : MARGIN + grid.shape[1]], grid
    )
    fx.close()


# ----------------------------------------------------------------------------- Stop
def _busy_until(explorer, deadline: float = 30) -> None:
    end = time.perf_counter() + deadline
    while explorer.progress_bar.value < 2 and time.perf_counter() < end:
        time.sleep(0.02)


def test_stop_button_ends_filter_ascent_within_half_a_second(paged_conv_model):
    fx = FilterExplorer(paged_conv_model, layer="conv2", size=64, steps=1024)
    _busy_until(fx)
    assert fx.busy and not fx.stop_button.disabled
    shown = fx.png
    started = time.perf_counter()
    fx.stop_button.click()
    assert fx._runner.wait(5)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.5, f"stopped after {elapsed:.2f} s"
    assert not fx.busy and fx.stop_button.disabled
    assert fx.progress_label.value == "stopped" and fx.progress_bar.bar_style == "warning"
    assert fx.png == shown or fx.png  # the last frame stays
    fx.steps = 8  # the controls keep working
    assert fx.wait(60) and fx.images is not None
    fx.close()


def test_stop_passes_cancel_to_batched_methods(monkeypatch, tiny_functional, photo):
    from cnnviz_widgets.widgets import cam as cam_module

    calls = []

    def slow_map(model, image, class_index, *, layer=None, method, output, cancel, progress):
        calls.append(progress)
        while not cancel():  # a batched method checks between batches
            time.sleep(0.01)
        raise fa.AscentCancelled("stopped")

    cam = CamExplorer(tiny_functional, photo, labels=LABELS, k=3, cache=ActivationCache())
    assert cam.wait(30)
    monkeypatch.setattr(cam_module, "grad_cam", slow_map)
    cam.method = "scorecam"
    time.sleep(0.1)
    assert cam.busy and not cam.stop_button.disabled
    started = time.perf_counter()
    cam.stop_button.click()
    assert cam._runner.wait(5)
    assert time.perf_counter() - started < 0.5
    assert calls == [False] and not cam.busy
    assert "stopped" in cam.progress.value
    cam.close()


# ----------------------------------------------------------------------------- progress
def test_filter_ascent_progress_bar(monkeypatch, capsys, paged_conv_model):
    from cnnviz_widgets import progress

    monkeypatch.setattr(progress, "DELAY", 0.0)
    monkeypatch.setattr(progress, "MIN_INTERVAL", 0.0)  # every step drawn, however fast
    fa.filter_ascent(paged_conv_model, "conv2", [0, 1], size=32, steps=12, cache=False)
    err = capsys.readouterr().err
    assert "filter ascent (2):" in err and "0/12" in err  # a bar over the 12 steps
    counts = [int(n) for n in re.findall(r"\| *(\d+)/12 ", err)]
    assert counts == sorted(counts) and counts[-1] > 0  # it advanced, then was cleared
    fa.filter_ascent(paged_conv_model, "conv2", [0, 1], size=32, steps=12, cache=False,
                     progress=False)  # fmt: skip
    assert capsys.readouterr().err == ""


def test_cli_progress_is_a_tqdm_bar():
    from cnnviz_widgets.report import tqdm_progress

    stream = io.StringIO()
    show = tqdm_progress(stream)
    for done, what in enumerate(["loading the model", "predictions", "feature maps"]):
        show(done, 3, what)
    show(3, 3, "wrote report.html")
    text = stream.getvalue()
    assert "feature maps" in text and "wrote report.html" in text
    assert "3/3" in text and "[#" not in text


def test_report_stops_on_cancel(tmp_path, tiny_functional):
    from cnnviz_widgets.errors import Cancelled
    from cnnviz_widgets.report import write_report

    stop = threading.Event()
    stages = []

    def progress(done, total, what):
        stages.append(what)
        if done == 1:
            stop.set()

    photo = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    with pytest.raises(Cancelled, match="Stopped the report on request"):
        write_report(tmp_path / "r.html", model=tiny_functional, image=photo,
                     progress=progress, cancel=stop)  # fmt: skip
    assert stages == ["loading the model", "predictions and Grad-CAM"]
    assert not (tmp_path / "r.html").exists()
