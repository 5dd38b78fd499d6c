"""A hand-back recorded for an event without a sequencer (a backfill) keeps the real event's sequence on
the failed item, so the real event, redriven later, is still ordered against it."""

from image_analysis.events import ObjectRef, padded_sequencer
from image_analysis.merge import Thresholds
from image_analysis.models import ErrorInfo
from image_analysis.pipeline import Pipeline

REAL = padded_sequencer("0055AABBCCDDEEFF00")


class Store:
    def __init__(self, existing):
        self.existing = existing
        self.writes = []

    def get(self, pk, sk):
        return self.existing

    def put_failure(self, result, sequence, event_time=None):
        self.writes.append(sequence)
        return True


def pipeline(store):
    return Pipeline(
        reader=None, store=store, publisher=None, orchestrator=None, thresholds=Thresholds(), max_pixels=1000
    )


def backfill_ref(etag):
    return ObjectRef("uploads", "a.jpg", None, etag, 10, None, "ObjectCreated:Put")


def test_the_real_events_sequence_stays_on_the_failed_item():
    store = Store({"pk": "uploads/a.jpg", "sk": "null", "status": "failed", "etag": "e1", "seq": REAL})
    assert pipeline(store).record_failure(backfill_ref("e1"), ErrorInfo(code="timeout", message="out of time"))
    assert store.writes == [REAL]


def test_other_bytes_are_a_new_object_and_keep_their_own_sequence():
    store = Store({"pk": "uploads/a.jpg", "sk": "null", "status": "failed", "etag": "e1", "seq": REAL})
    pipeline(store).record_failure(backfill_ref("e2"), ErrorInfo(code="timeout", message="out of time"))
    assert store.writes == [backfill_ref("e2").sequence]
