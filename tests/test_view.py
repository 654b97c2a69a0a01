"""FeatureMapView (widgets/view.py) with no browser: what is sent, and that it draws the kernel's
pictures.

A recording comm (``widget_comm``) keeps every message the view sends; ``view.set_state(...)``
plays the browser's part. ``browser_picture`` is a numpy transcription of the page's ``draw()``
(static/feature_map_view.js) working only from the data sent — the LUT indexes, the 256×3 tables
and the geometry — so comparing it with the explorer's ``rgb`` shows the data suffices for the
same pixels. ``tests/browser/test_view_browser.py`` reads the real canvas in Chromium.
"""

from __future__ import annotations

import io
import json
import math
import zlib

import numpy as np
import pytest
from PIL import Image
from widget_comm import recording_comms, updates  # noqa: F401  (fixture)

from cnnviz_widgets import render
from cnnviz_widgets.cache import ActivationCache
from cnnviz_widgets.errors import CnnVizError
from cnnviz_widgets.render.color import _to_lut_index
from cnnviz_widgets.render.labels import number_tiles
from cnnviz_widgets.widgets import frontend, view
from cnnviz_widgets.widgets.activations import (
    GRID_COLUMNS,
    GRID_TILE_MAX_SIDE,
    GRID_TILE_MIN_SIDE,
    ActivationExplorer,
)
from cnnviz_widgets.widgets.view import FeatureMapView, pack_array, quantize, unpack_array

pytest.importorskip("anywidget")
pytestmark = pytest.mark.usefixtures("recording_comms")


@pytest.fixture(autouse=True)
def frontend_auto(monkeypatch):
    for name in ("CNNVIZ_FRONTEND", "COLAB_RELEASE_TAG", "VSCODE_PID"):
        monkeypatch.delenv(name, raising=False)
    frontend.set_frontend("auto")
    yield
    frontend.set_frontend("auto")


@pytest.fixture
def explorer(tiny_functional, rgb16):
    return ActivationExplorer(
        tiny_functional, rgb16, layer="pool1", channel=0, cache=ActivationCache(), use_view=True
    )


