"""The review queue: a table of its own, one item per object version under review, listed by status
oldest first through its ``ByStatus`` index. The results table gains no index for it.

Item: ``pk`` (``<bucket>/<key>#<version or null>``), ``status``, ``flags``, ``analyzed_at`` (of the
result that opened the review: the listing's order), ``result_pk``/``result_sk``, ``bucket``, ``key``,
``version_id``, ``etag``, ``sha256``; once decided ``decided_by``, ``decided_at``, ``reason``, ``appeals``;
``object_deleted_at`` when a rejection deleted the object version.
"""

from __future__ import annotations

from typing import Any

from image_analysis.models import AnalysisResult
from image_analysis.review.ids import ReviewId
from image_analysis.review.table import Table, decode_cursor, encode_cursor

STATUS_INDEX = "ByStatus"
CURSOR_FIELDS = {"pk", "status", "analyzed_at"}


def queue_item(result: AnalysisResult) -> dict[str, Any]:
    rid = ReviewId(result.bucket, result.key, result.version_id)
    review = result.review
    return {
        "pk": rid.plain,
        "status": review.status if review else "pending",
        "flags": list(result.flags),
        "analyzed_at": result.analyzed_at,
        "result_pk": rid.result_pk,
        "result_sk": rid.result_sk,
        "bucket": result.bucket,
        "key": result.key,
        "version_id": result.version_id,
        "etag": result.etag,
        "sha256": result.sha256,
        "appeals": review.appeals if review else 0,
    }


class ReviewQueue:
    def __init__(self, table_name: str, dynamodb_client: Any) -> None:
        self.table = Table(table_name, dynamodb_client)

    @property
    def name(self) -> str:
        return self.table.name

    def open(self, result: AnalysisResult) -> None:
        """A review opened (or reopened for new bytes): the item as the result says, replacing any."""
        self.table.put(queue_item(result))

    def heal(self, result: AnalysisResult) -> bool:
        """The item for a result under review, when a crash left it unwritten; never replaces one."""
        return self.table.put(queue_item(result), "attribute_not_exists(pk)")

    def close(self, rid: ReviewId) -> None:
        """New bytes under the key that need no review: the old bytes' item goes."""
        self.table.delete({"pk": rid.plain})

    def get(self, rid: ReviewId) -> dict[str, Any] | None:
        return self.table.get({"pk": rid.plain})

    def mark_object_deleted(self, rid: ReviewId, when: str) -> None:
        self.table.update(
            {"pk": rid.plain},
            "SET object_deleted_at = :when",
            "attribute_exists(pk)",
            values={":when": when},
        )

    def page(self, status: str, limit: int = 25, cursor: str | None = None) -> dict[str, Any]:
        """``{items, next}``: oldest first; ``next`` (or None) goes on where this page stopped."""
        start = decode_cursor(cursor, CURSOR_FIELDS) if cursor else None
        if start is not None and start["status"] != status:
            raise ValueError("next was printed for a listing of another status")
        items, last = self.table.query(
            "#status = :status",
            index=STATUS_INDEX,
            limit=limit,
            start=start,
            names={"#status": "status"},
            values={":status": status},
        )
        cursor_key = {k: last[k] for k in CURSOR_FIELDS} if last else None
        return {"items": items, "next": encode_cursor(cursor_key)}
