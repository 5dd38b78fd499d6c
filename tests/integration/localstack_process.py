"""``make local-stack`` as a process of its own, for the tests that use it as a user would."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What a developer's shell passes on; nothing of this test process's own emulator settings.
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "PYENV_ROOT", "PYTHON313", "CI", "JAVA_HOME")
READY = "one line per object below"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in KEPT_ENV if k in os.environ}
    env.update(SAM_CLI_TELEMETRY="0", **extra)
    return env


def checkout_copy(destination: Path) -> Path:
    """The working tree's files as a clone would have them (tracked and new, not ignored), with this
    checkout's environments linked in so that ``make setup`` finds them up to date."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, listed):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = destination / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for environment in (".venv", "node_modules", ".tools"):
        if (ROOT / environment).exists():
            (destination / environment).symlink_to(ROOT / environment)
    return destination


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a reparented process may wait a while to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class LocalStackProcess:
    """``make local-stack PORT=<port>`` in ``checkout``; its output is collected line by line."""

    def __init__(self, checkout: Path, port: int, **env: str) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "local-stack", f"PORT={port}"],
            cwd=checkout,
            env=clean_env(**env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, as a terminal would give it
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.process.poll() is not None:
                time.sleep(0.2)  # the reader may still be catching up
                if any(text in line for line in self.lines):
                    continue
                raise AssertionError(f"make local-stack ended ({self.process.returncode}):\n{self.output}")
            time.sleep(0.2)
        raise AssertionError(f"no {text!r} within {timeout:.0f} s:\n{self.output}")

    def python_and_jvm(self) -> tuple[int, list[int]]:
        """The python under make, and the processes under python (DynamoDB Local's JVM)."""
        pythons = children(self.process.pid)
        assert len(pythons) == 1, f"make has {pythons} under it"
        return pythons[0], children(pythons[0])

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
