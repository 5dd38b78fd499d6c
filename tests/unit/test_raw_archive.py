"""Raw vendor answers too big for the item become objects in the artifacts bucket, referenced from the item,
deleted with the result; a failed write never fails the result and is recorded as an omission."""

from __future__ import annotations

import hashlib
import io
import json
import random
import string

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from PIL import Image

from image_analysis.events import ObjectRef
from image_analysis.merge import Thresholds, fit_result, pack_raw, unpack_raw
from image_analysis.models import AnalysisResult, Label, ProviderRun
from image_analysis.orchestration import CacheTraffic, Orchestration, ProviderResult
from image_analysis.pipeline import Pipeline
from image_analysis.providers.base import Deadline, ProviderOutput
from image_analysis.raw_archive import FAILURE_METRIC, RawArchive, load, referenced_objects
from image_analysis.store import ResultStore, to_item

rng = random.Random(11)
BIG = {"tags": ["".join(rng.choice(string.ascii_letters) for _ in range(60)) for _ in range(3000)]}  # ~180 KB
SMALL = {"status": "ok", "tags": ["cat"]}
PK = "uploads/holiday/me at the beach.jpg"


class S3:
    def __init__(self, fail_puts: bool = False, fail_deletes: bool = False):
        self.objects: dict[tuple[str, str], dict] = {}
        self.deleted: list[tuple[str, str]] = []
        self.fail_puts, self.fail_deletes = fail_puts, fail_deletes

    def put_object(self, **kwargs):
        if self.fail_puts:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "denied"}}, "PutObject")
        self.objects[(kwargs["Bucket"], kwargs["Key"])] = kwargs
        return {}

    def delete_object(self, Bucket, Key):
        if self.fail_deletes:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "DeleteObject")
        self.deleted.append((Bucket, Key))
        self.objects.pop((Bucket, Key), None)
        return {}

    def get_object(self, Bucket, Key):
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)]["Body"])}


class Metrics:
    def __init__(self):
        self.counts: dict[str, float] = {}

    def __call__(self, name, value, unit):
        self.counts[name] = self.counts.get(name, 0) + value

    def add_metric(self, name, unit, value):
        self(name, value, unit)


def archive(s3, metrics=None, ids=("w1", "w2", "w3")):
    pending = list(ids)
    return RawArchive("artifacts", s3, metrics, new_id=lambda: pending.pop(0))


# -- pack_raw ------------------------------------------------------------------------------------------
def test_an_answer_over_the_budget_is_offloaded_and_the_small_one_stays_inline():
    offered = {}

    def offload(name, document):
        offered[name] = document
        return {"s3": f"s3://artifacts/raw/x/w/{name}.json.gz", "bytes": 123}

    packed = pack_raw({"big": BIG, "small": SMALL, "empty": {}}, budget_bytes=10_000, offload=offload)
    assert unpack_raw(packed["small"]) == SMALL
    assert packed["big"] == {"s3": "s3://artifacts/raw/x/w/big.json.gz", "bytes": 123}
    assert set(offered) == {"big"} and json.loads(offered["big"]) == BIG
    assert "empty" not in packed


def test_without_an_archive_or_when_it_fails_the_size_is_recorded_instead():
    for offload in (None, lambda name, document: None):
        packed = pack_raw({"big": BIG, "small": SMALL}, budget_bytes=10_000, offload=offload)
        assert set(packed["big"]) == {"omitted_bytes"} and packed["big"]["omitted_bytes"] > 100_000
        assert unpack_raw(packed["small"]) == SMALL


# -- RawArchive ----------------------------------------------------------------------------------------
def test_a_stored_answer_is_gzip_json_under_raw_with_no_trace_of_the_users_key():
    s3 = S3()
    ref = archive(s3).writer(PK)("imagga", json.dumps(BIG).encode())
    ((bucket, key),) = s3.objects
    pk_hash = hashlib.sha256(PK.encode()).hexdigest()[:32]
    assert (bucket, key) == ("artifacts", f"raw/{pk_hash}/w1/imagga.json.gz")
    assert "beach" not in key
    stored = s3.objects[(bucket, key)]
    assert (stored["ContentType"], stored["ContentEncoding"]) == ("application/json", "gzip")
    assert ref == {"s3": f"s3://artifacts/{key}", "bytes": len(stored["Body"])}
    assert ref["bytes"] < len(json.dumps(BIG)) / 1.2  # compressed
    assert load(ref["s3"], s3) == BIG


