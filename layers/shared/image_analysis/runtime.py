"""Everything built once per container: settings, AWS clients, the shared HTTP client, providers."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image_analysis.alert_ledger import AlertLedger
from image_analysis.alerts import AlertPublisher
from image_analysis.banks.matcher import BankMatcher
from image_analysis.banks.screening import BankScreening
from image_analysis.banks.store import BankStore
from image_analysis.cache import ContentCache
from image_analysis.credentials import Credentials
from image_analysis.imaging import FrameLimits
from image_analysis.merge import Keep, Thresholds
from image_analysis.objects import ObjectReader
from image_analysis.orchestration import Orchestrator
from image_analysis.pipeline import Pipeline
from image_analysis.providers import REGISTRY, provider_class
from image_analysis.providers.base import ProviderDeps
from image_analysis.raw_archive import RawArchive
from image_analysis.review.config import ReviewConfig
from image_analysis.routing import parse_routing, providers_in
from image_analysis.settings import Settings
from image_analysis.store import ResultStore
from image_analysis.usage import DailyUsage


@dataclass
class Runtime:
    settings: Settings
    pipeline: Pipeline


def aws_clients(session: Any = None) -> dict[str, Any]:
    """boto3 clients with explicit timeouts; endpoints come only from the SDK's AWS_ENDPOINT_URL* settings."""
    import boto3
    from botocore.config import Config

    session = session or boto3.session.Session()
    # No client-side parameter validation: the services validate every request anyway, and botocore's
    # walk over a result item's nested attributes costs milliseconds per record.
    config = Config(
        connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 4}, parameter_validation=False
    )
    return {
        "s3": session.client("s3", config=config),
        "dynamodb": session.client("dynamodb", config=config),
        # Only a flagged image publishes: most cold starts never need to build this client.
        "sns": LazyClient(lambda: session.client("sns", config=config)),
    }


class LazyClient:
    """A boto3 client created on first use, once, even when threads ask for it at the same time."""

    def __init__(self, create: Any) -> None:
        self._create = create
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._create()
        return getattr(self._client, name)


def build_runtime(
    settings: Settings | None = None,
    *,
    clients: dict[str, Any] | None = None,
    http: Any = None,
    fetch_secret: Any = None,
    logger: Any = None,
    metrics: Any = None,
) -> Runtime:
    settings = settings or Settings.from_env()
    clients = clients or aws_clients()
    deps = ProviderDeps(
        settings=settings,
        credentials=Credentials(settings, fetch_secret),
        http=http,
        s3=clients["s3"],
    )
    routes = parse_routing(settings.routing, REGISTRY) if settings.routing else {}
    # ROUTING wins over PROVIDERS: it names every provider it may call. builtin always runs.
    names = ["builtin", *providers_in(routes)] if routes else list(settings.providers)
    providers = {name: provider_class(name).create(deps) for name in dict.fromkeys(names)}
    metric = None
    if metrics is not None:

        def metric(name: str, value: float, unit: str) -> None:
            metrics.add_metric(name=name, unit=unit, value=value)

    orchestrator = Orchestrator(
        providers,
        settings,
        routes=routes,
        cache=ContentCache(
            settings.cache_table,
            clients["dynamodb"],
            settings.cache_ttl_seconds,
            keep_raw=settings.raw_answers != "none",
        )
        if settings.cache_table
        else None,
        usage=DailyUsage(settings.usage_table, clients["dynamodb"]) if settings.usage_table else None,
        logger=logger,
        metric=metric,
    )
    review = ReviewConfig.from_env(settings.env)
    thresholds = Thresholds.from_settings(settings, providers.values())
    pipeline = Pipeline(
        reader=ObjectReader(clients["s3"], settings.max_object_bytes),
        store=ResultStore(
            settings.results_table,
            clients["dynamodb"],
            settings.result_ttl_days,
            # Raw vendor answers too big for the item: objects under raw/ in the artifacts bucket.
            raw_archive=RawArchive(settings.artifacts_bucket, clients["s3"], metric)
            if settings.artifacts_bucket
            else None,
        ),
        publisher=AlertPublisher(settings.alerts_topic_arn, clients["sns"]),
        orchestrator=orchestrator,
        on_delete=settings.on_delete,
        quarantine_tags=settings.quarantine_tags,
        thresholds=thresholds,
        max_pixels=settings.max_pixels,
        frame_limits=FrameLimits(settings.frame_samples, settings.frame_scan_limit),
        raw_budget_bytes=settings.raw_item_budget_bytes,
        keep=Keep(settings.labels_max, settings.labels_min_confidence, settings.raw_answers),
        ledger=AlertLedger(settings.alert_ledger_table, clients["dynamodb"]) if settings.alert_ledger_table else None,
        logger=logger,
        metrics=metrics,
        review=review_intake(review, settings, clients["dynamodb"], logger, thresholds, s3=clients["s3"]),
        delivery_gate=review.delivery_gate,
        banks=bank_screening(settings, clients, logger, metric),
    )
    return Runtime(settings=settings, pipeline=pipeline)


def review_intake(
    config: ReviewConfig,
    settings: Settings,
    dynamodb: Any,
    logger: Any,
    thresholds: Thresholds | None = None,
    s3: Any = None,
) -> Any:
    """REVIEW_MODE=off: None, and the pipeline makes no request for review (it still keeps a decision
    on a result written again for the same bytes, from the item it has read anyway). An opened review's
    thumbnails go to the artifacts bucket, when there is one."""
    if not config.queues:
        return None
    from image_analysis.review.intake import ReviewIntake
    from image_analysis.review.queue import ReviewQueue
    from image_analysis.review.table import Table
    from image_analysis.review.thumbnails import Thumbnails

    results = Table(settings.results_table, dynamodb)
    return ReviewIntake(
        mode=config.mode,
        margin=config.margin,
        thresholds=thresholds or Thresholds.from_settings(settings),
        queue=ReviewQueue(config.queue_table, dynamodb),
        read_item=lambda pk, sk: results.get({"pk": pk, "sk": sk}),
        thumbnails=Thumbnails(settings.artifacts_bucket, s3, logger) if settings.artifacts_bucket and s3 else None,
        logger=logger,
    )


def bank_screening(settings: Settings, clients: dict[str, Any], logger: Any, metric: Any) -> BankScreening:
    """The hash banks as this container sees them (none without BANKS_TABLE)."""
    if not settings.banks_table:
        return BankScreening()
    store = BankStore(settings.banks_table, clients["dynamodb"], clients["s3"], settings.banks_bucket)
    # Snapshots too big for the heap are mapped from local disk (/tmp, the function's ephemeral storage).
    matcher = BankMatcher(
        store, poll_seconds=settings.bank_poll_seconds, map_dir=Path("/tmp/banks"), logger=logger, metric=metric
    )
    return BankScreening(matcher, settings.skip_vendors_on_match, logger)
