"""Every explorer in JupyterLab 4 with ipyevents, ipympl and bqplot disabled, in Notebook 7, and
in Voilà: rendered, reacting to their controls, no "Error displaying widget", Stop works.

Run: ``.venv/bin/python -m pytest tests/browser/test_frontends_browser.py -m browser -x -q -s``

The stock-only JupyterLab gets its three lab extensions disabled with ``jupyter labextension
disable --level=user`` in the run's private config directory; the kernel finds that
``page_config.json`` on the same Jupyter config path and picks the stock stand-ins by itself
(no ``CNNVIZ_FRONTEND`` is set).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_driver import REPO_ROOT, ConsoleLog, NotebookPage, running_lab

pytestmark = pytest.mark.browser

NOTEBOOK = "frontends.ipynb"
EXTENSIONS = ("ipyevents", "jupyter-matplotlib", "bqplot", "anywidget")
KERNEL_ENV = {"CNNVIZ_MAX_STEPS": "8", "CNNVIZ_FRONTEND": ""}
CELLS = [
    'import cnnviz_widgets as cv\nmodel = cv.load_default_model()\nimage = cv.sample_image("chelsea")',
    'ex = cv.ActivationExplorer(model, image, mode="grid")\nex',
    "cam = cv.CamExplorer(model, image)\ncam",
    "full = cv.Explorer(model, image)\nfull",
    # Quick at first; the Stop checks then ask for a long run (explicit steps are not capped).
    'fx = cv.FilterExplorer(model, layer="backbone/block2a_expand_activation", size=64,'
    " steps=STEPS)\nfx",
]
ROOTS = {
    "activations": ".cnnviz-activation-explorer:not(.cnnviz-explorer .cnnviz-activation-explorer)",
    "cam": ".cnnviz-cam-explorer",
    "explorer": ".cnnviz-explorer",
    "filters": ".cnnviz-filter-explorer",
}


def write_notebook(directory: Path, steps: int = 8) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s.replace("STEPS", str(steps))) for s in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, directory / NOTEBOOK)


class AnyNotebookPage(NotebookPage):
    """NotebookPage that also knows Notebook 7 (no status bar: the toolbar's indicator)."""

    def wait_kernel_idle(self, timeout: float = 60_000) -> None:
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-StatusBar-Widget')]
                        .some(w => /\\|\\s*Idle/.test(w.textContent))
                  || [...document.querySelectorAll('.jp-Notebook-ExecutionIndicator')]
                        .some(w => w.getAttribute('data-status') === 'idle')""",
            timeout=timeout,
        )


def _server(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[Any]:
    workdir = tmp_path_factory.mktemp("frontends")
    with running_lab(
        REPO_ROOT / "notebooks", workdir=workdir, extra_env=KERNEL_ENV, **options
    ) as server:
        write_notebook(server.root_dir)
        yield server


@pytest.fixture(scope="module")
def stock_lab(tmp_path_factory):
    yield from _server(tmp_path_factory, disabled_extensions=EXTENSIONS)


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    pytest.importorskip("notebook", minversion="7", reason="Notebook 7 comes with the test extra")
    yield from _server(tmp_path_factory, app="notebook")


def _page(chromium: Any) -> tuple[Any, Any, ConsoleLog]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    return context, page, ConsoleLog().attach(page)


def _picture_shown(page: Any, selector: str, timeout: float = 180_000) -> None:
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel);"
        " return !!i && /^(blob:|data:)/.test(i.getAttribute('src') || '')"
        " && i.complete && i.naturalWidth > 0; }",
        arg=selector,
        timeout=timeout,
    )


def _no_widget_errors(page: Any) -> None:
    text = page.locator("body").inner_text()
    assert "Error displaying widget" not in text, "a widget failed to render"
    assert "model not found" not in text


def _run_and_render(notebook: NotebookPage) -> None:
    notebook.open(NOTEBOOK, timeout=120_000)
    notebook.run_all()
    page = notebook.page
    for name in ("activations", "cam", "explorer"):
        _picture_shown(page, f"{ROOTS[name]} img.cnnviz{'-cam' if name == 'cam' else ''}-view")
    page.locator(ROOTS["filters"]).first.wait_for(state="visible", timeout=180_000)


def _stop_filters(notebook: NotebookPage) -> float:
    page = notebook.page
    assert notebook.probe("fx.steps", setup="fx.steps = 1024") == 1024  # a long run starts
    label = f"{ROOTS['filters']} .cnnviz-filters-progress-label"
    page.wait_for_function(
        "sel => /step \\d+ of \\d+/.test(document.querySelector(sel)?.textContent || '')",
        arg=label,
        timeout=180_000,
    )
    started = time.monotonic()
    page.locator(f"{ROOTS['filters']} .cnnviz-filters-stop button, "
                 f"{ROOTS['filters']} button.cnnviz-filters-stop").first.click()  # fmt: skip
    page.wait_for_function(
        "sel => document.querySelector(sel)?.textContent.trim() === 'stopped'",
        arg=label,
        timeout=10_000,
    )
    shown = time.monotonic() - started
    # The worker itself ends within half a second of the request.
    assert notebook.probe("fx._runner.wait(0.5) and not fx.busy") is True
    return shown


def test_stock_jupyterlab_renders_every_explorer_and_reacts(chromium: Any, stock_lab: Any):
    context, page, console = _page(chromium)
    notebook = AnyNotebookPage(page, stock_lab)
    try:
        _run_and_render(notebook)
        _no_widget_errors(page)
        assert notebook.probe("sorted(cv.widgets.frontend.frontend_features())") == []
        notes = page.locator(f"{ROOTS['activations']} .cnnviz-frontend-note").inner_text()
        assert "use the Open menu instead" in notes and "showing a plain figure" in notes
        cam_note = page.locator(f"{ROOTS['cam']} .cnnviz-cam-frontend-note").inner_text()
        assert "pick a class from the list" in cam_note

        # Activations: the stock Open menu opens channel 5 of the grid.
        view = f"{ROOTS['activations']} img.cnnviz-view"
        before = page.locator(view).get_attribute("src")
        page.locator(f"{ROOTS['activations']} .cnnviz-open select").select_option(label="5")
        page.wait_for_function(
            "([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
            arg=[view, before],
        )
        assert notebook.probe("[ex.mode, ex.channel]") == ["channel", 5]
        assert "channel 5" in page.locator(f"{ROOTS['activations']} .cnnviz-caption").inner_text()

        # Detail tab: a plain matplotlib picture.
        page.locator(f"{ROOTS['activations']} .lm-TabBar-tab", has_text="Detail").click()
        _picture_shown(page, f"{ROOTS['activations']} img.cnnviz-detail-static")

        # CAM: the class list stands in for the bar chart.
        options = page.locator(f"{ROOTS['cam']} .cnnviz-cam-chart select option")
        second = options.nth(1).inner_text()
        page.locator(f"{ROOTS['cam']} .cnnviz-cam-chart select").select_option(index=1)
        # The list writes "tiger cat · 15.6%" with no-break spaces (kept on one line).
        label = second.replace("\xa0", " ").split(" · ")[0]
        state = notebook.probe("[cam.chart.index, cam.class_index, cam.top[1][0], cam.error]")
        assert state[0] == 1 and state[1] == state[2], state
        page.wait_for_function(
            "([sel, text]) => document.querySelector(sel)?.textContent.includes(text)",
            arg=[f"{ROOTS['cam']} .cnnviz-cam-caption", label],
            timeout=180_000,
        )
        assert notebook.probe("cam.class_index == cam.top[1][0]") is True

        # The tabbed Explorer: its Class activation tab builds and shows a map.
        page.locator(f"{ROOTS['explorer']} .lm-TabBar-tab", has_text="Class activation").first.click()
        _picture_shown(page, f"{ROOTS['explorer']} .cnnviz-cam-explorer img.cnnviz-cam-view")

        shown = _stop_filters(notebook)
        print(f"\nstock JupyterLab: Stop shown {shown:.2f} s after the click")
        _no_widget_errors(page)
        errors = [e for e in console.errors if "favicon" not in e]
        assert not [e for e in errors if re.search("cnnviz|widget", e, re.I)], errors
    finally:
        context.close()


def test_notebook7_renders_every_explorer_and_stops(chromium: Any, notebook7: Any):
    context, page, _console = _page(chromium)
    notebook = AnyNotebookPage(page, notebook7)
    try:
        _run_and_render(notebook)
        _no_widget_errors(page)
        # Full front end here: clicks reach the kernel as ipyevents events.
        features = notebook.probe("sorted(cv.widgets.frontend.frontend_features())")
        assert {"bqplot", "ipyevents", "ipympl"} <= set(features), features
        slider = page.locator(f"{ROOTS['activations']} .cnnviz-mode button", has_text="Channel")
        slider.first.click()
        page.wait_for_function(
            "sel => /channel \\d+ · values/.test(document.querySelector(sel)?.textContent || '')",
            arg=f"{ROOTS['activations']} .cnnviz-caption",
        )
        shown = _stop_filters(notebook)
        print(f"\nNotebook 7: Stop shown {shown:.2f} s after the click")
        _no_widget_errors(page)
    finally:
        context.close()


def test_voila_renders_every_explorer_and_stops(chromium: Any, tmp_path: Path):
    pytest.importorskip("voila", reason="Voilà comes with the test extra")
    from test_voila_browser import running_voila

    source = tmp_path / "source"
    source.mkdir()
    write_notebook(source, steps=1024)  # no kernel access here: the long run starts at once
    context, page, _console = _page(chromium)
    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"),
               lambda route: route.fulfill(status=200, body=""))  # offline: CDN fonts  # fmt: skip
    try:
        with running_voila(source, tmp_path / "voila", NOTEBOOK) as (url, _log):
            page.goto(url, wait_until="domcontentloaded", timeout=300_000)
            for name in ("activations", "cam", "explorer"):
                view = f"img.cnnviz{'-cam' if name == 'cam' else ''}-view"
                _picture_shown(page, f"{ROOTS[name]} {view}", timeout=300_000)
            _no_widget_errors(page)
            view = f"{ROOTS['activations']} img.cnnviz-view"
            before = page.locator(view).get_attribute("src")
            page.locator(f"{ROOTS['activations']} .cnnviz-mode button", has_text="Sum").click()
            page.wait_for_function(
                "([sel, old]) => document.querySelector(sel).getAttribute('src') !== old",
                arg=[view, before],
            )
            assert "sum of all" in page.locator(f"{ROOTS['activations']} .cnnviz-caption").inner_text()
            label = f"{ROOTS['filters']} .cnnviz-filters-progress-label"
            page.wait_for_function(
                "sel => /step \\d+ of \\d+/.test(document.querySelector(sel)?.textContent || '')",
                arg=label, timeout=180_000,
            )  # fmt: skip
            page.locator(f"{ROOTS['filters']} button.cnnviz-filters-stop").click()
            page.wait_for_function(
                "sel => document.querySelector(sel)?.textContent.trim() === 'stopped'",
                arg=label, timeout=10_000,
            )  # fmt: skip
            _no_widget_errors(page)
    finally:
        context.close()
