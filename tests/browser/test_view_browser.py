"""The browser-drawn view (issue 15, ``widgets/view.py``) in a real JupyterLab + headless Chromium.

Run: ``.venv/bin/python -m pytest tests/browser/test_view_browser.py -m browser -x -q -s``

Opens a generated notebook with ``ActivationExplorer(..., use_view=True)`` on the default model,
then works it through the page — channel keys, the colormap picker, Grid, a click on a tile,
Sum, a grid page, a layer key — and from Python (channel, colormap, an early layer whose grid
shows block means). After every step it reads the canvas' pixels (``toDataURL``, lossless) and
compares them with the kernel's own rendering of the same state (``ex.png``, decoded): they must
be equal, pixel for pixel, and the kernel's traits must be the page's. The value read out under
the mouse must be the kernel's dequantised value, within half a step of the array's value. The
browser console must stay clean.
"""

from __future__ import annotations

import base64
import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jupyterlab_driver import REPO_ROOT, ConsoleLog, NotebookPage, running_lab
from PIL import Image

pytestmark = pytest.mark.browser

NOTEBOOK = "view_browser.ipynb"
LAYER = "backbone/block3a_expand_activation"  # 144 channels: three grid pages
EARLY = "backbone/stem_activation"  # 112×168 maps: the grid shows 2×2 block means
ROOT = ".bench-fmv"
CANVAS = f"{ROOT} canvas.cnnviz-fmv-canvas"
READOUT = f"{ROOT} .cnnviz-fmv-readout"
CHANNEL_HANDLE = f"{ROOT} .cnnviz-channel .noUi-handle"
CMAP_SELECT = f"{ROOT} .cnnviz-cmap select"
LAYER_SELECT = f"{ROOT} .cnnviz-layer select"
PAGE_HANDLE = f"{ROOT} .cnnviz-page .noUi-handle"
MODE_BUTTON = f"{ROOT} .cnnviz-mode button"

CELLS = [
    "import cnnviz_widgets as cv\nfrom cnnviz_widgets.cache import ActivationCache\n"
    "model = cv.load_default_model()\nimage = cv.sample_image('chelsea')",
    f"exv = cv.ActivationExplorer(model, image, layer={LAYER!r}, channel=0, use_view=True,"
    " cache=ActivationCache())\nexv.add_class('bench-fmv')\nexv",
]
SETUP = """
import base64 as _b64, hashlib as _hashlib
def _fmv_state(png=False):
    g = exv.grid_layout
    return dict(layer=exv.layer, channel=exv.channel, cmap=exv.cmap, mode=exv.mode,
                page=exv.page, error=exv.error,
                png=_b64.b64encode(exv.png).decode() if png else None,
                rgb_sha256=_hashlib.sha256(exv.rgb.tobytes()).hexdigest(),
                shape=list(exv.rgb.shape),
                kind=type(exv.view).__name__,
                grid=None if g is None else [g.pad, g.tile_width, g.tile_height, g.columns])
"""


CANVAS_RGB_SHA256 = """
async (c) => {
    const rgba = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const rgb = new Uint8Array(c.width * c.height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
        rgb[j] = rgba[i]; rgb[j + 1] = rgba[i + 1]; rgb[j + 2] = rgba[i + 2];
    }
    const digest = await crypto.subtle.digest('SHA-256', rgb);
    return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
}
"""


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


