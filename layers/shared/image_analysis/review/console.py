"""The moderators' console, served by the review function: its page, its sign-in, its API and its stats.

    GET  /                          the page (no sign-in: it holds no data; the page signs in)
    GET  /console/<file>            its script, style sheet and icon; ``config.json``: how to sign in
    *    /console/api/...           the review routes (``api.routes``) and the console's own below,
                                    behind API Gateway's JWT authorizer (a Cognito user pool's ID token)
    GET  /console/api/me            who is signed in
    GET  /console/api/counts        reviews per status
    GET  /console/api/stats?days=N  flags and decisions per day, precision per provider and category
                                    (calibration), estimated vendor spend per day (CloudWatch)

The JWT authorizer checks the token's signature, issuer, audience and expiry, not its groups: every
``/console/api`` request is refused here (403) unless the token's ``cognito:groups`` holds
``moderators``. The decider recorded is the signed-in user (``cognito:<username>``), never a name sent
in a body. Every answer carries a Content-Security-Policy without inline scripts or third-party
origins but for the presigned images and the sign-in domain.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from image_analysis.review.api import IDENTITIES, STATUSES
from image_analysis.review.calibration import calibrate

API_PREFIX = "/console/api"
GROUP = "moderators"
MAX_DAYS = 90
# Vendors that bill per call (``EstimatedCost_<provider>`` metrics); builtin is free.
PAID_PROVIDERS = ("imagga", "aiornot", "imageseo", "imagerecognize", "coreviz", "rekognition")
_STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*\.(?:js|css|svg)$")


@dataclass(frozen=True)
class ConsoleConfig:
    """The console's settings, from the review function's environment (the template sets them)."""

    static_dir: Path | None = None
    sign_in: str = "none"  # cognito, or none (no console in AWS; ``make console`` signs in locally)
    auth_domain: str = ""  # https://<prefix>.auth.<region>.amazoncognito.com
    client_id: str = ""
    thresholds: dict[str, Any] = field(default_factory=dict)
    stack_name: str = ""  # the metrics' service dimension
    metrics_namespace: str = "ImageAnalysis"
    # Where presigned image URLs point (S3's, or a local endpoint's, origins): the CSP's img-src.
    image_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, static_dir: Path | None = None, s3: Any = None) -> Any:
        from image_analysis.settings import parse_category_thresholds, parse_label_thresholds

        env = os.environ if env is None else env
        moderation = env.get("MODERATION_THRESHOLDS", "")
        thresholds = {
            "nsfw": float(env.get("NSFW_THRESHOLD") or 0.8),
            "ai_generated": float(env.get("AI_GENERATED_THRESHOLD") or 0.8),
            "deepfake": float(env.get("DEEPFAKE_THRESHOLD") or 0.8),
            "categories": parse_category_thresholds(moderation),
            "labels": {f"{p}.{label}": bar for (p, label), bar in parse_label_thresholds(moderation).items()},
        }
        return cls(
            static_dir=static_dir,
            sign_in=(env.get("CONSOLE_SIGN_IN") or "none").strip().lower(),
            auth_domain=env.get("CONSOLE_AUTH_DOMAIN", "").strip().rstrip("/"),
            client_id=env.get("CONSOLE_CLIENT_ID", "").strip(),
            thresholds=thresholds,
            stack_name=env.get("POWERTOOLS_SERVICE_NAME", "").strip(),
            metrics_namespace=env.get("POWERTOOLS_METRICS_NAMESPACE", "").strip() or "ImageAnalysis",
            image_origins=image_origins(s3, env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or ""),
        )

    def calibration_thresholds(self) -> dict[str, float]:
        """As ``calibration.threshold_for`` reads them: nsfw, ai_generated, deepfake and the categories."""
        t = self.thresholds
        return {"nsfw": t["nsfw"], "ai_generated": t["ai_generated"], "deepfake": t["deepfake"], **t["categories"]}


def image_origins(s3: Any, region: str) -> tuple[str, ...]:
    """The origins of the presigned URLs this function's S3 client makes: an endpoint of its own (the
    local stack), or S3's regional hosts, virtual-hosted and path style."""
    endpoint = getattr(getattr(s3, "meta", None), "endpoint_url", "") or ""
    parts = urlsplit(endpoint)
    if parts.hostname and not parts.hostname.endswith(".amazonaws.com"):
        return (f"{parts.scheme}://{parts.netloc}",)
    region = region or "us-east-1"
    return (f"https://*.s3.{region}.amazonaws.com", f"https://s3.{region}.amazonaws.com", "https://*.s3.amazonaws.com")


