"""``make bench``: the pipeline's own cost, each figure against a baseline measured in the same run.

Everything measured runs in a fresh interpreter (``local/bench_child.py``) that has only boto3, as the
Lambda runtime does, and the **built** layer and function on its path; this process hosts what stands
in for AWS (moto in server mode, DynamoDB Local) and the vendors (the local sandbox, with a latency),
and stays idle while a child is timed. Medians over ``--repeats`` runs; absolute numbers beside the
ratios. Writes ``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3

from local.bench_child import STEP_DONE
from local.driver import ROOT, _lambda_record
from local.emulator import local_aws
from local.sandbox import FaultPlan, VendorSandbox
from local.stack import LocalStack, deploy, empty_queue

CHILD = ROOT / "local" / "bench_child.py"
# The longest a child running in step may take over one event before both are stopped.
STEP_TIMEOUT_SECONDS = 300
# B1: fresh processes per side and run, of which the quickest counts.
COLD_STARTS_PER_RUN = 3
# B2: warm records per process and round (each process also has its cold one first). A record takes
# about 30 ms, so the median of 4 swung by a quarter between processes; of 12 it holds within a tenth.
WARM_RECORDS_PER_ROUND = 12
LAMBDA_LAYER_LIMIT_BYTES = 250 * 1024 * 1024

# Prices, us-east-1, as AWS lists them on its pricing pages (last read 2025-06; the machine this runs on
# has no internet, so they are not re-read at run time). Vendor fees are excluded.
PRICES = {
    "lambda_arm64_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1e6,
    "sqs_request": 0.40 / 1e6,
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "sns_publish": 0.50 / 1e6,
    "s3_get_or_head": 0.0004 / 1000,
    "s3_put_or_list": 0.005 / 1000,
}
PRICES_AS_OF = "2025-06 (us-east-1 list prices)"


# A budget holds when the median run is inside it and the worst run within this much of it: one slow run
# on a shared machine is noise, but a budget met only by the median is not met.
WORST_RUN_MARGIN = 1.10


@dataclass
class Figure:
    id: str
    what: str
    value: float
    baseline: float
    unit: str
    budget: float
    detail: str = ""
    # An absolute bound on ``value`` instead of the ratio's (B9-B11 are bounded in milliseconds and
    # seconds, the cost in dollars); None with an infinite budget: reported, not bounded (memory).
    limit: float | None = None
    # (min, max) of the measured value over the repeats, beside its median ``value``.
    spread: tuple[float, float] | None = None
    # Each repeat's measured value over its own baseline run (the two run side by side): the ratio's
    # median and worst are what the budget holds, not the ratio of two medians.
    ratios: list[float] | None = None
    # (min, max) of the baseline over the repeats.
    baseline_spread: tuple[float, float] | None = None

    @property
    def ratio(self) -> float:
        if self.ratios:
            return statistics.median(self.ratios)
        return self.value / self.baseline if self.baseline else math.inf

    @property
    def worst(self) -> float:
        """The worst repeat: the largest paired ratio, or the largest value for an absolute limit."""
        if self.limit is not None:
            return self.spread[1] if self.spread else self.value
        return max(self.ratios) if self.ratios else self.ratio

    @property
    def within(self) -> bool:
        bound = self.limit if self.limit is not None else self.budget
        median = self.value if self.limit is not None else self.ratio
        return median <= bound and self.worst <= bound * WORST_RUN_MARGIN


def paired(
    id: str,
    what: str,
    values: list[float],
    baselines: list[float],
    unit: str,
    budget: float,
    detail: str,
) -> Figure:
    """A figure from repeats run in pairs: ``values[i]`` beside ``baselines[i]``."""
    if os.environ.get("BENCH_PAIRS"):  # each pair as measured, for telling drift from noise
        print(id, [f"{v * 1000:.1f}/{b * 1000:.1f}" for v, b in zip(values, baselines, strict=True)], file=sys.stderr)
    return Figure(
        id,
        what,
        statistics.median(values),
        statistics.median(baselines),
        unit,
        budget,
        detail,
        spread=(min(values), max(values)),
        ratios=[v / b for v, b in zip(values, baselines, strict=True)],
        baseline_spread=(min(baselines), max(baselines)),
    )


@cache
def template_default(parameter: str) -> str:
    """A parameter's default in template.yaml: what a deployment gets unless it says otherwise."""
    from samtranslator.yaml_helper import yaml_parse

    return str(yaml_parse((ROOT / "template.yaml").read_text())["Parameters"][parameter]["Default"])


def memory_mb() -> int:
    """The function's MemorySize as the template deploys it."""
    return int(template_default("AnalyzeMemorySize"))


def batch_size() -> int:
    """Records per invocation as the template's SQS trigger deploys it."""
    return int(template_default("BatchSize"))


# -- images -------------------------------------------------------------------------------------------


def photo(width: int, height: int, seed: int = 1) -> bytes:
    """A photo-like JPEG of the given size: a real photograph scaled up with sensor-like noise, and the
    EXIF a phone writes (camera, GPS), so that its file size and metadata resemble a real upload."""
    from PIL import Image, ImageFilter

    base = Image.open(ROOT / "samples" / "skimage-rocket.jpg").convert("RGB")
    image = base.resize((width, height), Image.Resampling.BICUBIC).filter(ImageFilter.DETAIL)
    noise = Image.effect_noise((width, height), 18 + seed).convert("RGB")
    image = Image.blend(image, noise, 0.06)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "PhoneMaker", "Phone 12"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif)
    return out.getvalue()


