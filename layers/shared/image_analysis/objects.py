"""Read the uploaded object exactly as the event describes it: that version, that ETag, size checked first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, get_args

from botocore.exceptions import ClientError

from image_analysis.errors import InputRejected, ObjectSkipped, ObjectUnreadable
from image_analysis.events import ObjectRef
from image_analysis.models import AnalysisResult, ErrorCode, Flag

_GONE = {"NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412", "NotFound"}


# S3's limit of tags per object. The quarantine adds two, given room in this order: the tag the
# quarantine bucket policy denies reads on (template.yaml), then the flags that caused it.
MAX_OBJECT_TAGS = 10
QUARANTINE_TAG = {"moderation": "flagged"}
FLAGS_TAG = "flags"


# The delivery gate's tag (DeliveryGate=closed): the bucket policy lets an object version be read only
# with it. Written by version id, by the pipeline and the review function alone (the policy denies our
# tag keys to every other principal).
VERDICT_KEY = "image-analysis:verdict"
VERDICT_CLEAN = "clean"


def clean_verdict(result: AnalysisResult) -> bool:
    """Whether the gate lets this object version be served: a human approval, or a complete result
    with no flag that no human rejected. A partial result decided nothing (a provider that did not
    answer, or frames of an animation that could not be decoded, are no verdict of "safe"); rejected,
    failed and skipped results are never clean."""
    review = result.review
    if review is not None and review.status in ("approved", "rejected"):
        return review.status == "approved"
    return result.status == "succeeded" and not result.flags


@dataclass(frozen=True)
class QuarantineTagging:
    """What ``tag_flagged`` did: our tags now on the object, and those the user's own tags left no room for."""

    applied: tuple[str, ...]
    left_out: tuple[str, ...]


def _version_target(ref: ObjectRef) -> dict[str, Any]:
    target: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        target["VersionId"] = ref.version_id
    return target


def _pairs(tags: list[dict[str, str]]) -> set[tuple[str | None, str | None]]:
    return {(t.get("Key"), t.get("Value")) for t in tags}


def _is_quarantine_tag(tag: dict[str, str]) -> bool:
    if tag.get("Key") in QUARANTINE_TAG:
        return tag.get("Value") == QUARANTINE_TAG[tag["Key"]]
    if tag.get("Key") == FLAGS_TAG:
        return set((tag.get("Value") or "").split("+")) <= set(get_args(Flag))
    return False


class SizeRejected(InputRejected):
    """Rejected by the size S3 reports, before any of the object's bytes were read."""

    def __init__(self, code: ErrorCode, message: str, size: int) -> None:
        super().__init__(code, message)
        self.size = size


def _conditions(ref: ObjectRef) -> dict[str, Any]:
    conditions: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        conditions["VersionId"] = ref.version_id
    if ref.etag:
        # New bytes never land under an old ETag: an overwrite since the event makes this fail (412).
        conditions["IfMatch"] = f'"{ref.etag}"'
    return conditions


def _translate(exc: ClientError, ref: ObjectRef) -> Exception:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _GONE or status in (404, 412):
        return ObjectSkipped("the object was deleted or overwritten before it could be read")
    if code == "InvalidObjectState":
        storage_class = exc.response.get("Error", {}).get("StorageClass")
        where = f"in the {storage_class} storage class" if storage_class else "archived"
        return ObjectUnreadable(f"the object is {where}; restore it before analysis")
    if code in ("AccessDenied", "KMS.AccessDeniedException") or status == 403:
        return ObjectUnreadable("access denied reading the object (bucket policy or KMS key does not allow it)")
    if status == 400:
        return ObjectUnreadable(f"the object cannot be read ({code}); SSE-C objects are not supported")
    return exc


def _gone_or(exc: ClientError, ref: ObjectRef) -> Exception:
    """``ObjectSkipped`` when the object was deleted (there is nothing left to tag), else the error itself."""
    translated = _translate(exc, ref)
    return translated if isinstance(translated, ObjectSkipped) else exc


