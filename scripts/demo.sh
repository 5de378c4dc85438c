#!/usr/bin/env bash
# The quick start: create .venv, install nmt, then run the main job on the bundled sample
# corpus: build the vocabularies (printing their summary), then train the quickstart model.
set -euo pipefail
EXTRAS=viz source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
# The demo starts from scratch each time in its own run directory (about a minute).
RUN=runs/demo
rm -rf "$RUN"
echo "[demo] nmt build-vocab --config configs/quickstart.yaml --run-dir $RUN" >&2
"$VENV/bin/nmt" build-vocab --config configs/quickstart.yaml --run-dir "$RUN"
echo "[demo] nmt train --config configs/quickstart.yaml --run-dir $RUN" >&2
"$VENV/bin/nmt" train --config configs/quickstart.yaml --run-dir "$RUN"

# Translate a few sentences (stdin -> stdout), then the sample test set, and score it.
for strategy in "greedy" "beam --beam-size 4" "sample --seed 1 --temperature 0.8 --top-p 0.9"; do
  echo "[demo] nmt translate --model $RUN --strategy $strategy" >&2
  # shellcheck disable=SC2086 # the options are meant to split
  printf '我喜欢喝茶。\n汤姆今年8岁。\n你会说中文吗？\n' \
    | "$VENV/bin/nmt" translate --model $RUN --strategy $strategy
done
cut -f2 data/sample/test.tsv > $RUN/test.zh
cut -f1 data/sample/test.tsv > $RUN/test.en
echo "[demo] nmt evaluate --model $RUN --src $RUN/test.zh --ref $RUN/test.en" >&2
"$VENV/bin/nmt" evaluate --model $RUN --src $RUN/test.zh \
  --ref $RUN/test.en --save-hyp $RUN/test.hyp.en
echo "[demo] attention heatmaps: $RUN/attention/" >&2
printf '我明年想去巴黎。\n' | "$VENV/bin/nmt" translate --model $RUN \
  --plot-attention $RUN/attention >/dev/null
