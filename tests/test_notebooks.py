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
    MAX_STEPS,
    NOTEBOOK_DIR,
    NOTEBOOKS,
    REPO_ROOT,
    execute_notebook,
    jupyter_path,
    write_kernelspec,
)

pytestmark = pytest.mark.notebooks

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
        Path(keep).mkdir(parents=True, exist_ok=True)
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


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
    import nbformat

    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{name}: cells {dirty} have outputs; clear them before committing"
    assert "widgets" not in nb.metadata, f"{name}: saved widget state; clear outputs"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("name", NOTEBOOKS)
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


def test_04_online_cell_skips_offline(notebook_env):
    nb = _execute("04_your_model.ipynb", notebook_env).notebook
    (cell,) = _tagged(nb, "online")
    assert _stdout(cell).startswith("Skipped: "), _stdout(cell)
    assert not _bundles(cell), "the offline branch must not display anything"


def test_02_filter_ascent_is_capped_in_ci(notebook_env):
    nb = _execute("02_filters.ipynb", notebook_env).notebook
    text = "".join(_stdout(c) for c in nb.cells if c.cell_type == "code")
    assert f"{MAX_STEPS} steps per picture" in text


# ------------------------------------------------------------------------------- total time
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
