"""The settings a local run takes from the environment, and the checks that refuse a bad one up front.

The stack is created from template.yaml, whose function environment is set from template parameters
(``PROVIDERS: !Ref Providers``). So a setting exported for a local run (``make demo ROUTING=...``)
reaches the function as the parameter it comes from: ``stack_parameters`` reads that mapping from the
template itself, so every variable the template sets from a parameter can be tried locally. Variables
the template does not set (``IMAGGA_ENDPOINTS``, ``MAX_PIXELS``, vendor keys) reach the in-process
function as they are.

``check`` finds what would stop the function on its first event, or make every result partial, before
anything is started or uploaded: a value the template's parameter refuses, a setting the function
refuses (an unknown provider, a bad ``ROUTING``, a threshold out of range), a vendor without keys and
without ``SANDBOX=1`` (the demo), and Rekognition without ``SANDBOX=1`` (the local emulator has no
Rekognition).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
FUNCTION_LOGICAL_ID = "AnalyzeFunction"
# Any CPU works in the emulator: the function runs in this process.
LOCAL_PARAMETERS = {"Architecture": "x86_64"}
# Set for the local function so that a missing key's message says how to run without one.
MISSING_KEY_HINT = "IMAGE_ANALYSIS_MISSING_KEY_HINT"
SANDBOX_HINT = "or SANDBOX=1 to use the local vendor sandbox"


class ConfigurationError(ValueError):
    """A setting a local run refuses before it starts; ``str()`` is the one line to print."""


def sandbox_on(env: Mapping[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get("SANDBOX", "").strip().lower() in ("1", "true", "yes")


@cache
def _template() -> dict[str, Any]:
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())


def _parameter_of(value: Any) -> str | None:
    """``!Ref Param``, or the ``!Ref Param`` branch of an ``!If`` (QUARANTINE_TAGS)."""
    if isinstance(value, dict) and set(value) == {"Ref"} and not str(value["Ref"]).startswith("AWS::"):
        return str(value["Ref"])
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        for branch in value["Fn::If"][1:]:
            found = _parameter_of(branch)
            if found:
                return found
    return None


def variable_parameters(template: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Environment variable -> the template parameter that sets it for the function."""
    template = template or _template()
    parameters = template.get("Parameters", {})
    variables: dict[str, Any] = dict(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    function = template["Resources"][FUNCTION_LOGICAL_ID]["Properties"]
    variables.update(function.get("Environment", {}).get("Variables", {}))
    mapping = {}
    for name, value in variables.items():
        parameter = _parameter_of(value)
        if parameter in parameters:
            mapping[name] = parameter
    return mapping


def stack_parameters(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template parameters a local stack is created with: each from its variable, when that is set."""
    env = os.environ if env is None else env
    parameters = dict(LOCAL_PARAMETERS)
    for variable, parameter in variable_parameters().items():
        value = env.get(variable, "").strip()
        if value:
            parameters[parameter] = value
    return parameters


def _check_parameter(variable: str, name: str, value: str, spec: Mapping[str, Any]) -> None:
    """The checks CloudFormation makes of a parameter value, said with the variable that gave it."""
    where = f"{variable}={value!r} (template parameter {name})"
    allowed = spec.get("AllowedValues")
    if allowed and value not in [str(a) for a in allowed]:
        raise ConfigurationError(f"{where} must be one of {', '.join(str(a) for a in allowed)}")
    pattern = spec.get("AllowedPattern")
    if pattern and not re.fullmatch(pattern, value):
        description = spec.get("Description", "").strip().rstrip(".")
        raise ConfigurationError(f"{where} is refused by the template: {description or 'pattern ' + pattern}")
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise ConfigurationError(f"{where} must be a number") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise ConfigurationError(f"{where} must be between {low} and {high}".replace("None", "any"))


def _configured_providers(settings: Any) -> list[str]:
    from image_analysis.providers import REGISTRY
    from image_analysis.routing import parse_routing, providers_in

    if settings.routing:
        return list(dict.fromkeys(["builtin", *providers_in(parse_routing(settings.routing, REGISTRY))]))
    return list(settings.providers)


def check(env: Mapping[str, str] | None = None, *, require_keys: bool) -> list[str]:
    """The providers a local run will call, or ``ConfigurationError`` with the first thing wrong.

    ``require_keys``: a vendor with neither its keys in the environment nor ``SANDBOX=1`` is refused (the
    demo, whose stack's secret is empty); otherwise such a vendor's results are partial (auth), with a
    message saying which variables to set.
    """
    env = dict(os.environ if env is None else env)
    template = _template()
    mapping = variable_parameters(template)
    for variable, parameter in mapping.items():
        value = env.get(variable, "").strip()
        if value:
            _check_parameter(variable, parameter, value, template["Parameters"][parameter])
    from image_analysis.providers import provider_class
    from image_analysis.runtime import build_runtime
    from image_analysis.settings import Settings

    # The function's own start-up, without AWS: what it refuses on its first event is refused here.
    function_env = {**env, "RESULTS_TABLE": "local-check", "ALERTS_TOPIC_ARN": "arn:aws:sns:local:0:check"}
    for name in ("CACHE_TABLE", "USAGE_TABLE", "ARTIFACTS_BUCKET"):
        function_env.pop(name, None)
    try:
        settings = Settings.from_env(function_env)
        providers = _configured_providers(settings)
        build_runtime(settings, clients={"s3": None, "dynamodb": None, "sns": None}, fetch_secret=lambda arn: {})
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    sandbox = sandbox_on(env)
    if "rekognition" in providers and not sandbox:
        raise ConfigurationError(
            "rekognition needs AWS: the local emulator has no Rekognition. Run with SANDBOX=1 for the local "
            "Rekognition sandbox (saved answers in Rekognition's documented shape), or deploy the stack"
        )
    if require_keys and not sandbox:
        for name in providers:
            cls = provider_class(name)
            fields = getattr(cls, "credential_fields", ())
            if not fields:
                continue
            prefix = getattr(cls, "env_prefix", f"{name.upper()}_")
            variables = [f"{prefix}{field.upper()}" for field in fields]
            if not all(env.get(v, "").strip() for v in variables):
                raise ConfigurationError(f"{name} needs {' and '.join(variables)} in the environment, {SANDBOX_HINT}")
    return providers
