"""Headless Chromium against ``make console``: for the browser tests and the docs' screenshots.

``running_console`` starts ``python -m local.console`` (what ``make console`` runs) on free ports and
waits for its ``Console: http://127.0.0.1:PORT/`` line; ``chromium`` launches Debian's Chromium through
Playwright (``executable_path``: Playwright never downloads a browser here) with the flags that work
on a machine without a network beyond the package registries.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# As root, without a GPU, and quiet: no background connections to Google's hosts, which this machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_SECONDS = 300


@dataclass
class RunningConsole:
    url: str
    endpoint: str
    bucket: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    @property
    def stack_name(self) -> str:
        return "image-analysis-local"

    def output(self) -> str:
        return "\n".join(self.lines)

    def aws_env(self) -> dict[str, str]:
        """The environment of a client of this stack (the command line, boto3)."""
        return {
            **os.environ,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@contextmanager
def running_console(extra_env: dict[str, str] | None = None) -> Iterator[RunningConsole]:
    """``make console`` on free ports, until the block ends (then stopped as Ctrl-C would)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "local.console", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if match := re.search(r"Stack \S+ on (http://[\d.:]+): bucket (\S+)", line):
                found["endpoint"], found["bucket"] = match.group(1), match.group(2)
            if match := re.match(r"Console: (http://127\.0\.0\.1:\d+/)", line):
                found["url"] = match.group(1)
                ready.set()
        ready.set()  # the process ended

    threading.Thread(target=read, name="console-output", daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT_SECONDS) or "url" not in found:
            raise RuntimeError("make console did not print its Console: line:\n" + "\n".join(lines[-40:]))
        yield RunningConsole(found["url"], found["endpoint"], found["bucket"], process, lines)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the stack stops DynamoDB Local's JVM
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright; each context gets a fresh profile."""
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: apt-get install -y chromium (or set CHROMIUM=)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def wait_for(predicate: Any, timeout: float = 20.0, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns something true, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still false after {timeout} s")
        time.sleep(interval)
