"""The object is read with one GET (that version, that ETag); its size is judged from the GET's headers,
so an empty or oversized upload is rejected without its body being downloaded."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from image_analysis.errors import ObjectSkipped, ObjectUnreadable
from image_analysis.events import ObjectRef
from image_analysis.objects import ObjectReader, SizeRejected


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read_calls = 0
        self.closed = False

    def read(self) -> bytes:
        self.read_calls += 1
        return self.data

    def close(self) -> None:
        self.closed = True


class S3:
    def __init__(self, data: bytes = b"", length: int | None = None, error: dict | None = None) -> None:
        self.body = Body(data)
        self.length = len(data) if length is None else length
        self.error = error
        self.calls: list[tuple[str, dict]] = []

    def get_object(self, **kwargs):
        self.calls.append(("get_object", kwargs))
        if self.error is not None:
            raise ClientError(self.error, "GetObject")
        return {"Body": self.body, "ContentLength": self.length, "ETag": '"e"'}

    def head_object(self, **kwargs):  # pragma: no cover - must not be called
        self.calls.append(("head_object", kwargs))
        raise AssertionError("read() must not need a HEAD")


REF = ObjectRef(
    bucket="b", key="photos/cat.jpg", version_id="v1", etag="e", size=10, sequencer="01", event_name="ObjectCreated:Put"
)


def test_one_get_of_that_version_and_etag_returns_the_bytes():
    s3 = S3(b"\xff\xd8 jpeg bytes")
    assert ObjectReader(s3, max_bytes=1000).read(REF) == b"\xff\xd8 jpeg bytes"
    assert s3.calls == [("get_object", {"Bucket": "b", "Key": "photos/cat.jpg", "VersionId": "v1", "IfMatch": '"e"'})]


def test_an_oversized_object_is_rejected_from_the_headers_and_its_body_never_read():
    s3 = S3(b"x" * 10, length=5_000_000)
    with pytest.raises(SizeRejected) as rejected:
        ObjectReader(s3, max_bytes=1_000_000).read(REF)
    assert (rejected.value.code, rejected.value.size) == ("too_large", 5_000_000)
    assert "5,000,000 bytes; the limit is 1,000,000 (MAX_OBJECT_BYTES)" in rejected.value.message
    assert s3.body.read_calls == 0 and s3.body.closed


def test_an_empty_object_is_rejected_as_empty():
    s3 = S3(b"")
    with pytest.raises(SizeRejected) as rejected:
        ObjectReader(s3, max_bytes=1000).read(REF)
    assert rejected.value.code == "empty_object" and s3.body.read_calls == 0


def test_an_object_of_exactly_the_limit_is_read():
    s3 = S3(b"x" * 1000)
    assert len(ObjectReader(s3, max_bytes=1000).read(REF)) == 1000


def test_an_archived_object_is_unreadable_and_the_message_names_its_storage_class():
    error = {
        "Error": {
            "Code": "InvalidObjectState",
            "Message": "not valid for the storage class",
            "StorageClass": "GLACIER",
        },
        "ResponseMetadata": {"HTTPStatusCode": 403},
    }
    with pytest.raises(ObjectUnreadable, match="in the GLACIER storage class; restore it"):
        ObjectReader(S3(error=error), max_bytes=1000).read(REF)


def test_an_object_overwritten_since_the_event_is_skipped():
    error = {
        "Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions"},
        "ResponseMetadata": {"HTTPStatusCode": 412},
    }
    with pytest.raises(ObjectSkipped):
        ObjectReader(S3(error=error), max_bytes=1000).read(REF)
