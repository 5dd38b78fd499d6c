"""What a local run takes from the environment, and what it refuses before anything starts."""

from __future__ import annotations

import pytest

from local.configuration import ConfigurationError, check, stack_parameters, variable_parameters

BASE = {"PATH": "/usr/bin"}


def test_every_setting_the_template_takes_from_a_parameter_can_be_given_locally():
    mapping = variable_parameters()
    assert mapping["PROVIDERS"] == "Providers"
    assert mapping["ROUTING"] == "Routing"
    assert mapping["NSFW_THRESHOLD"] == "NsfwThreshold"
    assert mapping["MODERATION_THRESHOLDS"] == "ModerationThresholds"
    assert mapping["QUARANTINE_TAGS"] == "QuarantineTags"  # set through an !If
    assert mapping["POWERTOOLS_LOG_LEVEL"] == "LogLevel"  # from Globals
    parameters = stack_parameters({"ROUTING": "labels=imagga", "NSFW_THRESHOLD": "0.6", "PROVIDERS": ""})
    assert parameters["Routing"] == "labels=imagga" and parameters["NsfwThreshold"] == "0.6"
    assert "Providers" not in parameters, "an empty variable leaves the template's default"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PROVIDERS": "imaga"}, "unknown provider 'imaga'"),
        ({"ROUTING": "labels=imagga;labels=aiornot"}, "ROUTING names 'labels' twice"),
        ({"ROUTING": "faces=imagga"}, "IMAGGA_ENDPOINTS"),
        ({"NSFW_THRESHOLD": "1.5"}, "NSFW_THRESHOLD='1.5' (template parameter NsfwThreshold)"),
        ({"MODERATION_THRESHOLDS": "explict:0.9"}, "MODERATION_THRESHOLDS names 'explict'"),
        ({"ON_DELETE": "keep"}, "ON_DELETE='keep' (template parameter OnDelete) must be one of delete, tombstone"),
        ({"PROVIDERS": "imagga"}, "imagga needs IMAGGA_API_KEY and IMAGGA_API_SECRET in the environment, or SANDBOX=1"),
        ({"PROVIDERS": "rekognition"}, "rekognition needs AWS"),
    ],
)
def test_refused_before_anything_starts(env, expected):
    with pytest.raises(ConfigurationError) as caught:
        check({**BASE, **env}, require_keys=True)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_keys_or_the_sandbox_let_a_vendor_through():
    assert check({**BASE, "PROVIDERS": "imagga", "IMAGGA_API_KEY": "k", "IMAGGA_API_SECRET": "s"}, require_keys=True)
    assert check({**BASE, "PROVIDERS": "imagga,rekognition", "SANDBOX": "1"}, require_keys=True) == [
        "builtin",
        "imagga",
        "rekognition",
    ]


def test_the_live_stack_goes_on_without_keys_but_not_without_a_rekognition():
    assert check({**BASE, "PROVIDERS": "aiornot"}, require_keys=False) == ["builtin", "aiornot"]
    with pytest.raises(ConfigurationError):
        check({**BASE, "PROVIDERS": "rekognition"}, require_keys=False)


def test_routing_names_the_providers_it_calls():
    env = {**BASE, "ROUTING": "labels=imagga,imagerecognize;ai_generated=builtin,aiornot", "SANDBOX": "1"}
    assert check(env, require_keys=True) == ["builtin", "imagga", "imagerecognize", "aiornot"]
