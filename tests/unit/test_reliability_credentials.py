"""A Secrets Manager that is throttled or unreachable is a passing fault (the record is retried); a secret
or entry that does not exist is an auth error; the client has explicit timeouts."""

from __future__ import annotations

import socket

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from image_analysis.credentials import Credentials, powertools_fetcher, secrets_client
from image_analysis.errors import AuthError, RateLimitedError, ServerError
from image_analysis.settings import Settings

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:provider-keys-AbCdEf"


def settings() -> Settings:
    return Settings.from_env({"RESULTS_TABLE": "t", "ALERTS_TOPIC_ARN": "a", "PROVIDER_SECRET_ARN": ARN})


def client():
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "max_attempts": 1}),
    )


def stubbed(error_code: str, status: int) -> Credentials:
    secrets = client()
    stubber = Stubber(secrets)
    stubber.add_client_error("get_secret_value", service_error_code=error_code, http_status_code=status)
    stubber.activate()
    return Credentials(settings(), powertools_fetcher(secrets))


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ThrottlingException", 400, RateLimitedError),
        ("InternalServiceError", 500, ServerError),
        ("ServiceUnavailable", 503, ServerError),
    ],
)
def test_a_throttled_or_failing_secrets_manager_is_a_retryable_fault(code, status, error):
    with pytest.raises(error) as raised:
        stubbed(code, status).for_provider("imagga", "IMAGGA_", ("api_key", "api_secret"))
    assert raised.value.retryable
    assert raised.value.provider == "imagga"


def test_an_unreachable_secrets_manager_is_a_retryable_fault():
    with socket.socket() as unused:  # a loopback port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    secrets = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=f"http://127.0.0.1:{port}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"mode": "standard", "max_attempts": 1}),
    )
    with pytest.raises(ServerError) as raised:
        Credentials(settings(), powertools_fetcher(secrets)).for_provider("aiornot", "AIORNOT_")
    assert raised.value.retryable
    assert "unreachable" in raised.value.message


@pytest.mark.parametrize(("code", "status"), [("ResourceNotFoundException", 400), ("AccessDeniedException", 400)])
def test_a_missing_or_forbidden_secret_stays_an_auth_error(code, status):
    with pytest.raises(AuthError) as raised:
        stubbed(code, status).for_provider("imagga", "IMAGGA_", ("api_key", "api_secret"))
    assert not raised.value.retryable
    assert code in raised.value.message


def test_a_missing_entry_stays_an_auth_error():
    secrets = client()
    stubber = Stubber(secrets)
    stubber.add_response("get_secret_value", {"ARN": ARN, "Name": "provider-keys", "SecretString": '{"other": {}}'})
    stubber.activate()
    with pytest.raises(AuthError, match="no api_key"):
        Credentials(settings(), powertools_fetcher(secrets)).for_provider("aiornot", "AIORNOT_")


def test_the_default_secrets_client_has_explicit_timeouts(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    config = secrets_client().meta.config
    assert (config.connect_timeout, config.read_timeout) == (2, 5)
    assert config.retries["mode"] == "standard"
