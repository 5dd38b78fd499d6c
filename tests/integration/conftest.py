"""One embedded emulator and one stack (created from template.yaml) for the integration tests."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from local.driver import QueueDriver, configure_function_env, load_handler
from local.emulator import local_aws
from local.review_stack import LocalReview, attach_review, configure_review_env, load_review_handler
from local.stack import LocalStack, deploy, read_alerts

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with local_aws():
        created = deploy(parameters={"Architecture": "x86_64"})
        configure_function_env(created.function_env)
        yield created


@pytest.fixture(scope="session")
def review(stack) -> LocalReview:
    """The review function's side of the stack: its trigger off, the effects queue on the decisions topic."""
    attached = attach_review(stack.outputs, stack.name)
    configure_review_env(attached)
    return attached


@pytest.fixture
def review_handler(review):
    """A freshly imported review function (its runtime reads the environment on first use)."""
    return load_review_handler()


@pytest.fixture
def handler(stack):
    """A freshly imported handler (its per-container runtime reads the environment on first use)."""
    return load_handler()


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def s3(stack):
    return boto3.client("s3")


@pytest.fixture
def table(stack):
    return boto3.resource("dynamodb").Table(stack.table)


@pytest.fixture
def drain(stack, handler):
    def run(**kwargs):
        return QueueDriver(handler, stack.queue_url, **kwargs).drain()

    return run


@pytest.fixture
def alerts(stack):
    read_alerts(stack.observer_queue_url)  # start each test with an empty observer queue

    def read():
        return read_alerts(stack.observer_queue_url)

    return read


def ai_png() -> bytes:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle on a hill\nSteps: 30, Sampler: DPM++ 2M, CFG scale: 7, Seed: 1234")
    out = io.BytesIO()
    Image.new("RGB", (200, 150), (30, 90, 200)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()
