"""The dataset cache: every BVH of a source folder as canonical positions in one npz, with labels
and a split, built once (outside the repo) and loaded in a second by training and evaluation.

Split (deterministic, by file name):
- "val_heldout": motion kept out of training to measure generalisation: every Bandai take in the
  "youthful" style (a style the model never sees) and one CMU take of each dance / martial folder;
- "val_takes": the last take of every Bandai content-and-style group (near-copies of training takes:
  it flatters memorisation, and is reported beside the held-out part for exactly that reason);
- "train": the rest.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from model.skeleton import FEET, label_key
from training.bvh import BVHError, load_bvh
from training.cli import run

DEFAULT_CACHE = os.environ.get("MOTION_CVAE_CACHE", os.path.expanduser("~/.cache/motion-cvae"))
SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
HELDOUT_STYLE = "youthful"
HELDOUT_CMU = {"salsa/15.bvh", "salsa/30.bvh", "indian/15.bvh", "martial/10.bvh"}
# One vocabulary across both Bandai datasets: synonyms merged so the dropdown has one "tired".
STYLE_SYNONYMS = {"elderly": "old", "exhausted": "tired", "masculinity": "masculine"}
CMU_ACTIONS = {"salsa": "salsa", "indian": "indian_dance", "martial": "martial_arts"}
SPLITS = ("train", "val_takes", "val_heldout")
# what the weights and a motion library are made from, for their CC BY-NC 4.0 attribution
SOURCES = ("the Bandai Namco Research Motion Dataset, (c) 2022 Bandai Namco Research Inc., and CMU mocap "
           "(mocap.cs.cmu.edu, NSF EIA-0196217)")


def floor_height(positions: np.ndarray) -> float:
    """The clip's ground level: a low percentile of the lowest foot joint (robust to jumps)."""
    return float(np.percentile(positions[:, FEET, 1].min(axis=1), 5))


def labels_for(path: str) -> tuple[str | None, str | None]:
    """Bandai: the json beside the BVH indexes cfg/*.txt; CMU: the folder name; else unlabelled."""
    side = os.path.splitext(path)[0] + ".json"
    if os.path.exists(side):
        with open(side) as f:
            ids = json.load(f)
        cfg = os.path.join(os.path.dirname(os.path.dirname(path)), "cfg")
        if os.path.isdir(cfg):
            def line(file: str, i: int) -> str:
                with open(os.path.join(cfg, file)) as f:
                    return re.sub(r"^dataset-\d+_", "", f.read().split()[i])
            action, style = line("content_label.txt", ids["content"]), line("style_label.txt", ids["style"])
        else:
            action, style = ids.get("action"), ids.get("style")
        style = label_key(style) if style else None
        return (label_key(action) if action else None), STYLE_SYNONYMS.get(style, style)
    folder = os.path.basename(os.path.dirname(path))
    return CMU_ACTIONS.get(folder), None


def split_for(rel: str, style: str | None, take_is_last: bool) -> str:
    if style == HELDOUT_STYLE or rel in HELDOUT_CMU:
        return "val_heldout"
    if take_is_last:
        return "val_takes"
    return "train"


def find_bvh(root: str) -> list[str]:
    out = []
    for d, _, files in os.walk(root):
        out += [os.path.join(d, f) for f in files if f.lower().endswith(".bvh")]
    return sorted(out)


def _load(args: tuple[str, str, float | None]):
    path, rel, fps = args
    try:
        action, style = labels_for(path)
        m = load_bvh(path, fps_override=fps)
        pos = m.positions.copy()
        pos[..., 1] -= floor_height(pos)
        return rel, pos.astype(np.float16), action, style, None
    except (BVHError, KeyError, IndexError, ValueError, OSError) as exc:
        return rel, None, None, None, str(exc)


