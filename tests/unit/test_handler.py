"""The handler's batch behaviour with a stand-in pipeline: concurrency bounds, time budget, failures."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

import pytest

from image_analysis.handler import ByteBudget, RecordsFailed, handle
from image_analysis.pipeline import Outcome
from image_analysis.settings import Settings


class Logger:
    def __init__(self):
        self.lines = []

    def _log(self, message, *args, **kwargs):
        self.lines.append((message, kwargs.get("extra", {})))

    info = warning = error = exception = _log

    def thread_safe_append_keys(self, **keys):
        pass

    def thread_safe_clear_keys(self):
        pass


class Pipeline:
    """Records how many objects run at once and how many bytes they hold together."""

    def __init__(self, seconds=0.05, fail_keys=(), crash_keys=()):
        self.seconds = seconds
        self.fail_keys = set(fail_keys)
        self.crash_keys = set(crash_keys)
        self.lock = threading.Lock()
        self.running = 0
        self.bytes = 0
        self.max_running = 0
        self.max_bytes = 0

    def read_results(self, refs):
        return {}

    def shared_answers(self, records):
        from concurrent.futures import ThreadPoolExecutor

        from image_analysis.orchestration import SharedAnswers

        return SharedAnswers(records, lambda answers: 0, ThreadPoolExecutor(1))

    def process(self, ref, deadline, attempts=1, memory=None, **shared):
        if ref.key in self.crash_keys:
            raise RuntimeError("DynamoDB throttled")
        turn = shared.get("cache_writes")
        if turn is not None:
            turn.end_turn()  # its vendor request has left: what follows is waiting
        with self.lock:
            self.running += 1
            self.bytes += ref.size
            self.max_running = max(self.max_running, self.running)
            self.max_bytes = max(self.max_bytes, self.bytes)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
            self.bytes -= ref.size
        if ref.key in self.fail_keys:
            return Outcome("retry", "failed", "vendor down")
        return Outcome("done", "succeeded")


@dataclass
class Runtime:
    settings: Settings
    pipeline: Pipeline


class Context:
    def __init__(self, seconds):
        self.seconds = seconds

    def get_remaining_time_in_millis(self):
        return int(self.seconds * 1000)


def sqs_batch(keys, size=1000):
    def body(key):
        record = {
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": key, "size": size, "eTag": "e", "sequencer": "01"}},
        }
        return json.dumps({"Records": [record]})

    return {
        "Records": [
            {"messageId": f"m-{key}", "eventSource": "aws:sqs", "body": body(key), "attributes": {}} for key in keys
        ]
    }


def settings(**overrides):
    env = {"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", **overrides}
    return Settings.from_env(env)


def test_objects_of_a_batch_run_concurrently_up_to_the_configured_count():
    pipeline = Pipeline()
    runtime = Runtime(settings(RECORD_CONCURRENCY="4"), pipeline)
    response = handle(sqs_batch([f"k{i}" for i in range(10)]), Context(60), runtime, Logger())
    assert response == {"batchItemFailures": []}
    assert pipeline.max_running == 4


def test_the_byte_budget_keeps_large_objects_apart():
    pipeline = Pipeline()
    runtime = Runtime(settings(RECORD_CONCURRENCY="10", BATCH_MEMORY_BUDGET_BYTES="1000"), pipeline)
    handle(sqs_batch([f"k{i}" for i in range(6)], size=600), Context(60), runtime, Logger())
    assert pipeline.max_bytes <= 1000
    assert pipeline.max_running == 1


def test_exactly_the_failed_and_crashed_messages_are_handed_back():
    pipeline = Pipeline(fail_keys={"k2"}, crash_keys={"k5"})
    runtime = Runtime(settings(), pipeline)
    response = handle(sqs_batch([f"k{i}" for i in range(8)]), Context(60), runtime, Logger())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-k2"}, {"itemIdentifier": "m-k5"}]}


def test_with_too_little_time_left_nothing_starts_and_everything_is_handed_back():
    pipeline = Pipeline()
    runtime = Runtime(settings(), pipeline)
    response = handle(sqs_batch(["a", "b"]), Context(5), runtime, Logger())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-a"}, {"itemIdentifier": "m-b"}]}
    assert pipeline.max_running == 0


def test_a_direct_invocation_raises_when_an_object_must_be_retried():
    runtime = Runtime(settings(), Pipeline(fail_keys={"x"}))
    direct = json.loads(sqs_batch(["x"])["Records"][0]["body"])
    with pytest.raises(RecordsFailed, match="must be retried"):
        handle(direct, Context(60), runtime, Logger())


def test_byte_budget_lets_an_oversized_object_run_alone():
    budget = ByteBudget(100)
    held = budget.acquire(10_000)
    assert held == 100
    budget.release(held)
    assert budget.acquire(50) == 50


def test_malformed_records_are_acknowledged_and_logged_while_their_batch_mates_run():
    pipeline = Pipeline()
    runtime = Runtime(settings(), pipeline)
    event = sqs_batch(["good-1", "bad-key", "bad-s3", "bad-bucket", "bad-size", "good-2"])
    bodies = {r["messageId"]: json.loads(r["body"]) for r in event["Records"]}
    bodies["m-bad-key"]["Records"][0]["s3"]["object"]["key"] = 5
    bodies["m-bad-s3"]["Records"][0]["s3"] = "x"
    bodies["m-bad-bucket"]["Records"][0]["s3"]["bucket"] = "b"
    bodies["m-bad-size"]["Records"][0]["s3"]["object"]["size"] = "big"
    for record in event["Records"]:
        record["body"] = json.dumps(bodies[record["messageId"]])
    processed = []
    original = pipeline.process

    def process(ref, deadline, **kwargs):
        processed.append(ref.key)
        return original(ref, deadline, **kwargs)

    pipeline.process = process
    logger = Logger()
    response = handle(event, Context(60), runtime, logger)
    assert response == {"batchItemFailures": []}  # retrying cannot fix them: acknowledged
    assert sorted(processed) == ["good-1", "good-2"]
    logged = [extra["message_id"] for message, extra in logger.lines if message == "malformed record acknowledged"]
    assert sorted(logged) == ["m-bad-bucket", "m-bad-key", "m-bad-s3", "m-bad-size"]


class RecordingPipeline(Pipeline):
    """Also records what the handler asks it to write as ``failed``."""

    def __init__(self, broken_store=False, **kwargs):
        super().__init__(**kwargs)
        self.failures = []
        self.broken_store = broken_store

    def record_failure(self, ref, error, receive_count=1):
        if self.broken_store:
            raise RuntimeError("DynamoDB unreachable")
        self.failures.append((ref.key, error.code, error.message, receive_count))
        return True


def test_records_handed_back_for_lack_of_time_say_so_on_their_item():
    pipeline = RecordingPipeline()
    event = sqs_batch(["a", "b"])
    event["Records"][1]["attributes"]["ApproximateReceiveCount"] = "3"
    response = handle(event, Context(5), Runtime(settings(), pipeline), Logger())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-a"}, {"itemIdentifier": "m-b"}]}
    # The records run concurrently: their failures are recorded in either order.
    assert sorted((key, code, count) for key, code, _, count in pipeline.failures) == [
        ("a", "timeout", 1),
        ("b", "timeout", 3),
    ]
    assert all("ran out of time" in failure[2] for failure in pipeline.failures)


def test_an_unexpected_exception_is_recorded_as_failed_with_its_reason():
    pipeline = RecordingPipeline(crash_keys={"k1"})
    response = handle(sqs_batch(["k0", "k1"]), Context(60), Runtime(settings(), pipeline), Logger())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-k1"}]}
    ((key, code, message, _),) = pipeline.failures
    assert (key, code) == ("k1", "server_error")
    assert "RuntimeError: DynamoDB throttled" in message


def test_recording_the_failure_never_raises_out_of_the_handler():
    pipeline = RecordingPipeline(broken_store=True, crash_keys={"k0"})
    response = handle(sqs_batch(["k0", "k1"]), Context(60), Runtime(settings(), pipeline), Logger())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-k0"}]}


def test_a_record_that_fails_before_asking_its_vendors_gives_its_turn_back():
    """Two records prepare at once; the others wait for a turn. A record that crashes before its vendor
    request leaves ends its turn only in the handler's ``finally``: without it, the rest of the batch
    would wait out the whole invocation for a turn that never comes back."""
    from concurrent.futures import ThreadPoolExecutor

    from image_analysis.orchestration import RecordAnswers, SharedAnswers

    had: list[bool] = []

    class Turns(SharedAnswers):
        def for_record(self):
            record = RecordAnswers(self)
            take = record.take_turn
            record.take_turn = lambda timeout: had.append(take(timeout)) or had[-1]  # type: ignore[method-assign]
            return record

    class CrashingPipeline(Pipeline):
        def shared_answers(self, records):
            return Turns(records, lambda answers: 0, ThreadPoolExecutor(1))

    pipeline = CrashingPipeline(seconds=0.0, crash_keys={"k0", "k1"})
    # 13 s left: a turn is waited for at most 3 s (the handler keeps 10 s in hand).
    response = handle(sqs_batch(["k0", "k1", "k2", "k3"]), Context(13), Runtime(settings(), pipeline), Logger())
    assert response == {"batchItemFailures": [{"itemIdentifier": "m-k0"}, {"itemIdentifier": "m-k1"}]}
    assert had == [True, True, True, True]  # every record got its turn, none went ahead on a timeout
