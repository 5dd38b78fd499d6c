"""The benchmark's children in step (B2): one event at a time, the side going first alternating, each
child's own report read back, and a child that fails or hangs stopping both at once. The stand-in child
waits and signals through the real child's ``_in_step``, and logs when each of its events ran."""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import pytest

from local import bench
from local.driver import ROOT

# argv: name, log file, then "EVENTS[:die=N][:hang=N][:sleep=S]".
STAND_IN = rf"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
from local.bench_child import _in_step

name, log, spec = sys.argv[1:4]
events, *options = spec.split(":")
options = dict(option.split("=") for option in options)
wait_for_go, done = _in_step()
durations = []
for n in range(int(events)):
    wait_for_go()
    if n == int(options.get("die", -1)):
        raise SystemExit(3)
    began = time.monotonic()
    print("the handler's own output, left without a line break", end="", flush=True)
    time.sleep(60 if n == int(options.get("hang", -1)) else float(options.get("sleep", 0.02)))
    ended = time.monotonic()
    durations.append(ended - began)
    with open(log, "a") as handle:
        handle.write(json.dumps([name, n, began, ended]) + "\n")
    done()
print(json.dumps({{"durations_s": durations, "total_s": 1.0}}), flush=True)
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


BUILD = bench.Build(Path("."), Path("."), sys.executable)


def test_two_children_take_one_event_at_a_time_and_turns_at_going_first(stand_in: Path) -> None:
    reports = bench.run_children_in_step(BUILD, [("handler", "5"), ("by-hand", "5")], {}, 5)

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


@pytest.mark.parametrize("failing", [0, 1])
@pytest.mark.parametrize("how", ["x", "12:die=0", "12:die=3"])
def test_a_child_that_fails_is_reported_and_the_other_is_not_waited_for(stand_in: Path, failing: int, how: str) -> None:
    # The healthy side would take 12 x 0.2 s on its own if it were let run on.
    sides = [("handler", "12:sleep=0.2"), ("by-hand", "12:sleep=0.2")]
    sides[failing] = (sides[failing][0], how)
    began = time.monotonic()
    with pytest.raises(SystemExit, match=f"bench child {sides[failing][0]} failed"):
        bench.run_children_in_step(BUILD, sides, {}, 12)
    assert time.monotonic() - began < 2.0


def test_a_child_that_hangs_over_an_event_is_stopped(stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "STEP_TIMEOUT_SECONDS", 0.5)
    began = time.monotonic()
    with pytest.raises(SystemExit, match=r"bench child by-hand took more than 0.5 s over one event"):
        bench.run_children_in_step(BUILD, [("handler", "4"), ("by-hand", "4:hang=2")], {}, 4)
    assert time.monotonic() - began < 10


def test_a_child_with_fewer_events_than_the_steps_is_an_error(stand_in: Path) -> None:
    with pytest.raises(SystemExit, match="bench child by-hand handled 3 events, not 5"):
        bench.run_children_in_step(BUILD, [("handler", "5"), ("by-hand", "3")], {}, 5)
