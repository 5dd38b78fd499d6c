"""A model of the whole guarantee: the real handler driven through generated interleavings, checked after
every step.

The world (``world``): two buckets (one versioned) and two keys each; uploads of clean, flagged
(``nsfw``, ``ai_generated`` or both) or unreadable bytes, with 0, 1, 9 or 10 tags of the user's own;
overwrites and deletes (delete markers and permanent deletions of a version); S3's events through the
analysis queue or as direct invocations, delivered in any order, in batches, duplicated, late, and again
from the dead-letter queue after a redrive; backfill, reprocess and reconcile messages made by the
command line's own functions; faults of S3, DynamoDB, SNS and the vendor, before or after the call took
effect; invocations cut at any named call (the process dies) or paused there while others run; time
passing on the clock the alert claims expire on.

What must hold (each checked after every step unless it says "at quiescence"):
- A result never goes back: the object upload an item describes never becomes an older one, and an item
  never vanishes; a deleted object's result never comes back from a late event.
- Once the event (or a reprocess request) of the bytes an object version holds now has been acknowledged,
  its item is their result: those bytes, their status, their flags.
- At most one alert per object version (bytes) and flag set, always with the same ``alert_id``; only a
  publish whose success was never recorded (a crash or a lost answer after it) may be repeated, with the
  same id; no alert for bytes that are not flagged.
- A delivery that meets no fault, while no other invocation is running or may still hold an alert claim,
  succeeds for every record it carries (a retry after an outage finishes the job at once).
- A message goes to the dead-letter queue only with its reason on its item: ``failed`` with the error, or
  a result for the same or newer bytes.
- The user's own tags are never dropped or changed.
- At quiescence (every message delivered, nothing in the dead-letter queue): every object version's
  result is final and right, every flagged result has been announced with the ``alert_id`` on its item,
  and with quarantine tags on, a flagged object carries our tags (as many as the user's tags leave room
  for, recorded on the item) and a clean one carries none of them; with them off, none ever.
- With the delivery gate closed (every upload then goes to the versioned bucket, as the template makes the
  gated bucket versioned): ``image-analysis:verdict=clean`` is only ever on bytes analyzed clean, and
  with it open never on anything; at quiescence a version analyzed clean carries it, unless the user's
  tags take all ten slots or a failed tag write was counted (``GateTagFailed``: the gate fails closed).
"""

from __future__ import annotations

import collections
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from boto3.dynamodb.types import TypeDeserializer
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from image_analysis.events import UNSEQUENCED, padded_sequencer
from image_analysis.flag_actions import CLAIM_SLACK_SECONDS
from image_analysis.handler import RecordsFailed, handle
from image_analysis.objects import FLAGS_TAG, MAX_OBJECT_TAGS, QUARANTINE_TAG
from image_analysis_cli.enqueue import ListedObject, reprocess_request, s3_notification
from local.driver import LambdaContext
from tests.model.contents import BY_SHA256, CONTENTS, Content
from tests.model.instrument import Fault, Invocation, Stop
from tests.model.world import (
    FIRST_SEQUENCER,
    TIMEOUT_SECONDS,
    Backend,
    Config,
    Message,
    Metrics,
    ModelLogger,
    Queues,
    instrumented_clients,
    listed_time,
    model_runtime,
    s3_notification_body,
    sqs_event,
)

KEYS = ("photo.png", "albums/a b+c.png")
GATE_TAG = "image-analysis:verdict"
# Swarm testing: each example switches on a few kinds of step, so that it goes deep into their combinations
# instead of spreading thin over all of them.
FEATURES = ("deletes", "replays", "command_line", "faults", "cuts", "pauses", "time", "batches", "direct")
# Operations an outage may hit (the next call of one fails, in whichever invocation makes it).
FAULT_OPS = (
    "s3.get_object",
    "s3.head_object",
    "s3.get_object_tagging",
    "s3.put_object_tagging",
    "s3.delete_object_tagging",
    "results.get_item",
    "results.batch_get_item",
    "results.put_item",
    "results.update_item",
    "ledger.get_item",
    "ledger.put_item",
    "ledger.update_item",
    "ledger.delete_item",
    "sns.publish",
    "vendor.redscan",
)
# Calls an invocation can be cut or paused after (the names of ``instrument.Instrumented``).
STOPS = (
    "s3.get_object",  # after the read
    "results.put_item",  # after the write
    "s3.get_object_tagging",
    "s3.put_object_tagging",  # after the tag
    "ledger.put_item",  # after the claim
    "sns.publish",  # after the publish
    "ledger.update_item",  # after the publish was recorded
    "results.update_item",  # after the quarantine, the alert id or an adoption was recorded
)
# What one run of the model counted, summed over the examples (the report of ``make soak``).
STATS: collections.Counter[str] = collections.Counter()
STATS_STARTED = [time.monotonic()]
FIRST_VIOLATION: dict[str, Any] = {}