def content_security_policy(config: ConsoleConfig) -> str:
    images = " ".join(("'self'", "data:", *config.image_origins))
    connect = " ".join(("'self'", *([config.auth_domain] if config.auth_domain else [])))
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        f"img-src {images}; connect-src {connect}; font-src 'self'; manifest-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def security_headers(config: ConsoleConfig) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(config),
        "X-Content-Type-Options": "nosniff",
        # The sign-in's code and the presigned links never leave in a Referer.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
    }


# -- who is calling --------------------------------------------------------------------------------
def jwt_claims(event: Mapping[str, Any]) -> dict[str, Any]:
    """The claims API Gateway's JWT authorizer verified (payload 2.0), or {}."""
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    return dict((authorizer.get("jwt") or {}).get("claims") or {})


def groups_of(claims: Mapping[str, Any]) -> set[str]:
    """``cognito:groups``: a list, or as HTTP APIs hand an array claim on, a string like ``[a b]``."""
    raw = claims.get("cognito:groups")
    if isinstance(raw, list):
        return {str(g) for g in raw}
    if isinstance(raw, str):
        return {g for g in re.split(r"[\s,]+", raw.strip().strip("[]")) if g}
    return set()


def console_identity(event: Mapping[str, Any]) -> str | None:
    """A console route's caller: ``cognito:<username>`` for a Cognito user pool's token; an issuer of
    another kind (the local adapter's) keeps the name it gave."""
    path = ((event.get("requestContext") or {}).get("http") or {}).get("path") or event.get("rawPath") or ""
    if not path.startswith(API_PREFIX + "/"):
        return None
    claims = jwt_claims(event)
    username = claims.get("cognito:username") or claims.get("username")
    if not username:
        return None
    issuer = str(claims.get("iss") or "")
    return f"cognito:{username}" if issuer.startswith("https://cognito-idp.") else str(username)


if console_identity not in IDENTITIES:
    IDENTITIES.append(console_identity)


def refusal(event: Mapping[str, Any]) -> Response | None:
    """A console API request without a moderator's token: 403 (the authorizer let the token through)."""
    path = ((event.get("requestContext") or {}).get("http") or {}).get("path") or event.get("rawPath") or ""
    if not path.startswith(API_PREFIX + "/") and path != API_PREFIX:
        return None
    claims = jwt_claims(event)
    if not claims:
        return _json(401, {"error": "sign in first"})
    if GROUP not in groups_of(claims):
        return _json(403, {"error": f"the signed-in user is not in the {GROUP} group"})
    return None


# -- the routes --------------------------------------------------------------------------------------
routes = APIGatewayHttpRouter()


def _json(status: int, body: Any) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body, default=str))


def _config() -> ConsoleConfig:
    return routes.context["console"]


def _static(name: str) -> Response:
    config = _config()
    path = config.static_dir / name if config.static_dir is not None and _STATIC_NAME.match(name) else None
    if path is None or not path.is_file():
        return Response(status_code=404, content_type="text/plain", body="not found", headers=security_headers(config))
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {**security_headers(config), "Cache-Control": "no-cache"}
    return Response(
        status_code=200, content_type=f"{content_type}; charset=utf-8", body=path.read_text(), headers=headers
    )


@routes.get("/")
def page() -> Response:
    config = _config()
    path = config.static_dir / "index.html" if config.static_dir else None
    if path is None or not path.is_file():
        return Response(status_code=404, content_type="text/plain", body="no console here")
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=path.read_text(),
        headers=security_headers(config),
    )


@routes.get("/console/<name>")
def asset(name: str) -> Response:
    if name == "config.json":
        config = _config()
        body = {
            "sign_in": config.sign_in,
            "auth_domain": config.auth_domain,
            "client_id": config.client_id,
            "thresholds": config.thresholds,
            "statuses": list(STATUSES),
        }
        return Response(200, "application/json", json.dumps(body), headers=security_headers(config))
    return _static(name)


