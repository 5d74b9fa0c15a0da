#!/usr/bin/env bash
# Set up and run the main job: the headless demo through the installed extension (out/demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# A motion library for one more fill of each rig: the train split without any take of the demo walk's
# content and style (masculine walks), as held-out motion would meet it. Where the dataset isn't
# (no cache and no ../shared/data), the demo runs without it.
library=()
if [ -f "${MOTION_CVAE_CACHE:-$HOME/.cache/motion-cvae}/motion.npz" ] || .venv/bin/python -m training.dataset; then
  .venv/bin/python -m training.library --exclude walk_masculine --out out/demo/library.safetensors
  library=(--library out/demo/library.safetensors)
else
  echo "No dataset: the demo runs without a motion library." >&2
fi
.venv/bin/python scripts/demo.py --out out/demo "${library[@]}" "$@"
