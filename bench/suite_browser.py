"""Benchmark suite "browser": keydown → picture latency in a real JupyterLab + headless Chromium.

What is measured is what a person feels: in the page, the time from the ``keydown`` of an
ArrowRight on a channel slider's handle (``performance.now()`` in a capture-phase listener) to
the ``src`` attribute change of the picture that follows it (a MutationObserver), with one press
in flight at a time. The helper is ``key_to_src_latency`` of ``tests/browser/jupyterlab_driver``.

* ours: :class:`~cnnviz_widgets.ActivationExplorer` (default model, ``chelsea``,
  ``backbone/block3a_expand_activation``, 144 channels, channel mode): the slider's change goes to
  the kernel, which slices the cached feature map, colours it, encodes a PNG and sends it back.
* floor: a bare ``ipywidgets.IntSlider`` whose observer assigns a **precomputed** PNG to an
  ``ipywidgets.Image`` — the very PNGs the explorer sends for those channels (made beforehand by
  a second explorer on the same layer), so both sides ship the same bytes and the floor does no
  work but the widget round trip.

Both live in one generated notebook, served by one private JupyterLab, measured in the same page,
in alternating blocks (ours, floor, ours, …) after a few warm-up presses each, so both see the
same machine load. Target: our p95 ≤ 1.5 × the floor's p95.

The browser-drawn view (``use_view=True``, :class:`~cnnviz_widgets.widgets.view.FeatureMapView`,
issue 15) is measured in the same page and blocks, to the change of its canvas' ``data-frame``
attribute (set when a frame is drawn, as ``src`` is set when a PNG arrives):

* channel key and colormap key (on a layer already sent): p95 ≤ 16.7 ms (one frame at 60 Hz)
  and ≤ the floor's p95 / 3;
* bytes received by the page (every websocket frame) for one layer + 20 channel keys ≤ the PNG
  path's bytes for the same 20 keys;
* layer key → first frame of the new layer: median ≤ the PNG path's (both explorers with their
  own cache, warmed by one sweep over the same layers).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import Figure, Reference, SuiteResult
from timing import Stats, section

NAME = "browser"
DESCRIPTION = (
    "channel/colormap/layer key → picture in headless Chromium: PNG path, browser-drawn view,"
    " bare IntSlider → Image; bytes on the wire"
)

ROOT = Path(__file__).resolve().parents[1]
BROWSER_TESTS = ROOT / "tests" / "browser"

LAYER = "backbone/block3a_expand_activation"
FACTOR = 1.5
NOTEBOOK = "browser_latency.ipynb"

OURS_HANDLE = ".bench-png .cnnviz-channel .noUi-handle"
OURS_VIEW = ".bench-png img.cnnviz-view"
BARE_HANDLE = ".bench-bare-slider .noUi-handle"
BARE_VIEW = "img.bench-bare-view"
# The browser-drawn view (issue 15): its explorer's stock controls, and the canvas.
VIEW_HANDLE = ".bench-view .cnnviz-channel .noUi-handle"
VIEW_CANVAS = ".bench-view canvas.cnnviz-fmv-canvas"
VIEW_CMAP = ".bench-view .cnnviz-cmap select"
VIEW_LAYER = ".bench-view .cnnviz-layer select"
OURS_CMAP = ".bench-png .cnnviz-cmap select"
OURS_LAYER = ".bench-png .cnnviz-layer select"
FRAME_BUDGET_MS = 16.7  # one display frame at 60 Hz
VIEW_FACTOR = 3.0  # the view must be this many times faster than the bare round trip


def _plan(quick: bool) -> dict[str, int]:
    # presses per side = blocks × block; channels used: warm-up + presses + bytes run (< 144)
    if quick:
        return {"warmup": 2, "blocks": 2, "block": 5, "bytes_presses": 20, "layer_steps": 2}
    return {"warmup": 4, "blocks": 3, "block": 10, "bytes_presses": 20, "layer_steps": 5}


def _notebook(channels: int) -> dict[str, Any]:
    import nbformat

    cells = [
        "import ipywidgets as W\nimport cnnviz_widgets as cv\n"
        "model = cv.load_default_model()\nimage = cv.sample_image('chelsea')",
        # The PNG path and the browser-drawn view, each with its own cache (a layer one of them
        # computed is no free ride for the other).
        "from cnnviz_widgets.cache import ActivationCache\n"
        f"ex = cv.ActivationExplorer(model, image, layer={LAYER!r}, use_view=False,"
        " cache=ActivationCache())\nex.add_class('bench-png')\nex",
        f"exv = cv.ActivationExplorer(model, image, layer={LAYER!r}, use_view=True,"
        " cache=ActivationCache())\nexv.add_class('bench-view')\nexv",
        # The floor: the explorer's own PNGs for channels 0..N, precomputed by a second explorer.
        f"_pre = cv.ActivationExplorer(model, image, layer={LAYER!r}, use_view=False)\n"
        "pngs = []\n"
        f"for _c in range({channels}):\n"
        "    _pre.channel = _c\n"
        "    pngs.append(_pre.png)\n"
        "_pre.close()\n"
        f"bare_slider = W.IntSlider(value=0, min=0, max={channels - 1}, description='bare')\n"
        "bare_view = W.Image(value=pngs[0], format='png')\n"
        "bare_slider.add_class('bench-bare-slider')\n"
        "bare_view.add_class('bench-bare-view')\n"
        "bare_slider.observe(lambda ch: setattr(bare_view, 'value', pngs[ch['new']]), 'value')\n"
        "W.VBox([bare_slider, bare_view])",
        "print('sizes', len(ex.png), len(pngs[0]), ex.png == pngs[0])",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


# In-page probe: keydown times on one element, and the changes of one attribute of another.
_PROBE_JS = """
([keySelector, targetSelector, attribute]) => {
    const key = document.querySelector(keySelector);
    const target = document.querySelector(targetSelector);
    if (!key || !target) {
        throw new Error('latency probe: no ' + (key ? targetSelector : keySelector));
    }
    const state = {keydowns: [], changes: []};
    const onKey = () => state.keydowns.push(performance.now());
    key.addEventListener('keydown', onKey, true);
    key.addEventListener('input', onKey, true);  // a <select> changed by select_option
    const label = () => target.dataset.layer || target.getAttribute('src') || '';
    const observer = new MutationObserver(() => state.changes.push([performance.now(), label()]));
    observer.observe(target, {attributes: true, attributeFilter: [attribute]});
    const stop = () => {
        observer.disconnect();
        key.removeEventListener('keydown', onKey, true);
        key.removeEventListener('input', onKey, true);
    };
    window.__cnnvizProbe = {state, stop, label};
    return true;
}
"""
_ARRIVED_JS = """
([k, c, old, byLabel]) => {
    const s = window.__cnnvizProbe.state;
    if (s.keydowns.length <= k) return false;
    for (let i = c; i < s.changes.length; i++) {
        if (!byLabel || s.changes[i][1] !== old) return s.changes[i][0] - s.keydowns[k];
    }
    return false;
}
"""


def key_latency(
    page: Any,
    key_selector: str,
    target_selector: str,
    keys: list[str | int],
    *,
    attribute: str = "src",
    new_label: bool = False,
    timeout: float = 60_000,
) -> list[float]:
    """In-page ms from each key's ``keydown`` to the next change of ``attribute`` of the target.

    One key in flight at a time. With ``new_label`` only a change that shows another layer (the
    canvas' ``data-layer``, or another ``src``) than before the key counts (a layer change).
    An ``int`` instead of a key picks that option of a ``<select>`` (Playwright's
    ``select_option``, as a mouse pick does), timed from its ``input`` event: arrow keys on a
    closed ``<select>`` are not reliable in headless Chromium.
    """
    page.locator(key_selector).first.focus()
    page.evaluate(_PROBE_JS, [key_selector, target_selector, attribute])
    latencies = []
    try:
        for key in keys:
            k, c, old = page.evaluate(
                "() => { const p = window.__cnnvizProbe;"
                " return [p.state.keydowns.length, p.state.changes.length, p.label()]; }"
            )
            if isinstance(key, int):
                page.locator(key_selector).first.select_option(index=key)
            else:
                page.keyboard.press(key)
            handle = page.wait_for_function(
                _ARRIVED_JS, arg=[k, c, old, new_label], timeout=timeout
            )
            latencies.append(float(handle.json_value()))
    finally:
        page.evaluate("() => { window.__cnnvizProbe && window.__cnnvizProbe.stop(); }")
    return latencies


class WireBytes:
    """Bytes of every websocket frame the page receives (the kernel's messages, as sent)."""

    def __init__(self) -> None:
        self.received = 0

    def attach(self, page: Any) -> None:
        def on_frame(payload: Any) -> None:
            self.received += len(payload.encode() if isinstance(payload, str) else payload)

        page.on("websocket", lambda ws: ws.on("framereceived", on_frame))

    def during(self, page: Any, action: Any, settle_ms: int = 800) -> int:
        """Bytes received while ``action()`` runs and ``settle_ms`` after it."""
        page.wait_for_timeout(settle_ms)
        start = self.received
        action()
        page.wait_for_timeout(settle_ms)
        return self.received - start


def _alternating(plan: dict[str, int], key: str = "ArrowRight") -> list[str]:
    return [key] * plan["block"]


def _timed(name: str, samples: list[float], refs: list[tuple[str, list[float]]], note: str,
           extra: dict[str, Any] | None = None) -> tuple[Figure, Stats]:  # fmt: skip
    stats = Stats(tuple(samples))
    references = [
        Reference.from_stats(
            ref_name,
            "floor" if i == 0 else "reference",
            Stats(tuple(ref)),
            stats,
            ours_over_ref=True,
        )
        for i, (ref_name, ref) in enumerate(refs)
    ]
    figure = Figure.timed(
        name,
        stats,
        references=references,
        note=note,
        extra={"samples_ms": [round(v, 2) for v in samples], **(extra or {})},
    )
    return figure, stats


def run(quick: bool = False) -> SuiteResult:
    """Start JupyterLab + Chromium, run the generated notebook, measure every side."""
    import nbformat

    if str(BROWSER_TESTS) not in sys.path:
        sys.path.insert(0, str(BROWSER_TESTS))
    from jupyterlab_driver import ConsoleLog, NotebookPage, launch_chromium, running_lab
    from playwright.sync_api import sync_playwright

    plan = _plan(quick)
    per_side = plan["blocks"] * plan["block"]
    channels = plan["warmup"] + per_side + 2
    start = time.perf_counter()
    t: dict[str, list[float]] = {name: [] for name in (
        "png", "bare", "view", "view_cmap", "png_cmap", "view_layer", "png_layer")}  # fmt: skip
    context_info: dict[str, Any] = {"layer": LAYER, "plan": plan}
    wire = WireBytes()
    with tempfile.TemporaryDirectory(prefix="cnnviz-bench-browser-") as tmp:
        source = Path(tmp) / "source"
        source.mkdir()
        nbformat.write(_notebook(channels), str(source / NOTEBOOK))
        with (
            section("starting JupyterLab and Chromium, running the notebook"),
            running_lab(source, workdir=Path(tmp) / "lab") as lab,
            sync_playwright() as playwright,
        ):
            browser = launch_chromium(playwright)
            try:
                page = browser.new_context(
                    viewport={"width": 1280, "height": 900}, device_scale_factor=1
                ).new_page()
                page.set_default_timeout(30_000)
                console = ConsoleLog().attach(page)
                wire.attach(page)
                nb = NotebookPage(page, lab)
                nb.open(NOTEBOOK)
                nb.toggle_left_sidebar()
                nb.run_all()
                nb.wait_all_executed(timeout=240_000)
                for selector in (OURS_VIEW, BARE_VIEW):
                    page.wait_for_function(
                        "sel => { const i = document.querySelector(sel);"
                        " return !!i && /^(blob:|data:)/.test(i.getAttribute('src') || '')"
                        " && i.naturalWidth > 0; }",
                        arg=selector,
                        timeout=60_000,
                    )
                page.wait_for_function(
                    "sel => { const c = document.querySelector(sel);"
                    " return !!c && !!c.dataset.frame; }",
                    arg=VIEW_CANVAS, timeout=60_000,
                )  # fmt: skip
                sizes = page.locator(".jp-OutputArea-output", has_text="sizes ").last.inner_text()
                context_info["png_check"] = sizes.strip()
                context_info["view_natural_size"] = page.locator(OURS_VIEW).evaluate(
                    "i => [i.naturalWidth, i.naturalHeight]"
                )
                context_info["canvas_size"] = page.locator(VIEW_CANVAS).evaluate(
                    "c => [c.width, c.height]"
                )
                warm = ["ArrowRight"] * plan["warmup"]
                key_latency(page, OURS_HANDLE, OURS_VIEW, warm)
                key_latency(page, BARE_HANDLE, BARE_VIEW, warm)
                key_latency(page, VIEW_HANDLE, VIEW_CANVAS, warm, attribute="data-frame")
                with section(f"channel keys: {per_side} each, {plan['blocks']} alternating blocks"):
                    for _ in range(plan["blocks"]):
                        keys = _alternating(plan)
                        t["png"] += key_latency(page, OURS_HANDLE, OURS_VIEW, keys)
                        t["bare"] += key_latency(page, BARE_HANDLE, BARE_VIEW, keys)
                        t["view"] += key_latency(
                            page, VIEW_HANDLE, VIEW_CANVAS, keys, attribute="data-frame"
                        )

                # Every channel key landed (read now: the layer picks below may clamp channels).
                expected = plan["warmup"] + per_side
                shown = page.evaluate(
                    "sels => sels.map(s => document.querySelector(s)"
                    ".closest('.widget-slider, .widget-hslider, .jupyter-widgets')"
                    ".parentNode.querySelector('.widget-readout').textContent.trim())",
                    [OURS_HANDLE, BARE_HANDLE, VIEW_HANDLE],
                )
                context_info["readouts_after"] = shown
                context_info["expected_readout"] = expected

                def index(selector: str) -> int:
                    return int(page.locator(selector).evaluate("s => s.selectedIndex"))

                with section("colormap picks (next, back, …) on both explorers"):
                    here = index(VIEW_CMAP)
                    cmap_steps = [here + 1, here] * (plan["block"] // 2)
                    for _ in range(plan["blocks"]):
                        t["view_cmap"] += key_latency(
                            page, VIEW_CMAP, VIEW_CANVAS, cmap_steps, attribute="data-frame"
                        )
                        t["png_cmap"] += key_latency(page, OURS_CMAP, OURS_VIEW, cmap_steps)
                with section("bytes on the wire: a layer + 20 channel keys vs 20 PNG channel keys"):
                    presses = ["ArrowRight"] * plan["bytes_presses"]
                    home = index(VIEW_LAYER)
                    # Leave the layer first, so coming back to it sends its maps again.
                    key_latency(page, VIEW_LAYER, VIEW_CANVAS, [home - 1],
                                attribute="data-frame", new_label=True)  # fmt: skip
                    view_bytes = wire.during(page, lambda: (
                        key_latency(page, VIEW_LAYER, VIEW_CANVAS, [home],
                                    attribute="data-frame", new_label=True),
                        key_latency(page, VIEW_HANDLE, VIEW_CANVAS, presses,
                                    attribute="data-frame"),
                    ))  # fmt: skip
                    png_bytes = wire.during(
                        page, lambda: key_latency(page, OURS_HANDLE, OURS_VIEW, presses)
                    )
                    context_info["bytes"] = {"view": view_bytes, "png": png_bytes}
                with section("layer picks: a sweep to warm both caches, then measured sweeps"):
                    steps = plan["layer_steps"]
                    down = [home + i for i in range(1, steps + 1)]
                    up = [home + i for i in range(steps - 1, -1, -1)]
                    cold_view = key_latency(page, VIEW_LAYER, VIEW_CANVAS, down + up,
                                            attribute="data-frame", new_label=True)  # fmt: skip
                    cold_png = key_latency(page, OURS_LAYER, OURS_VIEW, down + up, new_label=True)
                    context_info["layer_cold_ms"] = {
                        "view": [round(v, 1) for v in cold_view],
                        "png": [round(v, 1) for v in cold_png],
                    }
                    for picks in (down, up):
                        t["view_layer"] += key_latency(
                            page, VIEW_LAYER, VIEW_CANVAS, picks, attribute="data-frame",
                            new_label=True,
                        )  # fmt: skip
                        t["png_layer"] += key_latency(page, OURS_LAYER, OURS_VIEW, picks,
                                                      new_label=True)  # fmt: skip
                context_info["console_errors"] = list(console.errors)
            finally:
                browser.close()

    return _results(t, context_info, plan, expected, time.perf_counter() - start)


def _results(t: dict[str, list[float]], info: dict[str, Any], plan: dict[str, int],
             expected: int, seconds: float) -> SuiteResult:  # fmt: skip
    bare_name = "bare IntSlider → Image (precomputed PNGs)"
    png_fig, png_stats = _timed(
        "ActivationExplorer channel key → view src", t["png"], [(bare_name, t["bare"])],
        f"PNG path; in-page performance.now(); {LAYER}; same page, alternating blocks",
    )  # fmt: skip
    bare_stats = Stats(tuple(t["bare"]))
    png_fig.extra.update(p95_ratio=png_stats.p95 / bare_stats.p95,
                         floor_samples_ms=[round(v, 2) for v in t["bare"]])  # fmt: skip
    png_fig.check("p95", FACTOR * bare_stats.p95, f"p95 ≤ {FACTOR}× floor p95")
    figures = [png_fig]
    limit = min(FRAME_BUDGET_MS, bare_stats.p95 / VIEW_FACTOR)
    target = f"p95 ≤ {FRAME_BUDGET_MS} ms and ≤ floor p95 / {VIEW_FACTOR:g}"
    for key, name, refs in [
        ("view", "FeatureMapView channel key → canvas frame",
         [(bare_name, t["bare"]), ("PNG path (same keys)", t["png"])]),
        ("view_cmap", "FeatureMapView colormap key → canvas frame",
         [(bare_name, t["bare"]), ("PNG path colormap key → src", t["png_cmap"])]),
    ]:  # fmt: skip
        figure, stats = _timed(name, t[key], refs, "layer already sent; in-page performance.now()")
        figure.extra.update(
            p95_speedup_vs_floor=bare_stats.p95 / stats.p95,
            median_speedup_vs_floor=bare_stats.median / stats.median,
        )
        figure.check("p95", limit, target)
        figures.append(figure)
    png_cmap = Stats(tuple(t["png_cmap"]))
    figures.append(
        Figure.timed("PNG path colormap key → src (reference)", png_cmap,
                     extra={"samples_ms": [round(v, 2) for v in t["png_cmap"]]})
    )  # fmt: skip
    sent = info["bytes"]
    bytes_fig = Figure(
        f"bytes received: view, one layer + {plan['bytes_presses']} channel keys", unit="bytes",
        value=float(sent["view"]), n=plan["bytes_presses"],
        note=f"PNG path, the same {plan['bytes_presses']} keys: {sent['png']} bytes "
        f"(ratio view/PNG {sent['view'] / max(sent['png'], 1):.2f}); every websocket frame",
        extra=dict(sent),
    )  # fmt: skip
    bytes_fig.check("value", float(sent["png"]), "≤ the PNG path's bytes for the same keys")
    figures.append(bytes_fig)
    layer_fig, _ = _timed(
        "FeatureMapView layer key → first canvas frame of the layer", t["view_layer"],
        [("PNG path layer key → src", t["png_layer"])],
        "maps in each explorer's own cache (warmed by one sweep); the view sends them again",
    )  # fmt: skip
    png_layer = Stats(tuple(t["png_layer"]))
    layer_fig.check("median", png_layer.median, "median ≤ the PNG path's median (same run)")
    figures.append(layer_fig)
    console_ok = Figure("browser console errors during the run", unit="count",
                        value=float(len(info["console_errors"])), n=1)  # fmt: skip
    console_ok.check("value", 0.0, "no console errors")
    missed = sum(int(r) != expected for r in info["readouts_after"])
    readout_figure = Figure(
        "sliders whose readout missed a press", unit="count", value=float(missed), n=3,
        note=f"readouts {info['readouts_after']}, expected {expected} each",
    )  # fmt: skip
    readout_figure.check("value", 0.0, "every press landed")
    summary = {k: round(Stats(tuple(v)).p95, 2) for k, v in t.items() if v}
    print(json.dumps({"p95_ms": summary, "bytes": sent}), file=sys.stderr)
    return SuiteResult(NAME, DESCRIPTION, [*figures, console_ok, readout_figure],
                       context=info, seconds=seconds)  # fmt: skip
