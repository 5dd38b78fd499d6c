"""What ``local.bench`` measures, run in a fresh interpreter that has only boto3 (as the Lambda runtime
does) plus the built layer and function on its path. It imports nothing from this repository but what
the build put there, so the pipeline side is the deployable artifact.

    python -I -B bench_child.py MODE LAYER_DIR FUNCTION_DIR EVENTS_JSON

Modes (each prints one JSON line with its own timings):
- ``handler``: import the built handler, then invoke it once per event; the first invocation is the
  cold one.
- ``by-hand``: the baseline: import boto3 and httpx and make, in a straight line, the calls the
  pipeline makes for one record with builtin and Imagga (read the result item, GET with IfMatch,
  read the cache, the two Imagga calls, write the cache, the conditional result write),
  writing an item of the same attributes (the image's format and size read by Pillow, the tags and
  nsfw categories normalized in a line each).
- ``prepare`` / ``naive``: make a 1024 px JPEG of a large file the pipeline's way (``decode`` then
  ``encoded_for``) or the naive way (full decode, resize, encode), reporting time and peak memory.
- ``pdq``: the CPU of decoding a large JPEG and of its PDQ hash on top (B9).
- ``bank-load``: read a bank snapshot from S3 and open it, or only GET it (B10's load and baseline).
- ``bank-match``: each query image's eight dihedral hashes looked up in a snapshot file, read into
  memory or mapped; with ``brute`` also a full scan (B10, B11).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

STARTED = time.perf_counter()
# BENCH_STEP_FROM_STDIN=1: the child runs in step with another (local.bench.run_children_in_step): it
# reads a line from stdin before each event and prints this line when the event is done.
STEP_DONE = "-- step done --"


def _in_step() -> tuple[Callable[[], None], Callable[[], None]]:
    """(wait for the go, say the event is done): both do nothing unless the child runs in step."""
    if not os.environ.get("BENCH_STEP_FROM_STDIN"):
        return (lambda: None), (lambda: None)

    def wait_for_go() -> None:
        if not sys.stdin.readline():
            raise SystemExit("stdin closed before the go: the other side stopped")

    # After a line break of its own: output the event left without one cannot hide the marker.
    return wait_for_go, lambda: print("\n" + STEP_DONE, flush=True)


def _reset_peak_rss() -> None:
    """Start the peak-memory count afresh: getrusage's maximum survives exec, so a child would report its
    parent's peak. Linux resets the high-water mark (VmHWM) when 5 is written to clear_refs."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


class _Context:
    function_name = "AnalyzeFunction"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:AnalyzeFunction"
    log_group_name = "/aws/lambda/AnalyzeFunction"
    log_stream_name = "bench"

    def __init__(self, n: int) -> None:
        self.aws_request_id = f"bench-{n}"
        self._deadline = time.monotonic() + 120

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def run_handler(events: list[dict], tally: RequestTally | None = None) -> dict:
    import io
    from contextlib import redirect_stdout

    import app  # the built function; the layer is on sys.path

    imported = time.perf_counter()
    durations, cpu_times, responses, requests = [], [], [], []
    wait_for_go, done = _in_step()
    with _profiled("handler") as warm:
        for n, event in enumerate(events):
            if n == 1:
                warm()
            wait_for_go()
            began, cpu = time.perf_counter(), time.process_time()
            with redirect_stdout(io.StringIO()):  # EMF metric lines
                responses.append(app.lambda_handler(event, _Context(n)))
            durations.append(time.perf_counter() - began)
            cpu_times.append(time.process_time() - cpu)
            done()
            if tally is not None:
                requests.append(tally.take())
    return {
        "requests": requests,
        "import_s": imported - STARTED,
        "durations_s": durations,
        "cpu_s": cpu_times,
        "responses": responses,
        # The whole process's high-water mark, import included: what Lambda's memory limit is measured on.
        "peak_kib": _peak_rss_kib(),
    }


