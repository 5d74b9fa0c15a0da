#!/usr/bin/env bash
# Create (or reuse) the project's virtual environments with pinned packages.
#   .venv        Python 3.11, bpy 5.0.1, torch 2.13.0 (CPU), the project and its test tools
#   .venv-bpy42  the same with bpy 4.2.23 (only with --bpy42: the tests run there too)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
make_venv() {  # dir, bpy version
  if [ ! -x "$1/bin/python" ]; then "$PY" -m venv "$1"; fi
  "$1/bin/python" -m pip install -q --disable-pip-version-check "bpy==$2" -r requirements-lock.txt
}
make_venv .venv 5.0.1
if [ "${1:-}" = "--bpy42" ]; then make_venv .venv-bpy42 4.2.23; fi
