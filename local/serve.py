"""``make local-stack``: keep the emulator and the stack running for ``sam local invoke`` (needs Docker).

Writes ``.local/env.json``, the ``--env-vars`` file that points the function in its container at this
emulator, and prints the command to run. On Linux a container reaches the host only with
``--docker-network host`` (then 127.0.0.1 works) or ``--add-host host.docker.internal:host-gateway``
(then start this with ``--host 0.0.0.0``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import threading
from pathlib import Path

from local.demo import stack_parameters
from local.emulator import LOCAL_CREDENTIALS, local_aws
from local.invoke import prepare_event
from local.stack import deploy

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to be reachable through host.docker.internal")
    parser.add_argument("--event", type=Path, default=ROOT / "events/s3-put.json")
    args = parser.parse_args(argv)
    with local_aws(port=args.port, host=args.host):
        stack = deploy(parameters=stack_parameters())
        event = json.loads(args.event.read_text())
        prepare_event(event, stack.bucket)
        out = ROOT / ".local"
        out.mkdir(exist_ok=True)
        endpoint_host = "127.0.0.1" if args.host == "127.0.0.1" else "host.docker.internal"
        env = {**stack.function_env, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": f"http://{endpoint_host}:{args.port}"}
        (out / "env.json").write_text(json.dumps({"AnalyzeFunction": env}, indent=2))
        (out / "event.json").write_text(json.dumps(event, indent=2))
        network = (
            "--docker-network host" if args.host == "127.0.0.1" else "--add-host host.docker.internal:host-gateway"
        )
        print(f"Emulator on {args.host}:{args.port}; stack created; bucket {stack.bucket}")
        # The container runs this machine's CPU: the layer and the template's Architecture must say so.
        arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
        print("In another shell:")
        print(f"  make build ARCHITECTURE={arch}")
        print(
            "  sam local invoke AnalyzeFunction -e .local/event.json --env-vars .local/env.json"
            f" --parameter-overrides Architecture={arch} {network}"
        )
        print("Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
