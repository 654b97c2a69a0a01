"""Drive a private JupyterLab in headless Chromium (Playwright, sync API).

Used by the browser tests and reusable by the bench::

    import sys; sys.path.insert(0, "tests/browser")
    from jupyterlab_driver import running_lab, launch_chromium, NotebookPage, key_to_src_latency

Nothing here touches the user's Jupyter set-up: every run gets fresh config, data, runtime,
IPython, settings and workspace directories, a random token and a free port on 127.0.0.1.
Labextensions are still found in ``<sys.prefix>/share/jupyter`` (the virtualenv), which is also
put on ``JUPYTER_PATH`` explicitly.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# JupyterLab user settings written into the private settings directory.
LAB_SETTINGS: dict[str, dict[str, Any]] = {
    # JupyterLab 4 virtualises the notebook by default and does not render off-screen cells.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # No "news" toast over the page, no network request for it.
    "@jupyterlab/apputils-extension/notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT
    token: str
    root_dir: Path
    process: subprocess.Popen
    log_path: Path
    app: str = "jupyterlab"

    def page_url(self, path: str) -> str:
        if self.app == "notebook":  # Notebook 7: one notebook per page
            return f"{self.url}/notebooks/{path}?token={self.token}"
        # `reset` starts from an empty workspace: JupyterLab would otherwise reopen every
        # notebook an earlier test opened, and their widgets would match this test's selectors.
        return f"{self.url}/lab/tree/{path}?token={self.token}&reset"

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _wait_until_up(url: str, token: str, process: subprocess.Popen, log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {process.returncode}:\n"
                + log.read_text(errors="replace")[-6000:]
            )
        try:
            request = urllib.request.Request(
                f"{url}/api/status", headers={"Authorization": f"token {token}"}
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.25)
    raise TimeoutError(
        f"JupyterLab did not answer within {timeout:.0f} s:\n"
        + log.read_text(errors="replace")[-6000:]
    )


@contextlib.contextmanager
def running_lab(
    notebooks: Path,
    *,
    workdir: Path | None = None,
    startup_timeout: float = 60.0,
    extra_env: dict[str, str] | None = None,
    app: str = "jupyterlab",
    disabled_extensions: tuple[str, ...] = (),
) -> Iterator[LabServer]:
    """Start JupyterLab on a temp copy of ``notebooks``; stop it (and its kernels) on exit.

    ``extra_env`` is added to the server's (and so its kernels') environment. ``app`` is
    ``"jupyterlab"`` or ``"notebook"`` (Notebook 7). ``disabled_extensions`` are disabled with
    ``jupyter labextension disable --level=user`` in the run's private config directory (the
    user's and the virtualenv's configuration are not touched).
    """
    own_workdir = workdir is None
    base = Path(tempfile.mkdtemp(prefix="cnnviz-lab-")) if own_workdir else Path(workdir)
    dirs = {
        name: base / name
        for name in ("config", "data", "runtime", "ipython", "settings", "workspaces")
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    root = base / "notebooks"
    shutil.copytree(notebooks, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for plugin, values in LAB_SETTINGS.items():
        target = dirs["settings"] / f"{plugin}.jupyterlab-settings"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))

    venv_share = Path(sys.prefix) / "share" / "jupyter"
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        JUPYTER_PATH=os.pathsep.join(
            p for p in [str(venv_share), env.get("JUPYTER_PATH", "")] if p
        ),
        IPYTHONDIR=str(dirs["ipython"]),
        JUPYTER_PLATFORM_DIRS="1",
        TF_CPP_MIN_LOG_LEVEL=env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        PYTHONUNBUFFERED="1",
        # The kernel imports this checkout's package even when it is not pip-installed.
        PYTHONPATH=os.pathsep.join(p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p),
    )
    env.update(extra_env or {})
    env.pop("JUPYTER_TOKEN", None)
    if disabled_extensions:
        subprocess.run(
            [sys.executable, "-m", "jupyter", "labextension", "disable", "--level=user",
             *disabled_extensions],
            env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    token = secrets.token_hex(24)
    port = free_port()
    log_path = base / "jupyterlab.log"
    command = [
        sys.executable, "-m", app,
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={dirs['workspaces']}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",  # no PyPI look-ups from the extension manager
        "--ServerApp.terminals_enabled=False",
    ]  # fmt: skip
    if app == "notebook":  # the same options, on Notebook 7's application class
        command = [c.replace("--LabApp.", "--JupyterNotebookApp.") for c in command]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        command.append("--allow-root")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, token, process, log_path, startup_timeout)
        yield LabServer(url, token, root, process, log_path, app)
    finally:
        if process.poll() is None:
            process.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if own_workdir:
            shutil.rmtree(base, ignore_errors=True)


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@dataclass
class ConsoleLog:
    """Console messages and uncaught page errors seen by a page."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    everything: list[str] = field(default_factory=list)

    def attach(self, page: Any) -> ConsoleLog:
        def on_console(message: Any) -> None:
            where = message.location or {}
            text = f"[{message.type}] {message.text}  ({where.get('url', '')}:{where.get('lineNumber', '')})"
            self.everything.append(text)
            if message.type == "error":
                self.errors.append(text)
            elif message.type == "warning":
                self.warnings.append(text)

        def on_page_error(error: Any) -> None:
            stack = (getattr(error, "stack", None) or "").splitlines()[1:3]
            text = f"[pageerror] {error}" + (f"  at {' | '.join(s.strip() for s in stack)}" if stack else "")
            self.everything.append(text)
            self.errors.append(text)

        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        return self


