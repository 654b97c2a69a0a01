"""The Binder set-up works from ``binder/`` alone: every notebook runs in the environment it builds.

Run: ``.venv/bin/python -m pytest tests/test_binder.py -q -s`` (``-m binder`` selects it).

What mybinder's repo2docker does, reproduced in a temporary directory:

1. a clean copy of the repository: only the files ``git ls-files`` lists (plus the notebooks),
   so nothing untracked (a stray module, a build directory, an ``.egg-info``) can leak in;
2. a fresh virtual environment (``python -m venv``);
3. ``pip install -r binder/requirements.txt``, with that environment's ``bin`` first on ``PATH``;
4. ``binder/postBuild``, made executable and run from the copy's root, which must install the
   package itself, non-editable (``pip install .``).

Then every notebook in ``notebooks/`` runs with nbclient (from this test's own environment, the
"Jupyter server" side) in a kernel of the fresh environment's Python, with no ``PYTHONPATH`` and a
working directory outside both checkouts; ``import cnnviz_widgets`` there must come from the fresh
environment's ``site-packages``. The kernels get ``CNNVIZ_MAX_STEPS=16``, a temporary
``CNNVIZ_CACHE_DIR`` and ``CNNVIZ_ONLINE=0`` (this machine has no internet beyond its package
mirror; the online cell of 04 must skip), as in ``test_notebooks.py`` (``notebook_runner.py``).

``binder/apt.txt`` (Debian packages: the full CJK font) is not reproduced here, as it needs root
and apt; where the font is missing, the Chinese notebooks draw with the font subset the package
ships (``cnnviz_widgets.i18n``).

No ``ipykernel`` is added by hand: mybinder's base image provides Jupyter and ``ipykernel``, and
``binder/requirements.txt`` pulls them in anyway (``jupyterlab`` requires ``ipykernel``), so the
fresh environment must be able to run a kernel on what the binder files install. pip's cache is
used (a warm cache makes the build about a minute instead of three).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from notebook_runner import (
    NOTEBOOKS,
    REPO_ROOT,
    execute_notebook,
    jupyter_path,
    write_kernelspec,
)

pytestmark = pytest.mark.binder

KERNEL_NAME = "cnnviz-binder-test"
PIP_TIMEOUT = 1800  # seconds; a cold cache downloads TensorFlow (~250 MB) from the mirror

TIMES: dict[str, float] = {}


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], what: str) -> str:
    """Run ``cmd``, time it under ``what``; on failure show the end of its output."""
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    TIMES[what] = time.perf_counter() - start
    # pip's configured extra index/find-links locations print one warning per package; drop them.
    output = "\n".join(
        line for line in proc.stdout.splitlines() if not line.startswith("WARNING: Location ")
    )
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}): {cmd}\n{output[-6000:]}"
    print(f"\n{what}: {TIMES[what]:.1f} s")
    return output


def _clean_copy(dest: Path) -> Path:
    """The tracked files of the repository (as in the working tree) and the notebooks."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, check=True, capture_output=True
    ).stdout.decode()
    files = {name for name in listed.split("\0") if name}
    files |= {f"notebooks/{name}" for name in NOTEBOOKS}
    for name in sorted(files):
        source = REPO_ROOT / name
        if not source.is_file():  # deleted in the working tree but still in the index
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return dest


