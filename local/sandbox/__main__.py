"""``python -m local.sandbox --port 8765 [--vendor imagga] [--answers image|saved] [fault options]``: serve
in the foreground. Answers are made up from the pixels of each image unless ``--answers saved``."""

from __future__ import annotations

import argparse
import contextlib
import sys

from local.sandbox.base import ANSWERS
from local.sandbox.faults import FaultPlan
from local.sandbox.server import Exchange, VendorSandbox
from local.sandbox.vendors import VENDORS, vendor_class


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.sandbox", description=__doc__)
    parser.add_argument("--vendor", default="imagga", choices=sorted(VENDORS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", help="the key the sandbox accepts (default: the vendor's sandbox key)")
    parser.add_argument("--api-secret", help="the secret the sandbox accepts, for vendors that have one")
    parser.add_argument(
        "--answers",
        default="image",
        choices=ANSWERS,
        help="image: answers made up from the pixels sent (rules of thumb, not a model; the default); "
        "saved: the saved real answers, less what the request's options leave out",
    )
    faults = parser.add_argument_group("faults (rates are probabilities per request)")
    faults.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    faults.add_argument("--rate-limit", type=float, default=0.0, help="rate of 429 answers")
    faults.add_argument("--retry-after", help="Retry-After value sent with 429/503 (seconds or HTTP date)")
    faults.add_argument("--server-error", type=float, default=0.0, help="rate of 500 answers")
    faults.add_argument("--unavailable", type=float, default=0.0, help="rate of 503 answers")
    faults.add_argument("--slow", type=float, default=0.0, help="rate of slow answers")
    faults.add_argument("--slow-seconds", type=float, default=5.0)
    faults.add_argument("--drop", type=float, default=0.0, help="rate of dropped connections")
    faults.add_argument("--malformed", type=float, default=0.0, help="rate of cut-off JSON bodies")
    faults.add_argument("--seed", type=int)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cls = vendor_class(args.vendor)
    credentials = dict(cls.default_credentials)
    if args.api_key:
        credentials["api_key"] = args.api_key
    if args.api_secret:
        credentials["api_secret"] = args.api_secret
    plan = FaultPlan(
        latency=args.latency,
        rate_limit=args.rate_limit,
        retry_after=args.retry_after,
        server_error=args.server_error,
        unavailable=args.unavailable,
        slow=args.slow,
        slow_seconds=args.slow_seconds,
        drop=args.drop,
        malformed=args.malformed,
        seed=args.seed,
    )

    def show(exchange: Exchange) -> None:
        request = exchange.request
        fault = "" if exchange.fault == "ok" else f" [fault: {exchange.fault}]"
        status = "dropped" if exchange.dropped else exchange.status
        print(f"{request.method} {request.path} -> {status}{fault}", file=sys.stderr, flush=True)

    vendor = cls(credentials, answers=args.answers)
    sandbox = VendorSandbox(vendor, host=args.host, port=args.port, faults=plan, on_exchange=show)
    base_url = sandbox.start()
    prefix = args.vendor.upper() + "_"
    print(f"{args.vendor} sandbox on {base_url} ({args.answers} answers); point the function at it with:", flush=True)
    # An AWS service is reached through the SDK's own endpoint setting, a vendor through its base URL.
    setting = f"AWS_ENDPOINT_URL_{prefix[:-1]}" if getattr(cls, "aws_target_prefix", None) else f"{prefix}BASE_URL"
    print(f"  export {setting}={base_url}", flush=True)
    for name, value in credentials.items():
        print(f"  export {prefix}{name.upper()}={value}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        sandbox.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
