#!/usr/bin/env bash
# Print the path of a Python >= 3.12 interpreter, or explain and exit 1.
# Looks at PYTHON (if set), then python3.12/python3.13/python3 on PATH, then pyenv's versions.
set -u
ok() { "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; }
cands=()
[ -n "${PYTHON:-}" ] && cands+=("$PYTHON")
for n in python3.12 python3.13 python3; do
  p=$(command -v "$n" 2>/dev/null) && cands+=("$p")
done
root=${PYENV_ROOT:-$HOME/.pyenv}
for d in $(ls -d "$root"/versions/3.1[2-9]* "$root"/versions/3.[2-9][0-9]* 2>/dev/null | sort -V); do
  cands+=("$d/bin/python3")
done
for c in "${cands[@]}"; do
  if [ -x "$c" ] && ok "$c"; then echo "$c"; exit 0; fi
done
echo "error: no Python >= 3.12 found (tried PYTHON, python3.12, python3.13, python3 on PATH, and $root/versions)." >&2
echo "       aws-sdk-bedrock-runtime needs Python >= 3.12: install one (e.g. 'pyenv install 3.12') or set PYTHON=/path/to/python3.12." >&2
exit 1
