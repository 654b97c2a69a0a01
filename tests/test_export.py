"""Exports: PNG files and standalone HTML pages that escape every name they print."""

from __future__ import annotations

import base64
import re
import threading

import numpy as np
import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.errors import CnnVizError
from cnnviz_widgets.export import Section, html_page, write_file
from cnnviz_widgets.widgets.activations import ActivationExplorer

pytestmark = pytest.mark.usefixtures("recording_comms")

EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture
def evil_model(keras):
    """A model whose name is HTML that would run if printed raw.

    Layer names cannot carry ``<``: TensorFlow's scope names allow only ``[A-Za-z0-9_.\\/>-]``,
    so Keras cannot run such a layer in graph mode (``predict`` fails too). Model names and
    class labels can carry anything, so they are the real risk.
    """
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(3, 3, name="conv>1")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(2, name="logits")(x)
    return keras.Model(inputs, outputs, name="<svg onload=alert(3)>")


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_html_page_escapes_headings_captions_tables_and_state():
    page = html_page(EVIL, [Section(EVIL, b"\x89PNG", EVIL, [(EVIL, 1)], (EVIL,))], {EVIL: EVIL})
    assert "<img src=x" not in page
    # title, h1, the state's name and value, h2, the img's alt, caption, th, td
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 9
    assert "default-src 'none'" in page  # no script could run even if something slipped


def test_explorer_html_export_embeds_the_views_and_control_values(tiny_functional, rgb16, tmp_path):
    ex = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache())
    ex.layer, ex.channel, ex.cmap = "conv2", 4, "magma"
    path = ex.export_html(tmp_path / "view.html")
    page = path.read_text(encoding="utf-8")
    assert _images(page) == [ex.input_view.value, ex.png]
    for name, value in [
        ("layer", "conv2"),
        ("channel", "4"),
        ("cmap", "magma"),
        ("mode", "channel"),
    ]:
        assert f"<tr><td>{name}</td><td>{value}</td></tr>" in page
    assert '<p class="caption">conv2 · 8×8×6 · channel 4 · values' in page
    assert ex.export_png(tmp_path / "view.png").read_bytes() == ex.png


def test_names_from_the_model_and_labels_are_escaped_in_exports(evil_model, rgb16, tmp_path):
    from cnnviz_widgets.widgets.cam import CamExplorer

    cam = CamExplorer(evil_model, rgb16, labels=[EVIL, "cat"], k=2, cache=ActivationCache())
    assert cam.wait(30)
    page = cam.export_html(tmp_path / "evil.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and "<svg" not in page
    assert "<td>&lt;img src=x onerror=alert(1)&gt;</td>" in page  # the label, in the table
    assert "&lt;svg onload=alert(3)&gt;" in page  # the model name, in the title
    assert "conv&gt;1" in page
    cam.close()


def test_write_file_is_atomic_and_explains_bad_paths(tmp_path):
    target = write_file(tmp_path / "a.html", "hello")
    assert target.read_text() == "hello" and sorted(p.name for p in tmp_path.iterdir()) == [
        "a.html"
    ]
    with pytest.raises(CnnVizError, match=r"Folder .*missing does not exist; create it first"):
        write_file(tmp_path / "missing" / "a.html", "x")
    with pytest.raises(CnnVizError, match="is a folder; give a file name such as"):
        write_file(tmp_path, "x")


def test_export_png_before_any_picture_says_so(tiny_functional, rgb16, tmp_path, monkeypatch):
    from cnnviz_widgets.widgets.cam import CamExplorer

    # The first class map is held back in the background: nothing has been shown yet.
    release = threading.Event()
    compute = CamExplorer._compute
    monkeypatch.setattr(
        CamExplorer, "_compute", lambda self, *args: release.wait(30) and compute(self, *args)
    )
    cam = CamExplorer(tiny_functional, rgb16, k=2, cache=ActivationCache())
    try:
        assert cam.busy and cam.png == b"" and cam.view.value == b""
        with pytest.raises(CnnVizError, match="Nothing is shown yet"):
            cam.export_png(tmp_path / "x.png")
        assert not (tmp_path / "x.png").exists()
        np.testing.assert_array_equal(cam.rgb, rgb16)  # the photo, until its map is ready
    finally:
        release.set()
    assert cam.wait(30) and not cam.busy
    assert cam.export_png(tmp_path / "x.png").read_bytes() == cam.png == cam.view.value != b""
    cam.close()