class NotebookPage:
    """A JupyterLab page with one notebook open, driven through the UI like a person would."""

    PROBE_MARK = "CNNVIZ-PROBE"

    def __init__(self, page: Any, lab: LabServer) -> None:
        self.page = page
        self.lab = lab
        self._probe_count = 0
        self._probe_cell: Any = None

    @property
    def panel(self) -> Any:
        return self.page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").first

    def open(self, path: str, timeout: float = 60_000) -> None:
        self.page.goto(self.lab.page_url(path), wait_until="domcontentloaded", timeout=timeout)
        self.panel.locator(".jp-Cell").first.wait_for(state="visible", timeout=timeout)
        self.wait_kernel_idle(timeout)

    def toggle_left_sidebar(self) -> None:
        """Click the open left side-bar tab (the file browser) to fold the side bar away."""
        current = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.first.click()
            self.page.locator("#jp-left-stack").wait_for(state="hidden", timeout=10_000)

    def wait_kernel_idle(self, timeout: float = 60_000) -> None:
        """The status bar reads "<kernel> | Idle" (the kernel is started and connected)."""
        self.page.wait_for_function(
            """() => [...document.querySelectorAll('.jp-StatusBar-Widget')]
                    .some(w => /\\|\\s*Idle/.test(w.textContent))""",
            timeout=timeout,
        )

    def code_prompts(self) -> list[str]:
        return self.page.evaluate(
            """() => [...document.querySelectorAll(
                '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt')]
                .map(p => p.textContent.trim())"""
        )

    def run_all(self, timeout: float = 15_000) -> None:
        """Menu Run ▸ Run All Cells; checks that the first code cell got queued or ran."""
        for _attempt in range(3):
            self.wait_kernel_idle()
            self.page.locator(".lm-MenuBar-item").get_by_text("Run", exact=True).click()
            self.page.locator(".lm-Menu-item:not(.lm-mod-disabled)").get_by_text(
                "Run All Cells", exact=True
            ).click()
            try:
                self.page.wait_for_function(
                    """() => {
                        const p = document.querySelector(
                            '.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt');
                        return p && /\\[(\\*|\\d+)\\]/.test(p.textContent);
                    }""",
                    timeout=timeout,
                )
                return
            except Exception:
                continue
        raise AssertionError(f"Run All Cells did not start the notebook: {self.code_prompts()}")

    def wait_all_executed(self, timeout: float = 180_000) -> None:
        """Every code cell has an execution count (no ``[ ]`` or ``[*]`` prompt left)."""
        self.page.wait_for_function(
            """() => {
                const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
                const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=timeout,
        )

    def _new_cell_at_end(self) -> Any:
        cells = self.panel.locator(".jp-Notebook > .jp-Cell, .jp-WindowedPanel-viewport > .jp-Cell")
        count = cells.count()
        last = cells.nth(count - 1)
        # Select the last cell in command mode (click its prompt area), then "b" = insert below.
        last.locator(".jp-Cell-inputCollapser, .jp-InputPrompt").first.click()
        self.page.keyboard.press("Escape")
        self.page.keyboard.press("b")
        cells.nth(count).wait_for(state="visible", timeout=10_000)
        return cells.nth(count)

    def run_code(self, code: str) -> Any:
        """Type ``code`` into the probe cell at the end of the notebook and run it (Ctrl+Enter).

        The cell is added below the last one on first use and reused afterwards; returns its
        locator (read its output with :meth:`probe`).
        """
        if self._probe_cell is None:
            self._probe_cell = self._new_cell_at_end()
        cell = self._probe_cell
        editor = cell.locator(".cm-content").first
        editor.click()
        self.page.keyboard.press("ControlOrMeta+a")
        self.page.keyboard.insert_text(code)
        self.page.keyboard.press("Control+Enter")  # run, stay in the cell
        return cell

    def probe(self, expression: str, *, setup: str = "", timeout: float = 60_000) -> Any:
        """Evaluate a Python expression in the kernel through a notebook cell; return it (JSON).

        ``setup`` is code run first in the same cell (e.g. to define a helper).
        """
        self._probe_count += 1
        nonce = self._probe_count
        code = (
            f"{setup.strip()}\nimport json as _json\n"
            f"print({self.PROBE_MARK!r}, {nonce}, _json.dumps({expression}))"
        ).lstrip()
        cell = self.run_code(code)
        prefix = f"{self.PROBE_MARK} {nonce} "
        output = cell.locator(".jp-OutputArea-output", has_text=prefix).first
        try:
            output.wait_for(state="visible", timeout=timeout)
        except Exception:
            raise AssertionError(
                "probe cell printed no result; its output area reads:\n"
                + cell.locator(".jp-OutputArea").first.inner_text()
            ) from None
        text = output.inner_text()
        line = next(line for line in text.splitlines() if line.startswith(prefix))
        return json.loads(line[len(prefix) :])


# ---------------------------------------------------------------------------- latency
_LATENCY_JS = """
([keySelector, imgSelector]) => {
    const target = document.querySelector(keySelector);
    const img = document.querySelector(imgSelector);
    if (!target || !img) throw new Error('latency probe: element not found');
    const state = {keydowns: [], changes: []};
    const onKey = () => state.keydowns.push(performance.now());
    target.addEventListener('keydown', onKey, true);
    const observer = new MutationObserver(() => state.changes.push(performance.now()));
    observer.observe(img, {attributes: true, attributeFilter: ['src']});
    const stop = () => { observer.disconnect(); target.removeEventListener('keydown', onKey, true); };
    window.__cnnvizLatency = {state, stop};
    return true;
}
"""


def key_to_src_latency(
    page: Any,
    key_selector: str,
    img_selector: str,
    *,
    presses: int = 20,
    key: str = "ArrowRight",
    timeout: float = 15_000,
) -> list[float]:
    """In-page milliseconds from a keydown on ``key_selector`` to the next ``src`` change of the img.

    Focuses the element, presses ``key`` ``presses`` times, each time waiting for the image's
    ``src`` attribute to change before the next press (times from ``performance.now()`` in the
    page: a ``keydown`` listener in the capture phase and a MutationObserver on ``src``).
    """
    page.locator(key_selector).first.focus()
    page.evaluate(_LATENCY_JS, [key_selector, img_selector])
    latencies = []
    try:
        for _ in range(presses):
            before = page.evaluate(
                "() => [window.__cnnvizLatency.state.keydowns.length,"
                " window.__cnnvizLatency.state.changes.length]"
            )
            page.keyboard.press(key)
            page.wait_for_function(
                "([k, c]) => window.__cnnvizLatency.state.keydowns.length > k"
                " && window.__cnnvizLatency.state.changes.length > c",
                arg=before,
                timeout=timeout,
            )
            latencies.append(
                page.evaluate(
                    "([k, c]) => window.__cnnvizLatency.state.changes[c]"
                    " - window.__cnnvizLatency.state.keydowns[k]",
                    before,
                )
            )
    finally:
        page.evaluate("() => { window.__cnnvizLatency && window.__cnnvizLatency.stop(); }")
    return latencies


def summarize(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    return (
        f"median {statistics.median(ordered):.1f} ms, min {ordered[0]:.1f}, "
        f"max {ordered[-1]:.1f} (n={len(ordered)})"
    )


# SHA-256 of the picture an <img> shows, computed in the page (null while its blob URL is
# being replaced): lets a test compare the page's image with the kernel's PNG byte for byte.
PAGE_IMAGE_SHA256 = """
async (selector) => {
    const img = document.querySelector(selector);
    if (!img || !img.src) return null;
    try {
        const bytes = await (await fetch(img.src)).arrayBuffer();
        const digest = await crypto.subtle.digest('SHA-256', bytes);
        return [...new Uint8Array(digest)].map(b => b.toString(16).padStart(2, '0')).join('');
    } catch (e) {
        return null;  // the blob URL was replaced (and revoked) meanwhile: ask again
    }
}
"""
