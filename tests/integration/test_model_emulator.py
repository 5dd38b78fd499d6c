"""The model of the whole guarantee (``tests/model/machine.py``) against the template deployed in the emulator:
moto's S3 and SNS over HTTP and the official DynamoDB Local, the stack's own tables and topic. The same
machine as ``tests/model/test_model_guarantee.py``, with fewer examples (``profiles.SIZES``): what the
in-memory fakes might get wrong about S3's answers or DynamoDB's conditions shows up here."""

from __future__ import annotations

import time

import pytest
from hypothesis.stateful import run_state_machine_as_test

from tests.model.machine import PipelineModel, reset_stats, stats_summary
from tests.model.profiles import model_settings, profile_name
from tests.model.world import EmulatorBackend, shared_orchestrator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_promise_holds_under_generated_interleavings_in_the_emulator(stack):
    holder: dict = {}
    orchestrator = shared_orchestrator(holder)

    class OnTheEmulator(PipelineModel):
        make_backend = staticmethod(lambda: EmulatorBackend(stack, orchestrator, holder["scanner"]))

    reset_stats()
    started = time.monotonic()
    try:
        run_state_machine_as_test(OnTheEmulator, settings=model_settings("emulator"))
    finally:
        seconds = time.monotonic() - started
        print(f"\nmodel ({profile_name()} profile, emulator) in {seconds:.1f} s: {stats_summary()}")