@contextmanager
def _profiled(mode: str) -> Iterator[Callable[[], None]]:
    """BENCH_PROFILE=<prefix>: a cProfile of the warm invocations in ``<prefix>.<mode>``, to find where
    the time goes. Yields what starts the profile (after the cold invocation)."""
    prefix = os.environ.get("BENCH_PROFILE")
    profiler = None

    def start() -> None:
        nonlocal profiler
        if prefix and profiler is None:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()

    yield start
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(f"{prefix}.{mode}")


def _first_object(event: dict) -> dict:
    from urllib.parse import unquote_plus

    record = json.loads(event["Records"][0]["body"])["Records"][0]["s3"]
    return {
        "bucket": record["bucket"]["name"],
        "key": unquote_plus(record["object"]["key"]),
        "etag": record["object"]["eTag"],
        "sequencer": record["object"].get("sequencer", ""),
    }


def run_by_hand(events: list[dict]) -> dict:
    import boto3
    import httpx
    from botocore.config import Config
    from PIL import Image  # noqa: F401  (imported up front, as the pipeline's cold start does)

    config = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 4})
    s3 = boto3.client("s3", config=config)
    dynamodb = boto3.client("dynamodb", config=config)
    http = httpx.Client(timeout=httpx.Timeout(10.0))
    auth = (os.environ["IMAGGA_API_KEY"], os.environ["IMAGGA_API_SECRET"])
    imported = time.perf_counter()
    durations, cpu_times = [], []
    wait_for_go, done = _in_step()
    with _profiled("by-hand") as warm:
        for n, event in enumerate(events):
            if n == 1:
                warm()
            wait_for_go()
            began, cpu = time.perf_counter(), time.process_time()
            durations.append(_by_hand_record(event, s3, dynamodb, http, auth) - began)
            cpu_times.append(time.process_time() - cpu)
            done()
    return {"import_s": imported - STARTED, "durations_s": durations, "cpu_s": cpu_times}


