#!/usr/bin/env bash
# The quick start: create .venv, install nmt, then run the main job on the bundled sample
# corpus: build the vocabularies (printing their summary), then train the quickstart model.
set -euo pipefail
EXTRAS=viz source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
echo "[demo] nmt build-vocab --config configs/quickstart.yaml" >&2
"$VENV/bin/nmt" build-vocab --config configs/quickstart.yaml
# A second demo run continues the existing run (it is already finished, so that takes seconds).
if [ -f runs/quickstart/checkpoints/latest ]; then
  echo "[demo] nmt train --resume runs/quickstart" >&2
  "$VENV/bin/nmt" train --resume runs/quickstart
else
  echo "[demo] nmt train --config configs/quickstart.yaml" >&2
  "$VENV/bin/nmt" train --config configs/quickstart.yaml
fi
