#!/usr/bin/env bash
# The quick start: create .venv, install nmt, then run the main job on the bundled sample
# corpus. For now that is building the vocabularies and printing their summary.
set -euo pipefail
EXTRAS=viz source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "[demo] nmt build-vocab --config configs/quickstart.yaml" >&2
"$VENV/bin/nmt" build-vocab --config configs/quickstart.yaml
