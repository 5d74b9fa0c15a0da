"""Build a motion library (model.library) from the dataset cache or a folder of BVH:

    python -m training.library [--data cache:train] [--out ~/.cache/motion-cvae/library.safetensors]

The generator averages each gap's fill with the library's nearest segment (`Generator.load(...,
library=PATH)`; the add-on's preferences take the path). Build it from the motion the weights were
trained on (the shipped weights: the cache's train split) or from your own mocap: a folder of BVH
files, any skeleton the retargeting understands. It holds the recorded motion itself (about 45 MB
for the train split), so it is built where the data is rather than shipped, and keeps the data's
licence, which the file records.
"""
from __future__ import annotations

import argparse
import os

from model.library import MotionLibrary
from training.cli import run
from training.dataset import DEFAULT_CACHE, SOURCES
from training.eval_clips import load_clips

DEFAULT_LIBRARY = os.path.join(DEFAULT_CACHE, "library.safetensors")


def build(data: str, out: str, fps: float | None = None) -> MotionLibrary:
    """Every clip of `data` (cache:SPLIT or a BVH folder) as a library at `out`."""
    clips = load_clips(data, fps)
    library = MotionLibrary([c.positions for c in clips])
    source = f"the dataset cache's {data[len('cache:'):]} split" if data.startswith("cache:") else data
    licence = (f"CC BY-NC 4.0: {SOURCES}" if data.startswith("cache:") else
               "that of the motion in the folder it was built from")
    library.save(out, {"source": source, "clips": len(clips), "frames": int(len(library.positions)),
                       "licence": licence})
    return library


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cache:train", help="cache:SPLIT or a folder of .bvh (recursive)")
    ap.add_argument("--out", default=DEFAULT_LIBRARY)
    ap.add_argument("--fps", type=float, help="override every BVH file's frame rate")
    args = ap.parse_args(argv)
    library = build(args.data, args.out, args.fps)
    size = os.path.getsize(args.out) / 2**20
    print(f"{args.out}: {len(library.lengths)} clips, {len(library.positions)} frames, {size:.1f} MB")


if __name__ == "__main__":
    run(main)
