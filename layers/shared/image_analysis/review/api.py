"""The review HTTP API (API Gateway HTTP API, payload format 2.0, IAM-authorized).

    GET  /reviews?status=pending[&next=CURSOR][&limit=N]   the queue, oldest first, a page at a time
    GET  /reviews/{id}                                      the review, its result, its history and a
                                                            short-lived presigned URL of the original
    POST /reviews/{id}/decision   {decision, reason, from_status[, etag]}
         200 the decision; 409 {error, current: {status, decided_by, decided_at}} when refused

``id`` is the base64url of ``<bucket>/<key>#<version or null>``. The routes live on ``routes`` (a
Router): another front door (a console under ``/console/api`` with its own sign-in) includes the same
router under its prefix, and adds an extractor to ``IDENTITIES`` for its authorizer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


@dataclass
class ReviewServices:
    decisions: Decisions
    queue: ReviewQueue
    s3: Any


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
    shown = {k: v for k, v in item.items() if k not in ("pk", "result_pk", "result_sk")}
    return {"id": rid.encoded, **shown}


@routes.get("/reviews")
def list_reviews() -> dict[str, Any]:
    event = routes.current_event
    status = event.get_query_string_value("status", "pending") or "pending"
    if status not in STATUSES:
        raise InvalidDecision(f"status must be one of {', '.join(STATUSES)}")
    raw_limit = event.get_query_string_value("limit", "25") or "25"
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_PAGE:
        raise InvalidDecision(f"limit must be a whole number from 1 to {MAX_PAGE}")
    try:
        page = _services().queue.page(status, int(raw_limit), event.get_query_string_value("next"))
    except ValueError as exc:
        raise InvalidDecision(str(exc)) from None
    return {"items": [listed(i) for i in page["items"]], "next": page["next"]}


@routes.get("/reviews/<review_id>")
def show_review(review_id: str) -> dict[str, Any]:
    rid = _rid(review_id)
    services = _services()
    shown = services.decisions.show(rid)
    params = {"Bucket": rid.bucket, "Key": rid.key}
    if rid.version_id:
        params["VersionId"] = rid.version_id
    shown["original"] = {
        "url": services.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=PRESIGNED_SECONDS),
        "expires_in": PRESIGNED_SECONDS,
    }
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
        "review": outcome.review.model_dump(mode="json", exclude_none=True),
        "decision": outcome.record,
    }
    if outcome.note:
        answer["note"] = outcome.note
    return answer


def _json(status: int, body: dict[str, Any]) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def build_api() -> APIGatewayHttpResolver:
    api = APIGatewayHttpResolver()
    api.include_router(routes)

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
