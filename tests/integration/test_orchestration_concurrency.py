"""Records of one batch through the handler, three vendor sandboxes that sleep 300 ms per request.

The handler processes up to ten records at once; their providers must run at once too, so a batch of
ten takes about one vendor round trip more than the same batch against sandboxes that do not sleep,
not the 9 s of one request after another. Margins are wide: precise figures belong to the benchmark.
"""

from __future__ import annotations

import io
import time
from contextlib import ExitStack

import pytest
from PIL import Image

from local.driver import LambdaContext, load_handler
from local.sandbox import FaultPlan, VendorSandbox
from tests.integration.test_pipeline_end_to_end import item, s3_event, sqs_event

pytestmark = pytest.mark.integration

RECORDS = 10
LATENCY = 0.3
# Three providers with one request each: ten records one after another would wait this long.
SERIAL_SECONDS = RECORDS * 3 * LATENCY


def png(seed: int) -> bytes:
    """Distinct bytes per record and run, so the content cache answers none of them."""
    out = io.BytesIO()
    Image.new("RGB", (96, 64), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def sleeping_vendors(stack, monkeypatch):
    with ExitStack() as stack_of:
        sandboxes = {}
        for vendor in ("imagga", "aiornot", "imagerecognize"):
            sandbox = VendorSandbox(vendor, faults=FaultPlan(latency=LATENCY), answers="saved")
            base_url = stack_of.enter_context(sandbox)
            monkeypatch.setenv(f"{vendor.upper()}_BASE_URL", base_url)
            monkeypatch.setenv(f"{vendor.upper()}_API_KEY", "sandbox-key")
            sandboxes[vendor] = sandbox
        monkeypatch.setenv("IMAGGA_API_SECRET", "sandbox-secret")
        monkeypatch.setenv("PROVIDERS", "builtin,imagga,aiornot,imagerecognize")
        # One request per provider per image: the timing then says how requests overlap.
        monkeypatch.setenv("IMAGGA_ENDPOINTS", "tags")
        monkeypatch.setenv("IMAGERECOGNIZE_TYPES", "objects")
        monkeypatch.setenv("AIORNOT_ONLY", "ai_generated")
        monkeypatch.setenv("HTTP_MAX_ATTEMPTS", "1")
        yield sandboxes


def batch(stack, s3, prefix, name, seeds):
    bodies, keys = [], []
    for seed in seeds:
        key, body = f"{prefix}{name}-{seed}.png", png(seed)
        etag = s3.put_object(Bucket=stack.bucket, Key=key, Body=body)["ETag"].strip('"')
        bodies.append(s3_event(stack.bucket, key, etag, len(body), "0055AED6DCD90281E5"))
        keys.append(key)
    return sqs_event(*bodies), keys


def timed(handler, event):
    started = time.perf_counter()
    response = handler(event, LambdaContext())
    return time.perf_counter() - started, response


def test_providers_of_records_in_one_batch_run_concurrently(stack, s3, table, sleeping_vendors, prefix):
    handler = load_handler()
    base = int(time.time() * 1000) % 100_000
    # The same batch against sandboxes that answer at once: what the emulator and the pipeline cost,
    # once the container is warm (the first event builds the runtime and opens connections).
    for sandbox in sleeping_vendors.values():
        sandbox.faults.configure(latency=0.0)
    timed(handler, batch(stack, s3, prefix, "cold", [base - 1])[0])
    event, _ = batch(stack, s3, prefix, "warm", range(base, base + RECORDS))
    quick, response = timed(handler, event)
    assert response == {"batchItemFailures": []}
    for sandbox in sleeping_vendors.values():
        sandbox.faults.configure(latency=LATENCY)
        sandbox.clear()

    event, keys = batch(stack, s3, prefix, "slow", range(base + RECORDS, base + 2 * RECORDS))
    slow, response = timed(handler, event)

    assert response == {"batchItemFailures": []}
    assert all(len(sandbox.requests) == RECORDS for sandbox in sleeping_vendors.values())
    stored = [item(table, stack.bucket, key) for key in keys]
    assert all(
        {p["name"]: p["status"] for p in i["providers"]}
        == {"builtin": "succeeded", "imagga": "succeeded", "aiornot": "succeeded", "imagerecognize": "succeeded"}
        for i in stored
    )
    added = slow - quick
    # 30 requests of 300 ms overlap with each other and with the pipeline's own work: measured here at
    # about 0.1 s added, against 1.6 s when one record's providers waited for another's.
    assert added < 0.9, f"sleeping vendors added {added:.2f}s to a batch of {RECORDS} (serial: {SERIAL_SECONDS}s)"
