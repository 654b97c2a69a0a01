"""Every notebook in ``notebooks/`` runs top to bottom, offline, and shows what it promises.

Run: ``.venv/bin/python -m pytest tests/test_notebooks.py -q -s`` (``-m notebooks`` selects them).

Each notebook is executed with nbclient in a fresh kernel of *this* Python (a kernelspec written
to a temporary directory points at ``sys.executable``, so the machine's own ``python3``
kernelspec, if any, does not matter), with:

- ``PYTHONPATH`` = the repository root (the package need not be installed),
- ``CNNVIZ_MAX_STEPS=16``: filter-ascent optimisation capped, as in CI,
- ``CNNVIZ_CACHE_DIR`` = a temporary directory (no cached pictures from earlier runs),
- ``CNNVIZ_ONLINE=0``: the cells that would download weights must skip,
- the inline matplotlib backend, whatever ``MPLBACKEND`` the shell has.

Cells declare what they must show through their tags (``metadata.tags``):

- ``widget``: a widget view *and* its static ``image/png`` fallback (the explorers'
  ``_repr_mimebundle_`` adds it), so a saved notebook shows the picture without a kernel;
- ``widget-container``: a widget view (an ipywidgets container has no static picture);
- ``figure`` / ``image``: an ``image/png`` output (matplotlib figure, PIL image);
- ``train`` (01), ``localisation`` (03), ``online`` (04): printed numbers checked below.

Set ``CNNVIZ_EXECUTED_NOTEBOOKS=<dir>`` to keep the executed notebooks (with outputs) there.
"""

from __future__ import annotations

import base64
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from notebook_runner import (
    ALL_NOTEBOOKS,
    MAX_STEPS,
    NOTEBOOK_DIR,
    NOTEBOOKS,
    REPO_ROOT,
    ZH_NOTEBOOKS,
    execute_notebook,
    jupyter_path,
    write_kernelspec,
)

# Executing notebooks takes minutes: those tests are marked; the checks of the stored files
# (outputs present and made from the current code) take milliseconds and always run.
executes = pytest.mark.notebooks

EXPECTED = [
    "00_quickstart.ipynb",
    "01_activations.ipynb",
    "02_filters.ipynb",
    "03_class_activation.ipynb",
    "04_your_model.ipynb",
]


KERNEL_NAME = "cnnviz-notebook-test"
TOTAL_TARGET = 300  # seconds for notebooks 00–04 together on 2 CPU cores, steps capped

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG = "image/png"


@dataclass
class Run:
    notebook: object  # nbformat.NotebookNode, with outputs
    seconds: float


_RUNS: dict[str, Run] = {}


@pytest.fixture(scope="module")
def notebook_env(tmp_path_factory: pytest.TempPathFactory):
    """A kernelspec for this interpreter in a private JUPYTER_PATH, and a scratch cwd."""
    root = tmp_path_factory.mktemp("notebooks")
    pythonpath = os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH")] if p)
    write_kernelspec(
        root,
        KERNEL_NAME,
        sys.executable,
        "cnnviz_widgets notebook test",
        {"PYTHONPATH": pythonpath},
    )
    with jupyter_path(root):
        yield root


def _execute(name: str, root: Path) -> Run:
    """Run the notebook once per test session (later tests reuse the executed copy)."""
    if name in _RUNS:
        return _RUNS[name]
    import nbformat

    nb, seconds = execute_notebook(NOTEBOOK_DIR / name, KERNEL_NAME, root)
    print(f"\n{name}: executed in {seconds:.1f} s")
    keep = os.environ.get("CNNVIZ_EXECUTED_NOTEBOOKS")
    if keep:
        (Path(keep) / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, Path(keep) / name)
    _RUNS[name] = Run(nb, seconds)
    return _RUNS[name]


def _tagged(nb, tag: str) -> list:
    cells = [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]
    assert cells, f"no cell tagged {tag!r}"
    return cells


