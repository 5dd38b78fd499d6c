"""``make local-stack``: the stack from template.yaml, live on one local endpoint, its pipeline running.

One endpoint (default http://127.0.0.1:5050, ``PORT=`` to change it) serves every service a client
uses: S3, SQS, SNS, Secrets Manager and the rest from the emulator, DynamoDB from DynamoDB Local.
Every upload or deletion made with any client reaches the function the way it does in AWS: the bucket
notifies the analysis queue, and the pipeline takes the messages as the Lambda SQS trigger does
(``local.trigger``), printing one line per object as it happens. The function gets the settings a
user exported (``PROVIDERS``, ``ROUTING``, thresholds, ``SANDBOX=1``, ...: ``local.configuration``),
and its calls are checked against its role in the template (``local.permissions``).

Other commands find it through ``.local/stack.json`` (``make invoke``). For ``sam local invoke``
(Docker) it also writes ``.local/env.json`` (the ``--env-vars`` file) and ``.local/event.json``. On
Linux a container reaches the host only with ``--docker-network host`` (then 127.0.0.1 works) or
``--add-host host.docker.internal:host-gateway`` (then start this with ``--host 0.0.0.0``).

Ctrl-C, SIGTERM (to this process or to make) and the death of the process that started it stop it,
DynamoDB Local's JVM included (``local.lifecycle``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from local import running
from local.configuration import MISSING_KEY_HINT, SANDBOX_HINT, ConfigurationError, check, sandbox_on, stack_parameters
from local.demo import provide_sample
from local.driver import configure_function_env, load_handler
from local.emulator import LOCAL_CREDENTIALS, PortInUse, local_aws
from local.event_file import prepare
from local.lifecycle import stop_on_signals_and_parent_death
from local.outcomes import ObjectLines
from local.permissions import PermissionGuard
from local.sandboxes import start_sandboxes
from local.stack import LocalStack, deploy
from local.trigger import SqsTrigger

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 5050


def write_docker_files(stack: LocalStack, function_env: dict[str, str], event_path: Path, host: str, port: int) -> None:
    """``.local/env.json`` and ``.local/event.json`` for ``sam local invoke`` against this stack."""
    event = json.loads(event_path.read_text())
    endpoint_host = "127.0.0.1" if host == "127.0.0.1" else "host.docker.internal"
    prepare(event_path, event, stack.bucket, f"http://127.0.0.1:{port}", provide=provide_sample, note=lambda _: None)
    out = ROOT / ".local"
    out.mkdir(exist_ok=True)
    env = {**function_env, **LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": f"http://{endpoint_host}:{port}"}
    (out / "env.json").write_text(json.dumps({"AnalyzeFunction": env}, indent=2))
    (out / "event.json").write_text(json.dumps(event, indent=2))


def write_shell_env(stack: LocalStack, endpoint: str) -> Path:
    """``.local/stack.env``: ``source`` it in another shell for the endpoint, the names and the credentials."""
    values = {
        **{k: v for k, v in LOCAL_CREDENTIALS.items() if k != "AWS_SESSION_TOKEN"},
        "ENDPOINT": endpoint,
        "BUCKET": stack.bucket,
        "TABLE": stack.table,
        "TOPIC": stack.topic_arn,
    }
    path = ROOT / ".local" / "stack.env"
    path.parent.mkdir(exist_ok=True)
    path.write_text(
        "# The running local stack (make local-stack): source it in a shell of its own.\n"
        + "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())
    )
    return path


def _banner(stack: LocalStack, endpoint: str, trigger: SqsTrigger, host: str, out: TextIO) -> None:
    width = max(len(k) for k in stack.outputs)
    print(f"\nLocal stack {stack.name} on {endpoint}", file=out)
    print("  one endpoint for every service: S3, SQS, SNS, DynamoDB (DynamoDB Local), Secrets Manager, ...", file=out)
    print("  clients take any credentials, e.g. AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing", file=out)
    print("\nStack outputs:", file=out)
    for name, value in sorted(stack.outputs.items()):
        print(f"  {name:<{width}}  {value}", file=out)
    shown = ("PROVIDERS", "ROUTING", "NSFW_THRESHOLD", "AI_GENERATED_THRESHOLD", "DEEPFAKE_THRESHOLD")
    settings = " ".join(f"{k}={os.environ.get(k, '')}" for k in shown if os.environ.get(k) is not None)
    print(f"\nFunction settings: {settings}", file=out)
    key = "uploads/coffee.png"
    print("\nTry, in another shell (docs/local-invoke.md has more):", file=out)
    print("  source .local/stack.env    # ENDPOINT, BUCKET, TABLE and the emulator's credentials", file=out)
    print(f'  aws --endpoint-url "$ENDPOINT" s3 cp samples/skimage-coffee.png "s3://$BUCKET/{key}"', file=out)
    # Double quotes, so that the shell puts the bucket's name in.
    item_key = '"{\\"pk\\": {\\"S\\": \\"$BUCKET/' + key + '\\"}, \\"sk\\": {\\"S\\": \\"null\\"}}"'
    print(f'  aws --endpoint-url "$ENDPOINT" dynamodb get-item --table-name "$TABLE" --key {item_key}', file=out)
    print("  make invoke EVENT=events/s3-put.json        # the handler once, on this stack", file=out)
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    network = "--docker-network host" if host == "127.0.0.1" else "--add-host host.docker.internal:host-gateway"
    print(
        f"  sam local invoke (Docker): .tools/sam/bin/sam local invoke AnalyzeFunction -e .local/event.json "
        f"--env-vars .local/env.json --parameter-overrides Architecture={arch} {network}"
        f" (after make build ARCHITECTURE={arch}; docs/local-invoke.md)",
        file=out,
    )
    print(
        f"\nThe pipeline takes every upload and deletion from {trigger.describe()} as the Lambda SQS trigger "
        "does; one line per object below. Ctrl-C stops the stack.",
        file=out,
        flush=True,
    )


def serve(port: int, host: str, event_path: Path, out: TextIO) -> int:
    try:
        providers = check(require_keys=False)
    except ConfigurationError as exc:
        print(f"make local-stack: {exc}", file=sys.stderr)
        return 2
    guard = PermissionGuard(
        enforce=True,
        on_denied=lambda call: print(
            f"{time.strftime('%H:%M:%S')}  {'denied':<10} {call.describe()}", file=out, flush=True
        ),
    )
    guard.install()
    with ExitStack() as resources:
        try:
            endpoint = resources.enter_context(local_aws(port=port, host=host))
        except PortInUse:
            print(
                f"make local-stack: port {port} is in use (another local stack?): choose another with PORT=, "
                f"e.g. make local-stack PORT={port + 1}",
                file=sys.stderr,
            )
            return 2
        # In-process clients, the function's included, use the one endpoint too.
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
        print(f"Starting the local stack on {endpoint} (emulator, DynamoDB Local) ...", file=out, flush=True)
        sandbox = sandbox_on()
        sandbox_env = start_sandboxes(resources, providers, out) if sandbox else {}
        parameters = stack_parameters()
        if not os.environ.get("POWERTOOLS_LOG_LEVEL"):
            parameters["LogLevel"] = "WARNING"  # the function's JSON log lines only for what goes wrong
        stack = deploy(parameters=parameters)
        function_env = {**stack.function_env, **sandbox_env}
        if not sandbox:
            function_env[MISSING_KEY_HINT] = SANDBOX_HINT
        configure_function_env(function_env)
        handler = load_handler()
        write_docker_files(stack, function_env, event_path, host, port)
        trigger = SqsTrigger(handler, stack, on_invocation=ObjectLines(stack.table, stack.bucket, out))
        state = running.RunningStack(
            endpoint,
            os.getpid(),
            stack.name,
            stack.outputs,
            function_env,
            stack.role_policy.to_json() if stack.role_policy else None,
        )
        running.write(state)
        resources.callback(running.remove, os.getpid())
        resources.callback(write_shell_env(stack, endpoint).unlink, missing_ok=True)
        _banner(stack, endpoint, trigger, host, out)
        trigger.run(threading.Event())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="the endpoint's port (make local-stack PORT=)")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to be reachable through host.docker.internal")
    parser.add_argument("--event", type=Path, default=ROOT / "events/s3-put.json", help="for .local/event.json")
    args = parser.parse_args(argv)
    stop_on_signals_and_parent_death()
    out = sys.stdout
    try:
        return serve(args.port, args.host, args.event, out)
    except KeyboardInterrupt:
        print("\nStopped: the endpoint, DynamoDB Local and the sandboxes are down.", file=out, flush=True)
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
