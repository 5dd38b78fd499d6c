"""The benchmark's children in step (B2): one event at a time, the side going first alternating, and each
child's own report read back. A stand-in child records when each of its events ran."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

from local import bench

STAND_IN = r"""
import json, os, sys, time
name, log = sys.argv[1], sys.argv[2]
durations = []
for n in range(int(sys.argv[3])):
    if os.environ.get("BENCH_STEP_FROM_STDIN"):
        sys.stdin.readline()
    began = time.monotonic()
    print("some of the handler's own output")
    time.sleep(0.02)
    ended = time.monotonic()
    durations.append(ended - began)
    with open(log, "a") as handle:
        handle.write(json.dumps([name, n, began, ended]) + "\n")
    if os.environ.get("BENCH_STEP_FROM_STDIN"):
        print("-- step done --", flush=True)
print(json.dumps({"durations_s": durations, "total_s": 1.0}), flush=True)
"""


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    script = tmp_path / "child.py"
    script.write_text(STAND_IN)
    log = tmp_path / "events.log"

    def command(build: bench.Build, mode: str, arg: str) -> list[str]:
        return [sys.executable, str(script), mode, str(log), arg]

    monkeypatch.setattr(bench, "_child_command", command)
    return log


def test_two_children_take_one_event_at_a_time_and_turns_at_going_first(stand_in: Path) -> None:
    build = bench.Build(Path("."), Path("."), sys.executable)
    reports = bench.run_children_in_step(build, [("handler", "5"), ("by-hand", "5")], {}, 5)

    assert [len(r["durations_s"]) for r in reports] == [5, 5]
    events = sorted((json.loads(line) for line in stand_in.read_text().splitlines()), key=lambda e: e[2])
    # Never two events at once: each starts after the one before it ended.
    assert all(later[2] >= earlier[3] for earlier, later in itertools.pairwise(events))
    order = [(name, n) for name, n, _began, _ended in events]
    assert order == [
        ("handler", 0), ("by-hand", 0),
        ("by-hand", 1), ("handler", 1),
        ("handler", 2), ("by-hand", 2),
        ("by-hand", 3), ("handler", 3),
        ("handler", 4), ("by-hand", 4),
    ]  # fmt: skip


def test_a_child_that_fails_is_reported_not_waited_for(stand_in: Path) -> None:
    build = bench.Build(Path("."), Path("."), sys.executable)
    # "x" is no number of events: the stand-in fails at once, before its first event.
    with pytest.raises(SystemExit, match="bench child by-hand failed"):
        bench.run_children_in_step(build, [("handler", "3"), ("by-hand", "x")], {}, 3)
