"""Backfill progress on disk, so that an interrupted backfill resumes where it stopped.

S3 lists keys in order; after each batch reaches the queue, the last key is saved. A new run starts
after it, so no object is enqueued twice by one backfill, however often it is interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


class BackfillState:
    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.exists() else {}
        self.last_key: str = data.get("last_key", "")
        self.enqueued: int = data.get("enqueued", 0)
        self.done: bool = data.get("done", False)
        if self.done:  # a finished backfill starts over when run again
            self.reset()

    @classmethod
    def for_target(cls, bucket: str, prefix: str, path: Path | None) -> BackfillState:
        if path is None:
            digest = hashlib.sha256(f"{bucket}/{prefix}".encode()).hexdigest()[:12]
            path = (
                Path(os.environ.get("IMAGE_ANALYSIS_STATE_DIR", ".image-analysis")) / f"backfill-{bucket}-{digest}.json"
            )
        return cls(path)

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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"last_key": self.last_key, "enqueued": self.enqueued, "done": self.done}))
        os.replace(temporary, self.path)  # atomic: an interruption never leaves half a file