def _by_hand_record(event: dict, s3: Any, dynamodb: Any, http: Any, auth: tuple[str, str]) -> float:
    """One record the baseline's way; returns the time it ended."""
    import hashlib
    import io
    import zlib

    from PIL import Image

    env = os.environ
    ref = _first_object(event)
    pk = {"S": f"{ref['bucket']}/{ref['key']}"}
    dynamodb.get_item(TableName=env["RESULTS_TABLE"], Key={"pk": pk, "sk": {"S": "null"}}, ConsistentRead=True)
    data = s3.get_object(Bucket=ref["bucket"], Key=ref["key"], IfMatch=f'"{ref["etag"]}"')["Body"].read()
    cache_key = {"pk": {"S": hashlib.sha256(data).hexdigest() + "#imagga"}}
    dynamodb.get_item(TableName=env["CACHE_TABLE"], Key=cache_key)
    with Image.open(io.BytesIO(data)) as image:  # what the item says of the image
        fmt, (width, height) = image.format.lower(), image.size
    answers = {}
    for name, path in (("tags", "/v2/tags"), ("nsfw", "/v2/categories/nsfw_beta")):
        response = http.post(env["IMAGGA_BASE_URL"] + path, auth=auth, files={"image": ("x.jpg", data)})
        answers[name] = response.raise_for_status().json()
    blob = zlib.compress(json.dumps(answers).encode())
    dynamodb.put_item(TableName=env["CACHE_TABLE"], Item={**cache_key, "output": {"B": blob}})
    # The same attributes a result holds, normalized in a line each.
    labels = [
        {"M": {"name": {"S": t["tag"]["en"]}, "confidence": {"N": str(t["confidence"] / 100)}}}
        for t in answers["tags"]["result"]["tags"]
    ]
    categories = [
        {"M": {"name": {"S": c["name"]["en"]}, "confidence": {"N": str(c["confidence"] / 100)}}}
        for c in answers["nsfw"]["result"]["categories"]
    ]
    item = {
        "pk": pk,
        "sk": {"S": "null"},
        "bucket": {"S": ref["bucket"]},
        "key": {"S": ref["key"]},
        "etag": {"S": ref["etag"]},
        "size_bytes": {"N": str(len(data))},
        "format": {"S": fmt},
        "width": {"N": str(width)},
        "height": {"N": str(height)},
        "sha256": {"S": hashlib.sha256(data).hexdigest()},
        "status": {"S": "succeeded"},
        "labels": {"L": labels},
        "moderation": {"M": {"categories": {"L": categories}}},
        "analyzed_at": {"S": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "raw": {"B": blob},
        "seq": {"S": ref["sequencer"].ljust(32, "0")},
    }
    dynamodb.put_item(
        TableName=env["RESULTS_TABLE"],
        Item=item,
        ConditionExpression="attribute_not_exists(pk) OR seq < :seq",
        ExpressionAttributeValues={":seq": item["seq"]},
    )
    return time.perf_counter()


def run_prepare(path: str, side: int) -> dict:
    from image_analysis.imaging import decode

    with open(path, "rb") as handle:
        data = handle.read()
    _reset_peak_rss()
    before = _peak_rss_kib()
    began = time.perf_counter()
    image = decode(data, max_pixels=100_000_000)
    payload, _mime = image.encoded_for(frozenset({"jpeg"}), 20_000_000, max_side=side)
    return {"seconds": time.perf_counter() - began, "peak_kib": _peak_rss_kib() - before, "bytes": len(payload)}


def run_naive(path: str, side: int) -> dict:
    import io

    from PIL import Image

    with open(path, "rb") as handle:
        data = handle.read()
    Image.MAX_IMAGE_PIXELS = None
    _reset_peak_rss()
    before = _peak_rss_kib()
    began = time.perf_counter()
    image = Image.open(io.BytesIO(data))
    image.load()
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=88)
    return {"seconds": time.perf_counter() - began, "peak_kib": _peak_rss_kib() - before, "bytes": out.tell()}


def _rss_kib() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def run_pdq(path: str, repeats: int) -> dict:
    """B9: CPU of decoding a large JPEG the pipeline's way, and of hashing it with PDQ on top."""
    from image_analysis.analyzers.pdq import pdq_hash, stored_pixels
    from image_analysis.imaging import decode

    with open(path, "rb") as handle:
        data = handle.read()
    decode_cpu, pdq_cpu = [], []
    for _ in range(repeats + 1):  # the first warms up (imports, caches of the DCT plan)
        began = time.process_time()
        image = decode(data, max_pixels=100_000_000)
        _ = image.working  # made on first use since the decode returns without it: part of the decode's cost
        decoded = time.process_time()
        pdq_hash(stored_pixels(image))
        decode_cpu.append(decoded - began)
        pdq_cpu.append(time.process_time() - decoded)
    return {"decode_cpu_s": decode_cpu[1:], "pdq_cpu_s": pdq_cpu[1:]}


def run_bank_load(arg: str) -> dict:
    """B10 load: a fresh process reads a bank snapshot from S3 and opens its index (``bank``), or only
    GETs the same object (``get``, the baseline)."""
    how, bucket, key, size = arg.split(":", 3)
    import boto3

    before = _rss_kib()
    began = time.perf_counter()
    s3 = boto3.client("s3")
    if how == "get":
        data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return {"seconds": time.perf_counter() - began, "bytes": len(data), "rss_kib": _rss_kib() - before}
    from image_analysis.banks.index import HashIndex
    from image_analysis.banks.model import Snapshot
    from image_analysis.banks.store import BankStore

    store = BankStore("unused", None, s3, bucket)
    loading = _rss_kib()  # the bank's own memory: what reading and opening it adds
    index = HashIndex.from_bytes(store.read_snapshot(Snapshot(key, 0, 0, int(size), "")))
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "entries": index.count, "rss_kib": _rss_kib() - loading}