class ViewChecks:
    def __init__(self, nb: NotebookPage) -> None:
        self.nb, self.page = nb, nb.page
        self._setup = False

    def kernel(self, expression: str) -> Any:
        setup = "" if self._setup else SETUP
        self._setup = True
        return self.nb.probe(expression, setup=setup)

    def canvas_rgb(self) -> np.ndarray:
        url = self.page.locator(CANVAS).evaluate("c => c.toDataURL('image/png')")
        return _decode(base64.b64decode(url.split(",", 1)[1]))

    def frame(self) -> int:
        return int(self.page.locator(CANVAS).get_attribute("data-frame") or 0)

    def wait_frame_after(self, frame: int, state_prefix: str | None = None) -> None:
        self.page.wait_for_function(
            "([sel, f, prefix]) => { const c = document.querySelector(sel);"
            " return +(c.dataset.frame || 0) > f"
            " && (prefix === null || (c.dataset.state || '').startsWith(prefix)); }",
            arg=[CANVAS, frame, state_prefix],
            timeout=60_000,
        )

    def same_as_kernel(self, **expected: Any) -> dict[str, Any]:
        """The kernel's traits are ``expected`` and the canvas shows the kernel's picture."""
        deadline = time.monotonic() + 30
        while True:
            state = self.kernel("_fmv_state()")
            if all(state[k] == v for k, v in expected.items()) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        for name, value in expected.items():
            assert state[name] == value, f"kernel {name}={state[name]!r}, expected {value!r}"
        assert state["error"] == "", state["error"]
        # The canvas' RGB hashed in the page (keeps probe outputs small); on a mismatch, both
        # pictures are compared pixel by pixel for the message.
        shown_sha = self.page.locator(CANVAS).evaluate(CANVAS_RGB_SHA256)
        if shown_sha != state["rgb_sha256"]:
            want = _decode(base64.b64decode(self.kernel("_fmv_state(png=True)")["png"]))
            shown = self.canvas_rgb()
            assert shown.shape == want.shape, (shown.shape, want.shape, expected)
            differ = int((shown != want).any(axis=2).sum())
            raise AssertionError(f"{differ} pixels differ from the kernel's picture ({expected})")
        return state

    def client_point(self, px: float, py: float) -> tuple[float, float]:
        """Page coordinates of canvas pixel (px, py) as the canvas is shown (maybe scaled)."""
        self.page.locator(CANVAS).scroll_into_view_if_needed()
        box = self.page.locator(CANVAS).evaluate(
            "c => { const r = c.getBoundingClientRect();"
            " return [r.left, r.top, r.width / c.width, r.height / c.height]; }"
        )
        return box[0] + px * box[2], box[1] + py * box[3]


def _write_notebook(directory: Path) -> None:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, str(directory / NOTEBOOK))


def test_view_draws_the_kernels_pictures_and_follows_both_ways(
    lab_page: tuple[Any, ConsoleLog], lab_server: Any
) -> None:
    page, console = lab_page
    _write_notebook(lab_server.root_dir)
    _work_the_view(NotebookPage(page, lab_server), console)


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 comes with the test extra")
    with running_lab(REPO_ROOT / "notebooks", workdir=tmp_path_factory.mktemp("fmv-nb7"),
                     extra_env={"CNNVIZ_MAX_STEPS": "8"}, app="notebook") as server:  # fmt: skip
        _write_notebook(server.root_dir)
        yield server


def test_view_in_notebook7(chromium: Any, notebook7: Any) -> None:
    from test_frontends_browser import AnyNotebookPage  # Notebook 7's kernel indicator

    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   device_scale_factor=1)  # fmt: skip
    page = context.new_page()
    page.set_default_timeout(60_000)
    console = ConsoleLog().attach(page)
    try:
        _work_the_view(AnyNotebookPage(page, notebook7), console)
    finally:
        context.close()


_NOTEBOOK7_LOAD_ERROR = re.compile(
    r"^\[pageerror\] Cannot read properties of undefined \(reading 'schema'\).*/static/notebook/"
)