def test_each_result_writes_under_its_own_id_so_copies_never_share_objects():
    s3 = S3()
    raw = archive(s3)
    first = raw.writer(PK)("imagga", b"{}")
    second = raw.writer(PK)("imagga", b"{}")
    assert first["s3"] != second["s3"] and len(s3.objects) == 2


def test_a_failed_write_is_none_counted_and_logged(caplog):
    metrics = Metrics()
    assert archive(S3(fail_puts=True), metrics).writer(PK)("imagga", b"{}") is None
    assert metrics.counts == {FAILURE_METRIC: 1}
    assert "could not store the raw imagga answer" in caplog.text


def test_delete_touches_only_this_buckets_raw_objects_and_counts_failures():
    s3 = S3()
    urls = ["s3://artifacts/raw/a/w1/imagga.json.gz", "s3://artifacts/prepared/x.jpg", "s3://uploads/raw/a.json.gz"]
    assert archive(s3).delete(urls) == 0
    assert s3.deleted == [("artifacts", "raw/a/w1/imagga.json.gz")]
    metrics = Metrics()
    assert archive(S3(fail_deletes=True), metrics).delete(urls[:1]) == 1
    assert metrics.counts == {FAILURE_METRIC: 1}


# -- the store keeps the objects only as long as an item points at them -------------------------------
def result(raw: dict) -> AnalysisResult:
    return AnalysisResult(
        bucket="uploads", key="k.jpg", status="succeeded", analyzed_at="2026-12-01T00:00:00Z", raw=raw
    )


def ref_to(name: str) -> dict:
    return {"s3": f"s3://artifacts/raw/h/{name}/imagga.json.gz", "bytes": 10}


class DynamoDB:
    """Answers each write with the item it replaced, or refuses it as a lost condition."""

    def __init__(self, old: AnalysisResult | None = None, lose: bool = False):
        self.old = {k: TypeSerializer().serialize(v) for k, v in to_item(old, "0" * 32).items()} if old else None
        self.lose = lose
        self.calls: list[tuple[str, dict]] = []

    def _answer(self, operation, kwargs):
        self.calls.append((operation, kwargs))
        if self.lose:
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "no"}}, operation)
        return {"Attributes": self.old} if self.old else {}

    def put_item(self, **kwargs):
        return self._answer("PutItem", kwargs)

    def delete_item(self, **kwargs):
        return self._answer("DeleteItem", kwargs)

    def update_item(self, **kwargs):
        return self._answer("UpdateItem", kwargs)


def store(dynamodb, s3):
    return ResultStore("results", dynamodb, raw_archive=archive(s3))


def test_a_write_that_replaces_an_item_deletes_the_raw_objects_only_the_old_item_had():
    s3 = S3()
    old = result({"imagga": ref_to("old"), "aiornot": ref_to("kept")})
    dynamodb = DynamoDB(old=old)
    assert store(dynamodb, s3).put_result(result({"imagga": ref_to("new"), "aiornot": ref_to("kept")}), "1" * 32)
    assert s3.deleted == [("artifacts", "raw/h/old/imagga.json.gz")]
    assert dynamodb.calls[0][1]["ReturnValues"] == "ALL_OLD"


def test_a_write_that_loses_its_condition_deletes_its_own_raw_objects():
    s3 = S3()
    assert not store(DynamoDB(lose=True), s3).put_result(result({"imagga": ref_to("mine")}), "1" * 32)
    assert s3.deleted == [("artifacts", "raw/h/mine/imagga.json.gz")]


def test_a_write_that_fails_otherwise_keeps_them_as_it_may_have_been_applied():
    class Throttled(DynamoDB):
        def put_item(self, **kwargs):
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, "PutItem")

    s3 = S3()
    with pytest.raises(ClientError):
        store(Throttled(), s3).put_result(result({"imagga": ref_to("mine")}), "1" * 32)
    assert s3.deleted == []


@pytest.mark.parametrize("mode", ["delete", "tombstone"])
def test_a_forgotten_result_takes_its_raw_objects_with_it(mode):
    s3 = S3()
    dynamodb = DynamoDB(old=result({"imagga": ref_to("old"), "small": "eJwrSS0uAQAEXQHB"}))
    assert store(dynamodb, s3).forget("uploads/k.jpg", "null", "2" * 32, mode)
    assert s3.deleted == [("artifacts", "raw/h/old/imagga.json.gz")]
    operation, call = dynamodb.calls[0]
    assert operation == "UpdateItem"  # content removed, a watermark kept
    assert ("expires_at = :expires" in call["UpdateExpression"]) is (mode == "delete")


