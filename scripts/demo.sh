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

# Translate a few sentences (stdin -> stdout), then the sample test set, and score it.
echo "[demo] nmt translate --model runs/quickstart" >&2
printf '我喜欢喝茶。\n汤姆今年8岁。\n你会说中文吗？\n' | "$VENV/bin/nmt" translate --model runs/quickstart
cut -f2 data/sample/test.tsv > runs/quickstart/test.zh
cut -f1 data/sample/test.tsv > runs/quickstart/test.en
echo "[demo] nmt evaluate --model runs/quickstart --src runs/quickstart/test.zh --ref runs/quickstart/test.en" >&2
"$VENV/bin/nmt" evaluate --model runs/quickstart --src runs/quickstart/test.zh \
  --ref runs/quickstart/test.en --save-hyp runs/quickstart/test.hyp.en
echo "[demo] attention heatmaps: runs/quickstart/attention/" >&2
printf '我明年想去巴黎。\n' | "$VENV/bin/nmt" translate --model runs/quickstart \
  --plot-attention runs/quickstart/attention >/dev/null