def _env(venv: Path) -> dict[str, str]:
    """This process's environment with the fresh venv activated and nothing of the checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP", "PYTHONUSERBASE")
    }
    env["PATH"] = os.pathsep.join([str(venv / "bin"), os.environ.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(venv)
    env["PYTHONNOUSERSITE"] = "1"  # no ~/.local packages standing in for missing ones
    env["PIP_REQUIRE_VIRTUALENV"] = "1"
    return env


@pytest.fixture(scope="module")
def binder_env(tmp_path_factory: pytest.TempPathFactory):
    """Build the environment from binder/ in a temporary directory; yield (venv, kernel root)."""
    root = tmp_path_factory.mktemp("binder")
    repo = _clean_copy(root / "repo")
    venv = root / "venv"
    python = venv / "bin" / "python"
    env = _env(venv)

    build_start = time.perf_counter()
    _run([sys.executable, "-m", "venv", str(venv)], cwd=root, env=env, what="python -m venv")
    _run(
        [str(python), "-m", "pip", "install", "-r", "binder/requirements.txt"],
        cwd=repo,
        env=env,
        what="pip install -r binder/requirements.txt",
    )
    post_build = repo / "binder" / "postBuild"
    post_build.chmod(post_build.stat().st_mode | stat.S_IXUSR)  # repo2docker does chmod +x too
    _run([str(post_build)], cwd=repo, env=env, what="binder/postBuild")
    TIMES["build (total)"] = time.perf_counter() - build_start

    kernel_root = write_kernelspec(
        root / "kernel",
        KERNEL_NAME,
        python,
        "cnnviz_widgets binder test",
        {"PATH": env["PATH"], "VIRTUAL_ENV": env["VIRTUAL_ENV"], "PYTHONNOUSERSITE": "1"},
    )
    with jupyter_path(kernel_root), pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONPATH", raising=False)  # the kernel inherits this process's environment
        yield venv, repo, kernel_root


def _site_packages(venv: Path, env: dict[str, str]) -> Path:
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return Path(out).resolve()


def test_binder_installs_the_package_non_editable_into_site_packages(binder_env, tmp_path):
    venv, repo, _ = binder_env
    env = _env(venv)
    site = _site_packages(venv, env)
    probe = (
        "import json, sys, cnnviz_widgets, ipykernel\n"
        "print(json.dumps({'file': cnnviz_widgets.__file__, 'path': sys.path}))"
    )
    # cwd outside both checkouts, so '' on sys.path cannot find the package's source.
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    where = Path(found["file"]).resolve()
    assert where.is_relative_to(site), f"cnnviz_widgets imported from {where}, not {site}"
    for entry in found["path"]:
        if entry:
            resolved = Path(entry).resolve()
            assert not resolved.is_relative_to(REPO_ROOT.resolve()), f"sys.path has {entry}"
            assert not resolved.is_relative_to(repo.resolve()), f"sys.path has {entry}"

    # Non-editable: pip recorded a plain directory install, not an editable one.
    (dist_info,) = site.glob("cnnviz_widgets-*.dist-info")
    direct_url = json.loads((dist_info / "direct_url.json").read_text())
    assert not direct_url.get("dir_info", {}).get("editable", False), direct_url
    assert not list(site.glob("__editable__*cnnviz_widgets*")), "an editable finder is installed"
    # The package data the notebooks need shipped inside the wheel.
    assert (site / "cnnviz_widgets" / "data" / "imagenet_labels.txt").is_file()


def test_binder_kernel_imports_the_installed_package(binder_env, tmp_path):
    """The notebooks' kernel sees the venv's cnnviz_widgets, with the test's environment."""
    import nbformat

    venv, _, kernel_root = binder_env
    site = _site_packages(venv, _env(venv))
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import os, sys, cnnviz_widgets\n"
            "print(sys.executable)\n"
            "print(cnnviz_widgets.__file__)\n"
            "print(os.environ.get('PYTHONPATH', ''))\n"
            "print(os.environ['CNNVIZ_MAX_STEPS'], os.environ['CNNVIZ_CACHE_DIR'])"
        )
    )
    probe = tmp_path / "probe.ipynb"
    nbformat.write(nb, probe)
    done, _ = execute_notebook(probe, KERNEL_NAME, kernel_root)
    lines = "".join(o.get("text", "") for o in done.cells[0].outputs).splitlines()
    executable, module, pythonpath, settings = lines
    assert Path(executable).parent == venv / "bin", executable
    assert Path(module).resolve().is_relative_to(site), module
    assert pythonpath == ""
    assert settings == f"16 {kernel_root / 'cache'}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_in_the_binder_environment(name, binder_env):
    _, repo, kernel_root = binder_env
    # The clean copy's notebook: what a Binder user opens.
    nb, seconds = execute_notebook(repo / "notebooks" / name, KERNEL_NAME, kernel_root)
    TIMES[name] = seconds
    print(f"\n{name}: executed in {seconds:.1f} s in the binder environment")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}: not every cell ran"
    for i, cell in enumerate(code):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, f"{name}, cell {i}: {errors[0].ename}: {errors[0].evalue}"
        stderr = "".join(
            o.get("text", "")
            for o in cell.outputs
            if o.output_type == "stream" and o.name == "stderr"
        )
        assert "Traceback" not in stderr and "Error" not in stderr, f"{name}, cell {i}:\n{stderr}"


def test_binder_timings(binder_env):
    """Not a check: prints where the time went (build steps, then each notebook)."""
    lines = "\n".join(f"  {what:<42} {seconds:7.1f} s" for what, seconds in TIMES.items())
    notebooks = sum(TIMES.get(name, 0.0) for name in NOTEBOOKS)
    total = f"  {'notebooks (total)':<42} {notebooks:7.1f} s"
    print(f"\nbinder build and notebook execution:\n{lines}\n{total}")