def run_bank_match(arg: str) -> dict:
    """B10/B11 warm matching: each query image's eight dihedral hashes looked up in a snapshot (read
    into memory, or mapped), repeated; with ``brute``, also a full scan of every hash (the baseline)."""
    how, snapshot, images, repeats = arg.split(":", 3)
    from PIL import Image

    from image_analysis.analyzers.pdq import pdq_hash
    from image_analysis.banks.index import HashIndex

    before = _rss_kib()
    began = time.perf_counter()
    if how == "map":
        from pathlib import Path

        index = HashIndex.open(Path(snapshot))
    else:
        with open(snapshot, "rb") as handle:
            index = HashIndex.from_bytes(handle.read())
    opened = time.perf_counter() - began
    queries = {name: pdq_hash(Image.open(name)) for name in images.split(",")}
    found: dict[str, list[int]] = {}
    for hashed in queries.values():  # a first pass warms the pages a query touches
        index.search(hashed.dihedral(), 31)
    seconds, cpu = [], []
    for _ in range(int(repeats)):
        for name, hashed in queries.items():
            began, began_cpu = time.perf_counter(), time.process_time()
            hits = index.search(hashed.dihedral(), 31)
            seconds.append(time.perf_counter() - began)
            cpu.append(time.process_time() - began_cpu)
            found[name] = [hit.distance for hit in hits]
    report = {"open_s": opened, "seconds": seconds, "cpu_s": cpu, "found": found, "rss_kib": _rss_kib() - before}
    if how == "brute":
        values = list(index.hashes())
        brute = []
        for hashed in list(queries.values())[:3]:
            began = time.perf_counter()
            for variant in hashed.dihedral():
                min(map(int.bit_count, map(variant.__xor__, values)))
            brute.append(time.perf_counter() - began)
        report["brute_s"] = brute
    return report


# DynamoDB operations that report the capacity they consumed when asked (ReturnConsumedCapacity).
_CAPACITY_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
_READ_OPERATIONS = frozenset({"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"})


