"""Fixtures for the real-browser tests: a private JupyterLab server and headless Chromium.

The server runs on 127.0.0.1 on a free port with a random token and fresh config, data, runtime,
IPython, settings and workspace directories (see ``jupyterlab_driver.running_lab``); it serves a
temporary copy of ``notebooks/`` so the tests never write to the checked-in notebooks.

When a browser test fails, a screenshot of the page, its console messages and the end of the
server log are written to ``.browser-test-artifacts/`` (git-ignored) at the repository root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from jupyterlab_driver import (
    CHROMIUM,
    REPO_ROOT,
    ConsoleLog,
    LabServer,
    launch_chromium,
    running_lab,
)

ARTIFACTS = REPO_ROOT / ".browser-test-artifacts"
# Kernel environment: filter ascent capped at 8 steps so opening a Filters tab is quick.
KERNEL_ENV = {"CNNVIZ_MAX_STEPS": "8"}
VIEWPORT = {"width": 1280, "height": 900}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    workdir = tmp_path_factory.mktemp("jupyterlab")
    with running_lab(REPO_ROOT / "notebooks", workdir=workdir, extra_env=KERNEL_ENV) as server:
        yield server


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"no Chromium at {CHROMIUM} (install Debian's `chromium`: `make system`, or set "
            "CNNVIZ_CHROMIUM); deselect these tests with -m 'not browser'"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def lab_page(
    request: pytest.FixtureRequest, chromium: Any, lab_server: LabServer
) -> Iterator[tuple[Any, ConsoleLog]]:
    """A fresh browser page (1280×900) with its console and page errors recorded."""
    context = chromium.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    console = ConsoleLog().attach(page)
    try:
        yield page, console
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = request.node.name
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            except Exception as exc:  # the page may be gone; the logs still help
                print(f"(no failure screenshot: {exc})")
            (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(console.everything))
            (ARTIFACTS / f"{name}.server.log").write_text(lab_server.log_tail(50_000))
            print(f"\nbrowser test artifacts in {ARTIFACTS}")
        context.close()
