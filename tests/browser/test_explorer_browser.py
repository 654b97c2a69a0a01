"""The quick-start notebook's tabbed ``cv.Explorer`` in a real JupyterLab + headless Chromium.

Run: ``.venv/bin/python -m pytest tests/browser -m browser -x -q -s``

Opens ``notebooks/00_quickstart.ipynb`` (the fixture serves a temporary copy; the committed
notebook is not changed), runs it with *Run ▸ Run All Cells*, then works the last cell's
``cv.Explorer(model, image)`` through the page: opens the *Class activation* tab, waits for the
Grad-CAM overlay, clicks the second bar of the bqplot "top predictions" chart and checks that
the overlay in the page changes and that the kernel now explains that bar's class (read through
a cell typed at the end of the notebook: the unnamed Explorer is found in ``Out``). Then opens
*Summary* and *Filters* (the kernel runs with ``CNNVIZ_MAX_STEPS=8``) and comes back, and
asserts a clean browser console.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from typing import Any

import pytest
from jupyterlab_driver import PAGE_IMAGE_SHA256, ConsoleLog, NotebookPage

pytestmark = pytest.mark.browser

NOTEBOOK = "00_quickstart.ipynb"
# The test works on its own copy (in the fixture's temporary folder), so it gets its own kernel
# and its probe cell never reaches the notebook another test opens.
COPY = "00_quickstart.explorer-test.ipynb"

TABS = ".cnnviz-explorer .cnnviz-explorer-tabs"
CAM = ".cnnviz-explorer .cnnviz-cam-explorer"
CAM_VIEW = f"{CAM} img.cnnviz-cam-view"
CAM_CAPTION = f"{CAM} .cnnviz-cam-caption"
CAM_BARS = f"{CAM} .cnnviz-cam-chart rect.bar"
# The tab's own summary (the Activations tab holds another one).
SUMMARY = ".cnnviz-explorer .cnnviz-summary:not(.cnnviz-activation-explorer .cnnviz-summary)"
CLICKED_BAR = 1  # the second bar: the runner-up class

# Console errors that say nothing about this package (pattern, reason). None seen so far.
IGNORED_CONSOLE_ERRORS: list[tuple[str, str]] = []

# Defined in the kernel by the first probe. The notebook's last cell is `cv.Explorer(model,
# image)`, unnamed: IPython keeps it in Out.
SETUP = """
import hashlib as _hashlib
def _cnnviz_explorer():
    return [v for v in Out.values() if type(v).__name__ == "Explorer"][-1]
def _cnnviz_cam_state():
    cam = _cnnviz_explorer().cam
    if cam is None:
        return None
    return dict(
        class_index=cam.class_index, top=[[int(i), str(l), float(p)] for i, l, p in cam.top],
        selected=None if cam.bars.selected is None else [int(i) for i in cam.bars.selected],
        bar_names=list(cam.bars.x), busy=cam.busy, error=cam.error,
        png_sha256=_hashlib.sha256(cam.png).hexdigest(),
        view_sha256=_hashlib.sha256(cam.view.value).hexdigest(),
        caption=cam.caption.value,
        selected_tab=_cnnviz_explorer().tabs.selected_index,
    )
