"""The review queue: a table of its own, one item per object version under review, listed by status
oldest first through its ``ByStatus`` index. The results table gains no index for it.

Item: ``pk`` (``<bucket>/<key>#<version or null>``), ``status``, ``flags``, ``analyzed_at`` (of the
result that opened the review: the listing's order), ``result_pk``/``result_sk``, ``bucket``, ``key``,
``version_id``, ``etag``, ``sha256``; ``providers`` (those whose answers raised a flag) and the console's
``thumbnail`` (and an animation's ``frames_strip``, ``strip_frames``) when the pipeline opened it; once
decided ``decided_by``, ``decided_at``, ``reason``, ``appeals``;
``object_deleted_at`` when a rejection deleted the object version.
"""

from __future__ import annotations

from typing import Any

from image_analysis.models import AnalysisResult
from image_analysis.review.ids import ReviewId
from image_analysis.review.table import Table, decode_cursor, encode_cursor

STATUS_INDEX = "ByStatus"
CURSOR_FIELDS = {"pk", "status", "analyzed_at"}
# The most reviews one filtered page reads before it answers with what it found (and a next): a
# listing request stays within a few DynamoDB queries and a bounded read, however rare the matches.
READ_BUDGET = 1000


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

    def open(self, result: AnalysisResult, extra: dict[str, Any] | None = None) -> None:
        """A review opened (or reopened for new bytes): the item as the result says, replacing any;
        ``extra``: what the intake adds (providers, thumbnails)."""
        self.table.put({**queue_item(result), **(extra or {})})

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

    def page(
        self,
        status: str,
        limit: int = 25,
        cursor: str | None = None,
        *,
        flag: str | None = None,
        provider: str | None = None,
        since: str | None = None,
        until: str | None = None,
        budget: int = READ_BUDGET,
    ) -> dict[str, Any]:
        """``{items, next, read}``: oldest first; ``next`` (or None) goes on where this page stopped;
        ``read``: how many reviews were read to fill it.

        ``since``/``until`` bound ``analyzed_at`` (ISO 8601 prefixes: ``2026-12-07`` is that whole day for
        ``until``), read from the index's sort key. ``flag`` and ``provider`` filter what DynamoDB read, so
        the page reads on until it holds ``limit`` matches, the listing ends, or ``budget`` reviews were
        read: a page short of ``limit`` with a ``next`` (even an empty one) only says that no more
        matches were among the reviews read so far."""
        start = decode_cursor(cursor, CURSOR_FIELDS) if cursor else None
        if start is not None and start["status"] != status:
            raise ValueError("next was printed for a listing of another status")
        condition = "#status = :status"
        names = {"#status": "status"}
        values: dict[str, Any] = {":status": status}
        if since and until:
            condition += " AND analyzed_at BETWEEN :since AND :until"
        elif since:
            condition += " AND analyzed_at >= :since"
        elif until:
            condition += " AND analyzed_at <= :until"
        if since:
            values[":since"] = since
        if until:
            values[":until"] = until + "\uffff"  # a date or a time prefix covers all that it starts
        filters = []
        if flag:
            filters.append("contains(flags, :flag)")
            values[":flag"] = flag
        if provider:
            filters.append("contains(providers, :provider)")
            values[":provider"] = provider
        items: list[dict[str, Any]] = []
        read, size = 0, limit
        budget = max(budget, limit)
        while True:
            found, last, scanned = self.table.query_counted(
                condition,
                index=STATUS_INDEX,
                limit=min(size, budget - read),
                start=start,
                filter=" AND ".join(filters) or None,
                names=names,
                values=values,
            )
            read += scanned
            wanted = limit - len(items)
            if len(found) > wanted:
                # More matches than the page holds: the next page starts after the last one shown.
                items += found[:wanted]
                last = items[-1]
            else:
                items += found
            if last is None or len(items) == limit or read >= budget:
                break
            start = last
            size *= 2  # a filter that matches little reads in fewer, larger requests
        cursor_key = {k: last[k] for k in CURSOR_FIELDS} if last else None
        return {"items": items, "next": encode_cursor(cursor_key), "read": read}

    def counts(self, statuses: tuple[str, ...]) -> dict[str, int]:
        """How many reviews each status holds (one counting query per status on the index)."""
        return {
            status: self.table.count(
                "#status = :status", index=STATUS_INDEX, names={"#status": "status"}, values={":status": status}
            )
            for status in statuses
        }

    def since(self, status: str, since: str) -> list[dict[str, Any]]:
        """Every review of ``status`` opened since ``since`` (the stats' flags per day)."""
        return self.table.query_all(
            "#status = :status AND analyzed_at >= :since",
            index=STATUS_INDEX,
            names={"#status": "status"},
            values={":status": status, ":since": since},
        )
