#!/usr/bin/env bash
# Set up and run the main job: the headless demo through the installed extension (out/demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python scripts/demo.py --out out/demo "$@"