class ObjectReader:
    def __init__(self, s3_client: Any, max_bytes: int) -> None:
        self._s3 = s3_client
        self.max_bytes = max_bytes

    def exists(self, ref: ObjectRef) -> bool:
        """Whether the key (that version, when versioned) holds an object now, whatever its ETag.

        403 counts as absent: without ``s3:ListBucket`` S3 answers a missing key with 403, not 404.
        Anything else (throttling, 5xx) raises, and the record is retried.
        """
        return self.etag_now(ref) is not None

    def etag_now(self, ref: ObjectRef) -> str | None:
        """The ETag of what the key (that version, when versioned) holds now; None when it holds nothing."""
        try:
            head = self._s3.head_object(**_version_target(ref))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _GONE or code in ("AccessDenied", "405", "MethodNotAllowed") or status in (403, 404, 405):
                return None
            raise
        return str(head.get("ETag", "")).strip('"')

    def holds(self, ref: ObjectRef) -> bool:
        """Whether the key (that version, when versioned) still holds the event's bytes (its ETag)."""
        try:
            self._s3.head_object(**_conditions(ref))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _GONE or status in (403, 404, 412):
                return False
            raise
        return True

    def size_rejection(self, size: int) -> SizeRejected | None:
        if size == 0:
            return SizeRejected("empty_object", "the object is empty (0 bytes)", size)
        if size > self.max_bytes:
            return SizeRejected(
                "too_large",
                f"the object is {size:,} bytes; the limit is {self.max_bytes:,} (MAX_OBJECT_BYTES)",
                size,
            )
        return None

    def tag_flagged(self, ref: ObjectRef, flags: list[str]) -> QuarantineTagging:
        """Quarantine tags on a flagged object, merged with the tags it has (PutObjectTagging replaces all).

        S3 allows 10 tags per object. The user's own tags are never dropped to make room: ours go in only
        as far as they fit, ``moderation=flagged`` first (what a quarantine bucket policy matches), and
        what did not fit is returned in ``left_out``. Tagging raises no ObjectCreated event, so this
        never triggers the pipeline again. ``ObjectSkipped`` when the object was deleted.
        """
        target = _version_target(ref)
        existing = self._tag_set(ref)
        ours = {**QUARANTINE_TAG, FLAGS_TAG: "+".join(flags)}
        # Our tags from an earlier decision make room, and so does the delivery gate's verdict (a flagged
        # object must not keep an earlier clean verdict; the gate's own step would take it off after this
        # tagging, too late to make room). The user's tags are never dropped or changed, even one that uses
        # one of our names (ours is then left out and reported).
        tags = [dict(t) for t in existing if not _is_quarantine_tag(t) and t.get("Key") != VERDICT_KEY]
        applied: list[str] = []
        left_out: list[str] = []
        for name, value in ours.items():
            if len(tags) < MAX_OBJECT_TAGS and all(t["Key"] != name for t in tags):
                tags.append({"Key": name, "Value": value})
                applied.append(name)
            else:
                left_out.append(name)
        if tags != existing:
            self._put_tag_set(ref, target, tags)
        return QuarantineTagging(applied=tuple(applied), left_out=tuple(left_out))

    def remove_quarantine_tags(self, ref: ObjectRef) -> bool:
        """Take our quarantine tags off an object whose result is no longer flagged; True if any were on.

        Only the values this module writes count as ours, so a user's own ``moderation`` tag stays.
        """
        target = _version_target(ref)
        existing = self._tag_set(ref)
        kept = [t for t in existing if not _is_quarantine_tag(t)]
        if len(kept) == len(existing):
            return False
        self._put_tag_set(ref, target, kept)
        return True

    def _write_tags(self, target: dict[str, Any], tags: list[dict[str, str]]) -> None:
        """PutObjectTagging replaces the whole set; the last tags go with DeleteObjectTagging (S3 takes an
        empty set too, but not every S3-compatible store does)."""
        if tags:
            self._s3.put_object_tagging(**target, Tagging={"TagSet": tags})
        else:
            self._s3.delete_object_tagging(**target)

    def set_verdict(self, ref: ObjectRef, clean: bool) -> bool | None:
        """Put ``image-analysis:verdict=clean`` on the object version, or take it off; the object's other
        tags stay. True when the tags changed, False when they were already so, None when S3's ten slots
        are taken by other tags: the version then stays unreadable (the gate fails closed)."""
        target = _version_target(ref)
        existing = self._s3.get_object_tagging(**target).get("TagSet", [])
        others = [dict(t) for t in existing if t.get("Key") != VERDICT_KEY]
        if clean and len(others) >= MAX_OBJECT_TAGS:
            if len(others) != len(existing):
                self._write_tags(target, others)  # never a stale clean
            return None
        wanted = others + ([{"Key": VERDICT_KEY, "Value": VERDICT_CLEAN}] if clean else [])
        if _pairs(wanted) == _pairs(existing):
            return False
        self._write_tags(target, wanted)
        return True

    def _tag_set(self, ref: ObjectRef) -> list[dict[str, str]]:
        try:
            return self._s3.get_object_tagging(**_version_target(ref)).get("TagSet", [])
        except ClientError as exc:
            raise _gone_or(exc, ref) from exc

    def _put_tag_set(self, ref: ObjectRef, target: dict[str, Any], tags: list[dict[str, str]]) -> None:
        try:
            self._write_tags(target, tags)
        except ClientError as exc:
            raise _gone_or(exc, ref) from exc

    def read(self, ref: ObjectRef) -> bytes:
        """The bytes, with one GET. Its headers come before the body: an empty or oversized object is
        rejected from them (``SizeRejected``) and its body is never downloaded. An archived object is
        refused by S3 itself (``InvalidObjectState``), a restored copy is read."""
        try:
            response = self._s3.get_object(**_conditions(ref))
        except ClientError as exc:
            raise _translate(exc, ref) from exc
        body = response["Body"]
        rejection = self.size_rejection(int(response.get("ContentLength", 0)))
        if rejection is not None:
            body.close()
            raise rejection
        return body.read()