@routes.get(f"{API_PREFIX}/me")
def me() -> dict[str, Any]:
    claims = jwt_claims(routes.current_event.raw_event)
    return {
        "user": console_identity(routes.current_event.raw_event),
        "email": claims.get("email"),
        "groups": sorted(groups_of(claims)),
    }


@routes.get(f"{API_PREFIX}/counts")
def counts() -> dict[str, Any]:
    return {"counts": routes.context["services"].queue.counts(STATUSES)}


@routes.get(f"{API_PREFIX}/stats")
def stats() -> Any:
    raw = routes.current_event.get_query_string_value("days", "14") or "14"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        return _json(400, {"error": f"days must be a whole number from 1 to {MAX_DAYS}"})
    services = routes.context["services"]
    cloudwatch = routes.context.get("cloudwatch")  # a factory: the client is made on the first stats request
    return build_stats(
        services.queue, services.decisions.audit.all(), _config(), cloudwatch() if cloudwatch else None, int(raw)
    )


# -- the stats -----------------------------------------------------------------------------------------
def day_range(days: int, now: float) -> list[str]:
    today = datetime.fromtimestamp(now, UTC).date()
    return [(today - timedelta(days=offset)).isoformat() for offset in range(days - 1, -1, -1)]


def build_stats(
    queue: Any, audit_records: list[dict[str, Any]], config: ConsoleConfig, cloudwatch: Any, days: int, now: float = 0.0
) -> dict[str, Any]:
    now = now or time.time()
    day_list = day_range(days, now)
    since = day_list[0]
    flags: dict[str, Counter[str]] = defaultdict(Counter)
    for status in STATUSES:
        for item in queue.since(status, since):
            for flag in item.get("flags") or ["borderline"]:
                flags[flag][str(item.get("analyzed_at", ""))[:10]] += 1
    decisions: dict[str, Counter[str]] = defaultdict(Counter)
    for record in audit_records:
        day = str(record.get("decided_at", ""))[:10]
        if day >= since:
            decisions[str(record.get("decision"))][day] += 1
    precision = [row.as_dict() for row in calibrate(audit_records, config.calibration_thresholds())]
    return {
        "days": day_list,
        "flags": {name: [counts[d] for d in day_list] for name, counts in sorted(flags.items())},
        "decisions": {name: [counts[d] for d in day_list] for name, counts in sorted(decisions.items())},
        "precision": precision,
        "spend": vendor_spend(cloudwatch, config, day_list, now),
    }


def vendor_spend(cloudwatch: Any, config: ConsoleConfig, day_list: list[str], now: float) -> dict[str, Any]:
    """US dollars per paid provider and UTC day: the analysis function's ``EstimatedCost_<provider>``
    metrics (its service dimension is the stack's name), summed per day."""
    if cloudwatch is None or not config.stack_name:
        return {"providers": {}, "error": "no metrics to read"}
    start = datetime.fromisoformat(day_list[0]).replace(tzinfo=UTC)
    end = datetime.fromtimestamp(now, UTC) + timedelta(minutes=1)
    queries = [
        {
            "Id": f"p{index}",
            "Label": provider,
            "MetricStat": {
                "Metric": {
                    "Namespace": config.metrics_namespace,
                    "MetricName": f"EstimatedCost_{provider}",
                    "Dimensions": [{"Name": "service", "Value": config.stack_name}],
                },
                "Period": 86400,
                "Stat": "Sum",
            },
        }
        for index, provider in enumerate(PAID_PROVIDERS)
    ]
    spent: dict[str, dict[str, float]] = defaultdict(dict)
    try:
        kwargs: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
        while True:
            response = cloudwatch.get_metric_data(**kwargs)
            for series in response.get("MetricDataResults", []):
                for stamp, value in zip(series.get("Timestamps", []), series.get("Values", []), strict=False):
                    day = stamp.astimezone(UTC).date().isoformat() if hasattr(stamp, "astimezone") else str(stamp)[:10]
                    spent[series["Label"]][day] = spent[series["Label"]].get(day, 0.0) + float(value)
            if not response.get("NextToken"):
                break
            kwargs["NextToken"] = response["NextToken"]
    except Exception as exc:  # the chart says why it is empty; the rest of the page stands
        return {"providers": {}, "error": f"could not read the cost metrics: {type(exc).__name__}"}
    return {
        "providers": {
            provider: [round(days.get(d, 0.0), 6) for d in day_list] for provider, days in sorted(spent.items())
        },
    }
