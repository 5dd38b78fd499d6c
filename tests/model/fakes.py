"""In-memory stand-ins with the semantics the pipeline relies on, for the fast configuration of the model.

    Clock          the injected clock: claims expire on it, S3 stamps objects with it; ``sleep`` advances it
    FakeS3         boto3-shaped S3 client: buckets with or without versioning, ETags (MD5 of the bytes),
                   ``IfMatch`` (412), delete markers, tags per version and S3's limit of 10 tags
    FakeSNS        boto3-shaped SNS client that keeps what was published
    MotoDynamoDB   moto's DynamoDB in this process (conditional writes as moto's server evaluates them),
                   without HTTP; ``memory_dynamodb()`` makes it with the template's result and ledger tables

Errors are botocore ``ClientError``s shaped as S3 shapes them (HEAD answers carry the status as the code),
so the pipeline's translation of them is exercised as it is against the service.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
MAX_TAGS = 10
# The template's tables the pipeline writes: the results and who may publish each alert.
TABLES = ("ResultsTable", "AlertLedgerTable")


class Clock:
    """Seconds since the epoch, moved only by the model (and by the pipeline's waits)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        # A wait inside an invocation takes time on the same clock the claims expire on.
        self.now += seconds


def client_error(code: str, status: int, operation: str, message: str = "") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message or code}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


@dataclass
class StoredObject:
    version_id: str | None
    etag: str = ""
    body: bytes = b""
    last_modified: float = 0.0
    tags: list[dict[str, str]] = field(default_factory=list)
    delete_marker: bool = False


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data

    def close(self) -> None:
        pass


class FakeS3:
    """The S3 calls the pipeline makes, with S3's answers; buckets are made with ``create_bucket``."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, dict[str, list[StoredObject]]] = {}
        self._versioned: dict[str, bool] = {}
        self._ids = itertools.count(1)

    # -- setup ----------------------------------------------------------------------------------------
    def create_bucket(self, Bucket: str, versioned: bool = False) -> None:
        self._buckets[Bucket] = {}
        self._versioned[Bucket] = versioned

    # -- writes ---------------------------------------------------------------------------------------
    def put_object(self, Bucket: str, Key: str, Body: bytes, Tagging: str | None = None) -> dict[str, Any]:
        tags = [{"Key": k, "Value": v} for k, v in parse_qsl(Tagging or "", keep_blank_values=True)]
        if len(tags) > MAX_TAGS:
            raise client_error("BadRequest", 400, "PutObject", "Object tags cannot be greater than 10")
        versioned = self._versioned[Bucket]
        stored = StoredObject(
            version_id=self._new_version_id() if versioned else None,
            etag=hashlib.md5(Body).hexdigest(),  # S3's ETag of a single-part upload
            body=bytes(Body),
            last_modified=self._clock.time(),
            tags=tags,
        )
        history = self._buckets[Bucket].setdefault(Key, [])
        if versioned:
            history.append(stored)
        else:
            history[:] = [stored]
        answer: dict[str, Any] = {"ETag": f'"{stored.etag}"'}
        if versioned:
            answer["VersionId"] = stored.version_id
        return answer

    def delete_object(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        history = self._buckets[Bucket].get(Key, [])
        if not self._versioned[Bucket]:
            history.clear()
            return {}
        if VersionId is None:
            marker = StoredObject(version_id=self._new_version_id(), delete_marker=True)
            history.append(marker)
            return {"DeleteMarker": True, "VersionId": marker.version_id}
        history[:] = [o for o in history if o.version_id != VersionId]
        return {"VersionId": VersionId}

    # -- reads ----------------------------------------------------------------------------------------
    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        stored = self._resolve("GetObject", kwargs, head=False)
        return {**self._headers(kwargs["Bucket"], stored), "Body": _Body(stored.body)}

    def head_object(self, **kwargs: Any) -> dict[str, Any]:
        stored = self._resolve("HeadObject", kwargs, head=True)
        return self._headers(kwargs["Bucket"], stored)

    def get_object_tagging(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        stored = self._resolve("GetObjectTagging", {"Bucket": Bucket, "Key": Key, "VersionId": VersionId}, head=False)
        answer: dict[str, Any] = {"TagSet": [dict(t) for t in stored.tags]}
        if stored.version_id:
            answer["VersionId"] = stored.version_id
        return answer

    def put_object_tagging(
        self, Bucket: str, Key: str, Tagging: dict[str, Any], VersionId: str | None = None
    ) -> dict[str, Any]:
        stored = self._resolve("PutObjectTagging", {"Bucket": Bucket, "Key": Key, "VersionId": VersionId}, head=False)
        tags = [{"Key": t["Key"], "Value": t["Value"]} for t in Tagging["TagSet"]]
        if len(tags) > MAX_TAGS:
            raise client_error("BadRequest", 400, "PutObjectTagging", "Object tags cannot be greater than 10")
        if len({t["Key"] for t in tags}) != len(tags):
            raise client_error("InvalidTag", 400, "PutObjectTagging", "Cannot provide multiple Tags with the same key")
        stored.tags = tags
        return {"VersionId": stored.version_id} if stored.version_id else {}

    def delete_object_tagging(self, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        target = {"Bucket": Bucket, "Key": Key, "VersionId": VersionId}
        stored = self._resolve("DeleteObjectTagging", target, head=False)
        stored.tags = []
        return {"VersionId": stored.version_id} if stored.version_id else {}

    # -- what the model reads directly ----------------------------------------------------------------
    def versions(self, bucket: str, key: str) -> list[StoredObject]:
        return list(self._buckets[bucket].get(key, []))

    # -- helpers --------------------------------------------------------------------------------------
    def _new_version_id(self) -> str:
        return f"v{next(self._ids):06d}.{hashlib.sha1(str(self._clock.time()).encode()).hexdigest()[:12]}"

    def _headers(self, bucket: str, stored: StoredObject) -> dict[str, Any]:
        headers: dict[str, Any] = {
            "ContentLength": len(stored.body),
            "ETag": f'"{stored.etag}"',
            "LastModified": datetime.fromtimestamp(int(stored.last_modified), UTC),
        }
        if stored.version_id:
            headers["VersionId"] = stored.version_id
        return headers

    def _resolve(self, operation: str, kwargs: dict[str, Any], head: bool) -> StoredObject:
        """The object a request names, or S3's error for it (HEAD errors have no body: the code is the status)."""

        def error(code: str, status: int) -> ClientError:
            return client_error(str(status) if head else code, status, operation)

        bucket, key, version_id = kwargs["Bucket"], kwargs["Key"], kwargs.get("VersionId")
        if bucket not in self._buckets:
            raise error("NoSuchBucket", 404)
        history = self._buckets[bucket].get(key, [])
        if version_id is not None:
            found = next((o for o in history if o.version_id == version_id), None)
            if found is None:
                raise error("NoSuchVersion", 404)
            if found.delete_marker:
                raise error("MethodNotAllowed", 405)
        else:
            found = history[-1] if history else None
            if found is None or found.delete_marker:
                raise error("NoSuchKey", 404)
        if_match = kwargs.get("IfMatch")
        if if_match is not None and if_match.strip('"') != found.etag:
            raise error("PreconditionFailed", 412)
        return found


