"""Image analysis pipeline: S3 upload -> providers -> one normalized result -> alert when flagged."""

import json
import platform
from pathlib import Path

__version__ = "0.1.0"


def check_build_architecture(build_file: Path = Path(__file__).parent / "build.json", machine: str = "") -> None:
    """A layer built for the other CPU fails deep inside a native import with an unreadable message; say
    what is wrong instead. ``build.json`` exists only in a built layer (layers/shared/Makefile)."""
    try:
        built = json.loads(build_file.read_text())
    except FileNotFoundError:
        return
    machine = machine or platform.machine()
    if built.get("machine") != machine:
        raise RuntimeError(
            f"the shared layer was built for {built.get('architecture')} but runs on {machine}: "
            "build it with LAYER_ARCHITECTURE set to the template's Architecture parameter"
        )


check_build_architecture()
