#!/usr/bin/env bash
# Set up and run every test: the whole suite under bpy 5.0.1, then the Blender tests under 4.2.23 LTS.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --bpy42
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
.venv/bin/python scripts/test_blender.py --python .venv-bpy42/bin/python -q
