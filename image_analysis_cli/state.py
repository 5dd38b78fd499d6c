"""Backfill progress on disk, so that an interrupted backfill resumes where it stopped.

S3 lists keys in order; after each batch reaches the queue, the last key is saved. A new run starts
after it, so no object is enqueued twice by one backfill, however often it is interrupted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from image_analysis_cli.resources import CliError


class BackfillState:
    def __init__(self, path: Path, fresh: bool = False) -> None:
        self.path = path
        data = {} if fresh else self._load(path)
        self.last_key: str = data.get("last_key", "")
        self.enqueued: int = data.get("enqueued", 0)
        self.done: bool = data.get("done", False)
        if self.done or fresh:  # a finished backfill starts over when run again
            self.last_key, self.enqueued, self.done = "", 0, False
        self._save()  # a file that cannot be written fails now, before anything is listed or sent

    @staticmethod
    def _load(path: Path) -> dict[str, Any]:
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeError):
            data = None
        valid = (
            isinstance(data, dict)
            and isinstance(data.get("last_key", ""), str)
            and isinstance(data.get("enqueued", 0), int)
            and isinstance(data.get("done", False), bool)
        )
        if not valid:
            raise CliError(
                f"{path} is not a backfill progress file: pass --restart to start over, or another --state-file"
            )
        return data  # type: ignore[return-value]

    @classmethod
    def for_target(cls, bucket: str, prefix: str, path: Path | None, fresh: bool = False) -> BackfillState:
        if path is None:
            digest = hashlib.sha256(f"{bucket}/{prefix}".encode()).hexdigest()[:12]
            path = (
                Path(os.environ.get("IMAGE_ANALYSIS_STATE_DIR", ".image-analysis")) / f"backfill-{bucket}-{digest}.json"
            )
        return cls(path, fresh)

    def reset(self) -> None:
        self.last_key, self.enqueued, self.done = "", 0, False
        self._save()

    def advance(self, last_key: str, count: int) -> None:
        self.last_key = last_key
        self.enqueued += count
        self._save()

    def finish(self) -> None:
        self.done = True
        self._save()

    def _save(self) -> None:
        """Through a temporary file of its own in the same folder, then ``os.replace``: an interruption
        leaves the old file or the new one, never half of one. ``mkstemp`` creates it new (never through a
        link someone left under a fixed name), readable by this user alone (0600: it names bucket keys)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"last_key": self.last_key, "enqueued": self.enqueued, "done": self.done})
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())  # the bytes are on disk before the name points at them
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
