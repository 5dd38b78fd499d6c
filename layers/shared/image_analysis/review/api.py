"""The review HTTP API (API Gateway HTTP API, payload format 2.0, IAM-authorized).

    GET  /reviews?status=pending[&next=CURSOR][&limit=N]   the queue, oldest first, a page at a time
         [&flag=F][&provider=P][&from=DATE][&to=DATE]       (filters; thumbnails as presigned URLs)
    GET  /reviews/{id}                                      the review, its result, its history and
                                                            short-lived presigned URLs of the original
                                                            and its thumbnails
    POST /reviews/{id}/decision   {decision, reason, from_status[, etag]}
         200 the decision; 409 {error, current: {status, decided_by, decided_at}} when refused

``id`` is the base64url of ``<bucket>/<key>#<version or null>``. The routes live on ``routes`` (a
Router): another front door (a console under ``/console/api`` with its own sign-in) includes the same
router under its prefix, and adds an extractor to ``IDENTITIES`` for its authorizer: the console
(``console``) does, under ``/console/api``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from image_analysis.review.decisions import Decisions
from image_analysis.review.errors import DecisionRefused, InvalidDecision, ReviewError, ReviewNotFound
from image_analysis.review.ids import ReviewId
from image_analysis.review.queue import ReviewQueue

STATUSES = ("pending", "approved", "rejected", "escalated")
PRESIGNED_SECONDS = 300  # long enough to look, short enough that a forwarded link soon stops working
MAX_PAGE = 100


# A date or a moment, as a prefix of ISO 8601 (2026-12-07, 2026-12-07T10:00): the listing's from and to.
_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}(T[\d:.]+Z?)?$")


@dataclass
class ReviewServices:
    decisions: Decisions
    queue: ReviewQueue
    s3: Any
    # Where the pipeline writes thumbnails (ARTIFACTS_BUCKET); empty: no thumbnails are shown.
    artifacts_bucket: str = ""


def presign(s3: Any, bucket: str, key: str, version_id: str | None = None) -> str:
    params = {"Bucket": bucket, "Key": key}
    if version_id:
        params["VersionId"] = version_id
    return s3.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGNED_SECONDS)


def presigned_images(services: ReviewServices, item: Mapping[str, Any] | None) -> dict[str, Any]:
    """A queue item's thumbnails (written by the pipeline when the review opened) as presigned URLs."""
    shown: dict[str, Any] = {}
    if not item or not services.artifacts_bucket:
        return shown
    for attribute, name in (("thumbnail", "thumbnail_url"), ("frames_strip", "frames_strip_url")):
        if item.get(attribute):
            shown[name] = presign(services.s3, services.artifacts_bucket, str(item[attribute]))
    return shown


def _iam_identity(event: dict[str, Any]) -> str | None:
    """An IAM-authorized route: the signing principal's ARN, as API Gateway verified it."""
    iam = ((event.get("requestContext") or {}).get("authorizer") or {}).get("iam") or {}
    return iam.get("userArn") or None


# Tried in order; the first that names the caller wins. A JWT-authorized front door adds its own.
IDENTITIES: list[Callable[[dict[str, Any]], str | None]] = [_iam_identity]


def caller_identity(event: dict[str, Any]) -> str | None:
    for extract in IDENTITIES:
        identity = extract(event)
        if identity:
            return identity
    return None


routes = APIGatewayHttpRouter()


def _services() -> ReviewServices:
    return routes.context["services"]


def _rid(encoded: str) -> ReviewId:
    try:
        return ReviewId.decode(encoded)
    except ValueError as exc:
        raise InvalidDecision(str(exc)) from None


def listed(item: dict[str, Any]) -> dict[str, Any]:
    rid = ReviewId(item["bucket"], item["key"], item.get("version_id"))
    hidden = ("pk", "result_pk", "result_sk", "thumbnail", "frames_strip")
    shown = {k: v for k, v in item.items() if k not in hidden}
    return {"id": rid.encoded, **shown}


