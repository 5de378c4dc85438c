# Sourced by demo.sh and test.sh: create .venv if needed and install nmt into it.
# Usage: EXTRAS="dev,viz" source scripts/_venv.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
VENV="${NMT_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip -q --disable-pip-version-check)

# PyTorch first, so that nmt's `torch>=2.10` is already met and pip pulls no CUDA packages on a
# CPU-only machine. A torch that is already installed (e.g. a GPU build) is kept.
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  local_wheel=""
  for d in $("$VPY" -m pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p"); do
    w=$(ls "$d"/torch-*+cpu-*.whl 2>/dev/null | head -1 || true)
    [ -n "$w" ] && local_wheel="$w"
  done
  if [ -n "$local_wheel" ]; then
    ver=$(basename "$local_wheel" | cut -d- -f2 | cut -d+ -f1)
    echo "[setup] installing the local CPU build torch==$ver" >&2
    "${PIP[@]}" install "torch==$ver"
  elif [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "[setup] no GPU: installing the CPU build of torch" >&2
    "${PIP[@]}" install torch --index-url https://download.pytorch.org/whl/cpu
  else
    echo "[setup] installing torch" >&2
    "${PIP[@]}" install torch
  fi
fi
echo "[setup] installing nmt[${EXTRAS:-}]" >&2
"${PIP[@]}" install -e "$ROOT${EXTRAS:+[$EXTRAS]}" 2> >(grep -v "^WARNING: Location" >&2)
"$VPY" -c "import nmt" || { echo "[setup] failed to install nmt" >&2; exit 1; }
