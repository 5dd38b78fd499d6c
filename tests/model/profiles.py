"""Hypothesis settings of the model's runs, chosen by ``MODEL_PROFILE`` (``ci`` unless it says ``soak``).

CI runs a bounded, derandomized number of examples (the same ones every run, so a red build is
reproducible as it is); ``make soak`` runs many more, each run new ones (a failure prints the blob
that replays it: ``@reproduce_failure``). ``MODEL_SHRINK=0`` stops at the first broken promise without
minimizing it (to time how fast the model finds one).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

_COMMON = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
# (examples, steps per example) per backend and profile.
SIZES = {
    ("memory", "ci"): (300, 50),
    ("memory", "soak"): (1500, 60),
    ("emulator", "ci"): (20, 30),
    ("emulator", "soak"): (100, 40),
}


def profile_name() -> str:
    name = os.environ.get("MODEL_PROFILE", "ci")
    if name not in ("ci", "soak"):
        raise ValueError(f"MODEL_PROFILE must be ci or soak, not {name!r}")
    return name


def model_settings(backend: str) -> settings:
    name = profile_name()
    examples, steps = SIZES[(backend, name)]
    common = dict(_COMMON)
    if os.environ.get("MODEL_SHRINK") == "0":
        common["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    if name == "ci":
        return settings(max_examples=examples, stateful_step_count=steps, derandomize=True, database=None, **common)
    return settings(max_examples=examples, stateful_step_count=steps, derandomize=False, **common)
