"""Quarantine tags never push out the user's own tags (S3 keeps at most 10), say on the result what did not
fit, and come off again when a reprocessed result is no longer flagged."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from image_analysis.events import ObjectRef
from image_analysis.merge import Thresholds
from image_analysis.models import AIGenerated, ProviderRun, Quarantine
from image_analysis.objects import ObjectReader
from image_analysis.orchestration import CacheTraffic, Orchestration, ProviderResult
from image_analysis.pipeline import Pipeline
from image_analysis.providers.base import Deadline, ProviderOutput
from image_analysis.store import WriteOutcome

MODERATION = {"Key": "moderation", "Value": "flagged"}
REF = ObjectRef("uploads", "a.png", None, "etag", 10, "0055AED6DCD90281E5", "ObjectCreated:Put")


def user_tags(n: int) -> list[dict[str, str]]:
    return [{"Key": f"team{i}", "Value": f"v{i}"} for i in range(n)]


class S3:
    def __init__(self, tags: list[dict[str, str]]):
        self.tags = list(tags)
        self.puts: list[dict] = []
        self.targets: list[dict] = []

    def head_object(self, **target):
        return {}  # the key still holds the event's bytes

    def get_object_tagging(self, **target):
        self.targets.append(target)
        return {"TagSet": list(self.tags)}

    def put_object_tagging(self, Tagging, **target):
        assert len(Tagging["TagSet"]) <= 10, "S3: BadRequest, Object tags cannot be greater than 10"
        self.puts.append(Tagging["TagSet"])
        self.tags = list(Tagging["TagSet"])

    def delete_object_tagging(self, **target):
        self.targets.append(target)
        self.puts.append([])
        self.tags = []
        return {}


def tag(existing, flags=("nsfw", "ai_generated")):
    s3 = S3(existing)
    outcome = ObjectReader(s3, 1000).tag_flagged(REF, list(flags))
    return s3, outcome


def test_a_few_user_tags_are_kept_beside_both_of_ours():
    s3, outcome = tag(user_tags(3))
    assert s3.tags == [*user_tags(3), MODERATION, {"Key": "flags", "Value": "nsfw+ai_generated"}]
    assert (outcome.applied, outcome.left_out) == (("moderation", "flags"), ())


def test_nine_user_tags_are_all_kept_and_only_moderation_fits():
    s3, outcome = tag(user_tags(9))
    assert s3.tags == [*user_tags(9), {"Key": "moderation", "Value": "flagged"}]
    assert (outcome.applied, outcome.left_out) == (("moderation",), ("flags",))


def test_ten_user_tags_are_left_alone_and_both_of_ours_are_reported_left_out():
    s3, outcome = tag(user_tags(10))
    assert s3.puts == [] and s3.tags == user_tags(10)
    assert (outcome.applied, outcome.left_out) == ((), ("moderation", "flags"))


def test_our_earlier_tags_are_replaced_not_counted_as_the_users():
    earlier = [*user_tags(8), {"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "nsfw"}]
    s3, outcome = tag(earlier, flags=("ai_generated",))
    assert s3.tags == [*user_tags(8), MODERATION, {"Key": "flags", "Value": "ai_generated"}]
    assert outcome.left_out == ()


def test_a_stale_flags_tag_goes_when_only_moderation_still_fits():
    s3, outcome = tag([*user_tags(9), {"Key": "flags", "Value": "nsfw"}])
    assert s3.tags == [*user_tags(9), {"Key": "moderation", "Value": "flagged"}]
    assert outcome.left_out == ("flags",)


def test_an_earlier_clean_verdict_makes_room_for_the_quarantine_of_bytes_now_flagged():
    """Found by the model: with the delivery gate closed, bytes analyzed clean under other thresholds carry
    verdict=clean beside nine of the user's tags; reprocessed and flagged, the verdict used to hold the last
    slot while the tags were written, so no quarantine tag went on (and the gate then took the verdict off)."""
    s3, outcome = tag([*user_tags(9), {"Key": "image-analysis:verdict", "Value": "clean"}], flags=("nsfw",))
    assert s3.tags == [*user_tags(9), MODERATION]
    assert (outcome.applied, outcome.left_out) == (("moderation",), ("flags",))


def test_removing_takes_off_our_tags_and_keeps_the_users_own_moderation_tag():
    s3 = S3([*user_tags(2), {"Key": "moderation", "Value": "reviewed"}, {"Key": "flags", "Value": "nsfw+deepfake"}])
    reader = ObjectReader(s3, 1000)
    assert reader.remove_quarantine_tags(REF) is True
    assert s3.tags == [*user_tags(2), {"Key": "moderation", "Value": "reviewed"}]
    assert reader.remove_quarantine_tags(REF) is False and len(s3.puts) == 1  # nothing of ours left: no write


def test_removing_the_only_tags_deletes_the_tag_set_of_that_version():
    s3 = S3([{"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "ai_generated"}])
    versioned = ObjectRef("uploads", "a.png", "v1", "etag", 10, "0055AED6DCD90281E5", "ObjectCreated:Put")
    assert ObjectReader(s3, 1000).remove_quarantine_tags(versioned)
    target = {"Bucket": "uploads", "Key": "a.png", "VersionId": "v1"}
    assert s3.puts == [[]] and s3.targets == [target, target]  # read, then DeleteObjectTagging


# -- through the pipeline ------------------------------------------------------------------------------
class Reader(ObjectReader):
    def __init__(self, s3):
        super().__init__(s3, 10_000_000)
        out = io.BytesIO()
        Image.new("RGB", (16, 16), (1, 2, 3)).save(out, format="PNG")
        self.data = out.getvalue()

    def read(self, ref):
        return self.data


class Store:
    table_name = "results"
    raw_archive = None

    def __init__(self, existing=None):
        self.existing = existing
        self.quarantine: list[Quarantine] = []

    def get(self, pk, sk):
        return self.existing

    def put_result(self, result, sequence, event_time=None, **review):
        return WriteOutcome(True, self.existing)

    def mark_alerted(self, *args):
        return True

    def mark_quarantine(self, pk, sk, sequence, quarantine):
        self.quarantine.append(quarantine)
        return True


class Publisher:
    def publish(self, alert, providers):
        return "id"


class Orchestrator:
    def __init__(self, ai_confidence):
        self.ai_confidence = ai_confidence

    def prefetch(self, sha256, deferred=None, lookups=True):
        return CacheTraffic(deferred=deferred)

    def run(self, request, prefetched=None):
        verdict = AIGenerated(verdict="ai", confidence=self.ai_confidence, provider="builtin")
        run = ProviderRun(name="builtin", status="succeeded", latency_ms=1)
        return Orchestration({"builtin": ProviderResult(run=run, output=ProviderOutput(ai_generated=verdict))})


class Metrics:
    def __init__(self):
        self.names: list[str] = []

    def add_metric(self, name, unit, value):
        self.names.append(name)


def process(s3, store, ai_confidence, quarantine_tags=True, ref=REF):
    metrics = Metrics()
    pipeline = Pipeline(
        reader=Reader(s3),
        store=store,
        publisher=Publisher(),
        orchestrator=Orchestrator(ai_confidence),
        thresholds=Thresholds(ai_generated=0.8),
        quarantine_tags=quarantine_tags,
        max_pixels=10_000_000,
        metrics=metrics,
    )
    return pipeline.process(ref, Deadline(60)), metrics


def test_a_flagged_result_records_what_did_not_fit_on_the_item_and_as_a_metric():
    s3, store = S3(user_tags(9)), Store()
    outcome, metrics = process(s3, store, ai_confidence=0.95)
    expected = Quarantine(applied=["moderation"], left_out=["flags"])
    assert store.quarantine == [expected] and outcome.result.quarantine == expected
    assert "QuarantineTagsLeftOut" in metrics.names
    assert s3.tags[:9] == user_tags(9)


def test_a_flagged_result_with_room_records_both_tags_and_no_left_out_metric():
    store = Store()
    _, metrics = process(S3(user_tags(1)), store, ai_confidence=0.95)
    assert store.quarantine == [Quarantine(applied=["moderation", "flags"], left_out=[])]
    assert "QuarantineTagsLeftOut" not in metrics.names


REPROCESS = ObjectRef(
    "uploads",
    "a.png",
    None,
    "etag",
    10,
    "0055AED6DCD90281E5",
    "ObjectCreated:Put",
    reprocess_id="r2",
    reprocess_reason="x",
)
PREVIOUSLY_FLAGGED = {"pk": "uploads/a.png", "sk": "null", "seq": "0055AED6DCD90281E5".ljust(32, "0"),
                      "status": "succeeded", "flags": ["ai_generated"], "alert_id": "a1", "etag": "etag"}  # fmt: skip


def test_a_reprocessed_result_no_longer_flagged_takes_our_tags_off():
    s3 = S3([*user_tags(2), {"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "ai_generated"}])
    outcome, metrics = process(s3, Store(existing=PREVIOUSLY_FLAGGED), ai_confidence=0.5, ref=REPROCESS)
    assert outcome.status == "succeeded" and outcome.result.flags == []
    assert s3.tags == user_tags(2)
    assert "QuarantineTagsRemoved" in metrics.names


@pytest.mark.parametrize(
    ("existing", "quarantine_tags"),
    [(None, True), ({**PREVIOUSLY_FLAGGED, "flags": [], "etag": "other bytes"}, True), (PREVIOUSLY_FLAGGED, False)],
    ids=["first-result", "was-not-flagged", "quarantine-off"],
)
def test_an_unflagged_result_reads_no_tags_unless_it_was_flagged_before(existing, quarantine_tags):
    s3 = S3([{"Key": "moderation", "Value": "flagged"}])
    process(s3, Store(existing=existing), ai_confidence=0.5, quarantine_tags=quarantine_tags, ref=REPROCESS)
    assert s3.targets == [] and s3.puts == []


def test_a_clean_result_over_a_clean_result_of_the_same_bytes_takes_off_tags_a_failed_untag_left():
    # A reprocess of the same bytes reads the tags (a reprocess is rare): an earlier untag may have failed.
    s3 = S3([*user_tags(2), {"Key": "moderation", "Value": "flagged"}])
    process(s3, Store(existing={**PREVIOUSLY_FLAGGED, "flags": []}), ai_confidence=0.5, ref=REPROCESS)
    assert s3.tags == user_tags(2)


def test_a_users_own_tag_under_one_of_our_names_is_neither_dropped_nor_changed():
    mine = [*user_tags(8), {"Key": "flags", "Value": "customer-owned"}]
    s3, outcome = tag(mine)
    assert s3.tags == [*mine, {"Key": "moderation", "Value": "flagged"}]
    assert outcome.applied == ("moderation",) and outcome.left_out == ("flags",)


class ModerationDown(Orchestrator):
    """builtin answers (not flagged); the moderation vendor is out of quota: nobody decided "safe"."""

    def run(self, request, prefetched=None):
        plan = super().run(request)
        from image_analysis.models import ErrorInfo

        refused = ProviderRun(
            name="imagga",
            status="failed",
            latency_ms=1,
            error=ErrorInfo(code="quota_exhausted", message="imagga: the plan's quota is used up"),
        )
        plan.results["imagga"] = ProviderResult(run=refused, output=ProviderOutput())
        return plan


def test_a_partial_result_never_lifts_the_quarantine():
    s3 = S3([{"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "nsfw"}])
    store = Store(existing={**PREVIOUSLY_FLAGGED, "flags": ["nsfw"]})
    pipeline = Pipeline(
        reader=Reader(s3),
        store=store,
        publisher=Publisher(),
        orchestrator=ModerationDown(0.1),
        thresholds=Thresholds(ai_generated=0.8),
        quarantine_tags=True,
        max_pixels=10_000_000,
        metrics=Metrics(),
    )
    outcome = pipeline.process(REPROCESS, Deadline(60))
    assert outcome.status == "partial" and outcome.result.flags == []
    assert s3.tags == [{"Key": "moderation", "Value": "flagged"}, {"Key": "flags", "Value": "nsfw"}]
    assert s3.puts == []
