#!/usr/bin/env bash
# `make build ARCHITECTURE=...`: sam build for one CPU, in a build directory and cache of its own.
#
# SAM's cache key for the layer is its source: LAYER_ARCHITECTURE is not part of it, so one cache
# shared by both CPUs hands the x86_64 build the layer built for arm64 ("Valid cache found"). Each
# CPU therefore builds in .aws-sam/arch/<cpu>/ (its build, its cache and SAM's build.toml, whose
# source hashes say when that cache is stale), the result is checked (every native library and the
# layer's own record must be for that CPU, else the build fails) and then copied to .aws-sam/build,
# where `sam deploy` and `sam local invoke` read it.
set -euo pipefail
cd "$(dirname "$0")/.."
arch=${1:?usage: scripts/build.sh arm64|x86_64}
case "$arch" in arm64|x86_64) ;; *) echo "ARCHITECTURE must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;; esac
dir=.aws-sam/arch/$arch
LAYER_ARCHITECTURE=$arch .tools/sam/bin/sam build --build-dir "$dir/build" --cache-dir "$dir/cache" \
  --parameter-overrides "Architecture=$arch"
"$(bash scripts/find-python.sh)" scripts/check_layer_architecture.py "$dir/build" "$arch"
rm -rf .aws-sam/build
cp -R "$dir/build" .aws-sam/build
echo "The $arch build is in .aws-sam/build (sam deploy reads it there); deploy with Architecture=$arch."
