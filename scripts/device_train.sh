#!/usr/bin/env bash
# One prepared call on a lent GPU machine (the workplace's device tool): train the `gpu` config, then
# evaluate it on the held-out part; the run folder, logs and results land under $OUT.
# There, no package registry and no ../shared: carry the dataset cache (git-ignored /.device/):
#   mkdir -p .device && cp ~/.cache/motion-cvae/motion.npz .device/
#   run(command="scripts/device_train.sh", carry=[".device"], timeout_s=600)
# Locally, for a dry run of the same steps: CONFIG=tiny EVAL_CLIPS=4 OUT=/tmp/dev scripts/device_train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
config=${CONFIG:-gpu}
out=${OUT:-runs/device}
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 MOTION_CVAE_CACHE="$PWD/.device"
[ -f .device/motion.npz ] || { echo "no .device/motion.npz: copy the dataset cache there and carry .device" >&2; exit 2; }
mkdir -p "$out"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no GPU"; } > "$out/device.txt"
start=$(date +%s)
"$python" -m training.train --config "$config" --out "$out/run" > "$out/train.log" 2>&1 || { tail -c 3000 "$out/train.log"; exit 1; }
echo "train: $(( $(date +%s) - start )) s; $(tail -n 1 "$out/train.log")"
"$python" -m training.evaluate --data cache:val_heldout --checkpoint "$out/run/motion_cvae.safetensors" \
  --json "$out/eval_heldout.json" ${EVAL_CLIPS:+--max-clips "$EVAL_CLIPS"} > "$out/eval.log" 2>&1 \
  || { tail -c 3000 "$out/eval.log"; exit 1; }
echo "train + evaluate: $(( $(date +%s) - start )) s"
tail -n 30 "$out/eval.log"