def reset_stats() -> None:
    STATS.clear()
    FIRST_VIOLATION.clear()
    STATS_STARTED[0] = time.monotonic()


def stats_summary() -> str:
    counts = ", ".join(f"{name}: {count}" for name, count in sorted(STATS.items()))
    found = ""
    if FIRST_VIOLATION:
        found = (
            f"; first broken promise after {FIRST_VIOLATION['examples']} example(s), {FIRST_VIOLATION['steps']} "
            f"step(s), {FIRST_VIOLATION['seconds']:.1f} s: {FIRST_VIOLATION['message']}"
        )
    return f"{counts}{found}"


@dataclass
class Upload:
    """One object version as written: a PUT, whatever the bucket."""

    number: int
    bucket: str
    key: str
    version_id: str | None
    content: Content
    user_tags: dict[str, str]
    time: float
    sequencer: str
    event: int = 0

    @property
    def slot(self) -> tuple[str, str]:
        return (f"{self.bucket}/{self.key}", self.version_id or "null")

    @property
    def etag(self) -> str:
        return self.content.etag

    def listed(self) -> ListedObject:
        """What a listing (or ``queries.head``) of the object says, for the command line's messages."""
        return ListedObject(
            self.bucket,
            self.key,
            len(self.content.body),
            self.etag,
            version_id=self.version_id,
            last_modified=listed_time(self.time),
        )


@dataclass
class SlotEvent:
    """An event of one result slot (``pk``, ``sk``), in S3's order: a create or a permanent deletion."""

    number: int
    index: int
    kind: str
    seq: str
    upload: Upload | None = None

    @property
    def etag(self) -> str | None:
        return self.upload.etag if self.upload else None


@dataclass
class Marker:
    version_id: str


@dataclass
class Shadow:
    """What S3 holds, as the model knows it (it is S3's only writer)."""

    entries: dict[tuple[str, str], list[Upload | Marker]] = field(default_factory=dict)

    def alive(self) -> list[Upload]:
        """Every object version that exists (the current object of an unversioned key)."""
        return [e for entries in self.entries.values() for e in entries if isinstance(e, Upload)]

    def current(self, bucket: str, key: str) -> Upload | None:
        entries = self.entries.get((bucket, key), [])
        return entries[-1] if entries and isinstance(entries[-1], Upload) else None


def _int_pick(items: list[Any], pick: int) -> Any:
    return items[pick % len(items)]


