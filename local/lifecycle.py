"""How long-running local processes end: with whoever started them, whatever way that one ends.

``make local-stack`` is python under make, with DynamoDB Local's JVM under python. Ctrl-C reaches the
whole foreground process group; ``kill`` of make reaches make, which passes SIGTERM on to python; a
parent killed outright (SIGKILL, a closed terminal, a test runner that died) tells nobody. So:

- SIGTERM and SIGHUP become ``KeyboardInterrupt`` in python, and every ``with`` block unwinds as it
  does for Ctrl-C (the JVM is stopped, the state file removed);
- on Linux each process asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``): python
  when make dies, the JVM when python dies, even by SIGKILL;
- elsewhere a watchdog thread notices the parent is gone (the process is handed to another parent)
  and interrupts the main thread.
"""

from __future__ import annotations

import _thread
import ctypes
import os
import signal
import sys
import threading
from typing import Any

PR_SET_PDEATHSIG = 1


def _prctl_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def child_dies_with_parent() -> None:
    """``preexec_fn`` for a child process: SIGTERM to it when this process (the thread that started it) dies."""
    _prctl_pdeathsig(signal.SIGTERM)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: Any) -> None:
    # Once: a second signal must not cut short the shutdown the first one started (the JVM's stop).
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def stop_on_signals_and_parent_death() -> None:
    """Ctrl-C, SIGTERM, SIGHUP and the parent's death end this process the same way, once, with every
    ``with`` block unwound. Call from the main thread."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, _interrupt)
    parent = os.getppid()
    if _prctl_pdeathsig(signal.SIGTERM):
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)
        return

    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(1.0)
        _thread.interrupt_main()

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()
