"""CamExplorer's trust readouts, drill-down and to_code(); the tabbed Explorer's hand-over."""

from __future__ import annotations

import html
import io
import re
import time

import numpy as np
import pytest
from PIL import Image
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets import activations, ascent, render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.errors import CnnVizError
from cnnviz_widgets.explain import channel_attribution, faithfulness
from cnnviz_widgets.images import resize_image
from cnnviz_widgets.widgets.activations import ActivationExplorer
from cnnviz_widgets.widgets.cam import CamExplorer
from cnnviz_widgets.widgets.cam_trust import READOUT_BATCH, READOUT_STEPS
from cnnviz_widgets.widgets.explorer import Explorer

pytestmark = pytest.mark.usefixtures("recording_comms")

LABELS = ["cat", "dog", "cup", "car", "tree"]


@pytest.fixture(autouse=True)
def small_ascent(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CNNVIZ_MAX_STEPS", "8")
    ascent.clear_memory_cache()


@pytest.fixture
def cam(tiny_functional, rgb16):
    explorer = CamExplorer(tiny_functional, rgb16, labels=LABELS, k=3, cache=ActivationCache())
    assert explorer.wait(60)
    yield explorer
    explorer.close()


def test_readouts_are_the_functions_scores(cam, tiny_functional, rgb16):
    # The random map is drawn at the layer's grid, coarser than the 16×16 image.
    grid = activations(tiny_functional, rgb16, cam.layer).shape[:2]
    assert grid != rgb16.shape[:2]
    want = {
        metric: faithfulness(
            tiny_functional,
            rgb16,
            cam.heatmap,
            cam.class_index,
            metric=metric,
            steps=READOUT_STEPS,
            batch_size=READOUT_BATCH,
            random_grid=grid,
            progress=False,
        )
        for metric in ("deletion", "insertion")
    }
    assert cam.readouts == {
        "deletion": pytest.approx(float(want["deletion"]), abs=1e-9),
        "deletion_random": pytest.approx(want["deletion"].random, abs=1e-9),
        "insertion": pytest.approx(float(want["insertion"]), abs=1e-9),
        "insertion_random": pytest.approx(want["insertion"].random, abs=1e-9),
    }
    assert f"Deletion <b>{cam.readouts['deletion']:.3f}</b>" in cam.readout.value
    # Another class: new scores; back again: from the cache, no background job.
    first = dict(cam.readouts)
    cam.class_index = cam.top[1][0]
    assert cam.wait(60) and cam.readouts != first
    cam.class_index = cam.top[0][0]
    assert cam.readouts == first


def test_point_from_python_ranks_the_channels(cam, tiny_functional, rgb16):
    assert cam.drill_box.layout.display == "none" and cam.drilled == []
    cam.point = (3, 12)
    want = channel_attribution(tiny_functional, rgb16, cam.class_index, "conv2", point=(3, 12))
    assert cam.drilled == [(c, pytest.approx(s, rel=1e-6, abs=1e-9)) for c, s in want]
    assert cam.drill_box.layout.display == ""
    assert cam.drill_view.value[:4] == b"\x89PNG"
    assert [v for _, v in cam.drill_picker.options] == [None, *[c for c, _ in want[:32]]]
    assert "at (y=3, x=12), cell (1, 6)" in cam.drill_caption.value
    # A new class re-ranks the same point.
    cam.class_index = cam.top[1][0]
    assert cam.wait(60)
    again = channel_attribution(tiny_functional, rgb16, cam.class_index, "conv2", point=(3, 12))
    assert [c for c, _ in cam.drilled] == [c for c, _ in again]


def test_drilled_channels_show_their_filter_ascent_images(cam, tiny_functional):
    cam.point = (3, 12)
    assert cam.wait(60)
    best = [channel for channel, _ in cam.drilled[:8]]
    want = ascent.filter_ascent(tiny_functional, "conv2", best, progress=False)  # cache hit
    images = cam.drill_images
    assert images is not None and images.shape == (len(best), 128, 128, 3)
    np.testing.assert_array_equal(images, np.stack([render.as_rgb_uint8(w) for w in want]))
    assert cam.drill_note.value == ""
    # Each tile: the channel's map over the photo (left), a gap, its ascent image (right).
    shown = np.asarray(Image.open(io.BytesIO(cam.drill_view.value)).convert("RGB"))
    layout = cam._drill_layout
    side = layout.tile_height
    first = shown[layout.pad : layout.pad + side, layout.pad : layout.pad + layout.tile_width]
    square = render.as_rgb_uint8(resize_image(images[0], (side, side)))
    np.testing.assert_array_equal(first[:, -side:], square)
    assert (first[:, -side - 2 : -side] == 255).all()
    # Without them, the tiles are the maps alone (narrower), and nothing is computed.
    cam.drill_ascent = False
    cam.point = (8, 8)
    assert cam.drill_images is None and cam._drill_layout.tile_width < layout.tile_width


def test_drill_ascent_waits_until_points_stop_moving(cam, monkeypatch):
    # While points are being picked, the ascent images wait (the maps are drawn at once); they
    # are computed once no point has come for DRILL_QUIET seconds.
    from cnnviz_widgets.widgets import cam_trust

    monkeypatch.setattr(cam_trust, "DRILL_QUIET", 1.0)
    cam.point = (3, 12)
    time.sleep(0.5)
    cam.point = (8, 8)  # within the quiet time: the wait starts again
    moved = time.monotonic()
    assert cam.drilled and cam.drill_box.layout.display == ""  # the maps did not wait
    assert cam.wait(60)
    assert time.monotonic() - moved >= 1.0
    assert cam.drill_images is not None and cam.drill_note.value == ""


def test_clicks_pick_a_point_and_a_channel(cam):
    cam.handle_overlay_click({"dataX": 12.7, "dataY": 3.2})  # the overlay is the photo's 16×16
    assert cam.point == (3, 12)
    second = cam.drilled[1][0]
    layout = cam._drill_layout
    index = layout.channels.index(second)
    row, column = divmod(index, layout.columns)
    x = layout.pad + column * (layout.tile_width + layout.pad) + layout.tile_width // 2
    y = layout.pad + row * (layout.tile_height + layout.pad) + layout.tile_height // 2
    cam.handle_drill_click({"dataX": x, "dataY": y})
    assert cam.drill_channel == second and cam.drill_picker.value == second
    cam.drill_picker.value = cam.drilled[0][0]  # the list does the same
    assert cam.drill_channel == cam.drilled[0][0]


def test_bad_point_and_channel(cam):
    with pytest.raises(CnnVizError, match=re.escape(
        "point y 16 is out of range: the image has 16 rows (0–15)."
    )):  # fmt: skip
        cam.point = (16, 0)
    assert cam.error == "point y 16 is out of range: the image has 16 rows (0–15)."
    with pytest.raises(CnnVizError, match=re.escape(
        "drill_channel 6 is out of range: layer 'conv2' has 6 channels (0–5)."
    )):  # fmt: skip
        cam.drill_channel = 6


def test_to_code_recreates_the_view(cam, tiny_functional, rgb16, tmp_path):
    cam.method = "layercam"
    cam.class_index = cam.top[2][0]
    cam.alpha = 0.3
    cam.point = (7, 2)
    assert cam.wait(60)
    cam.drill_channel = cam.drilled[1][0]
    code = cam.to_code()
    assert code.startswith(
        "import cnnviz_widgets as cv\n\nview = cv.CamExplorer(model, image, method='layercam', "
        "layer='conv2', cmap='jet', alpha=0.3)\n"
    )
    namespace = {"model": tiny_functional, "image": rgb16}
    exec(code, namespace)
    view = namespace["view"]
    try:
        assert view.wait(60)
        for trait in cam._code_traits:
            assert getattr(view, trait) == getattr(cam, trait), trait
        np.testing.assert_array_equal(view.heatmap, cam.heatmap)
        assert view.drilled == cam.drilled
    finally:
        view.close()
    page = cam.export_html(tmp_path / "cam.html").read_text(encoding="utf-8")
    assert f"<pre><code>{html.escape(code)}</code></pre>" in page
    assert "Trust readouts" in page and "Channels at point (7, 2)" in page


def test_activation_explorer_to_code(tiny_functional, rgb16):
    ex = ActivationExplorer(tiny_functional, rgb16, layer="conv1", cache=ActivationCache())
    ex.mode, ex.channel, ex.cmap = "grid", 2, "magma"
    namespace = {"model": tiny_functional, "image": rgb16}
    exec(ex.to_code("again"), namespace)
    again = namespace["again"]
    assert {t: getattr(again, t) for t in ex._code_traits} == {
        "layer": "conv1",
        "channel": 2,
        "cmap": "magma",
        "mode": "grid",
        "page": 0,
    }
    np.testing.assert_array_equal(again.rgb, ex.rgb)


def test_explorer_opens_a_drilled_channel_and_recreates_itself(tiny_functional, rgb16):
    ex = Explorer(tiny_functional, rgb16, cache=ActivationCache())
    try:
        ex.tabs.selected_index = 2
        assert ex.cam.wait(60)
        ex.cam.point = (8, 8)
        channel = ex.cam.drilled[0][0]
        ex.cam.drill_channel = channel
        assert ex.tabs.selected_index == 0
        view = ex.activations
        assert (view.layer, view.channel, view.mode) == (ex.cam.layer, channel, "channel")
        ex.tabs.selected_index = 1  # the Filters tab opens on the same channel
        assert (ex.filters.layer, ex.filters.channel) == (ex.cam.layer, channel)
        assert ex.filters.wait(60)
        ex.cam.drill_channel = ex.cam.drilled[1][0]  # and follows the next pick
        assert (ex.filters.layer, ex.filters.channel) == (ex.cam.layer, ex.cam.drilled[1][0])
        assert ex.tabs.selected_index == 0
        code = ex.to_code()
        namespace = {"model": tiny_functional, "image": rgb16}
        exec(code, namespace)
        again = namespace["view"]
        try:
            assert again.cam.wait(60)
            assert again.tabs.selected_index == 0
            for name in ("cam", "activations"):
                old, new = getattr(ex, name), getattr(again, name)
                for trait in old._code_traits:
                    assert getattr(new, trait) == getattr(old, trait), (name, trait)
        finally:
            again.close()
    finally:
        ex.close()


def test_html_export_labels_the_readouts_through_the_catalog_and_rounds_them(cam, tmp_path):
    from cnnviz_widgets import i18n

    assert set(cam.readouts) == {"deletion", "deletion_random", "insertion", "insertion_random"}
    values = {key: f"{value:.3f}" for key, value in cam.readouts.items()}
    page = cam.export_html(tmp_path / "cam.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td></tr>", page)
    assert [row for row in rows if "score" in row[0]] == [
        ("deletion score", values["deletion"]),
        ("deletion score (random map)", values["deletion_random"]),
        ("insertion score", values["insertion"]),
        ("insertion score (random map)", values["insertion_random"]),
    ]
    assert "<th>score</th><th>value</th>" in page
    assert "deletion_random" not in page and repr(cam.readouts["deletion"]) not in page
    with i18n.use_language("zh"):
        page = cam.export_html(tmp_path / "cam_zh.html").read_text(encoding="utf-8")
    assert f"<tr><td>删除得分</td><td>{values['deletion']}</td></tr>" in page
    assert f"<tr><td>插入得分（随机图）</td><td>{values['insertion_random']}</td></tr>" in page
    assert "可信度读数" in page
