"""``make build`` for one CPU after the other never ships a layer built for the other CPU.

SAM's build cache is keyed by the layer's source, not by ``LAYER_ARCHITECTURE``: one cache shared by
both CPUs handed the second build the first one's layer. Each build here is checked from the ELF header
of every native library in ``.aws-sam/build`` (what ``sam deploy`` uploads), and by the layer's own record.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.localstack_process import checkout_copy, clean_env

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# ELF e_machine (System V ABI) of what each Lambda architecture runs.
EXPECTED = {"arm64": 183, "x86_64": 62}


def machines(build: Path) -> dict[str, int]:
    found = {}
    for path in build.rglob("*"):
        if path.is_file() and (path.suffix == ".so" or ".so." in path.name):
            header = path.read_bytes()[:20]
            if header[:4] == b"\x7fELF":
                found[str(path.relative_to(build))] = int.from_bytes(header[18:20], "little")
    return found


def build(checkout: Path, architecture: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "build", f"ARCHITECTURE={architecture}"],
        cwd=checkout,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_each_cpus_build_holds_only_that_cpus_native_libraries(tmp_path):
    checkout = checkout_copy(tmp_path / "checkout")
    for architecture in ("arm64", "x86_64", "arm64"):
        output = build(checkout, architecture)
        built = checkout / ".aws-sam" / "build"
        found = machines(built)
        assert len(found) >= 10, f"only {len(found)} native libraries in the {architecture} build"
        wrong = {name: machine for name, machine in found.items() if machine != EXPECTED[architecture]}
        assert not wrong, f"the {architecture} build holds libraries for another CPU: {wrong}"
        record = json.loads((built / "SharedLayer/python/image_analysis/build.json").read_text())
        assert record["architecture"] == architecture
        assert f"The {architecture} build is in .aws-sam/build" in output
    # The second arm64 build came from its own cache, which the x86_64 build had not touched.
    assert "Valid cache found" in output
