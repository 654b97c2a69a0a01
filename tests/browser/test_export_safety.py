"""An exported HTML page, opened in a real browser, shows hostile names as text and runs nothing.

``export_html`` escapes every name it prints *and* adds a strict Content-Security-Policy. The page
is checked twice: as written (both defences on), and with the browser told to ignore the CSP
(Playwright's ``bypass_csp``), so the escaping alone must hold. A positive control (the same
names written raw into a page) shows the detectors would catch a script that did run.

Model names and class labels carry the payloads; layer names cannot carry ``<`` (TensorFlow's
scope names forbid it; see ``tests/test_export.py``), so the layer is ``conv>1``.

No Jupyter server: the page is a file opened via ``file://`` in headless Chromium.
"""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from widget_comm import recording_comms  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("recording_comms")]

ALERT = "<img src=x onerror=alert(1)>"
PWN = '<img src=x onerror="window.__pwned=1">'
SVG = "<svg onload=alert(2)>"
MODEL_NAME = "<svg onload=alert(3)>"
LABELS = [ALERT, PWN, SVG]
HOSTILE = [ALERT, PWN, SVG, MODEL_NAME]


@pytest.fixture
def evil_page(keras, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Grad-CAM explorer over a model named like markup, with markup class labels, exported."""
    import numpy as np

    from cnnviz_widgets.cache import ActivationCache
    from cnnviz_widgets.widgets.cam import CamExplorer

    keras.utils.set_random_seed(0)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(3, 3, name="conv>1")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="logits")(x)
    model = keras.Model(inputs, outputs, name=MODEL_NAME)
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)

    cam = CamExplorer(model, image, labels=LABELS, k=3, cache=ActivationCache())
    try:
        assert cam.wait(30), "the first map was not ready within 30 s"
        path = cam.export_html(tmp_path_factory.mktemp("export") / "evil.html")
    finally:
        cam.close()
    return path


def _open(chromium, path: Path, *, bypass_csp: bool):
    """Open ``path`` in a fresh context; return (context, page, dialogs, console errors)."""
    context = chromium.new_context(bypass_csp=bypass_csp)
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.goto(path.as_uri(), wait_until="load")
    # onerror/onload handlers of injected markup would have fired by now; give timers a moment.
    page.wait_for_timeout(500)
    return context, page, dialogs, errors


def _assert_ran_nothing(page, dialogs: list[str]) -> None:
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert page.evaluate("() => window.__pwned") is None, "an injected onerror handler ran"
    # No element was created from a name: no <svg> at all, and no <img> without a data: picture.
    assert page.locator("svg").count() == 0
    assert page.locator("img:not([src^='data:image/png'])").count() == 0


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["with-csp", "csp-bypassed"])
def test_exported_page_shows_hostile_names_as_text_and_runs_nothing(
    chromium, evil_page: Path, bypass_csp: bool
):
    context, page, dialogs, errors = _open(chromium, evil_page, bypass_csp=bypass_csp)
    try:
        _assert_ran_nothing(page, dialogs)
        assert errors == [], f"console errors: {errors}"

        # Every hostile name is on the page as visible text, exactly as written.
        for name in LABELS:
            cell = page.locator("td", has_text=name)
            assert cell.count() == 1, f"label {name!r}: {cell.count()} table cells"
            assert cell.first.is_visible(), f"label {name!r} is not visible"
            assert cell.first.inner_text() == name
        # The caption names the shown class (the top one) by its label, as text.
        caption = page.locator("p.caption")
        assert caption.is_visible()
        assert any(
            caption.inner_text().startswith(f"{label} (class {i}) ")
            for i, label in enumerate(LABELS)
        ), caption.inner_text()
        heading = page.locator("h1")
        assert heading.inner_text() == f"CamExplorer · {MODEL_NAME}"
        assert heading.is_visible()
        assert page.title() == f"CamExplorer · {MODEL_NAME}"
        assert page.get_by_text("conv>1").count() >= 1  # the layer, in the state table

        # Every picture is an embedded PNG that the browser decoded.
        images = page.locator("img")
        assert images.count() >= 1
        for i in range(images.count()):
            img = images.nth(i)
            src = img.get_attribute("src") or ""
            assert src.startswith("data:image/png;base64,"), f"img {i}: src {src[:40]!r}"
            loaded = img.evaluate(
                "el => el.complete && el.naturalWidth > 0 && el.naturalHeight > 0"
            )
            assert loaded, f"img {i} did not load: {img.evaluate('el => el.naturalWidth')} px wide"
            assert img.is_visible()
    finally:
        context.close()


def _raw_copy(evil_page: Path, tmp_path: Path) -> Path:
    """The exported page with every hostile name unescaped (its CSP kept)."""
    page_text = evil_page.read_text(encoding="utf-8")
    raw = page_text
    for name in HOSTILE:
        raw = raw.replace(html.escape(name), name)
    assert raw != page_text and "Content-Security-Policy" in raw
    unsafe = tmp_path / "raw.html"
    unsafe.write_text(raw, encoding="utf-8")
    return unsafe


def test_control_raw_names_run_once_the_csp_is_bypassed(chromium, evil_page: Path, tmp_path):
    """Positive control: the detectors catch markup that runs, and ``bypass_csp`` really
    switches the page's CSP off (so the ``csp-bypassed`` case above tests the escaping alone)."""
    context, page, dialogs, _ = _open(chromium, _raw_copy(evil_page, tmp_path), bypass_csp=True)
    try:
        assert dialogs, "no dialog from the raw alert() payloads"
        assert page.evaluate("() => window.__pwned") == 1
        with pytest.raises(AssertionError):
            _assert_ran_nothing(page, dialogs)
    finally:
        context.close()


def test_control_the_csp_alone_stops_raw_names(chromium, evil_page: Path, tmp_path):
    """The second defence on its own: raw markup becomes elements, but no handler runs."""
    context, page, dialogs, errors = _open(
        chromium, _raw_copy(evil_page, tmp_path), bypass_csp=False
    )
    try:
        assert dialogs == [], dialogs
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("svg").count() >= 1  # the markup did become elements
        assert any("Content Security Policy" in e for e in errors), errors
    finally:
        context.close()
