#!/usr/bin/env bash
# Create ./.venv, install the pinned requirements and this project (editable).
# Idempotent: a second run checks the install stamp and does nothing when nothing changed.
# Never modifies anything inside site-packages beyond normal `pip install`.
#
# Options (environment variables):
#   QENAS_TF=cpu|gpu   force the TensorFlow build (default: gpu if `nvidia-smi -L` lists a GPU, else cpu)
#   PYTHON=python3.12  interpreter to build the virtualenv with (default: python3)
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup.sh: '$PYTHON' not found; install Python 3.11 or newer (or set PYTHON=/path/to/python3.11)." >&2
  exit 2
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup.sh: $("$PYTHON" --version 2>&1) is too old; Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)." >&2
  exit 2
fi

TF_BUILD="${QENAS_TF:-}"
if [ -z "$TF_BUILD" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; then
    TF_BUILD=gpu
  else
    TF_BUILD=cpu
  fi
fi
case "$TF_BUILD" in
  cpu) REQ=requirements.txt ;;
  gpu) REQ=requirements-gpu.txt ;;
  *) echo "setup.sh: QENAS_TF must be 'cpu' or 'gpu', got '$TF_BUILD'." >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
  echo "setup.sh: creating virtualenv .venv with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv .venv
fi

STAMP=.venv/.qenas-installed
WANT="$TF_BUILD $(cat requirements-base.txt requirements-test.txt "$REQ" pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  echo "setup.sh: .venv is up to date ($TF_BUILD build); nothing to do."
  exit 0
fi

echo "setup.sh: installing $REQ ($TF_BUILD TensorFlow build) into .venv"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQ"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . \
  || .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
echo "$WANT" > "$STAMP"
echo "setup.sh: done. Activate with: source .venv/bin/activate"
