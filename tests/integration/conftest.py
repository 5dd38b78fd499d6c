"""One embedded emulator and one stack (created from template.yaml) for the integration tests.

Every AWS call the function's code makes in these tests is checked against the function's role in
the translated template (``local.permissions``): a call the role does not allow fails as AWS would
fail it, and the test that made it fails naming the action and the resource.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from local.driver import QueueDriver, configure_function_env, load_handler
from local.emulator import local_aws
from local.permissions import PermissionGuard
from local.review_stack import LocalReview, attach_review, configure_review_env, load_review_handler
from local.stack import LocalStack, deploy, read_alerts

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

# Installed before any client exists: botocore hands its handlers to every session created later.
# Some tests analyze objects in buckets they create beside the stack (the command line's tests); the
# role is then the one the template gives a stack whose uploads (or artifacts) bucket that is.
PERMISSIONS = PermissionGuard(enforce=True, other_buckets_as_stacks=True)
PERMISSIONS.install()


@pytest.fixture(autouse=True)
def function_permissions() -> Iterator[PermissionGuard]:
    """Fails the test when the function made a call that its role in the template does not allow."""
    PERMISSIONS.take()
    yield PERMISSIONS
    denied = [call for call in PERMISSIONS.take() if call.denied]
    if denied:
        pytest.fail("the function's role does not allow:\n  " + "\n  ".join(c.describe() for c in denied))


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
        return QueueDriver(handler, stack.queue_urls, **kwargs).drain()

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