class ModelViolation(AssertionError):
    """A promise of the pipeline broken by the interleaving shown above it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # When the run first met one (before shrinking): how fast the model finds a broken promise.
        FIRST_VIOLATION.setdefault("examples", STATS["examples"])
        FIRST_VIOLATION.setdefault("steps", STATS["steps"])
        FIRST_VIOLATION.setdefault("seconds", time.monotonic() - STATS_STARTED[0])
        FIRST_VIOLATION.setdefault("message", message.splitlines()[0][:200])


class PipelineModel(RuleBasedStateMachine):
    """Subclassed with a ``make_backend``: ``test_model_guarantee.py``, ``test_model_emulator.py``."""

    make_backend: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.backend: Backend = type(self).make_backend()
        self.clock = self.backend.clock
        self.board = self.backend.board
        self.board.observers.append(self._observe)
        self.queues = Queues()
        self.shadow = Shadow()
        self.slots: dict[tuple[str, str], list[SlotEvent]] = {}
        self.events: dict[int, tuple[tuple[str, str], SlotEvent | None, str, str]] = {}
        self.acked: set[int] = set()
        # Reprocess requests acknowledged, by the upload they were made for.
        self.reprocessed: set[int] = set()
        self.uploads = itertools.count(1)
        self.sequencers = itertools.count(FIRST_SEQUENCER)
        self.event_numbers = itertools.count(1)
        self.paused: list[tuple[Invocation, list[Message]]] = []
        # Until then an alert claim of an invocation that died (or lost a ledger answer) may be alive.
        self.claims_until = 0.0
        self.highest: dict[tuple[str, str], int] = {}
        self.had_item: set[tuple[str, str]] = set()
        # Alerts: ids per object version (bytes) and flag set, publishes per id, and those not recorded.
        self.alert_ids: dict[tuple[str, str, str, frozenset[str]], set[str]] = collections.defaultdict(set)
        self.publishes: collections.Counter[str] = collections.Counter()
        self.unrecorded: collections.Counter[str] = collections.Counter()
        self.violations: list[str] = []
        self.logger = ModelLogger()
        self.metrics = Metrics()
        self.config: Config | None = None
        self.features: set[str] = set()
        self.consistent = True
        self._deserializer = TypeDeserializer()
        self._cache: dict[str, dict[str, dict[str, Any]]] = {}
        self._dirty: set[str] = set()
        STATS["examples"] += 1

    # -- set-up --------------------------------------------------------------------------------------
    @initialize(
        quarantine=st.booleans(),
        on_delete=st.sampled_from(["delete", "tombstone"]),
        features=st.fixed_dictionaries({name: st.booleans() for name in FEATURES}),
        gate=st.booleans(),
    )
    def configure(self, quarantine: bool, on_delete: str, features: dict[str, bool], gate: bool) -> None:
        self.config = Config(quarantine_tags=quarantine, on_delete=on_delete, delivery_gate=gate)
        self.features = {name for name, on in features.items() if on}
        s3, dynamodb, sns = instrumented_clients(self.backend)
        self.runtime = model_runtime(self.backend, self.config, s3, dynamodb, sns, self.metrics)
        STATS[f"config quarantine={quarantine} on_delete={on_delete} gate={'closed' if gate else 'open'}"] += 1

    def _bucket(self, kind: str) -> str:
        # The gated bucket is versioned: with the gate closed every upload goes to the versioned bucket.
        if kind == "versioned" or (self.config is not None and self.config.delivery_gate):
            return self.backend.versioned_bucket
        return self.backend.plain_bucket

    def _versioned(self, bucket: str) -> bool:
        return bucket == self.backend.versioned_bucket

    # -- S3: what users do ---------------------------------------------------------------------------
    @rule(
        kind=st.sampled_from(["plain", "versioned"]),
        key=st.sampled_from(KEYS),
        content=st.sampled_from(sorted(CONTENTS)),
        user_tags=st.sampled_from([0, 1, 9, 10]),
        direct=st.booleans(),
    )
    def upload(self, kind: str, key: str, content: str, user_tags: int, direct: bool) -> None:
        self.consistent = False
        route = "direct" if direct and "direct" in self.features else "sqs"
        bucket, body = self._bucket(kind), CONTENTS[content]
        tags = {f"user{i}": f"value {i}" for i in range(user_tags)}
        self.clock.advance(0.001)  # S3's events of one key never share a millisecond here
        answer = self.backend.s3.put_object(Bucket=bucket, Key=key, Body=body.body, Tagging=urlencode(tags))
        assert answer["ETag"].strip('"') == body.etag
        upload = Upload(
            next(self.uploads), bucket, key, answer.get("VersionId"), body, tags, self.clock.time(), self._sequencer()
        )
        entries = self.shadow.entries.setdefault((bucket, key), [])
        if self._versioned(bucket):
            entries.append(upload)
        else:
            entries[:] = [upload]
        event = self._slot_event("create", upload.slot, upload.sequencer, upload)
        upload.event = event.number
        body_text = s3_notification_body(
            "ObjectCreated:Put",
            bucket,
            key,
            upload.sequencer,
            upload.time,
            etag=upload.etag,
            size=len(body.body),
            version_id=upload.version_id,
        )
        self.events[event.number] = (upload.slot, event, body_text, route)
        self.queues.send(body_text, kind=route, event=event.number)
        STATS["uploads"] += 1

    @precondition(lambda self: "deletes" in self.features and self.shadow.alive())
    @rule(pick=st.integers(0, 1000), how=st.sampled_from(["permanently", "marker"]))
    def delete(self, pick: int, how: str) -> None:
        """A permanent deletion (of a version, in the versioned bucket), or a delete marker."""
        self.consistent = False
        upload: Upload = _int_pick(self.shadow.alive(), pick)
        bucket, key = upload.bucket, upload.key
        entries = self.shadow.entries[(bucket, key)]
        self.clock.advance(0.001)
        sequencer = self._sequencer()
        if not self._versioned(bucket):
            self.backend.s3.delete_object(Bucket=bucket, Key=key)
            entries.clear()
            name, version_id = "ObjectRemoved:Delete", None
        elif how == "marker":
            answer = self.backend.s3.delete_object(Bucket=bucket, Key=key)
            entries.append(Marker(answer["VersionId"]))
            name, version_id = "ObjectRemoved:DeleteMarkerCreated", answer["VersionId"]
        else:
            self.backend.s3.delete_object(Bucket=bucket, Key=key, VersionId=upload.version_id)
            entries.remove(upload)
            name, version_id = "ObjectRemoved:Delete", upload.version_id
        body = s3_notification_body(name, bucket, key, sequencer, self.clock.time(), version_id=version_id)
        if name == "ObjectRemoved:Delete":
            event = self._slot_event("delete", upload.slot, sequencer)
            self.events[event.number] = (upload.slot, event, body, "sqs")
            self.queues.send(body, event=event.number)
        else:
            number = next(self.event_numbers)
            self.events[number] = (upload.slot, None, body, "sqs")
            self.queues.send(body, event=number)
        STATS[f"deletes {how if self._versioned(bucket) else 'unversioned'}"] += 1

    def _sequencer(self) -> str:
        return f"{next(self.sequencers):018X}"

    def _slot_event(self, kind: str, slot: tuple[str, str], sequencer: str, upload: Upload | None = None) -> SlotEvent:
        history = self.slots.setdefault(slot, [])
        event = SlotEvent(next(self.event_numbers), len(history), kind, padded_sequencer(sequencer), upload)
        history.append(event)
        return event

    # -- S3's events, again --------------------------------------------------------------------------
    @precondition(lambda self: "replays" in self.features and self.events)
    @rule(pick=st.integers(0, 1000))
    def replay(self, pick: int) -> None:
        """S3 sends an event again (it delivers at least once), possibly long after the first."""
        self.consistent = False
        number = _int_pick(sorted(self.events), pick)
        _, _, body, route = self.events[number]
        self.queues.send(body, kind=route, event=number)
        STATS["replays"] += 1

    # -- the command line ----------------------------------------------------------------------------
    @precondition(lambda self: "command_line" in self.features and self.shadow.alive())
    @rule(command=st.sampled_from(["backfill", "reprocess", "reconcile"]), pick=st.integers(0, 1000))
    def command_line(self, command: str, pick: int) -> None:
        """``image-analysis backfill`` or ``reprocess --key`` of one object as it lists it now, or
        ``reconcile --enqueue`` of its bucket."""
        self.consistent = False
        upload = _int_pick(self.shadow.alive(), pick)
        if command == "reconcile":
            self._reconcile(upload.bucket)
            return
        reprocess = command == "reprocess"
        request = reprocess_request("model: analyze again") if reprocess else None
        body = s3_notification(upload.listed(), request)
        self.queues.send(body, queue="backfill", listed=upload, reprocess=reprocess)
        STATS["reprocess requests" if reprocess else "backfill messages"] += 1

    def _reconcile(self, bucket: str) -> None:
        """The objects without a result, and those whose result is for other bytes, to the backfill queue:
        the same choices as ``image-analysis reconcile --enqueue``."""
        objects = {(u.key, u.version_id or "null"): u for u in self.shadow.alive() if u.bucket == bucket}
        rows = {
            (item["key"], sk): item
            for key in KEYS
            for sk, item in self._items(f"{bucket}/{key}").items()
            if "key" in item
        }
        results = {ref: row for ref, row in rows.items() if not row.get("deleted_at")}
        current = {ref for ref, u in objects.items() if self.shadow.current(bucket, u.key) is u}
        missing = sorted(ref for ref in current if ref not in results)
        stale = sorted(
            ref
            for ref, row in results.items()
            if ref in objects and row.get("etag") and row["etag"] != objects[ref].etag
        )
        for ref in missing:
            if ref not in rows:
                self.queues.send(s3_notification(objects[ref].listed()), queue="backfill", listed=objects[ref])
        for ref in [*missing, *stale]:
            if ref in rows:
                request = reprocess_request("reconcile: the result was missing or for older bytes")
                body = s3_notification(objects[ref].listed(), request)
                self.queues.send(body, queue="backfill", listed=objects[ref], reprocess=True)
        STATS["reconciles"] += 1

    # -- faults and time -----------------------------------------------------------------------------
    @precondition(lambda self: "faults" in self.features)
    @rule(op=st.sampled_from(FAULT_OPS), skip=st.integers(0, 1), applied=st.booleans())
    def outage(self, op: str, skip: int, applied: bool) -> None:
        """The (skip+1)-th next call of ``op``, in whichever invocation makes it, fails; ``applied``: after
        taking effect (its answer was lost)."""
        self.consistent = False
        self.board.arm(Fault(op, skip, applied))
        STATS["outages"] += 1

    @precondition(lambda self: "faults" in self.features and self.queues.pending)
    @rule(
        pick=st.integers(0, 1000),
        companions=st.integers(0, 1),
        calls=st.lists(st.integers(1, 10), min_size=1, max_size=2, unique=True),
        applied=st.booleans(),
    )
    def deliver_with_faults(self, pick: int, companions: int, calls: list[int], applied: bool) -> None:
        """A delivery whose ``calls`` fail, by position (counted from 1, whatever they are: S3, DynamoDB,
        SNS, the vendor); ``applied``: they fail after taking effect (their answer was lost)."""
        self.consistent = False
        STATS["deliveries with faults"] += 1
        self._deliver(self._batch(pick, companions), None, fail_at=dict.fromkeys(calls, applied))

    @precondition(lambda self: "time" in self.features)
    @rule(seconds=st.sampled_from([0.5, 2.0, 30.0, 61.0, 130.0, 900.0]))
    def advance(self, seconds: float) -> None:
        self.consistent = False
        # Lambda ends an invocation at its timeout: a paused one past it is gone (its claim may live on).
        for invocation, messages in list(self.paused):
            if invocation.started_at + TIMEOUT_SECONDS <= self.clock.time() + seconds:
                self._kill(invocation, messages)
        self.clock.advance(seconds)

    # -- deliveries ----------------------------------------------------------------------------------
    @precondition(lambda self: self.queues.pending)
    @rule(pick=st.integers(0, 1000))
    def deliver(self, pick: int) -> None:
        self.consistent = False
        self._deliver(self._batch(pick, 0), None)

    @precondition(lambda self: "batches" in self.features and self.queues.pending)
    @rule(pick=st.integers(0, 1000), companions=st.integers(1, 2))
    def deliver_batch(self, pick: int, companions: int) -> None:
        """A batch of the message and up to ``companions`` more of its queue (copies of one event included)."""
        self.consistent = False
        self._deliver(self._batch(pick, companions), None)

    @precondition(lambda self: "cuts" in self.features and self.queues.pending)
    @rule(pick=st.integers(0, 1000), op=st.sampled_from(STOPS), nth=st.integers(1, 2))
    def deliver_and_die(self, pick: int, op: str, nth: int) -> None:
        """The invocation's process dies right after the ``nth`` call of ``op`` (if it gets there)."""
        self.consistent = False
        self._deliver(self._batch(pick, 0), Stop(op, nth, "cut"))

    @precondition(lambda self: "pauses" in self.features and self.queues.pending and len(self.paused) < 2)
    @rule(pick=st.integers(0, 1000), op=st.sampled_from(STOPS))
    def deliver_and_pause(self, pick: int, op: str) -> None:
        """The invocation stops after ``op`` while others run, until it is resumed or dies."""
        self.consistent = False
        self._deliver(self._batch(pick, 0), Stop(op, 1, "pause"))

    @precondition(lambda self: self.paused)
    @rule(pick=st.integers(0, 1), die=st.booleans())
    def resume(self, pick: int, die: bool) -> None:
        self.consistent = False
        invocation, messages = _int_pick(self.paused, pick)
        if die:
            self._kill(invocation, messages)
            return
        self.paused.remove((invocation, messages))
        invocation.resume()
        self._settled(invocation, messages)

    @precondition(lambda self: self.queues.dead)
    @rule()
    def redrive(self) -> None:
        self.consistent = False
        STATS["redriven messages"] += len(self.queues.redrive())

    @precondition(lambda self: self.queues.pending or self.queues.dead or self.paused)
    @rule()
    def settle(self) -> None:
        """Faults over, every invocation finished or dead, claims expired, and every message delivered
        (dead letters redriven) until nothing is left: then the promises made at quiescence are checked."""
        self.consistent = False
        self._settle()

    def _batch(self, pick: int, companions: int) -> list[Message]:
        first = _int_pick(self.queues.pending, pick)
        if first.kind == "direct":
            return [first]
        others = [m for m in self.queues.pending if m is not first and m.queue == first.queue and m.kind == "sqs"]
        return [first, *others[:companions]]

    def _deliver(self, messages: list[Message], stop: Stop | None, fail_at: dict[int, bool] | None = None) -> None:
        self.queues.take(messages)
        direct = messages[0].kind == "direct"
        event = json.loads(messages[0].body) if direct else sqs_event(messages)
        runtime, logger = self.runtime, self.logger
        invocation = Invocation(
            self.board,
            lambda: handle(event, LambdaContext(timeout_seconds=TIMEOUT_SECONDS), runtime, logger),
            stop,
            label=",".join(m.message_id for m in messages),
            fail_at=fail_at or {},
        )
        # Whether nothing else can stand in this delivery's way: no fault, no other invocation alive,
        # no claim a dead invocation may still hold.
        invocation.unhindered = stop is None and not self.paused and self.clock.time() > self.claims_until
        invocation.started_at = self.clock.time()
        invocation.logged_from = len(self.logger.exceptions)
        invocation.start()
        STATS["deliveries"] += 1
        STATS["records delivered"] += len(messages)
        if invocation.paused_at is not None:
            self.paused.append((invocation, messages))
            STATS["invocations paused"] += 1
            return
        self._settled(invocation, messages)

    def _kill(self, invocation: Invocation, messages: list[Message]) -> None:
        self.paused.remove((invocation, messages))
        invocation.kill()
        self._settled(invocation, messages)

    def _settled(self, invocation: Invocation, messages: list[Message]) -> None:
        """A finished invocation: the trigger deletes what succeeded, the rest comes back (or goes to the
        dead-letter queue once its deliveries are used up)."""
        kind, value = invocation.outcome  # type: ignore[misc]
        direct = messages[0].kind == "direct"
        if kind == "returned":
            failed = {f["itemIdentifier"] for f in value.get("batchItemFailures", [])} if not direct else set()
        elif kind == "raised" and direct and isinstance(value, RecordsFailed):
            failed = {m.message_id for m in messages}
        elif kind == "killed":
            failed = {m.message_id for m in messages}
            STATS["invocations cut"] += 1
        else:
            raise ModelViolation(f"the handler raised {type(value).__name__}: {value}") from value
        if kind == "killed" or any(f.op.startswith("ledger.") for f in invocation.faults_fired):
            # A claim it made lives until its deadline (plus the slack), whatever happened to it.
            self.claims_until = max(self.claims_until, self.clock.time() + TIMEOUT_SECONDS + CLAIM_SLACK_SECONDS + 1)
        for fault in invocation.faults_fired:
            STATS[f"fault {fault.op}{' (after taking effect)' if fault.applied else ''}"] += 1
        if failed and invocation.unhindered and not invocation.faults_fired:
            raise ModelViolation(
                f"a delivery that met no fault, with no other invocation alive, was handed back: {sorted(failed)}"
                f"{self._logged(invocation.logged_from)}"
            )
        for message in messages:
            if message.message_id not in failed:
                self.queues.acknowledge(message)
                self._acknowledged(message)
            elif self.queues.hand_back(message):
                STATS["dead letters"] += 1
                self._check_dead_letter(message)

    def _acknowledged(self, message: Message) -> None:
        if message.event is not None:
            self.acked.add(message.event)
        if message.reprocess and message.listed is not None:
            self.reprocessed.add(message.listed.number)

    def _logged(self, start: int = -3) -> str:
        """What the handler logged as exceptions (by default the last three) to show with a violation."""
        logged = self.logger.exceptions[start:]
        return ("\nlogged:\n" + "\n".join(logged)) if logged else ""

    # -- quiescence ----------------------------------------------------------------------------------
    def _settle(self) -> None:
        self.board.disarm()
        for invocation, messages in list(self.paused):
            self._kill(invocation, messages)
        self.clock.advance(TIMEOUT_SECONDS + CLAIM_SLACK_SECONDS + 2)
        for _ in range(12):
            while self.queues.pending:
                self._deliver(self._batch(0, 2), None)
            if not self.queues.dead:
                break
            self.queues.redrive()
        else:
            raise ModelViolation("the queues never emptied: messages keep failing with no fault left")
        STATS["settles"] += 1
        self._check_items()
        self._check_quiescent()

    def teardown(self) -> None:
        try:
            if self.consistent and self.config is not None:
                self._settle()
                self._check_alerts()
        finally:
            for invocation, _ in self.paused:
                invocation.kill()
            self.paused.clear()

    # -- invariants ----------------------------------------------------------------------------------
    @invariant()
    def check_step(self) -> None:
        if self.config is None:
            return
        STATS["steps"] += 1
        self._check_alerts()
        self._check_items()
        self._check_user_tags()
        self.check_delivery_gate()
        self.consistent = True

    def _observe(self, op: str, kwargs: dict[str, Any], result: Any) -> None:
        """Every call the pipeline makes, as it is made (in the invocation's thread: never raises)."""
        if op.startswith("results.") and op.endswith(("put_item", "update_item", "delete_item")):
            self._dirty.add(((kwargs.get("Item") or kwargs.get("Key") or {}).get("pk") or {}).get("S", ""))
        elif op == "sns.publish":
            alert = json.loads(kwargs["Message"])
            alert_id = alert["alert_id"]
            content = BY_SHA256.get(alert.get("sha256", ""))
            if content is None or set(alert["flags"]) != content.flags:
                self.violations.append(f"an alert whose flags are not those of its bytes: {alert}")
                return
            version = alert.get("version_id") or "null"
            ids = self.alert_ids[(f"{alert['bucket']}/{alert['key']}", version, content.etag, content.flags)]
            ids.add(alert_id)
            if len(ids) > 1:
                self.violations.append(f"two alert ids for one object version and flag set: {sorted(ids)}")
            if self.publishes[alert_id] and not self.unrecorded[alert_id]:
                self.violations.append(f"alert {alert_id} published again after it was recorded as sent")
            elif self.publishes[alert_id]:
                STATS["alerts repeated after a crash or a lost answer (same id)"] += 1
            self.publishes[alert_id] += 1
            self.unrecorded[alert_id] += 1
            STATS["alerts published"] += 1
        elif op == "ledger.update_item" and "sent" in json.dumps(kwargs.get("ExpressionAttributeValues", {})):
            self.unrecorded[kwargs["Key"]["pk"]["S"]] = 0

    def _check_alerts(self) -> None:
        if self.violations:
            raise ModelViolation("\n".join(self.violations))

    def _items(self, pk: str) -> dict[str, dict[str, Any]]:
        """The items of one key, read again only after the pipeline wrote to it (the model never does)."""
        if pk in self._dirty or pk not in self._cache:
            answer = self.backend.dynamodb.query(
                TableName=self.backend.results_table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": pk}},
                ConsistentRead=True,
            )
            items = [{k: self._deserializer.deserialize(v) for k, v in raw.items()} for raw in answer.get("Items", [])]
            self._cache[pk] = {item["sk"]: item for item in items}
            self._dirty.discard(pk)
        return self._cache[pk]

    def _all_items(self) -> dict[tuple[str, str], dict[str, Any]]:
        found = {}
        for bucket in (self.backend.plain_bucket, self.backend.versioned_bucket):
            for key in KEYS:
                pk = f"{bucket}/{key}"
                found.update({(pk, sk): item for sk, item in self._items(pk).items()})
        return found

    def _reflected(self, slot: tuple[str, str], item: dict[str, Any]) -> int:
        """Which event of the slot an item describes (its index in S3's order), from its sequence and ETag."""
        history = self.slots.get(slot, [])
        seq, etag = item.get("seq"), item.get("etag")
        if item.get("deleted_at"):
            for event in history:
                if event.kind == "delete" and event.seq == seq:
                    return event.index
            raise ModelViolation(f"a deleted object's item whose sequence is no deletion of it: {_shown(item)}")
        creates = [e for e in history if e.kind == "create" and e.etag == etag]
        if seq == UNSEQUENCED:
            # Written from a listing (backfill, reconcile): its event time is the object's LastModified.
            listed = [e for e in creates if listed_time(e.upload.time) == item.get("event_time")]  # type: ignore[union-attr]
            if listed:
                return listed[-1].index
            raise ModelViolation(f"an unsequenced item that no listed upload explains: {_shown(item)}")
        exact = [e for e in history if e.seq == seq]
        if exact and exact[0].kind == "create" and exact[0].etag == etag:
            return exact[0].index
        # Written with another event's sequence (a reprocess takes the stored item's): the upload of these
        # bytes current at or after that event, else (a stub for bytes already replaced) the one before it.
        base = exact[0].index if exact else len(history)
        later = [e for e in creates if e.index >= base]
        if later:
            return later[0].index
        earlier = [e for e in creates if e.index < base]
        if earlier:
            return earlier[-1].index
        raise ModelViolation(f"an item for bytes never uploaded under its key: {_shown(item)}")

    def _check_items(self) -> None:
        items = self._all_items()
        for slot in items:
            if slot not in self.slots:
                raise ModelViolation(f"an item for an object version never uploaded: {slot}")
        for slot, history in self.slots.items():
            item = items.get(slot)
            acked = [e for e in history if e.number in self.acked]
            newest = acked[-1] if acked else None
            if item is None:
                if slot in self.had_item and not (newest and newest.kind == "delete"):
                    raise ModelViolation(f"the result of {slot} vanished")
                continue
            self.had_item.add(slot)
            index = self._reflected(slot, item)
            if index < self.highest.get(slot, -1):
                older = history[index]
                raise ModelViolation(
                    f"the result of {slot} went back from event #{self.highest[slot]} to #{index} "
                    f"({older.kind} of {older.upload.content.name if older.upload else '-'}): {_shown(item)}"
                )
            self.highest[slot] = index
            if newest is not None and newest.kind == "delete" and not item.get("deleted_at") and index < newest.index:
                raise ModelViolation(f"a deleted object's result came back from an older event: {slot} {_shown(item)}")
            self._check_current(slot, item)

    def _check_current(self, slot: tuple[str, str], item: dict[str, Any]) -> None:
        """Once the event (or a reprocess request) of the bytes the slot holds now is acknowledged, the item
        is their result."""
        upload = next((u for u in self.shadow.alive() if u.slot == slot), None)
        if upload is None or (upload.event not in self.acked and upload.number not in self.reprocessed):
            return
        content = upload.content
        problems = []
        if item.get("deleted_at") or item.get("etag") != upload.etag:
            problems.append(f"describes other bytes (etag {item.get('etag')}, not {content.name})")
        elif item.get("status") != content.status:
            problems.append(f"status {item.get('status')}, not {content.status}")
        elif set(item.get("flags") or []) != content.flags:
            problems.append(f"flags {item.get('flags')}, not {sorted(content.flags)}")
        if problems:
            raise ModelViolation(
                f"{slot} holds {content.name} (upload #{upload.number}), whose event was acknowledged, but its "
                f"item {problems[0]}: {_shown(item)}"
            )

    def _check_user_tags(self) -> None:
        for upload in self.shadow.alive():
            tags = self._tags(upload)
            for name, value in upload.user_tags.items():
                if tags.get(name) != value:
                    raise ModelViolation(f"the user's tag {name} of upload #{upload.number} was changed: {tags}")

    def _tags(self, upload: Upload) -> dict[str, str]:
        target: dict[str, Any] = {"Bucket": upload.bucket, "Key": upload.key}
        if upload.version_id:
            target["VersionId"] = upload.version_id
        return {t["Key"]: t["Value"] for t in self.backend.s3.get_object_tagging(**target)["TagSet"]}

    def _check_dead_letter(self, message: Message) -> None:
        """A message goes to the dead-letter queue only with its reason on its item: ``failed`` with the
        error, or a result for the same or newer bytes (the message is superseded)."""
        if message.listed is not None:
            upload: Upload | None = message.listed
        else:
            _, event, _, _ = self.events[message.event]
            upload = event.upload if event is not None else None
        if upload is None:
            return  # a deletion: nothing was uploaded, nothing to account for
        event = next(e for e in self.slots[upload.slot] if e.upload is upload)
        item = self._items(upload.slot[0]).get(upload.slot[1])
        if item is not None and item.get("status") == "failed" and item.get("error"):
            return
        if item is not None and self._reflected(upload.slot, item) >= event.index:
            return
        raise ModelViolation(
            f"{message.message_id} went to the dead-letter queue without its reason on its item: "
            f"{_shown(item) if item else 'no item'}{self._logged()}"
        )

    def _check_quiescent(self) -> None:
        assert self.config is not None
        items = self._all_items()
        for upload in self.shadow.alive():
            item = items.get(upload.slot)
            if item is None or upload.event not in self.acked:
                raise ModelViolation(f"upload #{upload.number} {upload.slot} has no result at quiescence")
            self._check_current(upload.slot, item)
            self._check_quarantine(upload, item)
            self._check_gate_quiescent(upload)
        for slot, item in items.items():
            flags = frozenset(item.get("flags") or [])
            if not flags or item.get("deleted_at") or item.get("status") == "failed":
                continue
            content = BY_SHA256[item["sha256"]]
            published = self.alert_ids.get((slot[0], slot[1], content.etag, flags), set())
            if item.get("alert_id") not in published:
                raise ModelViolation(
                    f"the flagged result of {slot} was never announced (alert_id {item.get('alert_id')}, "
                    f"published {sorted(published)}): {_shown(item)}"
                )

    def _check_quarantine(self, upload: Upload, item: dict[str, Any]) -> None:
        assert self.config is not None
        tags = self._tags(upload)
        ours = {k: v for k, v in tags.items() if k not in upload.user_tags and k != GATE_TAG}
        flags = upload.content.flags
        if not (self.config.quarantine_tags and flags):
            if ours.get("moderation") == QUARANTINE_TAG["moderation"] or FLAGS_TAG in ours:
                raise ModelViolation(
                    f"upload #{upload.number} ({upload.content.name}) carries quarantine tags it should not: {tags}"
                )
            return
        room = MAX_OBJECT_TAGS - len(upload.user_tags)
        expected = ["moderation", FLAGS_TAG][: max(0, room)]
        wanted = {"moderation": QUARANTINE_TAG["moderation"], FLAGS_TAG: "+".join(sorted(flags))}
        applied = {k: "+".join(sorted(v.split("+"))) if k == FLAGS_TAG else v for k, v in ours.items()}
        if applied != {k: wanted[k] for k in expected}:
            raise ModelViolation(
                f"flagged upload #{upload.number} ({upload.content.name}, {len(upload.user_tags)} tags of the "
                f"user's) carries {ours} of ours, not {expected}: {_shown(item)}"
            )
        left_out = [k for k in ("moderation", FLAGS_TAG) if k not in expected]
        # The record on the item is best effort (a failed write of it is logged; the tags are what counts),
        # but what it says must be true.
        if "quarantine" in item and item["quarantine"] != {"applied": expected, "left_out": left_out}:
            raise ModelViolation(f"the item of upload #{upload.number} misreports its quarantine: {_shown(item)}")

    def check_delivery_gate(self) -> None:
        """DELIVERY GATE: with the gate closed, ``image-analysis:verdict=clean`` is only ever on bytes
        analyzed clean; with it open, never on anything."""
        if self.config is None:
            return
        for upload in self.shadow.alive():
            verdict = self._tags(upload).get(GATE_TAG)
            if verdict is None:
                continue
            if not self.config.delivery_gate or not upload.content.clean:
                raise ModelViolation(
                    f"upload #{upload.number} ({upload.content.name}) carries {GATE_TAG}={verdict} with the gate "
                    f"{'closed' if self.config.delivery_gate else 'open'}"
                )

    def _check_gate_quiescent(self, upload: Upload) -> None:
        """At quiescence, with the gate closed, a version analyzed clean may be served: it carries the verdict,
        unless the user's tags take all ten slots or a failed tag write was counted (GateTagFailed: the
        gate fails closed, and the operator is told)."""
        assert self.config is not None
        if not (self.config.delivery_gate and upload.content.clean):
            return
        if self._tags(upload).get(GATE_TAG) == "clean" or len(upload.user_tags) >= MAX_OBJECT_TAGS:
            return
        if self.metrics.totals.get("GateTagFailed"):
            STATS["clean versions left unreadable after a counted GateTagFailed"] += 1
            return
        raise ModelViolation(f"clean upload #{upload.number} ({upload.content.name}) never got {GATE_TAG}=clean")


def _shown(item: dict[str, Any]) -> str:
    keep = ("status", "etag", "seq", "flags", "deleted_at", "alert_id", "quarantine", "error", "reprocess")
    keep += ("event_time",)
    return json.dumps({k: item[k] for k in keep if k in item}, default=str)