"""

# What d3 bound to each bar of the chart, its fill and its place (bqplot draws one
# `rect.bar` per value, in data order).
_BARS_JS = """
(sel) => [...document.querySelectorAll(sel)].map((r, i) => {
    const d = r.__data__ || (r.parentNode && r.parentNode.__data__) || {};
    const box = r.getBoundingClientRect();
    return {i, x: d.x === undefined ? null : String(d.x), y: d.y === undefined ? null : d.y,
            fill: getComputedStyle(r).fill, opacity: getComputedStyle(r).opacity,
            w: box.width, h: box.height, top: box.top};
})
"""

_IMG_READY = (
    "([sel, old]) => { const i = document.querySelector(sel);"
    " return !!i && /^(blob:|data:)/.test(i.getAttribute('src') || '')"
    " && i.getAttribute('src') !== old && i.complete && i.naturalWidth > 0; }"
)


def _unexpected_console_errors(console: ConsoleLog) -> list[str]:
    return [
        message
        for message in console.errors
        if not any(re.search(pattern, message) for pattern, _ in IGNORED_CONSOLE_ERRORS)
    ]


class Checks:
    def __init__(self, nb: NotebookPage) -> None:
        self.nb = nb
        self.page = nb.page
        self._setup_done = False

    def kernel(self, expression: str) -> Any:
        setup = "" if self._setup_done else SETUP
        self._setup_done = True
        return self.nb.probe(expression, setup=setup)

    def cam_state(self) -> dict[str, Any] | None:
        return self.kernel("_cnnviz_cam_state()")

    def cam_src(self) -> str:
        return self.page.locator(CAM_VIEW).get_attribute("src") or ""

    def wait_cam_src_change(self, old: str, timeout: float = 120_000) -> str:
        self.page.wait_for_function(_IMG_READY, arg=[CAM_VIEW, old], timeout=timeout)
        return self.cam_src()

    def tab(self, title: str) -> Any:
        # The outer tab bar comes first in the Tab widget; nested explorers have their own.
        bar = self.page.locator(TABS).first.locator(".lm-TabBar").first
        return bar.locator(".lm-TabBar-tab", has_text=title).first

    def open_tab(self, title: str) -> None:
        tab = self.tab(title)
        tab.click()
        self.page.wait_for_function(
            "el => el.classList.contains('lm-mod-current')", arg=tab.element_handle()
        )

    def cam_in_sync(self, **expected: Any) -> dict[str, Any]:
        """The kernel's CamExplorer has ``expected`` and the page shows exactly its PNG."""
        deadline = time.monotonic() + 60
        while True:
            state = self.cam_state()
            if state is not None and not state["busy"]:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the class-activation map is still being computed: {state}")
            time.sleep(0.5)
        for name, value in expected.items():
            assert state[name] == value, f"kernel cam.{name}={state[name]!r}, expected {value!r}"
        assert state["error"] == "", f"the CamExplorer reports an error: {state['error']}"
        assert state["view_sha256"] == state["png_sha256"], "cam.png is not what cam.view holds"
        deadline = time.monotonic() + 15
        shown = None
        while time.monotonic() < deadline:
            shown = self.page.evaluate(PAGE_IMAGE_SHA256, CAM_VIEW)
            if shown == state["png_sha256"]:
                break
            time.sleep(0.1)
        assert shown == state["png_sha256"], (
            f"the page's overlay (sha256 {shown}) is not the kernel's PNG: {state}"
        )
        return state


def test_quickstart_explorer_tabs_and_cam_bar_click(
    lab_page: tuple[Any, ConsoleLog], lab_server
) -> None:
    page, console = lab_page
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def mark(step: str) -> None:
        timings[step] = round(time.monotonic() - t0, 1)

    nb = NotebookPage(page, lab_server)
    checks = Checks(nb)
    shutil.copyfile(lab_server.root_dir / NOTEBOOK, lab_server.root_dir / COPY)
    try:
        _work_the_explorer(page, console, nb, checks, mark)
    finally:
        _shut_down_kernels(lab_server, COPY)
    print("timings (s from start):", json.dumps(timings))


def _shut_down_kernels(lab_server: Any, path: str) -> None:
    """Delete the server's sessions (and kernels) of ``path``: the next tests get the CPU."""
    headers = {"Authorization": f"token {lab_server.token}"}
    try:
        request = urllib.request.Request(f"{lab_server.url}/api/sessions", headers=headers)
        with urllib.request.urlopen(request, timeout=10) as response:
            sessions = json.load(response)
        for session in sessions:
            if session.get("path") == path:
                urllib.request.urlopen(
                    urllib.request.Request(
                        f"{lab_server.url}/api/sessions/{session['id']}",
                        headers=headers,
                        method="DELETE",
                    ),
                    timeout=20,
                ).close()
    except OSError as exc:
        print(f"(could not shut the test's kernel down: {exc})")


