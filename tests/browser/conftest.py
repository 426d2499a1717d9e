"""Fixtures for tests in a real browser: Debian's chromium (Playwright cannot download its
own browser here), a JupyterLab server on localhost, and a Playwright page.

Where no chromium can be found the tests are skipped, with the reason in pytest's summary.
Screenshots go to ``tests/browser/artifacts/`` (git-ignored); each test prints where.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts"
# As the machine notes say: as root, no sandbox; no background traffic (the network is closed).
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


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The system's chromium (``$CHROMIUM`` first); skips with the reason when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser"):
        found = candidate and shutil.which(candidate)
        if found:
            return found
    pytest.skip(
        "no chromium on this machine: install it (`apt-get install -y chromium`; .ci/run does)"
    )


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    print(f"\nbrowser screenshots: {ARTIFACTS}")
    return ARTIFACTS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path

    def tree(self, relative: str) -> str:
        """The address that opens ``relative`` (a notebook) in JupyterLab."""
        return f"{self.url}/lab/tree/{relative}?token={self.token}"


def wait_until_up(server: LabServer, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/status?token={server.token}", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"jupyter lab did not answer within {seconds:g} s")


def _lab_settings(folder: Path) -> Path:
    """User settings that render every cell (JupyterLab 4 otherwise leaves cells out of
    view out of the page, where a test cannot see their outputs)."""
    tracker = folder / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text('{"windowingMode": "none"}')
    return folder


@pytest.fixture
def start_lab() -> Iterator[Callable[..., LabServer]]:
    """``start_lab(folder, token=None)``: JupyterLab serving ``folder`` on localhost, run from
    that folder (so nbgrader reads the nbgrader_config.py there); stopped after the test."""
    processes: list[subprocess.Popen] = []
    logs: list = []

    def start(folder: Path, token: str | None = None) -> LabServer:
        server = LabServer(
            f"http://127.0.0.1:{free_port()}", token or secrets.token_hex(16), folder
        )
        port = server.url.rsplit(":", 1)[1]
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            f"--ServerApp.root_dir={folder}",
            f"--IdentityProvider.token={server.token}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "JUPYTERLAB_SETTINGS_DIR": str(_lab_settings(folder.parent / "lab-settings")),
            "JUPYTERLAB_WORKSPACES_DIR": str(folder.parent / "lab-workspaces"),
        }
        log = (folder / "jupyter-lab.log").open("w")
        logs.append(log)
        process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        processes.append(process)
        wait_until_up(server, process, 60)
        return server

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for log in logs:
        log.close()


# Per module, not per session: Playwright's sync API keeps an asyncio loop running in the
# main thread while it is open, and the kernel tests after the browser tests call asyncio.run.
@pytest.fixture(scope="module")
def browser(chromium_path: str):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, tmp_path):
    """A fresh browser page (its own context) of 1400 x 1000."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