def _work_the_view(nb: NotebookPage, console: ConsoleLog) -> None:
    page = nb.page
    checks = ViewChecks(nb)
    nb.open(NOTEBOOK)
    nb.toggle_left_sidebar()
    nb.run_all()
    nb.wait_all_executed(timeout=240_000)
    page.wait_for_function(
        "sel => { const c = document.querySelector(sel); return !!c && !!c.dataset.frame; }",
        arg=CANVAS, timeout=60_000,
    )  # fmt: skip
    first = checks.same_as_kernel(layer=LAYER, channel=0, mode="channel", kind="FeatureMapView")
    assert first["cmap"] == "viridis"

    # ---- channel keys: drawn in the page, the kernel follows
    frame = checks.frame()
    page.locator(CHANNEL_HANDLE).focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    checks.wait_frame_after(frame, "channel|3|")
    checks.same_as_kernel(channel=3, mode="channel")

    # ---- colormap picker
    frame = checks.frame()
    page.locator(CMAP_SELECT).select_option("magma")
    checks.wait_frame_after(frame)
    checks.same_as_kernel(cmap="magma", channel=3)

    # ---- hover: the value under the mouse is the map's, in its own units
    readouts = _hover_checks(page, checks)
    print("hover readouts:", json.dumps(readouts))

    # ---- Grid, then a click on tile 10 opens channel 10 (no ipyevents)
    frame = checks.frame()
    page.locator(MODE_BUTTON, has_text="Grid").click()
    checks.wait_frame_after(frame, "grid|")
    grid = checks.same_as_kernel(mode="grid", page=0)["grid"]
    pad, tile_w, tile_h, columns = grid
    tile = 10
    px = pad + (tile % columns) * (tile_w + pad) + tile_w / 2
    py = pad + (tile // columns) * (tile_h + pad) + tile_h / 2
    frame = checks.frame()
    page.mouse.click(*checks.client_point(px, py))
    checks.wait_frame_after(frame, f"channel|{tile}|")
    checks.same_as_kernel(mode="channel", channel=tile)
    assert "mod-active" in (
        page.locator(MODE_BUTTON, has_text="Channel").get_attribute("class") or ""
    )

    # ---- Sum, then grid page 2 with the page slider
    frame = checks.frame()
    page.locator(MODE_BUTTON, has_text="Sum").click()
    checks.wait_frame_after(frame, "sum|")
    checks.same_as_kernel(mode="sum")
    page.locator(MODE_BUTTON, has_text="Grid").click()
    page.locator(PAGE_HANDLE).wait_for(state="visible", timeout=30_000)
    frame = checks.frame()
    page.locator(PAGE_HANDLE).focus()
    page.keyboard.press("ArrowRight")
    checks.wait_frame_after(frame, "grid|")
    page.wait_for_function(
        "sel => (document.querySelector(sel).dataset.state || '').endsWith('|2')", arg=CANVAS
    )
    checks.same_as_kernel(mode="grid", page=1)

    # ---- Python drives the view
    frame = checks.frame()
    checks.kernel("(setattr(exv, 'mode', 'channel'), setattr(exv, 'channel', 7),"
                  " setattr(exv, 'cmap', 'gray'), 0)[-1]")  # fmt: skip
    checks.wait_frame_after(frame, "channel|7|")
    checks.same_as_kernel(mode="channel", channel=7, cmap="gray")

    # ---- an early layer from Python: large maps, grid of block means with tile numbers
    frame = checks.frame()
    checks.kernel(f"(setattr(exv, 'layer', {EARLY!r}), setattr(exv, 'mode', 'grid'), 0)[-1]")
    page.wait_for_function(
        "([sel, layer]) => { const c = document.querySelector(sel);"
        " return c.dataset.layer === layer && (c.dataset.state || '').startsWith('grid|'); }",
        arg=[CANVAS, EARLY], timeout=60_000,
    )  # fmt: skip
    checks.same_as_kernel(layer=EARLY, mode="grid")

    # ---- the next layer picked in the page: the kernel sends its maps once
    frame = checks.frame()
    here = page.locator(LAYER_SELECT).evaluate("s => s.selectedIndex")
    page.locator(LAYER_SELECT).select_option(index=here + 1)
    page.wait_for_function(
        "([sel, layer]) => document.querySelector(sel).dataset.layer !== layer",
        arg=[CANVAS, EARLY], timeout=60_000,
    )  # fmt: skip
    state = checks.kernel("_fmv_state()")
    assert state["layer"] != EARLY
    checks.same_as_kernel(layer=state["layer"], mode="grid")

    # Notebook 7.x raises one error of its own while the page loads, before any cell runs: its
    # shortcut-settings handler reads the schema of a plugin it has not loaded. Only that one
    # is let through.
    errors = [e for e in console.errors if not _NOTEBOOK7_LOAD_ERROR.search(e)]
    assert not errors, "browser console errors:\n" + "\n".join(errors)


def _hover_checks(page: Any, checks: ViewChecks) -> list[dict[str, Any]]:
    """Move over a few cells of channel 3; each readout is the kernel's value of that cell."""
    size = page.locator(CANVAS).evaluate("c => [c.width, c.height]")
    found = []
    for fx, fy in [(0.1, 0.1), (0.5, 0.5), (0.83, 0.27)]:
        page.mouse.move(*checks.client_point(size[0] * fx, size[1] * fy))
        page.wait_for_function("sel => !!document.querySelector(sel).dataset.value", arg=READOUT)
        data = page.locator(READOUT).evaluate("r => Object.assign({}, r.dataset)")
        text = page.locator(READOUT).inner_text()
        x, y, channel = int(data["x"]), int(data["y"]), int(data["channel"])
        kernel = checks.kernel(
            f"[exv.view.value_at({channel}, {y}, {x}),"
            f" float(exv._activations()[{y}, {x}, {channel}]),"
            f" float(exv.view.planes['scale'][{channel}])]"
        )
        shown, true_value, step = float(data["value"]), kernel[1], kernel[2]
        assert channel == 3 and f"x {x}, y {y}" in text, (data, text)
        assert shown == pytest.approx(kernel[0], rel=1e-12, abs=1e-12), (data, kernel)
        assert abs(shown - true_value) <= step / 2 * 1.0001 + 1e-6, (data, kernel)
        found.append({"x": x, "y": y, "shown": text, "array": true_value, "step": step})
    page.mouse.move(0, 0)
    return found


def test_view_in_voila(chromium: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Voilà: the canvas shows the kernel's pictures, before and after two channel keys.

    Voilà runs no probe cells; the notebook writes the PNG path's pictures of channels 0 and 2
    (a second explorer, ``use_view=False``) to files, and the canvas is compared with them.
    """
    pytest.importorskip("voila", reason="Voilà is not installed (pip install -e '.[test]')")

    import nbformat
    from test_voila_browser import running_voila

    workdir = tmp_path_factory.mktemp("fmv-voila")
    source, shots = workdir / "source", workdir / "shots"
    source.mkdir()
    shots.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(c) for c in [
        *CELLS,
        f"_png = cv.ActivationExplorer(model, image, layer={LAYER!r}, channel=0, use_view=False)\n"
        "for _c in (0, 2):\n"
        "    _png.channel = _c\n"
        f"    open({str(shots)!r} + f'/channel{{_c}}.png', 'wb').write(_png.png)",
    ]]  # fmt: skip
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                       "language": "python"}  # fmt: skip
    nbformat.write(notebook, str(source / NOTEBOOK))
    context = chromium.new_context(viewport={"width": 1280, "height": 900},
                                   device_scale_factor=1)  # fmt: skip
    page = context.new_page()
    console = ConsoleLog().attach(page)
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
               lambda route: route.fulfill(status=200, body=""))  # fmt: skip
    try:
        with running_voila(source, workdir / "voila", NOTEBOOK) as (url, _log):
            page.goto(url, wait_until="domcontentloaded", timeout=180_000)
            page.wait_for_function(
                "sel => { const c = document.querySelector(sel); return !!c && !!c.dataset.frame; }",
                arg=CANVAS, timeout=180_000,
            )  # fmt: skip
            checks = ViewChecks(NotebookPage(page, None))  # type: ignore[arg-type]
            for channel, keys in ((0, 0), (2, 2)):
                if keys:
                    frame = checks.frame()
                    page.locator(CHANNEL_HANDLE).focus()
                    for _ in range(keys):
                        page.keyboard.press("ArrowRight")
                    checks.wait_frame_after(frame, f"channel|{channel}|")
                want = _decode((shots / f"channel{channel}.png").read_bytes())
                shown = checks.canvas_rgb()
                assert shown.shape == want.shape and (shown == want).all(), f"channel {channel}"
            # Notebook 7's own lab extension (installed for the Notebook 7 tests) cannot load
            # its shared @jupyterlab/docregistry inside Voilà 0.5: not ours, nothing uses it.
            errors = [
                e for e in console.errors
                if "favicon" not in e
                and not re.search(r"RUNTIME-012[\s\S]*@jupyter-notebook/lab-extension", e)
            ]  # fmt: skip
            assert not errors, "browser console errors:\n" + "\n".join(errors)
    finally:
        context.close()
