"""A cold container's first event: work its first record will need, done while that record waits.

The first record spends much of its time waiting for DynamoDB, S3 and the vendors. Three things it
needs later cost CPU and no waiting, and none depends on the record: the shared vendor HTTP client
(its TLS context reads the CA bundle), Pillow's format plugins (``Image.open`` loads them on first use)
and the first poll of the hash banks (its request goes out and comes back meanwhile). One daemon thread
does them in that order as the runtime is built; whatever it has not finished when the record gets
there, the record does itself (each is safe to do twice at once: the client and the plugins behind
their locks, the poll behind the matcher's).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def start(steps: list[Callable[[], Any]], logger: Any = None) -> threading.Thread | None:
    """Run ``steps`` one after the other on a daemon thread; a step that fails is logged and skipped."""
    if not steps:
        return None

    def run() -> None:
        for step in steps:
            try:
                step()
            except Exception:  # the record does the same work itself and reports what goes wrong
                if logger is not None:
                    logger.debug("warm-up step failed", exc_info=True)

    thread = threading.Thread(target=run, name="warm-up", daemon=True)
    thread.start()
    return thread


def pillow_plugins() -> None:
    from PIL import Image

    Image.preinit()
