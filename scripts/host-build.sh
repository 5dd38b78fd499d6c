#!/usr/bin/env bash
# Build the template for this machine's CPU into .aws-sam/smoke (the deployable build targets the
# template's Architecture, arm64 by default), and a Python with boto3 alone, as the Lambda runtime has
# it, in .tools/runtime. Prints the architecture built for.
set -euo pipefail
cd "$(dirname "$0")/.."
case "$(uname -m)" in
  aarch64|arm64) arch=arm64 ;;
  *) arch=x86_64 ;;
esac
log=.aws-sam/host-build.log
mkdir -p .aws-sam
if ! LAYER_ARCHITECTURE=$arch .tools/sam/bin/sam build --no-cached --build-dir .aws-sam/smoke \
  --parameter-overrides "Architecture=$arch" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
py=$(bash scripts/find-python.sh)
if [ ! -x .tools/runtime/bin/python ]; then
  "$py" -m venv .tools/runtime
  .tools/runtime/bin/python -m pip install --quiet --disable-pip-version-check boto3 \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
echo "$arch"
