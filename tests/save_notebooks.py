"""Re-run the tutorials and store them WITH their outputs (``make notebooks``).

Saved notebooks are read where no kernel runs (GitHub, nbviewer): their pictures must be in the
file. Each notebook is executed with nbclient exactly as ``tests/test_notebooks.py`` does
(a private kernelspec of this Python, the package from the checkout, offline), then stored:

- every code cell keeps its outputs and gets ``metadata.cnnviz.source_sha256``, the hash of its
  source: ``tests/test_notebooks.py`` fails when a cell changed after its outputs were made;
- the live-widget part of each output (``application/vnd.jupyter.widget-view+json``) and the
  widget state are dropped: with no kernel they could only show "model not found", and the
  static ``image/png`` each explorer puts beside its view is what a reader sees instead;
  outputs left with nothing to show (progress bars) are dropped too.

Filter ascent runs ``CNNVIZ_SAVE_STEPS`` steps (64 by default) so the stored pictures are
recognisable; the tests cap it at 16.

Usage: ``python tests/save_notebooks.py [NAME.ipynb | zh/NAME.ipynb ...]`` (default: every
notebook, English and Chinese).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebook_runner import (  # the tests directory is not a package: found on sys.path
    ALL_NOTEBOOKS,
    NOTEBOOK_DIR,
    REPO_ROOT,
    execute_notebook,
    jupyter_path,
    write_kernelspec,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KERNEL_NAME = "cnnviz-save-notebooks"


def source_hash(source: str | list[str]) -> str:
    """SHA-256 of a cell's source (a string or nbformat's list of lines)."""
    text = source if isinstance(source, str) else "".join(source)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _shown(output) -> bool:
    """Whether an output still shows something once its widget view is dropped."""
    if output.get("output_type") not in ("display_data", "execute_result"):
        return True
    data = output.get("data", {})
    if WIDGET_VIEW not in data:
        return True
    del data[WIDGET_VIEW]
    return any(key != "text/plain" for key in data)


def stamp(nb) -> None:
    """Drop live-widget parts; record each code cell's source hash beside its outputs."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs = [o for o in cell.outputs if _shown(o)]
        cell.metadata.pop("execution", None)  # timings change every run: noise in diffs
        cell.metadata["cnnviz"] = {"source_sha256": source_hash(cell.source)}


def main(names: list[str]) -> int:
    import nbformat

    os.environ.setdefault("CNNVIZ_SAVE_STEPS", "64")
    with tempfile.TemporaryDirectory(prefix="cnnviz-save-") as tmp:
        root = Path(tmp)
        pythonpath = os.pathsep.join(p for p in [str(REPO_ROOT), os.environ.get("PYTHONPATH")] if p)
        write_kernelspec(
            root, KERNEL_NAME, sys.executable, "cnnviz_widgets (saving notebooks)",
            {"PYTHONPATH": pythonpath},
        )  # fmt: skip
        # The test cap (16 steps) is written into the kernelspec; the stored pictures get more.
        spec_path = root / "share" / "kernels" / KERNEL_NAME / "kernel.json"
        spec = json.loads(spec_path.read_text())
        spec["env"]["CNNVIZ_MAX_STEPS"] = os.environ["CNNVIZ_SAVE_STEPS"]
        spec_path.write_text(json.dumps(spec, indent=1))
        with jupyter_path(root):
            for name in names or ALL_NOTEBOOKS:
                nb, seconds = execute_notebook(NOTEBOOK_DIR / name, KERNEL_NAME, root)
                nb.metadata["kernelspec"] = {
                    "name": "python3", "display_name": "Python 3", "language": "python",
                }  # fmt: skip
                stamp(nb)
                nbformat.validate(nb)
                nbformat.write(nb, NOTEBOOK_DIR / name)
                print(f"{name}: executed in {seconds:.1f} s, saved with outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