class FakeSNS:
    """Every Publish call, kept in order; the model reads them through ``published``."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def publish(self, **kwargs: Any) -> dict[str, Any]:
        self.published.append(kwargs)
        return {"MessageId": f"message-{next(self._ids)}"}


def table_definitions() -> dict[str, dict[str, Any]]:
    """The key schemas and indexes of the template's tables, read from template.yaml itself."""
    from samtranslator.yaml_helper import yaml_parse

    resources = yaml_parse((ROOT / "template.yaml").read_text())["Resources"]
    allowed = {"AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes"}
    return {name: {k: v for k, v in resources[name]["Properties"].items() if k in allowed} for name in TABLES}


class MotoDynamoDB:
    """moto's DynamoDB, called in this process without HTTP or its wire serializers: the same request
    validation, condition and update expressions and return values as moto's server (the calls take the
    boto3 client's arguments and give its answers), at a small part of the cost. Errors are the
    ``ClientError``s a boto3 client raises. Each instance is an account of its own."""

    _accounts = itertools.count(100000000001)

    def __init__(self, region: str = "us-east-1") -> None:
        self.account = str(next(self._accounts))
        self.region = region

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def call(**params: Any) -> dict[str, Any]:
            return self._call(name, params)

        return call

    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        from moto.core.exceptions import JsonRESTError
        from moto.core.responses import ActionResult
        from moto.dynamodb.responses import DynamoHandler

        handler = DynamoHandler()
        handler.current_account, handler.region = self.account, self.region
        handler.body = params
        try:
            answer = getattr(handler, action)()
        except JsonRESTError as exc:
            raise client_error(exc.relative_error_type, exc.code, action, exc.message) from None
        result = answer.result if isinstance(answer, ActionResult) else answer
        # The wire's plain types (numbers are strings there), sharing nothing with the tables.
        return json.loads(json.dumps(result, default=str))


def memory_dynamodb() -> MotoDynamoDB:
    """moto's DynamoDB with the template's result and ledger tables, in an account of its own."""
    client = MotoDynamoDB()
    for name, definition in table_definitions().items():
        client.create_table(TableName=name, **definition)
    return client
