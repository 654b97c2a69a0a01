"""The quick-start notebook rendered by Voilà in headless Chromium.

Run: ``.venv/bin/python -m pytest tests/browser -m browser -x -q -s``

Serves a temporary copy of ``notebooks/00_quickstart.ipynb`` with Voilà (127.0.0.1, a free port,
a random token, fresh config/data/runtime/IPython directories and a private connection-file
directory), opens it and checks that the ActivationExplorer's view and the tabbed Explorer are
rendered, the view holding a decoded picture, with a clean browser console.

Voilà's "lab" template links Font Awesome from cdn.jsdelivr.net; the machine is offline, so the
page's requests to anything but the local server are answered with an empty 200 response (and
listed), instead of failing with a console error that says nothing about this package.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyterlab_driver import REPO_ROOT, ConsoleLog, free_port

pytestmark = pytest.mark.browser

NOTEBOOK = "00_quickstart.ipynb"
EXPLORER = ".cnnviz-activation-explorer:not(.cnnviz-explorer .cnnviz-activation-explorer)"
VIEW = f"{EXPLORER} img.cnnviz-view"
TABS = ".cnnviz-explorer .cnnviz-explorer-tabs"
KERNEL_ENV = {"CNNVIZ_MAX_STEPS": "8"}
IGNORED_CONSOLE_ERRORS: list[tuple[str, str]] = [
    (
        r"RUNTIME-012[\s\S]*@jupyter-notebook/lab-extension",
        "Notebook 7's own lab extension (installed for the Notebook 7 tests) cannot load its "
        "shared @jupyterlab/docregistry inside Voilà 0.5; it is not ours and nothing of ours "
        "uses it",
    ),
]


@contextlib.contextmanager
def running_voila(notebooks: Path, workdir: Path, notebook: str) -> Iterator[tuple[str, Path]]:
    """Voilà serving ``notebook`` from a copy of ``notebooks``; yields (page URL, log path)."""
    dirs = {n: workdir / n for n in ("config", "data", "runtime", "ipython", "connections")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    root = workdir / "notebooks"
    shutil.copytree(notebooks, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_PATH=str(Path(sys.prefix) / "share" / "jupyter"),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p),
        **KERNEL_ENV,
    )
    env.pop("JUPYTER_TOKEN", None)
    token = secrets.token_hex(24)
    port = free_port()
    log_path = workdir / "voila.log"
    command = [
        sys.executable, "-m", "voila", notebook,
        "--no-browser",
        "--Voila.ip=127.0.0.1",
        f"--Voila.port={port}",
        "--Voila.port_retries=0",
        f"--Voila.token={token}",
        f"--Voila.connection_dir_root={dirs['connections']}",
        "--VoilaConfiguration.show_tracebacks=True",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Voilà exited:\n{log_path.read_text(errors='replace')[-6000:]}")
            try:
                # /api/... needs no kernel: a static file tells the server is up.
                with urllib.request.urlopen(f"{base}/voila/static/voila.js", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(log_path.read_text(errors="replace")[-6000:])
            time.sleep(0.25)
        yield f"{base}/?token={token}", log_path
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def voila_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    pytest.importorskip("voila", reason="Voilà is not installed (pip install -e '.[test]')")
    with running_voila(
        REPO_ROOT / "notebooks", tmp_path_factory.mktemp("voila"), NOTEBOOK
    ) as server:
        yield server


def test_quickstart_in_voila(chromium: Any, voila_server: tuple[str, Path]) -> None:
    url, log_path = voila_server
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console = ConsoleLog().attach(page)
    stubbed: list[str] = []

    def offline(route: Any) -> None:
        stubbed.append(route.request.url)
        kind = "text/css" if route.request.url.endswith(".css") else "application/octet-stream"
        route.fulfill(status=200, body="", content_type=kind)

    page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), offline)
    t0 = time.monotonic()
    try:
        # Voilà runs the whole notebook before the page is complete (TensorFlow: ~15 s).
        page.goto(url, wait_until="domcontentloaded", timeout=180_000)
        page.wait_for_function(
            "sel => { const i = document.querySelector(sel);"
            " return !!i && /^(blob:|data:)/.test(i.getAttribute('src') || '')"
            " && i.complete && i.naturalWidth > 0; }",
            arg=VIEW,
            timeout=180_000,
        )
        page.locator(TABS).first.wait_for(state="visible", timeout=60_000)
        size = page.locator(VIEW).evaluate("i => [i.naturalWidth, i.naturalHeight]")
        elapsed = time.monotonic() - t0
        tabs = page.locator(TABS).first.locator(".lm-TabBar").first.locator(".lm-TabBar-tab")
        titles = [t.strip() for t in tabs.all_inner_texts()]
        assert titles == ["Activations", "Filters", "Class activation", "Summary"], titles
        errors = [
            m for m in console.errors
            if not any(re.search(p, m) for p, _ in IGNORED_CONSOLE_ERRORS)
        ]  # fmt: skip
        # Voilà 0.5 bundles JupyterLab 4.2 core packages; the venv's 4.6 labextensions then
        # warn "Unsatisfied version …" for each shared module (warnings, not errors).
        version_warnings = [w for w in console.warnings if "atisf" in w]
        print(f"\nconsole: {len(version_warnings)} shared-module version warnings")
        for line in console.warnings:
            if line not in version_warnings:
                print("console warning:", line)
        assert not errors, "browser console errors:\n" + "\n".join(errors)
        print(f"Voilà: explorer view {size[0]}×{size[1]} shown {elapsed:.1f} s after the request")
        if stubbed:
            print("offline: answered with an empty response:", *sorted(set(stubbed)), sep="\n  ")
    except BaseException:
        artifacts = REPO_ROOT / ".browser-test-artifacts"
        artifacts.mkdir(exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(artifacts / "voila.png"), full_page=True)
        (artifacts / "voila.console.txt").write_text("\n".join(console.everything))
        (artifacts / "voila.server.log").write_text(log_path.read_text(errors="replace")[-50_000:])
        raise
    finally:
        context.close()
