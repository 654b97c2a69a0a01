"""Execute notebooks with nbclient in a kernel of a chosen Python, offline and isolated.

Shared by ``test_notebooks.py`` (kernel = this interpreter, package from the checkout) and
``test_binder.py`` (kernel = a fresh virtual environment built from ``binder/`` alone).

The kernelspec is written to a private ``JUPYTER_PATH`` (``<root>/share``), so the machine's own
``python3`` kernelspec, if any, does not matter. Every kernel gets:

- ``CNNVIZ_MAX_STEPS``: filter-ascent optimisation capped, as in CI,
- ``CNNVIZ_CACHE_DIR`` = ``<root>/cache`` (no cached pictures from earlier runs),
- ``CNNVIZ_ONLINE=0``: the cells that would download weights must skip,
- a private ``IPYTHONDIR`` and the inline matplotlib backend, whatever ``MPLBACKEND`` the shell has.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_ROOT / "notebooks"
NOTEBOOKS = sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb"))
# Every tutorial also in Simplified Chinese (notebooks/zh/), executed and checked the same way.
ZH_NOTEBOOKS = sorted(f"zh/{p.name}" for p in (NOTEBOOK_DIR / "zh").glob("*.ipynb"))
ALL_NOTEBOOKS = NOTEBOOKS + ZH_NOTEBOOKS

MAX_STEPS = 16
CELL_TIMEOUT = 300  # seconds; the slowest cell (Score-CAM, filter ascent) takes ~10 s
STARTUP_TIMEOUT = 120


def kernel_env(root: Path, max_steps: int = MAX_STEPS) -> dict[str, str]:
    """The environment every test kernel runs with (scratch directories under ``root``)."""
    return {
        "CNNVIZ_MAX_STEPS": str(max_steps),
        "CNNVIZ_CACHE_DIR": str(root / "cache"),
        "CNNVIZ_ONLINE": "0",
        "IPYTHONDIR": str(root / "ipython"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JUPYTER_PLATFORM_DIRS": "1",
    }


def write_kernelspec(
    root: Path,
    kernel_name: str,
    python: str | Path,
    display_name: str,
    extra_env: Mapping[str, str] = (),
) -> Path:
    """Make ``root`` a kernel root: ``share/kernels/<kernel_name>``, ``ipython``, ``cache``, ``cwd``.

    The kernel runs ``python -m ipykernel_launcher`` with :func:`kernel_env` plus ``extra_env``.
    Returns ``root``.
    """
    spec_dir = root / "share" / "kernels" / kernel_name
    spec_dir.mkdir(parents=True)
    for scratch in ("ipython", "cache", "cwd"):
        (root / scratch).mkdir()
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        "env": {**dict(extra_env), **kernel_env(root)},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return root


@contextmanager
def jupyter_path(root: Path) -> Iterator[Path]:
    """Make the kernelspecs under ``root/share`` the ones nbclient finds, for the block."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root / "share"))
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield root


def execute_notebook(path: Path, kernel_name: str, root: Path) -> tuple[object, float]:
    """Run the notebook at ``path`` top to bottom in ``root/cwd``; return (notebook, seconds).

    Errors are not allowed (the first failing cell raises). The kernel process's own output
    (TensorFlow's C++ log, jupyter_client warnings) goes to ``root/<stem>.kernel.log``, shown
    when the notebook fails; cell outputs are in the notebook as usual.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=CELL_TIMEOUT,
        startup_timeout=STARTUP_TIMEOUT,
        allow_errors=False,
        record_timing=True,
        resources={"metadata": {"path": str(root / "cwd")}},
    )
    log_path = root / f"{Path(path).stem}.kernel.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        try:
            client.execute(stdout=log, stderr=log)
        except Exception:
            log.flush()
            tail = log_path.read_text()[-5000:]
            print(f"\n{Path(path).name} failed; kernel log {log_path}:\n{tail}")
            raise
    return nb, time.perf_counter() - start