def build_cache(roots: list[str], out: str, fps_override: dict[str, float] | None = None,
                workers: int = 2) -> str:
    """Read every BVH under `roots` into `out`/motion.npz; returns the path."""
    jobs = []
    for root in roots:
        for path in find_bvh(root):
            rel = "/".join(os.path.abspath(path).split(os.sep)[-2:])  # folder/file: labels and split key
            fps = (fps_override or {}).get(os.path.basename(os.path.dirname(path)))
            jobs.append((path, rel, fps))
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_load, jobs, chunksize=16))
    ok = [r for r in results if r[1] is not None]
    errors = [r[4] for r in results if r[4]]
    if not ok:
        raise BVHError(errors[0] if len(errors) == 1 else
                       f"none of the {len(errors)} BVH files could be read; the first: {errors[0]}")
    for err in errors:
        print(f"skipped {err}", file=sys.stderr)
    # last take of each Bandai (dataset, content, style) group goes to val_takes
    groups: dict[str, str] = {}
    for rel, *_ in ok:
        m = re.match(r"(.*)_(\d+)\.bvh$", os.path.basename(rel))
        if m:
            groups[m.group(1)] = max(groups.get(m.group(1), ""), m.group(2))
    actions = sorted({r[2] for r in ok if r[2]}); styles = sorted({r[3] for r in ok if r[3]})
    names, starts, lengths, action_ids, style_ids, splits = [], [], [], [], [], []
    cursor = 0
    for rel, pos, action, style, _ in ok:
        m = re.match(r"(.*)_(\d+)\.bvh$", os.path.basename(rel))
        last = bool(m) and groups.get(m.group(1)) == m.group(2) and rel.startswith("data/dataset-2")
        names.append(rel); starts.append(cursor); lengths.append(len(pos)); cursor += len(pos)
        action_ids.append(actions.index(action) if action else -1)
        style_ids.append(styles.index(style) if style else -1)
        splits.append(SPLITS.index(split_for(rel, style, last)))
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "motion.npz")
    np.savez(path, positions=np.concatenate([r[1] for r in ok]), starts=np.array(starts),
             lengths=np.array(lengths), action=np.array(action_ids), style=np.array(style_ids),
             split=np.array(splits), names=np.array(names),
             actions=np.array(actions), styles=np.array(styles))
    return path


@dataclass
class MotionDataset:
    """All clips in memory: positions (frames, J, 3) float32 and per-clip metadata."""
    positions: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    action: np.ndarray
    style: np.ndarray
    split: np.ndarray
    names: list[str]
    actions: list[str]
    styles: list[str]

    @classmethod
    def load(cls, path: str = os.path.join(DEFAULT_CACHE, "motion.npz")) -> "MotionDataset":
        if os.path.isdir(path):
            path = os.path.join(path, "motion.npz")
        if not os.path.exists(path):
            raise FileNotFoundError(f"No dataset cache at {path}; build it with `python -m training.dataset`.")
        z = np.load(path)
        return cls(z["positions"].astype(np.float32), z["starts"], z["lengths"], z["action"], z["style"],
                   z["split"], list(z["names"]), list(z["actions"]), list(z["styles"]))

    def clips(self, split: str | None = None, min_length: int = 0) -> list[int]:
        keep = np.ones(len(self.names), bool) if split is None else self.split == SPLITS.index(split)
        return [i for i in np.flatnonzero(keep) if self.lengths[i] >= min_length]

    def clip(self, i: int) -> np.ndarray:
        return self.positions[self.starts[i]:self.starts[i] + self.lengths[i]]


def default_roots() -> list[str]:
    """The unpacked shared sources, extracting the archives into the cache on first use."""
    import tarfile
    raw = os.path.join(DEFAULT_CACHE, "raw")
    shared = os.path.abspath(SHARED_DATA)
    for archive in ("bandai-namco/bandai-namco-motion.tar.xz", "cmu-dance-martial/cmu-dance-martial.tar.xz"):
        marker = os.path.join(raw, os.path.basename(archive) + ".done")
        if not os.path.exists(marker):
            os.makedirs(raw, exist_ok=True)
            with tarfile.open(os.path.join(shared, archive)) as tar:
                tar.extractall(raw, filter="data")
            open(marker, "w").close()
    return [os.path.join(raw, d) for d in sorted(os.listdir(raw)) if os.path.isdir(os.path.join(raw, d))]


def main() -> None:
    ap = argparse.ArgumentParser(description="Build the canonical-motion dataset cache.")
    ap.add_argument("--data", nargs="*", help="folders of BVH files (default: the shared Bandai + CMU data)")
    ap.add_argument("--out", default=DEFAULT_CACHE)
    ap.add_argument("--fps", action="append", default=[], metavar="FOLDER=FPS",
                    help="override a folder's header frame rate, e.g. --fps salsa=60")
    args = ap.parse_args()
    overrides = {k: float(v) for k, v in (s.split("=") for s in args.fps)}
    roots = args.data or default_roots()
    for root in roots:
        if not find_bvh(root):
            raise FileNotFoundError(f"no .bvh files in {root}")
    path = build_cache(roots, args.out, overrides)
    ds = MotionDataset.load(path)
    for s in SPLITS:
        idx = ds.clips(s)
        print(f"{s:12s} {len(idx):5d} clips {int(ds.lengths[idx].sum()):8d} frames")
    print(f"actions: {', '.join(ds.actions)}\nstyles: {', '.join(ds.styles)}\nwrote {path}")


if __name__ == "__main__":
    run(main)
