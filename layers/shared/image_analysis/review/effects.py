"""What a decision does to the object, applied by the review function when ``image.reviewed`` reaches it.

The object's tags are brought to what the result item says now, not to what the message says: messages
may arrive twice or out of order, and the item is the truth. So applying is idempotent.

    approved             quarantine tags off; with the gate, verdict=clean on
    rejected             quarantine tags stay (put back if missing); the gate's clean off;
                         REJECT_ACTION=delete deletes that object version (the result item stays)
    pending, escalated   as the pipeline left it (the gate: clean only for a complete unflagged result)

The hash-bank hooks (``ReviewHooks``) run here too, under the function's role and retried by its queue
when they fail: ``on_rejected`` for a rejection that stands, ``on_approved_after_appeal`` for an approval
of an appealed rejection. Their default does nothing.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from botocore.exceptions import ClientError

from image_analysis.errors import ObjectSkipped
from image_analysis.events import ObjectRef
from image_analysis.objects import _GONE, ObjectReader, clean_verdict
from image_analysis.review.config import ReviewConfig
from image_analysis.review.decisions import now_iso
from image_analysis.review.ids import ReviewId
from image_analysis.review.queue import ReviewQueue
from image_analysis.review.table import Table
from image_analysis.store import result_of


class ReviewHooks(Protocol):
    """Called with the result item (its ``pdq`` and ``pdq_quality`` included) after a decision."""

    def on_rejected(self, item: dict[str, Any]) -> None: ...

    def on_approved_after_appeal(self, item: dict[str, Any]) -> None: ...


class NoHooks:
    """The default: decisions feed nothing else."""

    def on_rejected(self, item: dict[str, Any]) -> None:
        return None

    def on_approved_after_appeal(self, item: dict[str, Any]) -> None:
        return None


def decision_of(body: str) -> dict[str, Any] | None:
    """The ``image.reviewed`` message in an SQS body: raw (raw message delivery) or in SNS's envelope."""
    try:
        message = json.loads(body)
        if isinstance(message, dict) and message.get("Type") == "Notification" and "Message" in message:
            message = json.loads(message["Message"])
    except (TypeError, ValueError):
        return None
    return message if isinstance(message, dict) and message.get("type") == "image.reviewed" else None


class ReviewEffects:
    def __init__(
        self,
        *,
        config: ReviewConfig,
        results_table: str,
        dynamodb_client: Any,
        s3_client: Any,
        queue: ReviewQueue | None = None,
        hooks: ReviewHooks | None = None,
        logger: Any = None,
        metric: Any = None,
    ) -> None:
        self.config = config
        self.results = Table(results_table, dynamodb_client)
        self.reader = ObjectReader(s3_client, max_bytes=0)
        self._s3 = s3_client
        self.queue = queue
        self.hooks: ReviewHooks = hooks or NoHooks()
        self.logger = logger
        self._metric = metric

    def apply(self, message: dict[str, Any]) -> str:
        """Bring the object in line with its review; returns what was done, for the log."""
        rid = ReviewId(message["bucket"], message["key"], message.get("version_id"))
        item = self.results.get({"pk": rid.result_pk, "sk": rid.result_sk})
        if item is None or not item.get("review"):
            return "no result under review"
        result = result_of(item)
        review = result.review
        assert review is not None
        ref = ObjectRef(
            bucket=rid.bucket,
            key=rid.key,
            version_id=rid.version_id,
            etag=result.etag,
            size=None,
            sequencer=None,
            event_name="Review",
        )
        done: list[str] = []
        try:
            self._tags(ref, result, done)
            rejection = review.status == "rejected" and message.get("decision") == "reject"
            if rejection and self.config.reject_action == "delete":
                self._delete(ref, rid, done)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _GONE:
                raise
            done.append("the object version is gone")
        except ObjectSkipped:
            # The reader's quarantine tagging says so itself when the object version was deleted.
            done.append("the object version is gone")
        # The hash banks learn from the decision whether or not the bytes are still there.
        if review.status == "rejected" and message.get("decision") == "reject":
            self.hooks.on_rejected(item)
        elif review.status == "approved" and message.get("decision") == "approve" and review.appeals:
            self.hooks.on_approved_after_appeal(item)
        return ", ".join(done) or "nothing to change"

    def _tags(self, ref: ObjectRef, result: Any, done: list[str]) -> None:
        status = result.review.status
        if self.config.quarantine_tags:
            if status == "approved":
                if self.reader.remove_quarantine_tags(ref):
                    done.append("quarantine tags removed")
            elif result.flags:
                # Rejected, pending or escalated: the quarantine the pipeline put on stays on.
                tagging = self.reader.tag_flagged(ref, list(result.flags))
                if tagging.left_out:
                    done.append(f"quarantine tags left out: {', '.join(tagging.left_out)}")
        if self.config.delivery_gate:
            clean = clean_verdict(result)
            changed = self.reader.set_verdict(ref, clean)
            if changed is None:
                self._count("GateTagLeftOut")
                done.append("verdict=clean left out: the object's own tags take all ten slots")
            elif changed:
                done.append("verdict=clean on" if clean else "verdict=clean off")

    def _delete(self, ref: ObjectRef, rid: ReviewId, done: list[str]) -> None:
        """Delete that version. An unversioned object is deleted only while it still holds the rejected
        bytes (its ETag), so a newer upload under the key is never deleted for an older decision."""
        target: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
        if ref.version_id:
            target["VersionId"] = ref.version_id
        else:
            head = self._s3.head_object(**target)
            if ref.etag and head.get("ETag", "").strip('"') != ref.etag:
                done.append("not deleted: the key holds newer bytes")
                return
        self._s3.delete_object(**target)
        if self.queue is not None:
            self.queue.mark_object_deleted(rid, now_iso())
        self._count("RejectedObjectsDeleted")
        done.append("object version deleted")

    def _count(self, name: str) -> None:
        if self._metric is not None:
            self._metric(name, 1, "Count")
