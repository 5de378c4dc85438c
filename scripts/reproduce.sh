#!/usr/bin/env bash
# Reproduce one recipe's row of the README results table, from scratch or from where it stopped.
#
#   scripts/reproduce.sh RECIPE          RECIPE: a config name in configs/, e.g. cmn_zh_en_transformer
#
# 1. set up .venv (scripts/_venv.sh, with the viz extra for the learning curve);
# 2. train: `nmt train --config configs/RECIPE.yaml`, or `--resume` an interrupted run
#    (a run that completed before is not trained again: RUN_DIR/reproduce.trained marks it);
# 3. checkpoint averaging when the run sets train.average_last: `nmt average`, then the
#    averaged weights are kept only if they beat the best checkpoint on dev BLEU;
# 4. length penalty tuned on dev: `nmt tune --write`;
# 5. test evaluation with beam search: `nmt evaluate --model RUN_DIR --json`, and the same for
#    the snapshots of train.snapshot_minutes (the model after 25 minutes, say);
# 6. docs/results/RECIPE.json (scores with signatures, training wall-clock, machine, model size,
#    decoding and speed) and docs/results/RECIPE.png (dev BLEU against wall-clock minutes).
# Then `python scripts/results_table.py` renders every docs/results/*.json as a markdown table.
set -euo pipefail
RECIPE="${1:?usage: scripts/reproduce.sh RECIPE  (a config name in configs/)}"
EXTRAS="viz" source "$(dirname "$0")/_venv.sh"
cd "$ROOT"
CONFIG="configs/$RECIPE.yaml"
if [ -f "$RECIPE" ]; then  # a config file elsewhere (the smoke test uses one)
  CONFIG="$RECIPE"
  RECIPE="$(basename "$RECIPE" .yaml)"
fi
[ -f "$CONFIG" ] || { echo "reproduce: $CONFIG not found; recipes: $(ls configs)" >&2; exit 2; }
RESULTS="${NMT_RESULTS_DIR:-docs/results}"
NMT=("$VPY" -m nmt)
setting() {  # setting FILE KEY: a resolved config value, e.g. setting configs/x.yaml run_dir
  "$VPY" -c 'import sys; from nmt.config import load_config, config_to_dict
d = config_to_dict(load_config(sys.argv[1]))
for k in sys.argv[2].split("."): d = d[k]
print(d)' "$1" "$2"
}
dev_bleu() {  # dev_bleu CHECKPOINT: BLEU of the run's dev split with that checkpoint
  "${NMT[@]}" evaluate --model "$RUN" --split dev --checkpoint "$1" --metrics bleu --json \
    | "$VPY" -c 'import json, sys; print(json.load(sys.stdin)["metrics"][0]["score"])'
}
RUN="$(setting "$CONFIG" run_dir)"
THREADS="$(setting "$CONFIG" train.threads)"
if [ "$THREADS" != "0" ]; then  # decoding speed is measured with the training thread count
  export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS"
fi
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "[reproduce] $RECIPE: training ($RUN)" >&2
if [ -f "$RUN/reproduce.trained" ]; then
  echo "[reproduce] $RUN was trained to the end before; delete it to start over" >&2
elif [ -d "$RUN/checkpoints" ]; then
  "${NMT[@]}" train --resume "$RUN"
  touch "$RUN/reproduce.trained"
else
  "${NMT[@]}" train --config "$CONFIG"
  touch "$RUN/reproduce.trained"
fi

CKPT=best
AVERAGE="$(setting "$RUN/config.yaml" train.average_last)"
if [ "$AVERAGE" != "0" ]; then
  if [ ! -d "$RUN/checkpoints/averaged" ]; then  # nmt train writes it when a run ends
    "${NMT[@]}" average "$RUN" --last "$AVERAGE" >&2
  fi
  best_bleu="$(dev_bleu best)"
  averaged_bleu="$(dev_bleu averaged)"
  echo "[reproduce] dev BLEU: best checkpoint $best_bleu, averaged $averaged_bleu" >&2
  if "$VPY" -c 'import sys; sys.exit(not float(sys.argv[2]) > float(sys.argv[1]))' \
      "$best_bleu" "$averaged_bleu"; then
    CKPT=averaged
  fi
fi

echo "[reproduce] tuning the length penalty on dev ($CKPT checkpoint)" >&2
"${NMT[@]}" tune "$RUN" --checkpoint "$CKPT" --write --json > "$OUT/tune.json"
echo "[reproduce] evaluating on test with beam search" >&2
"${NMT[@]}" evaluate --model "$RUN" --checkpoint "$CKPT" --strategy beam --json > "$OUT/eval.json"
BUDGET=()  # train.snapshot_minutes: the model after N minutes, scored the same way
for snapshot in "$RUN"/checkpoints/minute-*; do
  [ -d "$snapshot" ] || continue
  name="$(basename "$snapshot")"
  echo "[reproduce] evaluating the $name snapshot on test" >&2
  "${NMT[@]}" evaluate --model "$RUN" --checkpoint "$name" --strategy beam --json \
    > "$OUT/$name.json"
  BUDGET+=(--budget "$name=$OUT/$name.json")
done
"$VPY" scripts/record_result.py "$CONFIG" --eval "$OUT/eval.json" --tune "$OUT/tune.json" \
  --checkpoint "$CKPT" --out-dir "$RESULTS" ${BUDGET[@]+"${BUDGET[@]}"}
"$VPY" scripts/results_table.py "$RESULTS"
