"""``make demo``: the whole pipeline on the embedded emulator, with no AWS account, keys, Docker or network.

Creates the stack from template.yaml, uploads the samples (and a few generated uploads that show a
flag and the rejections), lets the pipeline process them the way the SQS trigger would, and prints
one row per object, the alerts that reached the topic, and where the results are.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import boto3

from local.configuration import ConfigurationError, check, sandbox_on, stack_parameters
from local.driver import InvocationFailed, QueueDriver, configure_function_env, load_handler
from local.emulator import local_aws
from local.outcomes import Outcome, outcomes_of
from local.permissions import PermissionGuard
from local.sandboxes import start_sandboxes
from local.stack import LocalStack, deploy, read_alerts

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"

# Keys chosen to show what real users upload: spaces, a plus sign, non-ASCII, extensions that lie.
SAMPLE_KEYS = {
    "uploads/astronaut.png": "skimage-astronaut.png",
    "uploads/café menu+1/cat on the sofa 🐈.png": "skimage-chelsea.png",
    "uploads/coffee.png": "skimage-coffee.png",
    "uploads/rocket.jpg": "skimage-rocket.jpg",
    "uploads/scanned page.png": "skimage-page.png",
    "uploads/c2pa-signed.jpg": "c2pa-C.jpg",
    "uploads/phone photo.heic": "c2pa-sample1.heic",
    "uploads/photo.avif": "c2pa-sample1.avif",
    "uploads/photo.webp": "c2pa-sample1.webp",
    "uploads/animated.gif": "c2pa-sample1.gif",
    "uploads/document.tif": "c2pa-TUSCANY.TIF",
}


def provide_sample(bucket: str, key: str) -> bool:
    """Put the sample image of a demo key (``uploads/rocket.jpg``) at ``key``; False for any other key."""
    sample = SAMPLE_KEYS.get(key)
    if sample is None:
        return False
    boto3.client("s3").upload_file(str(SAMPLES / sample), bucket, key)
    return True


def generated_uploads() -> dict[str, bytes]:
    """Uploads made on the spot: one an image generator wrote, and three the pipeline must reject."""
    from PIL import Image, PngImagePlugin

    image = Image.new("RGB", (320, 240), (90, 40, 160))
    info = PngImagePlugin.PngInfo()
    # The text chunk Automatic1111's Stable Diffusion web UI writes into every PNG it renders.
    info.add_text("parameters", "a purple landscape\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42")
    png = io.BytesIO()
    image.save(png, format="PNG", pnginfo=info)
    jpeg = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 120, 200)).save(jpeg, format="JPEG")
    return {
        "uploads/stable-diffusion render.png": png.getvalue(),
        "uploads/empty.png": b"",
        "uploads/notes.jpg": b"shopping list: milk, eggs\n",
        "uploads/cut-off.jpg": jpeg.getvalue()[: len(jpeg.getvalue()) // 3],
    }


def upload_samples(bucket: str) -> list[str]:
    s3 = boto3.client("s3")
    keys = []
    for key, name in SAMPLE_KEYS.items():
        s3.upload_file(str(SAMPLES / name), bucket, key)
        keys.append(key)
    for key, body in generated_uploads().items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        keys.append(key)
    return keys


def read_results(table: str) -> list[dict[str, Any]]:
    from image_analysis.store import from_item

    dynamodb = boto3.resource("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = dynamodb.Table(table).scan(**kwargs)
        items.extend(from_item(i) for i in page["Items"])
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: i["key"])
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.0f} KB" if n >= 1024 else f"{n} B"


def _highlights(item: dict[str, Any]) -> str:
    if item.get("labels"):
        # Labels are highest first; several providers may name the same thing.
        best: dict[str, float] = {}
        for label in item["labels"]:
            best.setdefault(label["name"], label["confidence"])
        return ", ".join(f"{name} {confidence:.0%}" for name, confidence in list(best.items())[:3])
    if item.get("colors"):
        return " ".join(c["hex"] for c in item["colors"][:3])
    return "-"


def _status(item: dict[str, Any]) -> str:
    error = item.get("error")
    return f"{item['status']} ({error['code']})" if error else item["status"]


def _cut(text: str, width: int) -> str:
    """Text that fits ``width``, ending in an ellipsis when it was cut."""
    return text if len(text) <= width else text[: width - 1] + "…"


def print_report(stack: LocalStack, items: list[dict[str, Any]], alerts: list[dict[str, Any]], out: Any) -> None:
    rows = [("key", "format", "size", "dimensions", "labels / colors", "flags", "status")]
    for item in items:
        dims = f"{item['width']}x{item['height']}" if item.get("width") else "-"
        rows.append(
            (
                item["key"],
                item.get("format", "-"),
                _size(item.get("size_bytes")),
                dims,
                _highlights(item),
                ",".join(item.get("flags", [])) or "-",
                _status(item),
            )
        )
    widths = [min(40, max(len(str(row[i])) for row in rows)) for i in range(len(rows[0]))]
    print(f"\nResults ({len(items)} objects):\n", file=out)
    for index, row in enumerate(rows):
        print("  ".join(_cut(str(cell), widths[i]).ljust(widths[i]) for i, cell in enumerate(row)).rstrip(), file=out)
        if index == 0:
            print("  ".join("-" * w for w in widths), file=out)
    rejected = [i for i in items if i["status"] == "rejected"]
    if rejected:
        print("\nWhy uploads were rejected:", file=out)
        for item in rejected:
            print(f"  {item['key']}: {item['error']['message']}", file=out)
    print(f"\nAlerts on the topic ({len(alerts)}):", file=out)
    for alert in alerts:
        body = alert["Message"]
        evidence = (body.get("ai_generated") or {}).get("evidence") or []
        result = body["result"]
        print(f"  {alert['Subject']}", file=out)
        print(f"    flags: {', '.join(body['flags'])}; alert_id {body['alert_id']}", file=out)
        print(f"    result: table {result['table']}, pk {result['pk']}, sk {result['sk']}", file=out)
        if evidence:
            print(f"    evidence: {evidence[0]}", file=out)
    print("\nWhere the results are:", file=out)
    print(f"  DynamoDB table {stack.table} (pk = <bucket>/<key>, sk = version id or 'null')", file=out)
    print(f"  uploads bucket {stack.bucket}; alerts topic {stack.topic_arn}", file=out)
    print(
        "  e.g. aws dynamodb get-item --table-name <table> --key "
        '\'{"pk": {"S": "<bucket>/uploads/rocket.jpg"}, "sk": {"S": "null"}}\'',
        file=out,
    )


def drain(handler: Any, stack: LocalStack, batch_size: int, seen: list[Outcome]) -> Any:
    """Take the queue as the SQS trigger would; ``seen`` gets what happened to each object."""

    def collect(invocation: Any) -> None:
        seen.extend(outcomes_of(invocation, stack.table))

    driver = QueueDriver(handler, stack.queue_urls, batch_size=batch_size, on_invocation=collect)
    return driver, driver.drain()


def _what_the_queue_held(report: Any, seen: list[Outcome], again: bool = False) -> str:
    """The drain in numbers, each one counted from what happened to each object."""
    kinds = Counter(o.kind for o in seen)
    parts = [f"{kinds['analyzed']} analyzed" + (" again" if again else "")]
    if kinds["already"]:
        parts.append(f"{kinds['already']} acknowledged as already analyzed (no second analysis, no vendor call)")
    test_events = sum(1 for o in seen if o.kind == "acknowledged" and o.note.startswith("s3:TestEvent"))
    if test_events:
        parts.append(f"{test_events} s3:TestEvent acknowledged (S3 sends one when a bucket's notification is set up)")
    if kinds["acknowledged"] - test_events:
        parts.append(f"{kinds['acknowledged'] - test_events} other message(s) acknowledged without an object")
    if kinds["retry"]:
        parts.append(f"{kinds['retry']} deliveries handed back for retry")
    if kinds["dead_letter"]:
        parts.append(f"{kinds['dead_letter']} moved to the dead-letter queue")
    return f"took {report.messages} message(s) from the queue: {', '.join(parts)}; {report.invocations} invocations"


def command_line_walkthrough(stack: LocalStack, handler: Any, out: Any) -> tuple[int, list[Outcome]]:
    """The demo's ending: what a newcomer runs on a bucket that already holds images.

    The real ``image-analysis`` command (its entry point, in this process) backfills the uploads
    prefix, the pipeline drains the queue (every object already has a result, so each should be
    acknowledged without a second analysis: the counts say what happened), and ``flagged`` lists what
    was flagged as AI-generated. Returns the first non-zero exit code, or 0, and what the drain did.
    """
    import logging
    import shlex
    import tempfile
    import warnings

    from image_analysis_cli.main import run as image_analysis

    codes = []

    def command(*args: str) -> None:
        argv = ["--stack-name", stack.name, *args]
        print(f"\n$ image-analysis {' '.join(shlex.quote(a) for a in argv)}", file=out, flush=True)
        codes.append(image_analysis(argv))
        sys.stdout.flush()
        sys.stderr.flush()

    print("\nThe same bucket as a team attaching the pipeline to it would see it, with the command line:", file=out)
    # The emulator's own complaints (resource types it does not model, empty metric flushes) are not
    # what the command prints against AWS.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    seen: list[Outcome] = []
    with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="image-analysis-demo-") as state_dir:
        warnings.simplefilter("ignore", UserWarning)
        saved = os.environ.get("IMAGE_ANALYSIS_STATE_DIR")
        os.environ["IMAGE_ANALYSIS_STATE_DIR"] = state_dir  # backfill progress, kept out of the work tree
        try:
            command("backfill", f"s3://{stack.bucket}/uploads/")
        finally:
            if saved is None:
                os.environ.pop("IMAGE_ANALYSIS_STATE_DIR", None)
            else:
                os.environ["IMAGE_ANALYSIS_STATE_DIR"] = saved
        _, report = drain(handler, stack, 10, seen)
        print(f"  the pipeline {_what_the_queue_held(report, seen, again=True)}", file=out)
        command("flagged", "--flag", "ai_generated")
    return next((code for code in codes if code), 0), seen


# The demo's stack reviews every flagged upload and quarantines it until a person decides.
REVIEW_PARAMETERS = {"ReviewMode": "flagged", "QuarantineTags": "true"}
APPROVED_KEY = "uploads/stable-diffusion render.png"
REJECTED_KEY = "uploads/second render.png"


def _second_render() -> bytes:
    """Another PNG with the text chunk Stable Diffusion's web UI writes: flagged ai_generated."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a red city at night\nSteps: 25, Sampler: Euler a, CFG scale: 6, Seed: 7")
    png = io.BytesIO()
    Image.new("RGB", (320, 240), (180, 30, 40)).save(png, format="PNG", pnginfo=info)
    return png.getvalue()


