"""Whatever a vendor answers, the stored item stays under DynamoDB's 400 KB and the alert under SNS's
256 KB, with a Subject SNS accepts (fewer than 100 characters); what had to go is recorded."""

from __future__ import annotations

import io
import json
import random
import string

import pytest
from boto3.dynamodb.types import TypeDeserializer
from PIL import Image

from image_analysis.alerts import message_for
from image_analysis.events import ObjectRef
from image_analysis.merge import MAX_NAME_CHARS, MAX_TEXT_CHARS, Thresholds
from image_analysis.models import (
    AIGenerated,
    AltText,
    Box,
    Classification,
    ClassScore,
    Deepfake,
    DeepfakeRegion,
    Detection,
    ErrorInfo,
    Label,
    ModerationCategory,
    Provenance,
    ProviderRun,
    TextItem,
)
from image_analysis.orchestration import CacheTraffic, Orchestration, ProviderResult
from image_analysis.pipeline import Pipeline
from image_analysis.providers.base import Deadline, ProviderOutput
from image_analysis.store import ResultStore

ITEM_LIMIT = 400 * 1024
SNS_LIMIT = 256 * 1024
rng = random.Random(7)


def noise(n: int) -> str:
    """Incompressible text, so compression cannot hide the size."""
    return "".join(rng.choice(string.ascii_letters) for _ in range(n))


BOX = Box(x=0.1, y=0.1, width=0.2, height=0.2)


def hostile_output(provider: str) -> ProviderOutput:
    big = noise(50_000)
    return ProviderOutput(
        labels=[Label(name=f"{i}{big[:20_000]}", confidence=0.5, provider=provider) for i in range(60)],
        objects=[Detection(name=big, confidence=0.5, box=BOX, provider=provider) for _ in range(200)],
        faces=[Detection(name=big[:5000], confidence=0.4, box=BOX, provider=provider) for _ in range(200)],
        celebrities=[Detection(name=big[:9000], confidence=0.4, box=BOX, provider=provider) for _ in range(200)],
        text=[TextItem(text=big, provider=provider) for _ in range(200)],
        alt_texts=[AltText(text=big, confidence=0.9, provider=provider) for _ in range(200)],
        classification=Classification(
            label=big,
            confidence=0.9,
            scores=[ClassScore(label=big[:5000], score=0.1) for _ in range(500)],
            provider=provider,
        ),
        moderation=[
            ModerationCategory(name="explicit", confidence=0.99, provider=provider, source_label=big[:20_000])
            for _ in range(300)
        ],
        ai_generated=AIGenerated(
            verdict="ai",
            confidence=0.97,
            generators={f"{i}{big[:5000]}": 0.5 for i in range(1000)},
            evidence=[big[:10_000]] * 1000,
            provider=provider,
        ),
        deepfake=Deepfake(
            detected=True,
            confidence=0.95,
            regions=[DeepfakeRegion(box=BOX, confidence=0.9) for _ in range(5000)],
            provider=provider,
        ),
        provenance=Provenance(claim_generator=big, software=big, generator_metadata=[big] * 500, evidence=[big] * 500),
        raw={"answer": noise(120_000)},
    )


class Orchestrator:
    def prefetch(self, sha256, deferred=None, lookups=True):
        return CacheTraffic(deferred=deferred)

    def run(self, request, prefetched=None):
        results = {}
        for name in ("vendor_a", "vendor_b", "vendor_c"):
            run = ProviderRun(name=name, status="succeeded", latency_ms=5)
            results[name] = ProviderResult(run=run, output=hostile_output(name))
        failing = ProviderRun(
            name="vendor_d",
            status="failed",
            latency_ms=5,
            error=ErrorInfo(code="bad_image", message=noise(1_000_000)),
        )
        results["vendor_d"] = ProviderResult(run=failing, output=ProviderOutput())
        return Orchestration(results)


class Reader:
    def __init__(self, data):
        self.data = data

    def read(self, ref):
        return self.data


def attribute_size(value: dict) -> int:
    """DynamoDB's measure ("Item sizes and formats"): UTF-8 strings, about one byte per two digits of a
    number, and 3 bytes plus 1 per element for maps and lists."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 2
    if kind == "M":
        return 3 + sum(len(k.encode()) + attribute_size(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_size(v) + 1 for v in inner)
    return 1


def item_size(item: dict) -> int:
    return sum(len(name.encode()) + attribute_size(value) for name, value in item.items())


class DynamoDB:
    """Refuses an item over 400 KB, as DynamoDB does."""

    def __init__(self):
        self.items = []

    def get_item(self, **kwargs):
        return {}

    def put_item(self, **kwargs):
        size = item_size(kwargs["Item"])
        assert size < ITEM_LIMIT, f"ValidationException: Item size has exceeded the maximum allowed size ({size})"
        self.items.append(kwargs["Item"])

    def update_item(self, **kwargs):
        pass


class Publisher:
    def __init__(self):
        self.messages = []

    def publish(self, alert, providers):
        self.messages.append(message_for(alert, providers))
        return "message-id"


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def processed():
    dynamodb, publisher = DynamoDB(), Publisher()
    pipeline = Pipeline(
        reader=Reader(png()),
        store=ResultStore("results", dynamodb),
        publisher=publisher,
        orchestrator=Orchestrator(),
        thresholds=Thresholds(),
        max_pixels=100_000_000,
        raw_budget_bytes=1_000_000,  # an operator's generous raw budget must not break the item either
    )
    ref = ObjectRef("uploads", "k/" + "ü" * 400 + ".png", None, "etag", 100, "0055AED6DCD90281E5", "ObjectCreated:Put")
    outcome = pipeline.process(ref, Deadline(60))
    return outcome, dynamodb, publisher


def test_any_vendor_answer_yields_an_item_under_400_kb(processed):
    outcome, dynamodb, _ = processed
    assert outcome.status == "partial"
    (item,) = dynamodb.items
    assert item_size(item) < ITEM_LIMIT
    plain = {k: TypeDeserializer().deserialize(v) for k, v in item.items()}
    assert plain["labels"] and all(len(label["name"]) <= MAX_NAME_CHARS for label in plain["labels"])
    assert len(plain["labels"]) == 50  # the label cap, not trimmed further: text and raw went first
    assert all(len(entry) <= MAX_TEXT_CHARS for entry in plain["ai_generated"]["evidence"])
    assert len(plain["provenance"]["claim_generator"]) <= MAX_NAME_CHARS
    failed = next(p for p in plain["providers"] if p["name"] == "vendor_d")
    assert len(failed["error"]["message"]) <= MAX_TEXT_CHARS
    # What went is recorded: raw answers first, then the least needed sections.
    omitted = plain["omitted"]
    assert {"raw.vendor_a", "raw.vendor_b", "raw.vendor_c"} <= set(omitted)
    assert omitted["text"] > 0
    assert "moderation.categories" not in omitted  # what flagged the image is kept
    assert plain["flags"] == ["nsfw", "ai_generated", "deepfake"]


def test_the_alert_fits_sns_whatever_the_sections_hold(processed):
    _, _, publisher = processed
    (message,) = publisher.messages
    attributes = json.dumps(message["MessageAttributes"])
    assert len(message["Message"].encode()) + len(attributes.encode()) + len(message["Subject"]) < SNS_LIMIT
    assert len(message["Subject"]) < 100
    body = json.loads(message["Message"])
    assert body["moderation"]["nsfw_score"] == 0.99
    assert body["ai_generated"]["verdict"] == "ai"