def decompression_bomb(side: int = 10_000) -> bytes:
    """A PNG of about 0.7 MB that decodes to ``side`` x ``side`` (100 megapixels) of RGB: coarse random
    blocks, which PNG's filters compress almost away, with a fine pattern on top so the file is not tiny."""
    from PIL import Image

    blocks = Image.effect_noise((side // 40, side // 40), 64).convert("RGB")
    image = blocks.resize((side, side), Image.Resampling.NEAREST)
    stripes = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    image = Image.blend(image, stripes, 0.25)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


# -- events -------------------------------------------------------------------------------------------


def upload_events(stack: LocalStack, data: bytes, count: int) -> list[dict[str, Any]]:
    """Upload ``count`` objects with distinct bytes (so the content cache never answers) and return the
    SQS records of the notifications S3 sent for them, one per object."""
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=stack.queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    keys = set()
    suffix = ".png" if data.startswith(b"\x89PNG") else ".jpg"
    for _ in range(count):
        key = f"bench/{uuid.uuid4().hex}{suffix}"
        # Bytes after the file's end marker: every decoder ignores them, the SHA-256 differs.
        s3.put_object(Bucket=stack.bucket, Key=key, Body=data + uuid.uuid4().bytes)
        keys.add(key)
    records = []
    while len(records) < count:
        messages = sqs.receive_message(QueueUrl=stack.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in messages.get("Messages", []):
            sqs.delete_message(QueueUrl=stack.queue_url, ReceiptHandle=message["ReceiptHandle"])
            body = json.loads(message["Body"])
            if any(unquote_plus(r["s3"]["object"]["key"]) in keys for r in body.get("Records", [])):
                records.append(_lambda_record(message, queue_arn))
    return records


def single_events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"Records": [record]} for record in records]


# -- children -----------------------------------------------------------------------------------------


@dataclass
class Build:
    layer: Path
    function: Path
    runtime_python: str


def _child_command(build: Build, mode: str, arg: str) -> list[str]:
    # BENCH_CHILD_FLAGS: interpreter flags for looking into a figure, e.g. "-X importtime" (stderr is
    # kept in BENCH_CHILD_STDERR's file) or "-m cProfile -o /tmp/{mode}.prof" (the last child's per mode).
    # BENCH_CHILD_WRAPPER: a command the child runs under, e.g. a sampling profiler that sees every
    # thread ("py-spy record -f raw -o /tmp/{mode}.raw --"), which cProfile does not.
    return [
        *shlex.split(os.environ.get("BENCH_CHILD_WRAPPER", "").replace("{mode}", mode)),
        build.runtime_python,
        "-I",
        "-B",
        *shlex.split(os.environ.get("BENCH_CHILD_FLAGS", "").replace("{mode}", mode)),
        str(CHILD),
        mode,
        str(build.layer),
        str(build.function),
        arg,
    ]


def _is_report(line: str) -> bool:
    """The child's last line: its JSON report."""
    return line.startswith('{"') and '"total_s"' in line


def _child_report(mode: str, returncode: int, lines: list[str], stderr: str) -> dict[str, Any]:
    if os.environ.get("BENCH_CHILD_STDERR"):
        Path(os.environ["BENCH_CHILD_STDERR"].replace("{mode}", mode)).write_text(stderr)
    reported = [line for line in lines if _is_report(line)]
    if returncode != 0 or not reported:
        raise SystemExit(f"bench child {mode} failed:\n{stderr[-3000:]}")
    report = json.loads(reported[-1])
    for operation, times in report.get("aws_calls_ms", {}).items():  # BENCH_CALLS=1
        median = statistics.median(times)
        print(f"    {mode:8s} {operation:14s} x{len(times):<3d} median {median:6.2f} ms", file=sys.stderr)
    for response in report.get("responses", []):
        if response.get("batchItemFailures"):
            raise SystemExit(f"bench child {mode}: the handler handed records back: {response}")
    return report


def run_child(build: Build, mode: str, arg: str, env: dict[str, str]) -> tuple[dict[str, Any], float]:
    """(the child's report, its wall time from spawn to its report). The report is the child's last act
    before the interpreter exits: what comes after (threads joined, modules torn down) is no part of a
    cold start, since Lambda keeps the process for the next event, and nobody waits for it."""
    import tempfile

    with tempfile.TemporaryFile(mode="w+") as errors:
        began = time.perf_counter()
        child = subprocess.Popen(
            _child_command(build, mode, arg), env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert child.stdout is not None
        lines, wall = [], math.inf
        for line in child.stdout:
            lines.append(line)
            if _is_report(line):
                wall = time.perf_counter() - began
        returncode = child.wait()
        errors.seek(0)
        stderr = errors.read()
    return _child_report(mode, returncode, lines, stderr), wall


def run_children_in_step(
    build: Build, sides: list[tuple[str, str]], env: dict[str, str], events: int
) -> list[dict[str, Any]]:
    """Reports of two fresh children, one per (mode, events file) side, that handle their events in step:
    each waits for a go before an event and says when it is done, and the side that goes
    first alternates from event to event. Only one runs at a time, so neither slows the other, and a
    slow spell of the machine or the emulator falls on both sides' records alike, not on whichever
    process happened to run in it. A child that fails, or takes longer than STEP_TIMEOUT_SECONDS over
    one event, stops both; the failed one is reported."""
    import tempfile

    env = {**env, "BENCH_STEP_FROM_STDIN": "1"}
    with ExitStack() as stack:
        errors = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in sides]
        children = [
            stack.enter_context(
                subprocess.Popen(
                    _child_command(build, mode, arg),
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=errors[index],
                    text=True,
                )
            )
            for index, (mode, arg) in enumerate(sides)
        ]
        outputs: list[list[str]] = [[] for _ in sides]
        try:
            overran: list[int] = []
            failed = _take_steps(children, outputs, events, overran)
            if failed is not None:
                children[1 - failed].kill()  # its further events would run unpaired
            reports: dict[int, dict[str, Any]] = {}
            for index in (0, 1) if failed is None else (failed, 1 - failed):  # the failed one's error first
                child, output, (mode, _arg) = children[index], outputs[index], sides[index]
                assert child.stdin is not None and child.stdout is not None
                with contextlib.suppress(BrokenPipeError):
                    child.stdin.close()
                output.extend(child.stdout)
                returncode = child.wait()
                errors[index].seek(0)
                if index in overran:
                    raise SystemExit(
                        f"bench child {mode} took more than {STEP_TIMEOUT_SECONDS} s over one event and was stopped:\n"
                        + errors[index].read()[-3000:]
                    )
                report = _child_report(mode, returncode, output, errors[index].read())
                if len(report["durations_s"]) != events:
                    raise SystemExit(f"bench child {mode} handled {len(report['durations_s'])} events, not {events}")
                reports[index] = report
            return [reports[0], reports[1]]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait()


def _take_steps(
    children: list[subprocess.Popen], outputs: list[list[str]], events: int, overran: list[int]
) -> int | None:
    """Give the children their go one event at a time. Returns the index of the first that ended early,
    or that overran STEP_TIMEOUT_SECONDS (it is killed, and its index put in ``overran``), or None when
    every event was done."""
    import threading

    for n in range(events):
        for index in (0, 1) if n % 2 == 0 else (1, 0):
            child = children[index]
            assert child.stdin is not None and child.stdout is not None
            try:
                child.stdin.write("go\n")
                child.stdin.flush()
            except BrokenPipeError:
                return index
            watchdog = threading.Timer(STEP_TIMEOUT_SECONDS, lambda c=child, i=index: (overran.append(i), c.kill()))
            watchdog.start()
            try:
                for line in child.stdout:  # the child's own output up to its event's end
                    outputs[index].append(line)
                    if line.rstrip("\n").endswith(STEP_DONE):
                        break
                else:
                    return index
            finally:
                watchdog.cancel()
    return None


def events_file(tmp: Path, events: list[dict[str, Any]]) -> str:
    path = tmp / f"events-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(events))
    return str(path)


# -- the figures --------------------------------------------------------------------------------------


class Bench:
    def __init__(self, stack: LocalStack, build: Build, tmp: Path, repeats: int, latency: float) -> None:
        self.stack = stack
        self.build = build
        self.tmp = tmp
        self.repeats = repeats
        self.latency = latency
        self.photo = (ROOT / "samples" / "skimage-rocket.jpg").read_bytes()
        self.notes: dict[str, Any] = {}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(self.stack.function_env)
        env.update(extra)
        return env

    @contextmanager
    def vendors(self, names: list[str], latency: float) -> Iterator[dict[str, str]]:
        """Sandboxes for ``names`` with ``latency``; yields the environment that points the function at them."""
        env: dict[str, str] = {}
        with ExitStack() as stack:
            for name in names:
                # Saved answers: looking at the pixels would take CPU from the measured side.
                sandbox = VendorSandbox(name, faults=FaultPlan(latency=latency), answers="saved")
                prefix = name.upper() + "_"
                env[f"{prefix}BASE_URL"] = stack.enter_context(sandbox)
                for field, value in sandbox.vendor.credentials.items():
                    env[f"{prefix}{field.upper()}"] = value
            yield env

    def cold_start(self) -> Figure:
        walls: dict[str, list[float]] = {"handler": [], "by-hand": []}
        with self.vendors(["imagga"], 0.0) as vendor_env:
            env = self.env(PROVIDERS="builtin,imagga", **vendor_env)
            for round_ in range(self.repeats):
                # Each pair in turn, and turns at going first, so that drift hits both sides alike. A
                # side's run is the quickest of COLD_STARTS_PER_RUN fresh processes started in a row: other
                # work on the machine only ever slows a start down, and a pair is compared on what each
                # side costs, not on whose start a neighbour's burst happened to meet.
                order = ("handler", "by-hand") if round_ % 2 == 0 else ("by-hand", "handler")
                starts: dict[str, list[float]] = {mode: [] for mode in order}
                for _ in range(COLD_STARTS_PER_RUN):
                    for mode in order:
                        events = single_events(upload_events(self.stack, self.photo, 1))
                        _report, wall = run_child(self.build, mode, events_file(self.tmp, events), env)
                        starts[mode].append(wall)
                for mode in order:
                    walls[mode].append(min(starts[mode]))
        return paired(
            "B1",
            "cold start: fresh process, import the built handler, process one record (builtin + Imagga); each run "
            f"the quickest of {COLD_STARTS_PER_RUN} in a row",
            walls["handler"],
            walls["by-hand"],
            "s",
            1.3,
            "baseline: fresh process importing boto3 and httpx, making the same AWS and HTTP calls by hand",
        )

    def warm_record(self) -> Figure:
        runs: dict[str, list[float]] = {"handler": [], "by-hand": []}
        cpu: dict[str, list[float]] = {"handler": [], "by-hand": []}
        with self.vendors(["imagga"], 0.0) as vendor_env:
            env = self.env(PROVIDERS="builtin,imagga", **vendor_env)
            # A fresh process per side and round. The two run in step, one event at a time and the side
            # that goes first alternating, so that a slow spell of the machine or the emulator falls on
            # both alike. Run one after the other, each process's median swung by a fifth with the spell
            # it ran in, on either side, and one pair in most runs was over by that alone. Each
            # process's first record is its cold one. Round -1 is not counted: the first pair after the
            # figure's new vendor sandbox started was slow more often than not (cause not known).
            for round_ in range(-1, self.repeats):
                order = ("handler", "by-hand") if round_ % 2 == 0 else ("by-hand", "handler")
                sides = []
                for mode in order:
                    events = single_events(upload_events(self.stack, self.photo, WARM_RECORDS_PER_ROUND + 1))
                    sides.append((mode, events_file(self.tmp, events)))
                reports = run_children_in_step(self.build, sides, env, WARM_RECORDS_PER_ROUND + 1)
                if round_ < 0:
                    continue
                for mode, report in zip(order, reports, strict=True):
                    runs[mode].append(statistics.median(report["durations_s"][1:]))
                    cpu[mode].extend(report["cpu_s"][1:])
        cpu_handler, cpu_by_hand = statistics.median(cpu["handler"]), statistics.median(cpu["by-hand"])
        self.notes["warm_record_cpu_s"] = (cpu_handler, cpu_by_hand)
        figure = paired(
            "B2",
            f"warm per-record time, builtin + Imagga with zero latency (median of {WARM_RECORDS_PER_ROUND} records "
            "per process)",
            runs["handler"],
            runs["by-hand"],
            "s",
            1.25,
            "baseline: the same reads, conditional writes and vendor calls written by hand in a straight line",
        )
        self.notes["warm_record_s"] = figure.value
        return figure

    def _warm_durations(self, env: dict[str, str], records: int) -> list[float]:
        """The warm records' durations of a fresh process given ``records`` single-record events (its first,
        cold one left out)."""
        events = single_events(upload_events(self.stack, self.photo, records + 1))
        report, _ = run_child(self.build, "handler", events_file(self.tmp, events), env)
        return report["durations_s"][1:]

    def fan_out(self) -> Figure:
        names = ["imagga", "aiornot", "imageseo"]
        one_side: list[float] = []
        three_side: list[float] = []
        with self.vendors(names, self.latency) as vendor_env:
            common = {"IMAGGA_ENDPOINTS": "tags", **vendor_env}  # one call of `latency` per provider
            sides = {
                "one": (self.env(PROVIDERS="builtin,imagga", **common), one_side),
                "three": (self.env(PROVIDERS="builtin," + ",".join(names), **common), three_side),
            }
            for round_ in range(self.repeats):
                for name in ("one", "three") if round_ % 2 == 0 else ("three", "one"):
                    env, values = sides[name]
                    values.append(statistics.median(self._warm_durations(env, 3)))
        figure = paired(
            "B3",
            f"three providers at {self.latency * 1000:.0f} ms each for one image (median of 3 warm records per "
            "process)",
            three_side,
            one_side,
            "s",
            1.2,
            f"baseline: one provider at {self.latency * 1000:.0f} ms",
        )
        self.notes["one_vendor_record_s"] = figure.baseline
        return figure

    def _one_and_ten(self, latency: float, **extra: str) -> tuple[list[float], list[float]]:
        """Times of a batch of one record and of ten, in one warm process taking turns, as one container
        would get them; the first of each warms it up and is left out."""
        with self.vendors(["imagga"], latency) as vendor_env:
            env = self.env(PROVIDERS="builtin,imagga", IMAGGA_ENDPOINTS="tags", **vendor_env, **extra)
            records = iter(upload_events(self.stack, self.photo, (self.repeats + 1) * 11))
            events = []
            for _ in range(self.repeats + 1):
                events.append({"Records": [next(records)]})
                events.append({"Records": [next(records) for _ in range(10)]})
            report, _ = run_child(self.build, "handler", events_file(self.tmp, events), env)
            durations = report["durations_s"][2:]
            return durations[0::2], durations[1::2]

    def batch(self) -> tuple[Figure, ...]:
        one, ten = self._one_and_ten(self.latency)
        # The same without the turns records take at preparing their requests (orchestration's
        # PREPARING_AT_ONCE): whether they pay for themselves.
        one_free, ten_free = self._one_and_ten(self.latency, BENCH_TURNS="off")
        # The same with a vendor that answers at once: what ten records' own work (emulator calls, image
        # work) costs on this machine, which no overlap of vendor waits can hide.
        work_one, work_ten = self._one_and_ten(0.0)
        self.notes["batch_work_s"] = (statistics.median(work_one), statistics.median(work_ten))
        what = f"an SQS batch of 10 records, provider at {self.latency * 1000:.0f} ms"
        return (
            paired("B4", what, ten, one, "s", 1.5, "baseline: a batch of one record"),
            paired(
                "B4 no turns",
                what + ", records not taking turns at preparing their requests",
                ten_free,
                one_free,
                "s",
                math.inf,
                "baseline: a batch of one record, same process",
            ),
        )

    def large_image(self) -> tuple[Figure, Figure]:
        path = self.tmp / "48mp.jpg"
        path.write_bytes(photo(8000, 6000))
        results: dict[str, list[dict[str, Any]]] = {"prepare": [], "naive": []}
        for round_ in range(self.repeats):
            for mode in ("prepare", "naive") if round_ % 2 == 0 else ("naive", "prepare"):
                report, _ = run_child(self.build, mode, f"{path}:1024", self.env())
                results[mode].append(report)

        def side(mode: str, field: str, scale: float = 1.0) -> list[float]:
            return [r[field] / scale for r in results[mode]]

        size = f"{path.stat().st_size / 1e6:.1f} MB file"
        return (
            paired(
                "B5 time",
                f"a 48-megapixel JPEG ({size}) prepared for a vendor that needs 1024 px",
                side("prepare", "seconds"),
                side("naive", "seconds"),
                "s",
                0.35,
                "baseline: full decode, then resize and encode, same file",
            ),
            paired(
                "B5 memory",
                "the same, peak memory above the process's before the work",
                side("prepare", "peak_kib", 1024),
                side("naive", "peak_kib", 1024),
                "MiB",
                0.35,
                "baseline: the naive path's peak",
            ),
        )

    def decompression_batch(self) -> Figure:
        """B8: the peak RSS of a fresh process handling one batch of ten 100-megapixel PNGs (tracemalloc
        would not see Pillow's buffers), against the function's MemorySize."""
        bomb = decompression_bomb()
        peaks = []
        for _ in range(self.repeats):
            records = upload_events(self.stack, bomb, 10)
            env = self.env(PROVIDERS="builtin")
            report, _ = run_child(self.build, "handler", events_file(self.tmp, [{"Records": records}]), env)
            statuses = {
                self.item(json.loads(r["body"])["Records"][0]["s3"]["object"]["key"])["status"] for r in records
            }
            if statuses != {"succeeded"}:
                raise SystemExit(f"B8: the batch ended {statuses}, not succeeded: the figure would measure nothing")
            peaks.append(report["peak_kib"] / 1024)
        self.notes["b8_file_mb"] = len(bomb) / 1e6
        return paired(
            "B8",
            f"peak memory (RSS) of a fresh process handling one batch of 10 PNGs of {len(bomb) / 1e6:.2f} MB that "
            "each decode to 100 megapixels",
            peaks,
            [float(memory_mb())] * len(peaks),
            "MiB",
            0.8,
            "baseline: the function's MemorySize",
        )

    def bytes_sent(self) -> Figure:
        data = photo(4000, 3000, seed=2)
        with self.vendors(["imagga"], 0.0) as vendor_env:
            env = self.env(PROVIDERS="builtin,imagga", **vendor_env)
            records = upload_events(self.stack, data, 1)
            run_child(self.build, "handler", events_file(self.tmp, single_events(records)), env)
        body = json.loads(records[0]["body"])["Records"][0]["s3"]
        item = self.item(body["object"]["key"])
        imagga = next(p for p in item["providers"] if p["name"] == "imagga")
        self.notes["result_item_bytes"] = len(json.dumps(item, default=str))
        return Figure(
            "B6",
            f"bytes sent to Imagga for a 12-megapixel photo ({imagga['calls']} calls: tags, nsfw)",
            float(imagga["bytes_sent"]),
            float(len(data)),
            "B",
            0.05,
            f"baseline: the original file ({len(data) / 1e6:.1f} MB)",
        )

    # -- the AWS bill (C1) ------------------------------------------------------------------------------
    def _batches(self, batches: int, **extra: str) -> dict[str, Any]:
        """A warm process handling ``batches`` batches of the template's BatchSize (a cold one first, left
        out), builtin and Imagga at the benchmark's latency, counting every AWS request and the DynamoDB
        capacity each consumed."""
        size = batch_size()
        with self.vendors(["imagga"], self.latency) as vendor_env:
            env = self.env(PROVIDERS="builtin,imagga", BENCH_CAPACITY="1", **vendor_env, **extra)
            records = iter(upload_events(self.stack, self.photo, (batches + 1) * size))
            events = [{"Records": [next(records) for _ in range(size)]} for _ in range(batches + 1)]
            report, _ = run_child(self.build, "handler", events_file(self.tmp, events), env)
        last = events[-1]["Records"][-1]
        item_bytes = dynamodb_item_bytes(self.raw_item(json.loads(last["body"])["Records"][0]["s3"]["object"]["key"]))
        return {
            "size": size,
            "durations_s": report["durations_s"][1:],
            "cpu_s": report["cpu_s"][1:],
            "requests": report["requests"][1:],
            "item_bytes": item_bytes,
        }

    def cost(self) -> Figure:
        clean = self._batches(max(self.repeats, 7))
        # The same images flagged (Imagga's saved answer has explicit at 0.12): what a flagged image adds.
        flagged = self._batches(3, NSFW_THRESHOLD="0.1")
        bill = Bill.measured(clean, flagged, memory_mb())
        self.notes["bill"] = bill
        totals = [sum(costs.values()) for costs in bill.per_batch]
        return Figure(
            "C1",
            f"AWS cost per million images (vendor fees excluded): batches of {bill.batch_size} at "
            f"{bill.memory_mb} MB, builtin + Imagga at {self.latency * 1000:.0f} ms, 1% flagged; mean over "
            f"{len(totals)} batches",
            bill.total,
            BEFORE["total"],
            "$",
            math.inf,
            f"baseline: the bill before, {BEFORE_AS_OF}",
            limit=5.0,
            spread=(min(totals), max(totals)),
        )

    def raw_item(self, encoded_key: str) -> dict[str, Any]:
        """The result item as DynamoDB holds it (attribute values typed), for its size."""
        key = f"{self.stack.bucket}/{unquote_plus(encoded_key)}"
        response = boto3.client("dynamodb").get_item(
            TableName=self.stack.table, Key={"pk": {"S": key}, "sk": {"S": "null"}}, ConsistentRead=True
        )
        return response["Item"]

    # -- hash banks (B9-B11) --------------------------------------------------------------------------
    def pdq_cpu(self) -> Figure:
        path = self.tmp / "12mp.jpg"
        path.write_bytes(photo(4000, 3000, seed=3))
        report, _ = run_child(self.build, "pdq", f"{path}:{max(10, self.repeats * 4)}", self.env())
        hashing, decoding = report["pdq_cpu_s"], report["decode_cpu_s"]
        return Figure(
            "B9",
            "PDQ hash of a 12-megapixel JPEG, CPU on top of its decode",
            statistics.median(hashing),
            statistics.median(decoding),
            "s",
            math.inf,
            "baseline: the decode itself (draft-mode JPEG, working copy), CPU",
            limit=0.015,
            spread=(min(hashing), max(hashing)),
        )

    def bank_million(self) -> tuple[Figure, ...]:
        snapshot = bank_snapshot(MILLION)
        key = f"bench/{snapshot.name}"
        bucket = self.stack.outputs["BanksBucketName"]
        boto3.client("s3").upload_file(str(snapshot), bucket, key)
        loads: dict[str, list[dict[str, Any]]] = {"bank": [], "get": []}
        for _ in range(self.repeats):
            for how in loads:  # fresh processes, taking turns
                report, _ = run_child(
                    self.build, "bank-load", f"{how}:{bucket}:{key}:{snapshot.stat().st_size}", self.env()
                )
                loads[how].append(report)
        match, _ = run_child(self.build, "bank-match", f"brute:{snapshot}:{QUERY_IMAGES}:{self.repeats}", self.env())
        # CPU time: matching is pure computation, and this machine's 2 cores are shared (the wall time,
        # which waits for a core, is in the detail).
        self.notes["bank_million_match_s"] = statistics.median(match["cpu_s"])
        self.notes["bank_planted"] = _planted_found(match["found"])
        load_s = [r["seconds"] for r in loads["bank"]]
        size_mib = snapshot.stat().st_size / 2**20
        return (
            Figure(
                "B10 time",
                f"matching one image (its 8 dihedral hashes) against {MILLION:,} random hashes + planted ones, "
                f"warm, CPU per image (wall median {statistics.median(match['seconds']) * 1000:.1f} ms; "
                f"{self.notes['bank_planted']})",
                statistics.median(match["cpu_s"]),
                statistics.median(match["brute_s"]),
                "s",
                math.inf,
                "baseline: a full scan of every hash for the same 8 hashes",
                limit=0.005,
                spread=(min(match["cpu_s"]), max(match["cpu_s"])),
            ),
            Figure(
                "B10 load",
                f"cold start: a fresh process reads the {size_mib:.0f} MiB snapshot from S3 and opens it",
                statistics.median(load_s),
                statistics.median(r["seconds"] for r in loads["get"]),
                "s",
                math.inf,
                "baseline: a fresh process GETs the same object",
                limit=1.5,
                spread=(min(load_s), max(load_s)),
            ),
            Figure(
                "B10 memory",
                f"the bank's memory in the function: {MILLION:,} hashes read into memory",
                statistics.median(r["rss_kib"] for r in loads["bank"]) / 1024,
                size_mib,
                "MiB",
                math.inf,
                "baseline: the snapshot file",
            ),
        )

    def bank_ten_million(self) -> tuple[Figure, ...]:
        snapshot = bank_snapshot(TEN_MILLION)
        match, _ = run_child(self.build, "bank-match", f"map:{snapshot}:{QUERY_IMAGES}:{self.repeats}", self.env())
        one_million = self.notes.get("bank_million_match_s")
        if one_million is None:
            small, _ = run_child(
                self.build, "bank-match", f"memory:{bank_snapshot(MILLION)}:{QUERY_IMAGES}:{self.repeats}", self.env()
            )
            one_million = statistics.median(small["cpu_s"])
        size_mib = snapshot.stat().st_size / 2**20
        return (
            Figure(
                "B11 time",
                f"matching one image against {TEN_MILLION:,} hashes + planted ones, snapshot mapped from local "
                f"disk, warm, CPU per image (wall median {statistics.median(match['seconds']) * 1000:.1f} ms; "
                f"{_planted_found(match['found'])})",
                statistics.median(match["cpu_s"]),
                one_million,
                "s",
                math.inf,
                f"baseline: {MILLION:,} hashes in memory, same run",
                limit=0.05,
                spread=(min(match["cpu_s"]), max(match["cpu_s"])),
            ),
            Figure(
                "B11 memory",
                f"resident memory of the mapped {size_mib:.0f} MiB snapshot after the queries (opened in "
                f"{match['open_s'] * 1000:.0f} ms)",
                match["rss_kib"] / 1024,
                size_mib,
                "MiB",
                math.inf,
                "baseline: the snapshot file",
            ),
        )

    def item(self, encoded_key: str) -> dict[str, Any]:
        from image_analysis.store import from_item

        table = boto3.resource("dynamodb").Table(self.stack.table)
        key = f"{self.stack.bucket}/{unquote_plus(encoded_key)}"
        return from_item(table.get_item(Key={"pk": key, "sk": "null"}, ConsistentRead=True)["Item"])


# -- hash bank snapshots -------------------------------------------------------------------------------

MILLION, TEN_MILLION = 1_000_000, 10_000_000
PDQ_FIXTURES = ROOT / "tests" / "fixtures" / "pdq"
# Query images: Meta's rotations and flips and edits of the bridge (the bank holds the original's hash,
# and entries planted near it), and unrelated photos, which must match nothing.
MATCHING = [
    *(f"bridge-{n}" for n in range(2, 9)),
    "blur-a-little",
    "high-contrast",
    "shrink-a-little",
    "square-256x256",
]
UNRELATED = ["q0122", "q0291", "wee"]
QUERY_IMAGES = ",".join(str(next(PDQ_FIXTURES.glob(f"{stem}*.jpg"))) for stem in [*MATCHING, *UNRELATED])
BANK_CACHE = ROOT / ".aws-sam" / "bench-banks"


def bank_snapshot(count: int) -> Path:
    """A snapshot of ``count`` random hashes with the bridge's hash and hashes 8, 16, 24 and 31 bits from
    it planted among them; built once (minutes for ten million) and kept in .aws-sam/bench-banks."""
    from PIL import Image

    from image_analysis.analyzers.pdq import pdq_hash
    from image_analysis.banks.index import FORMAT_VERSION, build

    path = BANK_CACHE / f"random-{count}-v{FORMAT_VERSION}.pdqidx"
    if path.exists():
        return path
    print(f"  building a snapshot of {count:,} hashes (kept in {BANK_CACHE}) ...", file=sys.stderr, flush=True)
    import random

    rng = random.Random(count)
    hashes = [rng.getrandbits(256) for _ in range(count)]
    labels: list[str | None] = [None] * count
    bridge = pdq_hash(Image.open(PDQ_FIXTURES / "bridge-1-original.jpg")).value
    for number, bits in enumerate((0, 8, 16, 24, 31)):
        value = bridge
        for bit in rng.sample(range(256), bits):
            value ^= 1 << bit
        position = (number + 1) * count // 7
        hashes[position], labels[position] = value, f"planted, {bits} bits from the bridge"
    BANK_CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(build(hashes, labels, bank="bench", seq=0))
    partial.replace(path)
    return path


def _planted_found(found: dict[str, list[int]]) -> str:
    """'planted entries found for 11/11 copies, 0/3 unrelated match', from the last round's hits."""
    matching = sum(1 for name, hits in found.items() if any(s in name for s in MATCHING) and hits)
    unrelated = sum(1 for name, hits in found.items() if any(s in name for s in UNRELATED) and hits)
    return f"planted entries found for {matching}/{len(MATCHING)} copies, {unrelated}/{len(UNRELATED)} unrelated match"


# DynamoDB Local is a JVM: its first requests run interpreted while its JIT compiles. Measured here, a
# result write costs about 26 ms of its CPU at first and 4-5 ms after some 900 writes; on 2 cores that
# CPU is taken from whatever is being measured. So it is warmed up first, as a long-running service is.
EMULATOR_WARM_UP_ROUNDS = 1200


def warm_up_emulator(stack: LocalStack, rounds: int = EMULATOR_WARM_UP_ROUNDS) -> None:
    """The requests the pipeline makes of DynamoDB, on items of its own shape, under a key prefix of their
    own, deleted afterwards: conditional result writes, reads, batch reads and cache batch writes."""
    from image_analysis.cache import ContentCache
    from image_analysis.models import AnalysisResult, Color, Label
    from image_analysis.providers.base import ProviderOutput
    from image_analysis.store import ResultStore

    client = boto3.client("dynamodb")
    store = ResultStore(stack.table, client)
    cache = ContentCache(stack.function_env["CACHE_TABLE"], client, ttl_seconds=3600)
    labels = [Label(name=f"label {i}", confidence=round(0.9 - i / 100, 4), provider="imagga") for i in range(50)]
    colors = [Color(hex="#336699", percent=0.2, name="blue", provider="builtin")] * 5
    output = ProviderOutput(labels=labels, raw={"tags": {"result": {"tags": ["x"] * 200}}})
    for n in range(rounds):
        result = AnalysisResult(
            bucket="bench-warm-up",
            key=f"{n}.jpg",
            status="succeeded",
            labels=labels,
            colors=colors,
            analyzed_at="2026-01-01T00:00:00.000Z",
        )
        store.put_result(result, f"{n:032d}")
        store.get(f"bench-warm-up/{n}.jpg", "null")
        if n % 10 == 9:
            store.get_many([(f"bench-warm-up/{k}.jpg", "null") for k in range(n - 9, n + 1)])
            cache.put_many([(f"bench-warm-up-{k}", output, 1) for k in range(n - 9, n + 1)])
            cache.get(f"bench-warm-up-{n}")
    for n in range(rounds):
        client.delete_item(TableName=stack.table, Key={"pk": {"S": f"bench-warm-up/{n}.jpg"}, "sk": {"S": "null"}})


def layer_size(layer_dir: Path) -> int:
    return sum(p.stat().st_size for p in layer_dir.rglob("*") if p.is_file() and not p.is_symlink())


def layer_figure(layer_dir: Path) -> Figure:
    return Figure(
        "B7",
        f"built layer size, unzipped ({layer_dir.relative_to(ROOT) if layer_dir.is_relative_to(ROOT) else layer_dir})",
        layer_size(layer_dir) / 1e6,
        LAMBDA_LAYER_LIMIT_BYTES / 1e6,
        "MB",
        0.40,
        "baseline: Lambda's 250 MB limit for function and layers, unzipped",
    )


# -- costs --------------------------------------------------------------------------------------------

# The bill as docs/performance.md gave it before it was measured request by request: one record's time at
# 1024 MB for every image, and DynamoDB units estimated from an 8 KB result item.
BEFORE = {
    "Lambda compute": 4.56,
    "Lambda requests": 0.04,
    "SQS": 0.56,
    "DynamoDB": 6.44,
    "S3": 0.40,
    "flagged images (1%)": 0.01,
    "total": 12.00,
}
BEFORE_AS_OF = "docs/performance.md of 2026-12-01"
FLAGGED_SHARE = 0.01
# Lambda gives a function CPU in proportion to its memory: one vCPU at 1,769 MB.
LAMBDA_MB_PER_VCPU = 1769
S3_GET_CLASS = frozenset({"GetObject", "HeadObject", "GetObjectTagging"})
S3_FREE = frozenset({"DeleteObject", "DeleteObjects"})


def dynamodb_item_bytes(item: dict[str, Any]) -> int:
    """An item's size as DynamoDB bills it: attribute names and values, UTF-8 strings, binary as is, a
    number about one byte per two digits, three bytes per list or map and one per element."""

    def value_bytes(value: dict[str, Any]) -> int:
        kind, inner = next(iter(value.items()))
        if kind == "S":
            return len(inner.encode())
        if kind == "B":
            return len(inner)
        if kind == "N":
            return len(inner.lstrip("-").replace(".", "")) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "L":
            return 3 + sum(1 + value_bytes(v) for v in inner)
        if kind == "M":
            return 3 + sum(1 + len(k.encode()) + value_bytes(v) for k, v in inner.items())
        if kind in ("SS", "NS", "BS"):
            return sum(value_bytes({kind[0]: v}) for v in inner)
        raise ValueError(f"unknown DynamoDB type {kind}")

    return sum(len(name.encode()) + value_bytes(value) for name, value in item.items())


@dataclass
class Bill:
    """AWS cost per million images from a measured run: each line's mean over the measured batches."""

    batch_size: int
    memory_mb: int
    lines: dict[str, float]
    # Each measured batch's lines, for the spread of the total.
    per_batch: list[dict[str, float]]
    # DynamoDB units per image by "table[ index]|operation|read or write", clean and flagged.
    units: dict[str, float]
    flagged_units: dict[str, float]
    requests: dict[str, float]
    flagged_requests: dict[str, float]
    billed_s: list[float]
    batch_s: list[float]
    batch_cpu_s: list[float]
    item_bytes: int
    flagged_item_bytes: int

    @property
    def total(self) -> float:
        return sum(self.lines.values())

    @classmethod
    def measured(cls, clean: dict[str, Any], flagged: dict[str, Any], memory: int) -> Bill:
        size = clean["size"]
        vcpu = memory / LAMBDA_MB_PER_VCPU
        # A batch is billed for its duration; at the deployed memory it gets ``vcpu`` of a CPU, so it takes
        # at least its CPU time divided by that (here it had a whole core when it needed one).
        billed = [max(d, c / vcpu) for d, c in zip(clean["durations_s"], clean["cpu_s"], strict=True)]
        when_flagged = _per_image(flagged["requests"], size)
        per_batch = [
            _lines(seconds, memory, size, _per_image([requests], size), when_flagged)
            for seconds, requests in zip(billed, clean["requests"], strict=True)
        ]
        mean_requests = _per_image(clean["requests"], size)
        lines = _lines(statistics.fmean(billed), memory, size, mean_requests, when_flagged)
        return cls(
            batch_size=size,
            memory_mb=memory,
            lines=lines,
            per_batch=per_batch,
            units=mean_requests["units"],
            flagged_units=when_flagged["units"],
            requests=mean_requests["requests"],
            flagged_requests=when_flagged["requests"],
            billed_s=billed,
            batch_s=clean["durations_s"],
            batch_cpu_s=clean["cpu_s"],
            item_bytes=clean["item_bytes"],
            flagged_item_bytes=flagged["item_bytes"],
        )


def _per_image(batches: list[dict[str, Any]], size: int) -> dict[str, dict[str, float]]:
    """Requests and DynamoDB units per image, summed over ``batches`` of ``size`` records."""
    images = size * len(batches)
    requests: dict[str, float] = {}
    units: dict[str, float] = {}
    for batch in batches:
        for name, count in batch.get("requests", {}).items():
            requests[name] = requests.get(name, 0.0) + count / images
        for name, value in batch.get("units", {}).items():
            units[name] = units.get(name, 0.0) + value / images
    return {"requests": requests, "units": units}


def _dynamodb_dollars(units: dict[str, float]) -> float:
    return sum(
        value * PRICES["dynamodb_read_unit" if name.endswith("|read") else "dynamodb_write_unit"]
        for name, value in units.items()
    )


def _s3_dollars(requests: dict[str, float]) -> float:
    total = 0.0
    for name, count in requests.items():
        service, _, operation = name.partition(":")
        if service != "s3" or operation in S3_FREE:
            continue
        total += count * PRICES["s3_get_or_head" if operation in S3_GET_CLASS else "s3_put_or_list"]
    return total


def _lines(
    batch_seconds: float, memory: int, size: int, clean: dict[str, Any], flagged: dict[str, Any]
) -> dict[str, float]:
    """Per million images: ``batch_seconds`` a batch of ``size`` is billed for, ``clean`` and ``flagged``
    the requests and units per image of unflagged and of flagged images."""
    million = 1e6
    sns = sum(count for name, count in flagged["requests"].items() if name.startswith("sns:"))
    sns_clean = sum(count for name, count in clean["requests"].items() if name.startswith("sns:"))
    flagged_extra = (
        _dynamodb_dollars(flagged["units"])
        - _dynamodb_dollars(clean["units"])
        + _s3_dollars(flagged["requests"])
        - _s3_dollars(clean["requests"])
        + (sns - sns_clean) * PRICES["sns_publish"]
    )
    return {
        "Lambda compute": million / size * batch_seconds * memory / 1024 * PRICES["lambda_arm64_gb_second"],
        "Lambda requests": million / size * PRICES["lambda_request"],
        # S3 sends one message per object; the trigger receives and deletes a batch with a request each.
        "SQS": million * (1 + 2 / size) * PRICES["sqs_request"],
        "DynamoDB": million * _dynamodb_dollars(clean["units"]),
        "S3": million * _s3_dollars(clean["requests"]),
        "flagged images (1%)": million * FLAGGED_SHARE * max(0.0, flagged_extra),
    }


# -- report -------------------------------------------------------------------------------------------


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.2f} ms" if value < 0.01 else f"{value * 1000:.0f} ms"
    if unit == "B":
        return f"{value / 1e3:.1f} kB"
    if unit == "$":
        return f"${value:,.2f}"
    return f"{value:.1f} {unit}"


