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
DESCRIPTION = "channel-slider key → view img src in headless Chromium vs bare IntSlider → Image"

ROOT = Path(__file__).resolve().parents[1]
BROWSER_TESTS = ROOT / "tests" / "browser"

LAYER = "backbone/block3a_expand_activation"
FACTOR = 1.5
NOTEBOOK = "browser_latency.ipynb"

OURS_HANDLE = ".cnnviz-activation-explorer .cnnviz-channel .noUi-handle"
OURS_VIEW = ".cnnviz-activation-explorer img.cnnviz-view"
BARE_HANDLE = ".bench-bare-slider .noUi-handle"
BARE_VIEW = "img.bench-bare-view"


def _plan(quick: bool) -> dict[str, int]:
    # presses per side = blocks × block; channels used: warm-up + presses (< 144)
    if quick:
        return {"warmup": 2, "blocks": 2, "block": 5}
    return {"warmup": 4, "blocks": 3, "block": 10}


def _notebook(channels: int) -> dict[str, Any]:
    import nbformat

    cells = [
        "import ipywidgets as W\nimport cnnviz_widgets as cv\n"
        "model = cv.load_default_model()\nimage = cv.sample_image('chelsea')",
        f"ex = cv.ActivationExplorer(model, image, layer={LAYER!r})\nex",
        # The floor: the explorer's own PNGs for channels 0..N, precomputed by a second explorer.
        f"_pre = cv.ActivationExplorer(model, image, layer={LAYER!r})\n"
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


def run(quick: bool = False) -> SuiteResult:
    """Start JupyterLab + Chromium, run the generated notebook, measure both sides."""
    import nbformat

    if str(BROWSER_TESTS) not in sys.path:
        sys.path.insert(0, str(BROWSER_TESTS))
    from jupyterlab_driver import (
        ConsoleLog,
        NotebookPage,
        key_to_src_latency,
        launch_chromium,
        running_lab,
    )
    from playwright.sync_api import sync_playwright

    plan = _plan(quick)
    per_side = plan["blocks"] * plan["block"]
    channels = plan["warmup"] + per_side + 2
    start = time.perf_counter()
    ours: list[float] = []
    bare: list[float] = []
    context_info: dict[str, Any] = {"layer": LAYER, "plan": plan}
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
                sizes = page.locator(".jp-OutputArea-output", has_text="sizes ").last.inner_text()
                context_info["png_check"] = sizes.strip()
                context_info["view_natural_size"] = page.locator(OURS_VIEW).evaluate(
                    "i => [i.naturalWidth, i.naturalHeight]"
                )
                # warm-up presses (discarded), then alternating blocks
                key_to_src_latency(page, OURS_HANDLE, OURS_VIEW, presses=plan["warmup"])
                key_to_src_latency(page, BARE_HANDLE, BARE_VIEW, presses=plan["warmup"])
                with section(f"{per_side} presses each, in {plan['blocks']} alternating blocks"):
                    for _ in range(plan["blocks"]):
                        ours += key_to_src_latency(
                            page, OURS_HANDLE, OURS_VIEW, presses=plan["block"]
                        )
                        bare += key_to_src_latency(
                            page, BARE_HANDLE, BARE_VIEW, presses=plan["block"]
                        )
                expected = plan["warmup"] + per_side
                shown = page.evaluate(
                    "sels => sels.map(s => document.querySelector(s)"
                    ".closest('.widget-slider, .widget-hslider, .jupyter-widgets')"
                    ".parentNode.querySelector('.widget-readout').textContent.trim())",
                    [OURS_HANDLE, BARE_HANDLE],
                )
                context_info["readouts_after"] = shown
                context_info["expected_readout"] = expected
                context_info["console_errors"] = list(console.errors)
            finally:
                browser.close()

    ours_stats, bare_stats = Stats(tuple(ours)), Stats(tuple(bare))
    figure = Figure.timed(
        "ActivationExplorer channel key → view src",
        ours_stats,
        references=[
            Reference.from_stats(
                "bare IntSlider → Image (precomputed PNGs)",
                "floor",
                bare_stats,
                ours_stats,
                ours_over_ref=True,
            )
        ],
        note=f"in-page performance.now(); {LAYER}; same page, alternating blocks",
        extra={
            "p95_ratio": ours_stats.p95 / bare_stats.p95,
            "samples_ms": [round(v, 2) for v in ours],
            "floor_samples_ms": [round(v, 2) for v in bare],
        },
    )
    figure.check("p95", FACTOR * bare_stats.p95, f"p95 ≤ {FACTOR}× floor p95")
    console_ok = Figure(
        "browser console errors during the run",
        unit="count",
        value=float(len(context_info["console_errors"])),
        n=1,
    )
    console_ok.check("value", 0.0, "no console errors")
    missed = sum(int(r) != expected for r in context_info["readouts_after"])
    readout_figure = Figure(
        "sliders whose readout missed a press",
        unit="count",
        value=float(missed),
        n=2,
        note=f"readouts {context_info['readouts_after']}, expected {expected} each",
    )
    readout_figure.check("value", 0.0, "every press landed")
    print(json.dumps({"ours_p95": ours_stats.p95, "bare_p95": bare_stats.p95}), file=sys.stderr)
    return SuiteResult(
        NAME,
        DESCRIPTION,
        [figure, console_ok, readout_figure],
        context=context_info,
        seconds=time.perf_counter() - start,
    )
