#!/usr/bin/env bash
# Build the template for this machine's CPU and run the built handler on an event against the
# embedded emulator, in a Python that has only boto3 besides the build.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$(bash scripts/host-build.sh)
SMOKE_ARCHITECTURE=$arch .venv/bin/python -m local.smoke --build-dir .aws-sam/smoke \
  --runtime-python .tools/runtime/bin/python --event events/sqs-s3-put.json \
  $( [ -d .aws-sam/build/SharedLayer ] && echo --deploy-layer .aws-sam/build/SharedLayer )