def test_a_lost_forget_deletes_nothing():
    s3 = S3()
    assert not store(DynamoDB(old=result({"imagga": ref_to("old")}), lose=True), s3).forget(
        "p", "null", "2" * 32, "delete"
    )
    assert s3.deleted == []


def test_referenced_objects_reads_only_object_entries():
    raw = {"a": ref_to("x"), "b": "blob", "c": {"omitted_bytes": 5}}
    assert referenced_objects(raw) == {"s3://artifacts/raw/h/x/imagga.json.gz"}


def test_a_reference_is_a_few_bytes_and_fit_result_never_counts_it_as_omitted():
    fitted = fit_result(result({"imagga": ref_to("x")}))
    assert fitted.raw == {"imagga": ref_to("x")} and fitted.omitted == {}


# -- through the pipeline ------------------------------------------------------------------------------
def answered(name: str, output: ProviderOutput) -> ProviderResult:
    return ProviderResult(run=ProviderRun(name=name, status="succeeded", latency_ms=3), output=output)


class Orchestrator:
    def prefetch(self, sha256, deferred=None, lookups=True):
        return CacheTraffic(deferred=deferred)

    def run(self, request, prefetched=None):
        output = ProviderOutput(labels=[Label(name="beach", confidence=0.9, provider="imagga")], raw=BIG)
        small = ProviderOutput(raw=SMALL)
        return Orchestration(
            {
                "imagga": ProviderResult(
                    run=ProviderRun(name="imagga", status="succeeded", latency_ms=3), output=output
                ),
                "aiornot": ProviderResult(
                    run=ProviderRun(name="aiornot", status="succeeded", latency_ms=3), output=small
                ),
            }
        )


class Reader:
    def __init__(self):
        out = io.BytesIO()
        Image.new("RGB", (32, 24), (10, 120, 200)).save(out, format="PNG")
        self.data = out.getvalue()

    def read(self, ref):
        return self.data


class Table:
    def __init__(self):
        self.items: list[dict] = []

    def get_item(self, **kwargs):
        return {}

    def put_item(self, **kwargs):
        self.items.append({k: TypeDeserializer().deserialize(v) for k, v in kwargs["Item"].items()})
        return {}

    def update_item(self, **kwargs):
        return {}


def run_pipeline(s3):
    table, metrics = Table(), Metrics()
    pipeline = Pipeline(
        reader=Reader(),
        store=ResultStore("results", table, raw_archive=RawArchive("artifacts", s3, metrics)),
        publisher=None,
        orchestrator=Orchestrator(),
        thresholds=Thresholds(),
        max_pixels=10_000_000,
        raw_budget_bytes=20_000,
        metrics=metrics,
    )
    ref = ObjectRef("uploads", "holiday/me.png", None, "etag", 100, "0055AED6DCD90281E5", "ObjectCreated:Put")
    outcome = pipeline.process(ref, Deadline(60))
    (item,) = table.items
    return outcome, item, metrics


def test_the_pipeline_stores_the_big_answer_in_the_artifacts_bucket_and_references_it():
    s3 = S3()
    outcome, item, metrics = run_pipeline(s3)
    assert outcome.status == "succeeded"
    stored = item["raw"]["imagga"]
    assert stored["s3"].startswith("s3://artifacts/raw/") and stored["s3"].endswith("/imagga.json.gz")
    assert load(stored["s3"], s3) == BIG
    assert unpack_raw(item["raw"]["aiornot"]) == SMALL
    assert "raw.imagga" not in item.get("omitted", {}) and FAILURE_METRIC not in metrics.counts


def test_a_failed_raw_write_records_the_omission_and_the_result_still_succeeds():
    outcome, item, metrics = run_pipeline(S3(fail_puts=True))
    assert outcome.status == "succeeded" and item["labels"][0]["name"] == "beach"
    assert set(item["raw"]["imagga"]) == {"omitted_bytes"}
    assert item["omitted"]["raw.imagga"] == item["raw"]["imagga"]["omitted_bytes"] > 20_000
    assert metrics.counts[FAILURE_METRIC] == 1
