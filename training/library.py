"""Build a motion library (model.library) from the dataset cache or a folder of BVH:

    python -m training.library [--data cache:train] [--out ~/.cache/motion-cvae/library.safetensors]
                               [--exclude TEXT ...]

The generator averages each gap's fill with the library's nearest segment (`Generator.load(...,
library=PATH)`; the add-on's preferences take the path). Build it from the motion the weights were
trained on (the shipped weights: the cache's train split) or from your own mocap: a folder of BVH
files, any skeleton the retargeting understands. It holds the recorded motion itself (about 45 MB
for the train split), so it is built where the data is rather than shipped, and keeps the data's
licence, which the file records. `--exclude` leaves out every clip whose name holds the text (all
takes of a content and style, say, to use the library on one of them as on held-out motion).
"""
from __future__ import annotations

import argparse
import os

from model.library import MotionLibrary
from training.cli import run
from training.dataset import DEFAULT_CACHE, SOURCES
from training.eval_clips import load_clips

DEFAULT_LIBRARY = os.path.join(DEFAULT_CACHE, "library.safetensors")


def build(data: str, out: str, fps: float | None = None, exclude: tuple[str, ...] = ()) -> MotionLibrary:
    """Every clip of `data` (cache:SPLIT or a BVH folder) whose name holds none of `exclude`, as a
    library at `out`."""
    clips = [c for c in load_clips(data, fps) if not any(text in c.name for text in exclude)]
    if not clips:
        raise FileNotFoundError(f"No clips left in {data} to build a library from")
    library = MotionLibrary([c.positions for c in clips])
    source = f"the dataset cache's {data[len('cache:'):]} split" if data.startswith("cache:") else data
    licence = (f"CC BY-NC 4.0: {SOURCES}" if data.startswith("cache:") else
               "that of the motion in the folder it was built from")
    library.save(out, {"source": source, "excluded": list(exclude), "clips": len(clips),
                       "frames": int(len(library.positions)), "licence": licence})
    return library


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cache:train", help="cache:SPLIT or a folder of .bvh (recursive)")
    ap.add_argument("--out", default=DEFAULT_LIBRARY)
    ap.add_argument("--fps", type=float, help="override every BVH file's frame rate")
    ap.add_argument("--exclude", action="append", default=[], metavar="TEXT",
                    help="leave out clips whose name holds TEXT (repeatable)")
    args = ap.parse_args(argv)
    library = build(args.data, args.out, args.fps, tuple(args.exclude))
    size = os.path.getsize(args.out) / 2**20
    print(f"{args.out}: {len(library.lengths)} clips, {len(library.positions)} frames, {size:.1f} MB")


if __name__ == "__main__":
    run(main)