def _stdout(cell) -> str:
    return "".join(
        o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == "stdout"
    )


def _bundles(cell) -> list[dict]:
    return [o.data for o in cell.outputs if o.output_type in ("display_data", "execute_result")]


def _check_png(encoded: str, where: str) -> tuple[int, int]:
    """A real picture: decodes, at least 32 px a side, not one flat colour."""
    import numpy as np
    from PIL import Image

    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))
    h, w = picture.shape[:2]
    assert h >= 32 and w >= 32, f"{where}: PNG is only {w}×{h}"
    assert float(picture.std()) > 2.0, f"{where}: PNG is one flat colour"
    return w, h


def _first_line(cell) -> str:
    return "".join(cell.source).splitlines()[0]


# ------------------------------------------------------------------------------- the notebooks
def test_every_expected_notebook_is_there():
    missing = [n for n in EXPECTED if n not in NOTEBOOKS]
    assert not missing, f"missing notebooks: {missing}"
    lessons = [n for n in NOTEBOOKS if n.startswith("lesson")]
    untranslated = [n for n in NOTEBOOKS if f"zh/{n}" not in ZH_NOTEBOOKS]
    assert len(lessons) == 4, f"lesson notebooks: {lessons}"
    assert not untranslated, f"no Chinese version in notebooks/zh/: {untranslated}"


@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_is_stored_with_outputs_of_its_current_code(name):
    """Stored executed (``make notebooks``): every code cell ran, its outputs were made from
    its current source (hash in the cell's metadata), and pictures are there as PNG."""
    import nbformat
    from save_notebooks import source_hash

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in nb.metadata, f"{name}: widget state stored; run `make notebooks`"
    code = [c for c in nb.cells if c.cell_type == "code"]
    not_run = [i for i, c in enumerate(code) if c.execution_count is None]
    assert not not_run, f"{name}: code cells {not_run} have no outputs; run `make notebooks`"
    stale = [
        i
        for i, c in enumerate(code)
        if c.metadata.get("cnnviz", {}).get("source_sha256") != source_hash(c.source)
    ]
    assert not stale, (
        f"{name}: code cells {stale} changed after their outputs were made; run `make notebooks`"
    )
    for i, cell in enumerate(code):
        where = f"{name}, cell {i} ({_first_line(cell)!r})"
        assert not [o for o in cell.outputs if o.output_type == "error"], f"{where}: error stored"
        streams = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for noise in ("absl::InitializeLog", "cpu_feature_guard", "oneDNN custom operations"):
            assert noise not in streams, f"{where}: TensorFlow's start-up line stored: {noise}"
        tags = cell.get("metadata", {}).get("tags", [])
        if {"widget", "figure", "image"} & set(tags):
            pngs = [b[PNG] for b in _bundles(cell) if PNG in b]
            assert pngs, f"{where}: no picture stored"
            for png in pngs:
                _check_png(png, where)
        for bundle in _bundles(cell):
            assert WIDGET_VIEW not in bundle, f"{where}: a live-widget output was stored"
            text = bundle.get("text/plain", "")
            assert "children=(" not in text, f"{where}: unreadable text form stored: {text[:80]}"


def test_stale_cell_is_detected():
    """The staleness check compares hashes of the exact source: one changed character counts."""
    from save_notebooks import source_hash

    assert source_hash(["a = 1\n", "a"]) == source_hash("a = 1\na")
    assert source_hash("ex.channel = 4") != source_hash("ex.channel = 5")