def _moment(name: str) -> str | None:
    value = routes.current_event.get_query_string_value(name) or None
    if value is not None and not _MOMENT.match(value):
        raise InvalidDecision(f"{name} must be a date (2026-12-07) or a moment (2026-12-07T10:00:00Z)")
    return value


@routes.get("/reviews")
def list_reviews() -> dict[str, Any]:
    event = routes.current_event
    status = event.get_query_string_value("status", "pending") or "pending"
    if status not in STATUSES:
        raise InvalidDecision(f"status must be one of {', '.join(STATUSES)}")
    raw_limit = event.get_query_string_value("limit", "25") or "25"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise InvalidDecision(f"limit must be a whole number from 1 to {MAX_PAGE}")
    services = _services()
    try:
        page = services.queue.page(
            status,
            int(raw_limit),
            event.get_query_string_value("next"),
            flag=event.get_query_string_value("flag") or None,
            provider=event.get_query_string_value("provider") or None,
            since=_moment("from"),
            until=_moment("to"),
        )
    except ValueError as exc:
        raise InvalidDecision(str(exc)) from None
    return {
        "items": [{**listed(i), **presigned_images(services, i)} for i in page["items"]],
        "next": page["next"],
        "read": page["read"],
    }


@routes.get("/reviews/<review_id>")
def show_review(review_id: str) -> dict[str, Any]:
    rid = _rid(review_id)
    services = _services()
    shown = services.decisions.show(rid)
    shown["original"] = {
        "url": presign(services.s3, rid.bucket, rid.key, rid.version_id),
        "expires_in": PRESIGNED_SECONDS,
        **presigned_images(services, shown.get("queue")),
    }
    if shown.get("queue"):
        shown["queue"] = {k: v for k, v in shown["queue"].items() if k not in ("thumbnail", "frames_strip")}
    return shown


@routes.post("/reviews/<review_id>/decision")
def decide(review_id: str) -> dict[str, Any]:
    event = routes.current_event
    rid = _rid(review_id)
    by = caller_identity(event.raw_event)
    if not by:
        return _json(403, {"error": "the caller's identity is unknown"})
    try:
        body = json.loads(event.decoded_body or "{}")
    except ValueError:
        raise InvalidDecision("the body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidDecision("the body must be a JSON object: {decision, reason, from_status}")
    from_status = body.get("from_status")
    if from_status not in STATUSES:
        raise InvalidDecision(
            f"from_status must be one of {', '.join(STATUSES)}: the status the decision was taken from"
        )
    fields = {name: body.get(name) for name in ("decision", "reason", "etag")}
    if not all(value is None or isinstance(value, str) for value in fields.values()):
        raise InvalidDecision("decision, reason and etag are strings")
    outcome = _services().decisions.decide(
        rid,
        fields["decision"] or "",
        by=by,
        reason=fields["reason"],
        from_status=from_status,
        etag=fields["etag"],
    )
    answer: dict[str, Any] = {
        "id": rid.encoded,
        "review": outcome.review.model_dump(exclude_none=True),
        "decision": outcome.record,
    }
    if outcome.note:
        answer["note"] = outcome.note
    return answer


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def build_api() -> APIGatewayHttpResolver:
    """The IAM routes, and the console's: its page, and the same routes under ``/console/api`` with its own
    (``console.refusal``: a moderator's token, or 401/403)."""
    from image_analysis.review import console

    api = APIGatewayHttpResolver()
    api.include_router(routes)
    api.include_router(routes, prefix=console.API_PREFIX)
    api.include_router(console.routes)

    def moderators_only(app: APIGatewayHttpResolver, next_middleware: Any) -> Any:
        return console.refusal(app.current_event.raw_event) or next_middleware(app)

    api.use([moderators_only])

    @api.exception_handler(DecisionRefused)
    def refused(exc: DecisionRefused) -> Response:
        return _json(409, {"error": str(exc), "current": exc.current})

    @api.exception_handler(ReviewNotFound)
    def not_found(exc: ReviewNotFound) -> Response:
        return _json(404, {"error": str(exc)})

    @api.exception_handler(ReviewError)
    def bad_request(exc: ReviewError) -> Response:
        return _json(400, {"error": str(exc)})

    return api