def _work_the_explorer(
    page: Any, console: ConsoleLog, nb: NotebookPage, checks: Checks, mark: Any
) -> None:
    # ---- open and run the notebook; the Explorer is the last output
    nb.open(COPY)
    nb.toggle_left_sidebar()
    nb.run_all()
    nb.wait_all_executed(timeout=180_000)
    page.locator(TABS).first.wait_for(state="visible", timeout=60_000)
    assert checks.kernel("_cnnviz_cam_state()") is None  # built when its tab is first opened
    assert checks.kernel("__import__('os').environ.get('CNNVIZ_MAX_STEPS')") == "8"
    mark("ran all cells")

    # ---- Class activation tab: the Grad-CAM overlay of the top class appears
    checks.tab("Class activation").scroll_into_view_if_needed()
    checks.open_tab("Class activation")
    src = checks.wait_cam_src_change("")
    page.locator(CAM_BARS).first.wait_for(state="visible")
    first = checks.cam_in_sync(selected_tab=2)
    top = first["top"]
    assert len(top) >= 2, top
    assert first["class_index"] == top[0][0]
    assert first["selected"] == [0]
    page.wait_for_function(
        "([sel, label]) => document.querySelector(sel).textContent.includes(label)",
        arg=[CAM_CAPTION, top[0][1]],
    )
    bars = page.evaluate(_BARS_JS, CAM_BARS)
    assert len(bars) == len(top), bars
    mark("class activation tab")

    # ---- click the second bar: the page's overlay changes, the kernel explains that class
    bar_name = bars[CLICKED_BAR]["x"]
    if bar_name is not None:  # d3's datum: the bar's category on the ordinal axis
        assert bar_name == first["bar_names"][CLICKED_BAR], (bars, first["bar_names"])
    else:
        print("(bqplot bound no datum with an x to the bars; bar identity checked by order)")
    expected_class, expected_label = top[CLICKED_BAR][0], top[CLICKED_BAR][1]
    page.locator(CAM_BARS).nth(CLICKED_BAR).click()
    src = checks.wait_cam_src_change(src)
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent.includes(text)",
        arg=[CAM_CAPTION, f"(class {expected_class})"],
        timeout=60_000,
    )
    clicked = checks.cam_in_sync(class_index=expected_class, selected=[CLICKED_BAR])
    assert clicked["png_sha256"] != first["png_sha256"]
    caption = page.locator(CAM_CAPTION).inner_text()
    assert expected_label in caption, caption
    # the clicked bar is the highlighted one in the page too
    after = page.evaluate(_BARS_JS, CAM_BARS)
    assert after[CLICKED_BAR]["fill"] != after[0]["fill"] or (
        after[CLICKED_BAR]["opacity"] != after[0]["opacity"]
    ), after
    mark("bar click")

    # ---- Summary tab and back: same picture, nothing recomputed
    checks.open_tab("Summary")
    page.locator(SUMMARY).first.wait_for(state="visible")
    assert not page.locator(CAM_VIEW).is_visible()
    checks.open_tab("Class activation")
    page.locator(CAM_VIEW).wait_for(state="visible")
    assert checks.cam_src() == src
    checks.cam_in_sync(class_index=expected_class, selected_tab=2)
    mark("summary and back")

    # ---- Filters tab (8 ascent steps per filter here) and back
    checks.open_tab("Filters")
    page.locator(".cnnviz-explorer .cnnviz-filter-explorer").first.wait_for(
        state="visible", timeout=60_000
    )
    checks.open_tab("Class activation")
    page.locator(CAM_VIEW).wait_for(state="visible")
    assert checks.cam_src() == src
    mark("filters and back")

    # ---- a clean console
    unexpected = _unexpected_console_errors(console)
    for line in console.warnings:
        print("console warning:", line)
    assert not unexpected, "browser console errors:\n" + "\n".join(unexpected)
    print(f"\nbars: {[(b['x'], round(b['y'], 3) if b['y'] is not None else None) for b in bars]}")
    print(
        f"clicked bar {CLICKED_BAR}: class {expected_class} ({expected_label}); "
        f"first class {top[0][0]} ({top[0][1]})"
    )
