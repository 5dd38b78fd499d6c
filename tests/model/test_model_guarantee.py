"""The model of the whole guarantee (``machine``) over in-memory S3 and SNS and moto's DynamoDB in this process:
fast enough for every CI run (``make test-slow``). ``tests/integration/test_model_emulator.py`` runs the same
machine against the template deployed in the emulator."""

from __future__ import annotations

import time

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.fakes import memory_dynamodb
from tests.model.machine import PipelineModel, reset_stats, stats_summary
from tests.model.profiles import model_settings, profile_name
from tests.model.world import MemoryBackend, shared_orchestrator


@pytest.fixture
def memory_backend(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    dynamodb = memory_dynamodb()
    holder: dict = {}
    orchestrator = shared_orchestrator(holder)
    return lambda: MemoryBackend(dynamodb, orchestrator, holder["scanner"])


# About two minutes on a shared two-core machine: `make test-slow` (and `make soak`, MODEL_PROFILE=soak).
@pytest.mark.slow
def test_every_promise_holds_under_generated_interleavings(memory_backend):
    class InMemory(PipelineModel):
        make_backend = staticmethod(memory_backend)

    reset_stats()
    started = time.monotonic()
    try:
        run_state_machine_as_test(InMemory, settings=model_settings("memory"))
    finally:
        seconds = time.monotonic() - started
        print(f"\nmodel ({profile_name()} profile, in memory) in {seconds:.1f} s: {stats_summary()}")