@executes
@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_notebook_runs_and_shows_its_pictures(name, notebook_env):
    run = _execute(name, notebook_env)
    nb = run.notebook
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: not every cell ran"

    for i, cell in enumerate(code):
        where = f"{name}, cell {i} ({_first_line(cell)!r})"
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{where}: {errors[0].ename}: {errors[0].evalue}"
        stderr = "".join(
            o.get("text", "")
            for o in cell.outputs
            if o.output_type == "stream" and o.name == "stderr"
        )
        assert "Traceback" not in stderr and "Error" not in stderr, f"{where} stderr:\n{stderr}"
        tags = cell.get("metadata", {}).get("tags", [])
        bundles = _bundles(cell)
        if "widget" in tags:
            both = [b for b in bundles if WIDGET_VIEW in b and PNG in b]
            assert both, (
                f"{where}: expected a widget view with an image/png fallback; got bundles "
                f"{[sorted(b) for b in bundles]}"
            )
            _check_png(both[-1][PNG], where)
        if "widget-container" in tags:
            assert any(WIDGET_VIEW in b for b in bundles), f"{where}: no widget view"
        if "figure" in tags or "image" in tags:
            pngs = [b[PNG] for b in bundles if PNG in b]
            assert pngs, f"{where}: no image/png output; got {[sorted(b) for b in bundles]}"
            for png in pngs:
                _check_png(png, where)


# ------------------------------------------------------------------------ what they must print
@executes
def test_01_digit_network_trains_past_90_percent(notebook_env):
    nb = _execute("01_activations.ipynb", notebook_env).notebook
    (cell,) = _tagged(nb, "train")
    text = _stdout(cell)
    trained = re.search(r"^test accuracy: ([0-9.]+)$", text, re.M)
    untrained = re.search(r"^untrained test accuracy: ([0-9.]+)", text, re.M)
    assert trained and untrained, f"accuracy lines not found in:\n{text}"
    print(f"\n01: test accuracy {trained[1]} trained, {untrained[1]} untrained")
    assert float(trained[1]) >= 0.9
    assert float(untrained[1]) < 0.5


@executes
def test_03_maps_find_the_cat_and_the_espresso(notebook_env):
    nb = _execute("03_class_activation.ipynb", notebook_env).notebook
    (cell,) = _tagged(nb, "localisation")
    text = _stdout(cell)
    cat = re.search(r"^Egyptian cat \(285\): ([0-9.]+) of the map's heat is on the cat", text, re.M)
    coffee = re.search(
        r"^espresso \(967\): ([0-9.]+) of the map's heat is on the coffee", text, re.M
    )
    assert cat and coffee, f"mass-fraction lines not found in:\n{text}"
    print(
        f"\n03: Grad-CAM mass, cat on the cat half {cat[1]}, espresso on the coffee half {coffee[1]}"
    )
    assert float(cat[1]) > 0.8
    assert float(coffee[1]) > 0.8


@executes
def test_04_online_cell_skips_offline(notebook_env):
    nb = _execute("04_your_model.ipynb", notebook_env).notebook
    (cell,) = _tagged(nb, "online")
    assert _stdout(cell).startswith("Skipped: "), _stdout(cell)
    assert not _bundles(cell), "the offline branch must not display anything"


@executes
def test_02_filter_ascent_is_capped_in_ci(notebook_env):
    nb = _execute("02_filters.ipynb", notebook_env).notebook
    text = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    assert f"{MAX_STEPS} steps per picture" in text


# ------------------------------------------------------------------------------- total time
@executes
def test_total_time_of_notebooks_00_to_04(notebook_env):
    times = {name: _execute(name, notebook_env).seconds for name in EXPECTED}
    total = sum(times.values())
    lines = "\n".join(f"  {name:<28} {seconds:6.1f} s" for name, seconds in times.items())
    verdict = "within" if total <= TOTAL_TARGET else "OVER"
    print(
        f"\nnotebooks 00–04 executed in {total:.1f} s together "
        f"({verdict} the {TOTAL_TARGET} s target; CNNVIZ_MAX_STEPS={MAX_STEPS}):\n{lines}"
    )
    # Twice the target: a shared, busy machine may be slow, but not by that much; an uncapped
    # optimisation (256 steps) or a download attempt would be.
    assert total < 2 * TOTAL_TARGET
