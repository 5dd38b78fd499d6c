"""The id of a review: one object version, ``<bucket>/<key>#<version or null>``, base64url in URLs.

A key may hold ``#`` but a version id never does (S3 version ids are URL-safe characters), so the last
``#`` separates them; a bucket name never holds ``/``, so the first ``/`` ends it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


@dataclass(frozen=True)
class ReviewId:
    bucket: str
    key: str
    version_id: str | None = None

    @property
    def result_pk(self) -> str:
        """The results table's partition key of the object."""
        return f"{self.bucket}/{self.key}"

    @property
    def result_sk(self) -> str:
        return self.version_id or "null"

    @property
    def plain(self) -> str:
        """``<bucket>/<key>#<version or null>``: the queue's and the audit log's partition key."""
        return f"{self.result_pk}#{self.result_sk}"

    @property
    def encoded(self) -> str:
        """base64url (with padding, as Python's ``base64.urlsafe_b64encode`` writes it)."""
        return base64.urlsafe_b64encode(self.plain.encode()).decode("ascii")

    @property
    def url(self) -> str:
        version = f" (version {self.version_id})" if self.version_id else ""
        return f"s3://{self.bucket}/{self.key}{version}"

    @classmethod
    def of_result(cls, pk: str, sk: str) -> ReviewId:
        bucket, _, key = pk.partition("/")
        return cls(bucket, key, None if sk == "null" else sk)

    @classmethod
    def parse_plain(cls, plain: str) -> ReviewId:
        head, sep, version = plain.rpartition("#")
        bucket, slash, key = head.partition("/")
        if not sep or not slash or not bucket or not key or not version:
            raise ValueError(f"{plain[:80]!r} is not <bucket>/<key>#<version or null>")
        return cls(bucket, key, None if version == "null" else version)

    @classmethod
    def decode(cls, encoded: str) -> ReviewId:
        """From the base64url form, with or without its padding."""
        try:
            plain = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except (binascii.Error, ValueError, UnicodeError):
            raise ValueError(f"{encoded[:80]!r} is not a review id (base64url)") from None
        return cls.parse_plain(plain)