def _with_spread(median: str, spread: tuple[str, str] | None) -> str:
    return f"{median} ({spread[0]} to {spread[1]})" if spread is not None else median


def table(figures: list[Figure]) -> str:
    lines = [
        "| id | what | measured: median (min to max) | baseline: median (min to max) | ratio: median (min to max) "
        "| budget | |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in figures:
        ok = "within" if f.within else "**over**"
        measured = _with_spread(
            _fmt(f.value, f.unit), (_fmt(f.spread[0], f.unit), _fmt(f.spread[1], f.unit)) if f.spread else None
        )
        baseline = _with_spread(
            _fmt(f.baseline, f.unit),
            (_fmt(f.baseline_spread[0], f.unit), _fmt(f.baseline_spread[1], f.unit)) if f.baseline_spread else None,
        )
        ratio = _with_spread(f"{f.ratio:.3f}", (f"{min(f.ratios):.3f}", f"{max(f.ratios):.3f}") if f.ratios else None)
        if f.limit is not None:
            bound = f"≤ {_fmt(f.limit, f.unit)}"
        elif math.isinf(f.budget):
            bound, ok = "—", "reported"
        else:
            bound = f"≤ {f.budget}"
        lines.append(f"| {f.id} | {f.what} | {measured} | {baseline} ({f.detail}) | {ratio} | {bound} | {ok} |")
    return "\n".join(lines)


def cost_section(bill: Bill, latency_ms: float) -> str:
    before_lines = "\n".join(f"| {name} | ${BEFORE[name]:,.2f} | ${value:,.2f} |" for name, value in bill.lines.items())
    units = "\n".join(
        f"| {name.split('|')[0]} | {name.split('|')[1]} | {name.split('|')[2]} | {value:.2f} | "
        f"{bill.flagged_units.get(name, 0.0):.2f} |"
        for name, value in sorted(bill.units.items())
    )
    units += "".join(
        f"\n| {name.split('|')[0]} | {name.split('|')[1]} | {name.split('|')[2]} | 0.00 | {value:.2f} |"
        for name, value in sorted(bill.flagged_units.items())
        if name not in bill.units
    )
    requests = ", ".join(
        f"{name} {count:.2f}" for name, count in sorted(bill.requests.items()) if not name.startswith("dynamodb:")
    )
    flagged_requests = ", ".join(
        f"{name} {count:.2f}"
        for name, count in sorted(bill.flagged_requests.items())
        if not name.startswith("dynamodb:") and count > bill.requests.get(name, 0.0)
    )
    prices = "\n".join(f"| {name} | ${value:.10g} |" for name, value in PRICES.items())
    batch = statistics.median(bill.batch_s)
    billed = statistics.fmean(bill.billed_s)
    return f"""## Lambda and AWS costs (vendor fees excluded)

Measured, not estimated: a warm process handles batches of the template's BatchSize
({bill.batch_size} records) with builtin and Imagga answering in {latency_ms:.0f} ms, every image new
(the content cache never answers); each AWS request the function makes is counted, and each DynamoDB
request asks DynamoDB Local for the capacity it consumed (`ReturnConsumedCapacity=INDEXES`, on every
table and index). A batch took {batch * 1000:.0f} ms (median; {min(bill.batch_s) * 1000:.0f} to
{max(bill.batch_s) * 1000:.0f} ms) and {statistics.median(bill.batch_cpu_s) * 1000:.0f} ms of CPU. At the template's
{bill.memory_mb} MB Lambda gives {bill.memory_mb / LAMBDA_MB_PER_VCPU:.2f} of a vCPU, so a batch is billed for the
longer of its time and its CPU time over that share: {billed * 1000:.0f} ms on average,
**{billed * bill.memory_mb / 1024 / bill.batch_size:.3f} GB-seconds per image**. The result item is
{bill.item_bytes:,} bytes by AWS's item-size rules ({bill.flagged_item_bytes:,} when flagged, with the
vendor's raw answer kept).

Per million images, batches of {bill.batch_size}, 1% of images flagged:

| item | before ({BEFORE_AS_OF}) | after (this run) |
|---|---|---|
{before_lines}
| **total** | **${BEFORE["total"]:,.2f}** | **${bill.total:,.2f}** |

"Before" counted one record's whole time (its vendor wait included) for every image, and DynamoDB
units from an estimated 8 KB item. A flagged image adds its raw answer to the item, a write to the
flag's index, the alert ledger's claim and mark, and one SNS publish.

DynamoDB capacity units per image, as DynamoDB Local reported them:

| table or index | operation | kind | unflagged | flagged |
|---|---|---|---|---|
{units}

Other requests per image: {requests}; a flagged image also: {flagged_requests or "nothing more"}.
Not in the table: storage ($0.25 per GB-month: a million results of {bill.item_bytes:,} bytes keep
{bill.item_bytes / 1e9 * 1e6:.1f} GB, ${bill.item_bytes / 1e9 * 1e6 * 0.25:.2f} a month, plus the cache's
entries until they expire), the SQS trigger's empty polls while the queue is idle, CloudWatch logs and
metrics, and a cold start's extra time (one per container, amortized over the batches it serves).

Prices used ({PRICES_AS_OF}; not re-read when the benchmark runs):

| price | USD |
|---|---|
{prices}
"""


def document(figures: list[Figure], notes: dict[str, Any], command: str, repeats: int) -> str:
    by_id = {f.id: f for f in figures}
    b1 = by_id["B1"]
    turns, no_turns = by_id["B4"], by_id["B4 no turns"]
    load_before, load_after = notes["load"]
    return f"""# Performance: the benchmark's last run

Command: `{command}` ({repeats} repeats; each repeat's figure is paired with its baseline run beside it in
the same run). A budget holds when the median ratio is inside it **and** the worst repeat within
{WORST_RUN_MARGIN - 1:.0%} of it. Machine: {os.cpu_count()} cores, {platform.machine()}, Python
{platform.python_version()}; load average {load_before:.2f} when the run started and {load_after:.2f} when it ended
(other work on the machine takes CPU from both sides of a pair). moto server (S3, SQS, SNS) in the
benchmark's process and DynamoDB Local (a JVM, warmed up with {EMULATOR_WARM_UP_ROUNDS:,} rounds of the
pipeline's requests before anything is measured: cold, its JIT takes several times the CPU per request,
from the 2 cores the measured code runs on), vendors served by the local sandbox; every measured side
runs in a fresh interpreter with boto3 and the built layer only. Run on {datetime.now(UTC).strftime("%Y-%m-%d")}.

{table(figures)}

Absolute times are the emulator's more than AWS's (a moto call costs a few milliseconds on loopback);
the ratios are what the budgets constrain, since both sides make the same calls to the same emulator.

B1 in context: a cold start took {b1.value * 1000:.0f} ms (median; {b1.spread[0] * 1000:.0f} to
{b1.spread[1] * 1000:.0f} ms) against {b1.baseline * 1000:.0f} ms by hand. B1 loads no hash bank: the stack has
none (B10 gives what loading one adds).

B2 in context: CPU time per warm record, {notes["warm_record_cpu_s"][0] * 1000:.1f} ms in the pipeline and
{notes["warm_record_cpu_s"][1] * 1000:.1f} ms by hand. The difference is the offline analysis (decode,
colors, sharpness, hashes) and the vendor copy, which the hand-written baseline does not do; the pipeline
hides most of it behind its calls (the cache lookup goes out while the image is decoded, builtin runs
while the vendor is asked, the cache write while the result is written), which the
straight-line baseline makes one after the other. The two sides' processes of a repeat run in step, one
record at a time and taking turns at going first, so that a slow spell of the machine or the emulator falls
on both; the medians are each process's own.

B4 in context: with the vendor answering at once, one record takes {notes["batch_work_s"][0] * 1000:.0f} ms
and a batch of ten {notes["batch_work_s"][1] * 1000:.0f} ms: the ten records' own work (a GET, a cache
read and a result write each, one read and one cache write for the batch, and the image work), on
{os.cpu_count()} cores shared with the emulator. Without the turns records take at preparing their requests,
a batch of ten took {no_turns.value * 1000:.0f} ms (ratio {no_turns.ratio:.3f}) against {turns.value * 1000:.0f} ms
(ratio {turns.ratio:.3f}) with them, in the same run: {
        "the turns pay for themselves" if turns.value < no_turns.value else "the turns do not pay for themselves here"
    }.

{cost_section(notes["bill"], notes["latency_ms"])}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam/smoke", help="built for this CPU")
    parser.add_argument("--deploy-build-dir", type=Path, default=ROOT / ".aws-sam/build", help="for B7")
    parser.add_argument("--runtime-python", default=str(ROOT / ".tools/runtime/bin/python"))
    parser.add_argument("--repeats", type=int, default=7, help="pairs per figure (at least 7 for the document)")
    parser.add_argument("--latency", type=float, default=0.3, help="vendor latency for B3 and B4, seconds")
    parser.add_argument("--write", type=Path, default=ROOT / "docs/performance.md")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated figure ids to run (e.g. B2,B4), for looking into one figure; writes no document",
    )
    args = parser.parse_args(argv)
    only = {part.strip().upper() for part in args.only.split(",") if part.strip()}
    if not only and args.repeats < 7:
        parser.error("the document needs at least 7 repeats per figure (--repeats)")
    build = Build(
        (args.build_dir / "SharedLayer" / "python").resolve(),
        (args.build_dir / "AnalyzeFunction").resolve(),
        args.runtime_python,
    )
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    figures: list[Figure] = []
    load_before = os.getloadavg()[0]
    with local_aws(), _tmpdir() as tmp:
        stack = deploy(stack_name="image-analysis-bench", parameters={"Architecture": arch})
        empty_queue(stack.queue_url)
        if not only or only & {"B1", "B2", "B3", "B4", "B5", "B6", "C1"}:  # the bank figures use no DynamoDB
            print("  warming up the emulator ...", file=sys.stderr, flush=True)
            warm_up_emulator(stack)
        bench = Bench(stack, build, tmp, args.repeats, args.latency)
        steps = {
            "B1": bench.cold_start,
            "B2": bench.warm_record,
            "B3": bench.fan_out,
            "B4": bench.batch,
            "B5": bench.large_image,
            "B6": bench.bytes_sent,
            "B8": bench.decompression_batch,
            "B9": bench.pdq_cpu,
            "B10": bench.bank_million,
            "B11": bench.bank_ten_million,
            "C1": bench.cost,
        }
        for figure_id, step in steps.items():
            if only and figure_id not in only:
                continue
            print(f"  {step.__name__} ...", file=sys.stderr, flush=True)
            made = step()
            figures.extend(made if isinstance(made, tuple) else [made])
    if not only or "B7" in only:
        figures.append(layer_figure((args.deploy_build_dir / "SharedLayer").resolve()))
    bench.notes["latency_ms"] = args.latency * 1000
    bench.notes["load"] = (load_before, os.getloadavg()[0])
    print(table(figures))
    if "bill" in bench.notes:
        print("\n" + cost_section(bench.notes["bill"], args.latency * 1000))
    if only:
        return 0 if all(f.within for f in figures) else 1
    command = "make bench" + (f" BENCH_ARGS='--repeats {args.repeats}'" if args.repeats != 7 else "")
    args.write.write_text(document(figures, bench.notes, command, args.repeats))
    print(f"\nwritten to {args.write}")
    over = [f.id for f in figures if not f.within]
    if over:
        print(f"over budget: {', '.join(over)}", file=sys.stderr)
    return 1 if over else 0


@contextmanager
def _tmpdir() -> Iterator[Path]:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-") as name:
        yield Path(name)


if __name__ == "__main__":
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    sys.exit(main())
