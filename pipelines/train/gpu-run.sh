#!/usr/bin/env bash
# GPU training of the RIM, then the RIM's GPU throughput, in one command of under 10 minutes
# on a machine with one GPU and torch + numpy (nothing else of ours installed).
#
#   bash pipelines/train/gpu-run.sh            # from the repository root
#
# Trains `python -m skarim.train.gpu` for $MINUTES (default 7) into $OUT/run: it resumes
# pipelines/train/checkpoints/rim-gpu when that folder holds a GPU run, else starts a new run
# from $INIT (default: the shipped weights, skarim/weights/rim.pt; INIT= starts from scratch). $EXTRA
# adds flags to a new run (default: rim-faint's bright-source windows and faint loss,
# "--bright-prob 0.33 --faint-loss-weight 1.0"; e.g. EXTRA="--hidden 48 --steps 10" with INIT=
# instead). Then runs
# bench/rim_throughput.py --device cuda. What it leaves in $OUT (7 files):
#   run/{config.json,state.pt,best.pt,quality.json,log.jsonl}, train.log, throughput.txt
# To carry the run on next time, copy $OUT/run to pipelines/train/checkpoints/rim-gpu.
# Exit status: the training's.
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT="${OUT:-/tmp/skarim-gpu-run}"
MINUTES="${MINUTES:-7}"
INIT="${INIT-skarim/weights/rim.pt}"
RESUME=pipelines/train/checkpoints/rim-gpu
mkdir -p "$OUT"

flags=()
if [ -f "$RESUME/state.pt" ]; then
    cp -r "$RESUME" "$OUT/run"
else
    [ -n "$INIT" ] && flags+=(--init "$INIT")
    read -r -a extra <<< "${EXTRA---bright-prob 0.33 --faint-loss-weight 1.0}"
    flags+=("${extra[@]}")
fi

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c 'import torch, numpy; print("torch", torch.__version__, "numpy", numpy.__version__)'
} > "$OUT/train.log" 2>&1
python3 -m skarim.train.gpu --out "$OUT/run" --minutes "$MINUTES" "${flags[@]}" 2>&1 \
    | tee -a "$OUT/train.log"
status=$?
python3 bench/rim_throughput.py --device cuda --tile 256 --batch 64 2>&1 | tee "$OUT/throughput.txt"
exit "$status"
