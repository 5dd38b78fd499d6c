#!/usr/bin/env bash
# Prints the path of a Python 3.13 interpreter (the Lambda runtime's version), or fails saying how to get one.
# Looks at PYTHON313 if set, then python3.13 on PATH, then pyenv's versions.
set -euo pipefail
candidates=()
[ -n "${PYTHON313:-}" ] && candidates+=("$PYTHON313")
command -v python3.13 >/dev/null 2>&1 && candidates+=("$(command -v python3.13)")
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for p in $(ls -d "$root"/versions/3.13.*/bin/python3.13 2>/dev/null | sort -V -r); do candidates+=("$p"); done
fi
for p in "$HOME"/.pyenv/versions/3.13.*/bin/python3.13 /usr/local/bin/python3.13 /usr/bin/python3.13; do
  [ -x "$p" ] && candidates+=("$p")
done
for p in "${candidates[@]}"; do
  if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
    echo "$p"
    exit 0
  fi
done
echo "Python 3.13 not found: install it (e.g. 'pyenv install 3.13') or set PYTHON313=/path/to/python3.13" >&2
exit 1
