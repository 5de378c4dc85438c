#!/usr/bin/env bash
# Install the dev extra (with serve and export, whose tests need them) into .venv and run the whole suite: lint, types, tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -k vocab -x
set -euo pipefail
EXTRAS="dev,viz,serve,export" source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "[test] ruff" >&2
"$VENV/bin/ruff" check nmt tests scripts
echo "[test] mypy" >&2
"$VENV/bin/mypy" nmt
echo "[test] pytest" >&2
"$VPY" -m pytest -q "$@"
