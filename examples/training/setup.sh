#!/usr/bin/env bash
# Creates examples/training/.venv and installs the pinned requirements into it.
#
# Safe to run again: an existing, working virtual environment is reused, and
# pip only installs what is missing or at another version. Works from any
# current directory. Set PYTHON to choose the interpreter (default: python3,
# which must be CPython 3.11 or newer).
set -euo pipefail

here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
venv="$here/.venv"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup.sh: $python not found; install CPython 3.11 or newer, or set PYTHON" >&2
  exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup.sh: $python is $("$python" -c 'import sys; print(sys.version.split()[0])'); CPython 3.11 or newer is needed" >&2
  exit 1
fi

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.prefix != sys.base_prefix else 1)' 2>/dev/null; then
  echo "setup.sh: reusing $venv"
else
  echo "setup.sh: creating $venv"
  "$python" -m venv --clear "$venv"
fi

"$venv/bin/python" -m pip install \
  --disable-pip-version-check --no-input --quiet \
  --only-binary=:all: \
  --requirement "$here/requirements.txt"

"$venv/bin/python" - <<'PYTHON'
import sys

import numpy
import pyarrow
import pyarrow.parquet  # noqa: F401  (fails here, not mid-run, if the wheel is broken)

print(f"setup.sh: ready (Python {sys.version.split()[0]}, numpy {numpy.__version__}, pyarrow {pyarrow.__version__})")
PYTHON