def _with_absent_keys(entries: list[dict], params: dict, response: dict) -> list[dict]:
    """DynamoDB Local reports no capacity for the keys of a BatchGetItem that hold no item, where AWS bills
    a read of a missing item as any other: a unit for a strongly consistent read, half for another. Each
    key asked for that came back neither as an item nor as unprocessed is added at that rate to what was
    reported for its table (the items found keep their size-based units)."""
    reported = {entry["TableName"]: entry for entry in entries}
    fixed = []
    for table, request in params.get("RequestItems", {}).items():
        found = len(response.get("Responses", {}).get(table, []))
        unprocessed = len(response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
        absent = max(0, len(request["Keys"]) - found - unprocessed)
        entry = dict(reported.get(table, {"TableName": table}))
        units = entry.get("Table", {}).get("CapacityUnits", entry.get("CapacityUnits", 0.0))
        units += absent * (1.0 if request.get("ConsistentRead") else 0.5)
        fixed.append({**entry, "CapacityUnits": units, "Table": {"CapacityUnits": units}})
    return fixed


class RequestTally:
    """BENCH_CAPACITY=1: every AWS request the function makes, by service and operation, and for DynamoDB
    the capacity units each consumed, by table and index, as DynamoDB reports them: each request is sent
    with ``ReturnConsumedCapacity=INDEXES`` (the function's own requests never ask for it, and nothing in
    them reads it). ``take`` returns what was counted since the last call, per invocation."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._counts: dict[str, Any] = {}

    def install(self) -> None:
        from botocore.client import BaseClient

        original = BaseClient._make_api_call
        tally = self

        def counted(client: Any, operation: str, params: dict) -> Any:
            service = client.meta.service_model.service_name
            if service == "dynamodb" and operation in _CAPACITY_OPERATIONS:
                params = {**params, "ReturnConsumedCapacity": "INDEXES"}
            response = original(client, operation, params)
            tally._add(service, operation, response, params)
            return response

        BaseClient._make_api_call = counted  # type: ignore[method-assign]

    def _add(self, service: str, operation: str, response: dict, params: dict) -> None:
        consumed = response.get("ConsumedCapacity") if service == "dynamodb" else None
        entries = consumed if isinstance(consumed, list) else [consumed] if consumed else []
        if operation == "BatchGetItem":
            entries = _with_absent_keys(entries, params, response)
        kind = "read" if operation in _READ_OPERATIONS else "write"
        with self._lock:
            requests = self._counts.setdefault("requests", {})
            requests[f"{service}:{operation}"] = requests.get(f"{service}:{operation}", 0) + 1
            units = self._counts.setdefault("units", {})
            for entry in entries:
                table = entry["TableName"].split("-")[-2] if entry["TableName"].count("-") >= 2 else entry["TableName"]
                parts = {table: entry.get("Table", {}).get("CapacityUnits", entry.get("CapacityUnits", 0.0))}
                for index, value in entry.get("GlobalSecondaryIndexes", {}).items():
                    parts[f"{table} index {index}"] = value.get("CapacityUnits", 0.0)
                for name, value in parts.items():
                    row = units.setdefault(f"{name}|{operation}|{kind}", 0.0)
                    units[f"{name}|{operation}|{kind}"] = row + float(value)

    def take(self) -> dict[str, Any]:
        with self._lock:
            taken, self._counts = self._counts, {}
        return taken


def _without_turns() -> None:
    """BENCH_TURNS=off: a batch's records do not take turns at preparing their vendor requests, and builtin
    does not wait for them to have asked (B4 with and without the turns, in the same run)."""
    from image_analysis import orchestration

    def no_wait(self: Any, timeout: float) -> bool:
        return True

    orchestration.RecordAnswers.take_turn = no_wait  # type: ignore[method-assign]
    orchestration.RecordAnswers.wait_until_prepared = lambda self, timeout: None  # type: ignore[method-assign]


def _time_aws_calls() -> dict[str, list[float]]:
    """BENCH_CALLS=1: the wall time of every AWS call by operation, reported beside the durations."""
    from botocore.client import BaseClient

    calls: dict[str, list[float]] = {}
    original = BaseClient._make_api_call

    def timed(self: Any, operation: str, params: dict) -> Any:
        began = time.perf_counter()
        try:
            return original(self, operation, params)
        finally:
            calls.setdefault(operation, []).append(time.perf_counter() - began)

    BaseClient._make_api_call = timed  # type: ignore[method-assign]
    return calls


def main() -> None:
    mode, layer, function, arg = sys.argv[1:5]
    sys.path[:0] = [layer, function]
    calls = _time_aws_calls() if os.environ.get("BENCH_CALLS") else None
    if os.environ.get("BENCH_TURNS") == "off":
        _without_turns()
    tally = None
    if os.environ.get("BENCH_CAPACITY"):
        tally = RequestTally()
        tally.install()
    if mode in ("prepare", "naive"):
        path, side = arg.split(":")
        report = (run_prepare if mode == "prepare" else run_naive)(path, int(side))
    elif mode == "pdq":
        path, repeats = arg.split(":")
        report = run_pdq(path, int(repeats))
    elif mode == "bank-load":
        report = run_bank_load(arg)
    elif mode == "bank-match":
        report = run_bank_match(arg)
    else:
        with open(arg) as handle:
            events = json.load(handle)
        report = run_handler(events, tally) if mode == "handler" else run_by_hand(events)
    report["total_s"] = time.perf_counter() - STARTED
    if calls is not None:
        report["aws_calls_ms"] = {op: [round(t * 1000, 2) for t in times] for op, times in calls.items()}
    # Flushed at once: the benchmark times a cold start up to this line, not the interpreter's exit.
    print(json.dumps(report, default=str), flush=True)


if __name__ == "__main__":
    main()
