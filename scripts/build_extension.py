"""Validate and build the extension zip exactly as `blender --command extension build` would, using
the builder inside the installed `bpy` package, then check the zip holds only what may ship.

    python scripts/build_extension.py [--output-dir dist] [--library PATH]

`--library` bundles a motion library (python -m training.library) as model/weights/library.safetensors,
which the add-on then uses unless its preferences name another: the release carries the recorded
motion (and its licence), the repository never does.
"""
from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = ("blender_manifest.toml", "__init__.py", "blender_motion_cvae/", "model/")
WEIGHTS = ("model/weights/motion_cvae.safetensors", "model/weights/motion_cvae.json")
LIBRARY = "model/weights/library.safetensors"


def may_ship(name: str, library: bool = False) -> bool:
    """The add-on's code and the generator's weights only (and a library when asked for):
    model/weights/ also holds files that must not ship (the evaluation classifier)."""
    if name.startswith("model/weights/"):
        return name in WEIGHTS or (library and name == LIBRARY)
    return name.startswith(SHIPPED)


def blender_ext() -> tuple[str, str]:
    """(blender_ext.py, tags.py) of the bpy in this Python."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("bpy is not installed in this Python: pip install bpy==5.0.1 (or 4.2.23)")
    scripts = glob.glob(os.path.join(spec.submodule_search_locations[0], "*", "scripts"))[0]
    return (os.path.join(scripts, "addons_core", "bl_pkg", "cli", "blender_ext.py"),
            os.path.join(scripts, "modules", "_bpy_internal", "extensions", "tags.py"))


def build(output_dir: str = os.path.join(ROOT, "dist"), library: str | None = None) -> str:
    """Build and check, with `library` bundled if given; returns the zip's path. Raises
    RuntimeError on any problem."""
    bundled = os.path.join(ROOT, LIBRARY)
    if not library:
        return _build(output_dir, False)
    sys.path.insert(0, ROOT)
    from model.library import LibraryError, MotionLibrary
    try:
        MotionLibrary.load(library)
    except LibraryError as exc:
        raise RuntimeError(str(exc)) from None
    shutil.copyfile(library, bundled)
    try:
        return _build(output_dir, True)
    finally:
        os.remove(bundled)


def _build(output_dir: str, library: bool) -> str:
    script, tags = blender_ext()
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(ROOT, "blender_manifest.toml"), "rb") as f:
        manifest = tomllib.load(f)
    path = os.path.join(output_dir, f"{manifest['id']}-{manifest['version']}.zip")
    if os.path.exists(path):
        os.remove(path)
    for args in (["validate", "--valid-tags", tags, ROOT], ["build", "--source-dir", ROOT, "--output-dir", output_dir]):
        done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
        if done.returncode != 0 or "error" in done.stdout.lower():
            raise RuntimeError(f"blender_ext.py {args[0]} failed:\n{done.stdout}{done.stderr}")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    stray = [n for n in names if not may_ship(n, library)]
    if stray:
        raise RuntimeError(f"{path} holds files that must not ship: {', '.join(stray[:10])}; "
                           "extend [build] paths_exclude_pattern in blender_manifest.toml")
    if WEIGHTS[0] not in names:
        print(f"warning: {os.path.basename(path)} has no {WEIGHTS[0]}: the add-on will "
              "report missing weights", file=sys.stderr)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "dist"))
    parser.add_argument("--library", help="a motion library to bundle (python -m training.library)")
    args = parser.parse_args()
    print(build(args.output_dir, args.library))


if __name__ == "__main__":
    main()
