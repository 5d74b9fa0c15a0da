"""Run tests/blender (real headless Blender) under a chosen Python, e.g. bpy 4.2 LTS beside 5.0:

    python scripts/test_blender.py --python /work/venv42/bin/python [extra pytest args]

The same test files run under every version: conftest.py builds the zip with that Python's bpy
builder and installs it into a throw-away user folder. A 4.2 venv:
    pip install bpy==4.2.23 numpy==1.26.4 torch==2.13.0 safetensors==0.8.0 scipy==1.17.1 pytest
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=os.environ.get("BLENDER_PYTHON", sys.executable),
                    help="the Python whose bpy to test (default: $BLENDER_PYTHON, else this one)")
    args, extra = ap.parse_known_args()
    probe = {**os.environ, "BLENDER_USER_RESOURCES": tempfile.mkdtemp(prefix="motion_cvae_probe_")}
    version = subprocess.run([args.python, "-c", "import bpy; print(bpy.app.version_string)"],
                             capture_output=True, text=True, cwd=ROOT, env=probe)
    print(f"bpy {version.stdout.strip() or 'not importable: ' + version.stderr.strip()[-200:]} ({args.python})")
    return subprocess.call([args.python, "-m", "pytest", "tests/blender", "-p", "no:cacheprovider", *extra], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
