"""Review and delivery-gate configuration, read once per container from the environment the template sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

MODES = ("off", "flagged", "borderline")
REJECT_ACTIONS = ("keep", "delete")
GATES = ("open", "closed")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = env.get(name, "").strip().lower() or default
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _margin(env: Mapping[str, str]) -> float:
    raw = env.get("REVIEW_MARGIN", "").strip()
    if not raw:
        return 0.15
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"REVIEW_MARGIN must be a number, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"REVIEW_MARGIN must be between 0 and 1, got {raw!r}")
    return value


@dataclass(frozen=True)
class ReviewConfig:
    # off: nothing is queued; flagged: every flagged result; borderline: also results within ``margin``
    # under a threshold.
    mode: str = "off"
    margin: float = 0.15
    queue_table: str = ""
    audit_table: str = ""
    decisions_topic_arn: str = ""
    # What a rejection does to the object version: keep it (quarantined), or delete it.
    reject_action: str = "keep"
    # closed: only object versions tagged image-analysis:verdict=clean may be read (the bucket policy).
    delivery_gate: bool = False
    quarantine_tags: bool = False
    results_table: str = ""

    @property
    def queues(self) -> bool:
        return self.mode != "off"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReviewConfig:
        env = os.environ if env is None else env
        mode = _choice(env, "REVIEW_MODE", MODES, "off")
        config = cls(
            mode=mode,
            margin=_margin(env),
            queue_table=env.get("REVIEW_QUEUE_TABLE", "").strip(),
            audit_table=env.get("AUDIT_TABLE", "").strip(),
            decisions_topic_arn=env.get("DECISIONS_TOPIC_ARN", "").strip(),
            reject_action=_choice(env, "REJECT_ACTION", REJECT_ACTIONS, "keep"),
            delivery_gate=_choice(env, "DELIVERY_GATE", GATES, "open") == "closed",
            quarantine_tags=env.get("QUARANTINE_TAGS", "").lower() in ("1", "true", "yes"),
            results_table=env.get("RESULTS_TABLE", "").strip(),
        )
        if config.queues and not config.queue_table:
            raise ValueError(f"REVIEW_MODE={mode} needs REVIEW_QUEUE_TABLE (the review queue table)")
        return config
