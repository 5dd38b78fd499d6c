#!/usr/bin/env bash
# Build the template for this machine's CPU (the deployable build targets the template's Architecture,
# arm64 by default) and run the built handler on an event against the embedded emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
case "$(uname -m)" in
  aarch64|arm64) arch=arm64 ;;
  *) arch=x86_64 ;;
esac
smoke_template=.aws-sam/smoke-template.yaml
mkdir -p .aws-sam
# Same template, built for this CPU; it sits beside the original so relative code paths still resolve.
sed "s/BuildArchitecture: arm64/BuildArchitecture: $arch/" template.yaml > template.smoke.yaml
trap 'rm -f template.smoke.yaml' EXIT
.tools/sam/bin/sam build --template-file template.smoke.yaml --build-dir .aws-sam/smoke \
  --parameter-overrides "Architecture=$arch" >/dev/null
# A Python with boto3 alone, as the Lambda runtime has it.
py=$(bash scripts/find-python.sh)
if [ ! -x .tools/runtime/bin/python ]; then
  "$py" -m venv .tools/runtime
  .tools/runtime/bin/python -m pip install --quiet --disable-pip-version-check boto3 \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
SMOKE_ARCHITECTURE=$arch .venv/bin/python -m local.smoke --build-dir .aws-sam/smoke \
  --runtime-python .tools/runtime/bin/python --event events/sqs-s3-put.json