class Page:
    """The page's side of a view: what feature_map_view.js holds, from the messages alone.

    Chunks come in the ``data`` state and as ``chunk`` messages; a chunk the picture needs and
    does not have is asked for with a ``need`` message, as the page does.
    """

    def __init__(self, fmv: FeatureMapView) -> None:
        self.fmv = fmv
        self.chunks: dict[tuple, np.ndarray] = {}
        self.asked: list[tuple] = []
        for msg, buffers in fmv.comm.messages:
            self._receive(msg, buffers)
        send = fmv.comm.send

        def both(data=None, metadata=None, buffers=None):
            send(data, metadata, buffers)
            self._receive(data or {}, list(buffers or []))

        fmv.comm.send = both

    def _receive(self, msg: dict, buffers: list) -> None:
        content = msg.get("content") if msg.get("method") == "custom" else None
        if content and content.get("type") == "chunk":
            raw = bytes(buffers[0])
            if content["compression"] == "deflate":
                raw = zlib.decompress(raw)
            key = (content["serial"], content["kind"], content["index"])
            self.chunks[key] = np.frombuffer(raw, np.uint8).reshape(content["shape"])

    def planes(self, kind: str, channels: range) -> dict[int, np.ndarray]:
        """The planes of ``channels`` the page holds, asking for missing chunks first."""
        data = self.fmv.data
        serial, size = data["serial"], data["chunk"]
        for chunk in data["chunks"]:
            self.chunks[(serial, chunk["kind"], chunk["index"])] = unpack_array(chunk["planes"])
        out = {}
        for channel in channels:
            key = (serial, kind, channel // size)
            if key not in self.chunks:
                self.asked.append(key)
                need = {"type": "need", "serial": serial, "kind": kind, "index": key[2]}
                self.fmv._on_browser_message(self.fmv, need, [])
            out[channel] = self.chunks[key][channel % size]
        return out


_pages: dict[int, Page] = {}


def page_of(fmv: FeatureMapView) -> Page:
    if id(fmv) not in _pages or _pages[id(fmv)].fmv is not fmv:
        _pages[id(fmv)] = Page(fmv)
    return _pages[id(fmv)]


def browser_picture(fmv: FeatureMapView) -> np.ndarray:
    """What feature_map_view.js draws for the view's current state, from the data sent only."""
    data, geo = fmv.data, fmv.geometry
    count, height, width = data["channels"], data["height"], data["width"]
    lut = unpack_array(fmv.luts)[fmv.cmap_index]
    mode = view.MODES[fmv.mode_index]
    if mode != "grid":
        if mode == "sum":
            plane = unpack_array(data["sum"])
        else:
            plane = page_of(fmv).planes("planes", range(fmv.channel, fmv.channel + 1))
            plane = plane[fmv.channel]
        k = max(1, math.ceil(geo["view_min_side"] / min(height, width)))
        return np.repeat(np.repeat(lut[plane], k, axis=0), k, axis=1)
    start = (fmv.page_number - 1) * geo["page_size"]
    n = min(geo["page_size"], count - start)
    kind = "grid" if data["grid"] else "planes"
    grid = page_of(fmv).planes(kind, range(start, start + n))
    gh, gw = grid[start].shape
    columns = min(geo["columns"], n)
    rows = -(-n // columns)
    k = max(1, math.ceil(geo["tile_min_side"] / min(gh, gw)))
    layout = render.GridLayout(tuple(range(start, start + n)), columns, rows, gh * k, gw * k,
                               geo["pad"])  # fmt: skip
    out = np.full((*layout.shape, 3), geo["pad_value"], np.uint8)
    for i in range(n):
        top = layout.pad + (i // columns) * (layout.tile_height + layout.pad)
        left = layout.pad + (i % columns) * (layout.tile_width + layout.pad)
        tile = np.repeat(np.repeat(lut[grid[start + i]], k, axis=0), k, axis=1)
        out[top : top + layout.tile_height, left : left + layout.tile_width] = tile
    return number_tiles(out, layout) if geo["digits"] else out


def _numbers_in(state) -> list[list]:
    """Every list of numbers in a JSON state (binary data must never travel as one)."""
    found = []
    if isinstance(state, dict):
        for value in state.values():
            found += _numbers_in(value)
    elif isinstance(state, list):
        if state and all(isinstance(v, (int, float)) for v in state) and len(state) > 4:
            found.append(state)
        for value in state:
            found += _numbers_in(value)
    return found


# ----------------------------------------------------------------------------- quantisation
def test_quantize_gives_the_renderers_indexes_and_values_within_half_a_step():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(9, 13, 5)).astype(np.float32) * np.float32([1, 10, 1e-3, 1, 1])
    maps[:, :, 3] = 2.5  # dead (constant) channel
    maps[2, 3, 4], maps[4, 4, 4] = np.nan, np.inf
    index, offset, scale = quantize(maps)
    want = _to_lut_index(render.normalize_channels(maps)).transpose(2, 0, 1)
    np.testing.assert_array_equal(index, want)
    assert index.dtype == np.uint8 and offset.dtype == scale.dtype == np.float32
    values = offset[:, None, None].astype(np.float64) + index * scale[:, None, None].astype(
        np.float64
    )
    finite = np.isfinite(maps).transpose(2, 0, 1)
    error = np.abs(values - maps.transpose(2, 0, 1))[finite]
    half_step = np.broadcast_to(scale[:, None, None] / 2, index.shape)[finite]
    assert (error <= half_step * 1.0001 + 1e-6).all()
    assert scale[3] == 0 and offset[3] == np.float32(2.5) and (index[3] == 0).all()


def test_pack_array_is_one_binary_buffer_that_unpacks_exactly():
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    packed = pack_array(array)
    assert packed["dtype"] == "float32" and packed["shape"] == [2, 3, 4]
    assert isinstance(packed["buffer"], memoryview) and packed["buffer"].nbytes == 96
    np.testing.assert_array_equal(unpack_array(packed), array)
    squeezed = pack_array(np.zeros((64, 64), np.uint8), compress=True)
    assert squeezed["compression"] == "deflate" and squeezed["buffer"].nbytes < 100
    assert zlib.decompress(bytes(squeezed["buffer"])) == bytes(4096)


# ----------------------------------------------------------------------------- what is sent
def test_a_layer_is_sent_once_as_binary_buffers_then_only_small_state(explorer):
    fmv = explorer.view
    assert isinstance(fmv, FeatureMapView)
    fmv.comm.messages.clear()
    for channel in (1, 2, 3):
        explorer.channel = channel
    explorer.cmap = "magma"
    explorer.mode = "sum"
    explorer.mode = "grid"
    sent = updates(fmv)
    assert sent and all("data" not in state for state, _ in sent)
    assert all(not buffers for _, buffers in sent)  # nothing heavy: the maps are already there
    assert all(len(json.dumps(state)) < 200 for state, _ in sent), sent

    fmv.comm.messages.clear()
    explorer.mode = "channel"
    explorer.layer = "conv2"
    sent = updates(fmv)
    with_data = [(state, buffers) for state, buffers in sent if "data" in state]
    assert len(with_data) == 1  # one message: offsets, scales, sum, chunk and the state
    state, buffers = with_data[0]
    json.dumps(state)  # everything else is plain JSON
    assert not _numbers_in(state), "arrays must travel as binary buffers, not JSON lists"
    data = state["data"]
    assert len(buffers) == 4 and data["chunks"][0]["planes"]["compression"] == "deflate"
    assert [(c["kind"], c["index"]) for c in data["chunks"]] == [("planes", 0)]
    raw = zlib.decompress(bytes(fmv.data["chunks"][0]["planes"]["buffer"]))
    assert any(bytes(b) == bytes(fmv.data["chunks"][0]["planes"]["buffer"]) for b in buffers)
    assert len(raw) == 6 * 8 * 8  # the 6 channels (one chunk) × 8 × 8 uint8
    assert data["chunks"][0]["planes"]["shape"] == [6, 8, 8]
    assert data["sum"]["shape"] == [8, 8] and data["offset"]["shape"] == [7]


def test_wide_layers_go_in_chunks_the_page_asks_for():
    rng = np.random.default_rng(7)
    maps = rng.gamma(1.5, size=(12, 10, 40)).astype(np.float32)  # 40 channels: chunks of 16
    fmv = FeatureMapView()
    page = page_of(fmv)
    fmv.show("wide", maps, channel=3, mode="channel", cmap="viridis", page=0,
             colormaps=["viridis"])  # fmt: skip
    assert [(c["kind"], c["index"]) for c in fmv.data["chunks"]] == [("planes", 0)]
    want = quantize(maps)[0]  # the renderer's LUT indexes, (C, H, W)
    for channel in (3, 15, 16, 39):
        fmv.set_state({"channel": channel})
        shown = page.planes("planes", range(channel, channel + 1))[channel]
        np.testing.assert_array_equal(shown, want[channel])
    serial = fmv.data["serial"]
    assert page.asked == [(serial, "planes", 1), (serial, "planes", 2)]  # each chunk once
    chunk_messages = [m for m, _ in fmv.comm.messages if m.get("content", {}).get("type") == "chunk"]
    assert [(m["content"]["index"], m["content"]["shape"]) for m in chunk_messages] == [
        (1, [16, 12, 10]), (2, [8, 12, 10])
    ]
    # A stale request (an older layer) or one out of range sends nothing.
    before = len(fmv.comm.messages)
    fmv._on_browser_message(fmv, {"type": "need", "serial": serial - 1, "kind": "planes",
                                  "index": 1}, [])  # fmt: skip
    fmv._on_browser_message(fmv, {"type": "need", "serial": serial, "kind": "planes",
                                  "index": 3}, [])  # fmt: skip
    fmv._on_browser_message(fmv, {"type": "need", "serial": serial, "kind": "grid",
                                  "index": 0}, [])  # fmt: skip  (12×10 maps have no grid kind)
    assert len(fmv.comm.messages) == before


def test_the_colormap_tables_are_sent_once_and_grow_with_the_picker(explorer):
    fmv = explorer.view
    luts = unpack_array(fmv.luts)
    assert fmv.cmap_names == list(explorer.cmap_dropdown.options)
    for name, table in zip(fmv.cmap_names, luts, strict=True):
        np.testing.assert_array_equal(table, render.colormap_lut(name))
    fmv.comm.messages.clear()
    explorer.cmap = "twilight"  # not in the picker: joins it, and the tables
    assert fmv.cmap == "twilight" and "twilight" in fmv.cmap_names
    np.testing.assert_array_equal(
        unpack_array(fmv.luts)[fmv.cmap_index], render.colormap_lut("twilight")
    )


# ----------------------------------------------------------------------------- same pixels
@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2"])
def test_the_browser_draws_the_kernels_picture_in_every_state(explorer, layer):
    explorer.layer = layer
    for mode in ("channel", "sum", "grid"):
        for cmap in ("viridis", "magma", "gray_r"):
            explorer.mode, explorer.cmap = mode, cmap
            for channel in range(explorer.channel_slider.max + 1):
                explorer.channel = channel
                np.testing.assert_array_equal(browser_picture(explorer.view), explorer.rgb)


def test_large_maps_grid_pages_with_block_means_and_tile_numbers():
    rng = np.random.default_rng(1)
    maps = rng.gamma(1.5, size=(150, 230, 70)).astype(np.float32)  # > 112 px: block means
    fmv = FeatureMapView(number_tiles=True)
    for page in (0, 1):
        fmv.show("big", maps, channel=0, mode="grid", cmap="inferno", page=page,
                 colormaps=["viridis", "inferno"])  # fmt: skip
        channels = render.page_channels(70, page, 64)
        want, layout = render.channel_grid(
            maps, channels, columns=min(GRID_COLUMNS, len(channels)), cmap="inferno",
            tile_min_side=GRID_TILE_MIN_SIDE, tile_max_side=GRID_TILE_MAX_SIDE,
        )  # fmt: skip
        np.testing.assert_array_equal(browser_picture(fmv), number_tiles(want, layout))
    # 230 px needs a factor of 3 to fit 112: 50×76 block means of 3×3
    assert (fmv.data["grid"]["height"], fmv.data["grid"]["width"]) == (50, 76)


# ----------------------------------------------------------------------------- both ways
def test_browser_changes_move_the_kernels_traits(explorer):
    fmv = explorer.view
    explorer.layer = "conv2"
    fmv.set_state({"channel": 4})
    assert explorer.channel == 4
    fmv.set_state({"cmap_index": fmv.cmap_names.index("magma")})
    assert explorer.cmap == "magma"
    fmv.set_state({"mode_index": 1})
    assert explorer.mode == "grid"
    np.testing.assert_array_equal(browser_picture(fmv), explorer.rgb)
    fmv.set_state({"channel": 2, "mode_index": 0})  # a click on tile 2 in the page
    assert (explorer.channel, explorer.mode) == (2, "channel")
    np.testing.assert_array_equal(browser_picture(fmv), explorer.rgb)


def test_a_browser_value_out_of_range_is_put_back(explorer):
    fmv = explorer.view
    explorer.layer = "conv1"  # 4 channels
    explorer.channel = 1
    fmv.comm.messages.clear()
    fmv.set_state({"channel": 9})  # e.g. a press meant for the previous, wider layer
    assert explorer.channel == 1 and fmv.channel == 1
    assert {"channel": 1} in [state for state, _ in updates(fmv)]  # the page is put back
    assert explorer.error == ""  # a stale press is no mistake of the user's


def test_python_changes_drive_the_view(explorer):
    fmv = explorer.view
    fmv.comm.messages.clear()
    explorer.channel = 3
    explorer.page = 0
    assert [state for state, _ in updates(fmv)] == [{"channel": 3}]
    explorer.layer = "conv2"
    assert fmv.layer == "conv2" and fmv.data["channels"] == 6


def test_the_readout_value_is_the_map_value_within_half_a_step(explorer):
    fmv = explorer.view
    maps = explorer._activations()
    scale = fmv.planes["scale"]
    for channel in range(maps.shape[-1]):
        for y, x in [(0, 0), (3, 5), (7, 7)]:
            value = fmv.value_at(channel, y, x)
            assert abs(value - float(maps[y, x, channel])) <= scale[channel] / 2 * 1.0001 + 1e-7
    fused = render.channel_sum(maps)
    assert abs(fmv.value_at(None, 2, 2) - fused[2, 2]) <= scale[-1] / 2 * 1.0001 + 1e-7


def test_controls_are_linked_in_the_browser_with_the_view_as_source(explorer):
    links = explorer.view._links
    pairs = [(link.source[1], link.target[0], link.target[1]) for link in links]
    assert pairs == [
        ("channel", explorer.channel_slider, "value"),
        ("cmap_index", explorer.cmap_dropdown, "index"),
        ("mode_index", explorer.mode_buttons, "index"),
        ("page_number", explorer.page_slider, "value"),
    ]
    assert all(link.source[0] is explorer.view for link in links)


def test_a_browser_without_decompression_gets_raw_maps(explorer):
    fmv = explorer.view
    explorer.channel = 2
    fmv._on_browser_message(fmv, {"type": "need_raw"}, [])
    (chunk,) = fmv.data["chunks"]
    assert chunk["planes"]["compression"] == "none"
    assert bytes(chunk["planes"]["buffer"]) == fmv.planes["planes"][:4].tobytes()  # pool1: 4


# ----------------------------------------------------------------------------- PNG path
def test_png_made_on_request_for_exports_and_saved_notebooks(explorer, tmp_path):
    explorer.channel = 2
    decoded = np.asarray(Image.open(io.BytesIO(explorer.png)).convert("RGB"))
    np.testing.assert_array_equal(decoded, explorer.rgb)
    assert explorer.export_png(tmp_path / "v.png").read_bytes() == explorer.png
    bundle = explorer._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "image/png" in data


def test_png_path_without_anywidget_or_when_asked(tiny_functional, rgb16, monkeypatch):
    png = ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache(), use_view=False)
    assert not isinstance(png.view, FeatureMapView) and png.view.value == png.png
    # The view is opt-in for now: the default is the PNG path, in a kernel as well.
    assert view.wants_view(None) is False
    monkeypatch.setattr(view, "in_kernel", lambda: True)
    assert view.wants_view(None) is False
    assert view.wants_view(True) is True
    monkeypatch.setattr(view, "anywidget_installed", lambda: False)
    assert view.wants_view(None) is False
    with pytest.raises(CnnVizError, match=r"use_view=True needs anywidget"):
        ActivationExplorer(tiny_functional, rgb16, cache=ActivationCache(), use_view=True)


def test_the_es_module_and_css_ship_in_the_package():
    for path in (view.STATIC / "feature_map_view.js", view.STATIC / "feature_map_view.css"):
        assert path.is_file() and path.stat().st_size > 100
    assert "export default" in (view.STATIC / "feature_map_view.js").read_text()


def test_a_new_layers_first_picture_goes_ahead_of_the_layer(explorer):
    fmv = explorer.view
    explorer.channel = 2
    fmv.comm.messages.clear()
    explorer.layer = "conv2"
    kinds = [msg.get("method") for msg, _ in fmv.comm.messages]
    assert kinds.index("custom") < kinds.index("update")  # the preview leaves first
    (content, buffers), *_ = [(m["content"], b) for m, b in fmv.comm.messages if "content" in m]
    assert content["type"] == "preview" and content["plane"] == 2 and content["layer"] == "conv2"
    assert bytes(buffers[0]) == fmv.planes["planes"][2].tobytes()  # the very plane of the layer
    assert content["offset"] == float(fmv.planes["offset"][2])
    assert content["scale"] == float(fmv.planes["scale"][2])