def review_walkthrough(stack: LocalStack, handler: Any, out: Any) -> int:
    """The demo's last act: a moderator approves one flagged upload and rejects another with the command
    line, the review function applies both to the objects, and the audit history shows who decided what.

    A second render is uploaded here so that there are two to decide on. Returns the first non-zero exit
    code, or 0.
    """
    import logging
    import shlex
    import warnings

    from image_analysis_cli.main import run as image_analysis
    from local.review_stack import attach_review, configure_review_env, load_review_handler

    review = attach_review(stack.outputs, stack.name)
    log_level = os.environ.get("POWERTOOLS_LOG_LEVEL")
    configure_review_env(review)
    if log_level:
        os.environ["POWERTOOLS_LOG_LEVEL"] = log_level  # the demo's quiet logs, not the template's level
    s3 = boto3.client("s3")
    s3.put_object(Bucket=stack.bucket, Key=REJECTED_KEY, Body=_second_render())
    codes: list[int] = []

    def command(*args: str) -> None:
        argv = ["--stack-name", stack.name, *args]
        print(f"\n$ image-analysis {' '.join(shlex.quote(a) for a in argv)}", file=out, flush=True)
        codes.append(image_analysis(argv))
        sys.stdout.flush()
        sys.stderr.flush()

    def tags(key: str) -> str:
        found = s3.get_object_tagging(Bucket=stack.bucket, Key=key)["TagSet"]
        return ", ".join(f"{t['Key']}={t['Value']}" for t in found) or "(none)"

    print("\nHuman review (ReviewMode=flagged): a moderator decides on the flagged uploads.", file=out)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        QueueDriver(handler, stack.queue_urls, batch_size=10).drain()
        for key in (APPROVED_KEY, REJECTED_KEY):
            print(f"  {key}: tags {tags(key)}", file=out)
        command("review", "list")
        command("review", "approve", f"s3://{stack.bucket}/{APPROVED_KEY}")
        command("review", "reject", f"s3://{stack.bucket}/{REJECTED_KEY}", "--reason", "not for this site")
        applied = review.drain_effects(load_review_handler())
        print(f"\nThe review function applied {applied} decision(s) to their objects:", file=out)
        for key in (APPROVED_KEY, REJECTED_KEY):
            print(f"  {key}: tags {tags(key)}", file=out)
        for key in (APPROVED_KEY, REJECTED_KEY):
            command("review", "history", f"s3://{stack.bucket}/{key}")
    return next((code for code in codes if code), 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="show the function's JSON log lines")
    args = parser.parse_args(argv)
    out = sys.stdout
    try:
        # Whatever would stop the function on its first event, before anything starts or is uploaded.
        providers = check(require_keys=True)
    except ConfigurationError as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 2
    PermissionGuard(
        enforce=True, on_denied=lambda call: print(f"  denied: {call.describe()}", file=out, flush=True)
    ).install()
    print("Starting the embedded AWS emulator (moto server) ...", file=out)
    try:
        with local_aws() as endpoint, ExitStack() as vendors:
            print(f"  listening on {endpoint}", file=out)
            sandbox_env = start_sandboxes(vendors, providers, out) if sandbox_on() else {}
            # The user's settings win; the demo reviews what is flagged and quarantines it until then.
            stack = deploy(parameters={**REVIEW_PARAMETERS, **stack_parameters()})
            print(f"Created stack {stack.name} from template.yaml: bucket {stack.bucket}", file=out)
            configure_function_env({**stack.function_env, **sandbox_env})
            if not args.verbose:
                os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
            handler = load_handler()
            keys = upload_samples(stack.bucket)
            print(f"Uploaded {len(keys)} objects; processing the queue as the SQS trigger would ...", file=out)
            seen: list[Outcome] = []
            driver, report = drain(handler, stack, 5, seen)
            print(f"  the pipeline {_what_the_queue_held(report, seen)}", file=out)
            items = read_results(stack.table)
            alerts = read_alerts(stack.observer_queue_url)
            print_report(stack, items, alerts, out)
            totals = driver.metric_totals()
            counts = ", ".join(f"{name}={value:g}" for name, value in sorted(totals.items()) if "Latency" not in name)
            print(f"\nEMF metrics the function emitted (CloudWatch namespace ImageAnalysis): {counts}", file=out)
            without = sorted(set(keys) - {i["key"] for i in items if i["status"] != "failed"})
            walkthrough, later = command_line_walkthrough(stack, handler, out)
            walkthrough = review_walkthrough(stack, handler, out) or walkthrough
            without += sorted({o.key for o in later if o.kind == "dead_letter" and o.key} - set(without))
    except InvocationFailed as exc:
        print(f"make demo: {exc}", file=sys.stderr)
        return 1
    print("\nEmulator stopped.", file=out)
    if without:
        print(f"Objects that ended without a result: {without}", file=sys.stderr)
        return 1
    return walkthrough


if __name__ == "__main__":
    raise SystemExit(main())
