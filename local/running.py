"""The running local stack, as ``make local-stack`` leaves it for other commands: ``.local/stack.json``.

It names the endpoint, the stack's outputs, the function's environment (with the sandboxes' settings
when ``SANDBOX=1``) and its role's statements; never a key of the user's. The file lives while the
stack does: ``find`` trusts it only when its process is alive and its endpoint answers.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = ROOT / ".local" / "stack.json"


@dataclass
class RunningStack:
    endpoint: str
    pid: int
    name: str
    outputs: dict[str, str]
    function_env: dict[str, str]
    role_policy: dict[str, Any] | None = None

    @property
    def bucket(self) -> str:
        return self.outputs["UploadsBucketName"]

    @property
    def table(self) -> str:
        return self.outputs["ResultsTableName"]

    @property
    def topic_arn(self) -> str:
        return self.outputs["AlertsTopicArn"]


def write(stack: RunningStack, path: Path = STATE_FILE) -> None:
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(stack.__dict__, indent=2))
    temporary.replace(path)


def remove(pid: int, path: Path = STATE_FILE) -> None:
    """Remove the file if it is this process's (a newer stack may have replaced it)."""
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == pid:
            path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _answers(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def find(path: Path = STATE_FILE) -> RunningStack | None:
    try:
        data = json.loads(path.read_text())
        stack = RunningStack(**data)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    if not _alive(stack.pid) or not _answers(stack.endpoint):
        return None
    return stack
