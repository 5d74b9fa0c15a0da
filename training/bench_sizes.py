"""How the model holds up on bodies of other sizes and proportions than the training skeletons: the
add-on's case (single keys every 20 frames, evaluate.sparse_keys' windows) on held-out motion scaled
as a whole, or with every bone but the legs' (where rig conventions disagree: a Mixamo-named rig's
upper arms are 2.8x Bandai's) its length scaled by exp(U(-p, p)), directions kept. The generator as
shipped (a body put at the nearest training skeleton's proportions, model.body_size) beside the same
weights taking the body as given, and linear interpolation.

    python -m training.bench_sizes [--data cache:val_heldout] [--checkpoint PATH] [--max-clips N]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from model.body_size import LEGS, from_skeleton
from model.generator import Generator
from training import evaluate as ev, metrics
from training.baselines import interpolate
from training.eval_clips import load_clips, run_model, windows
from training.masks import frames_to_mask

SIZES = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25)
SPREADS = (0.1, 0.25, 0.5)  # p of the bone lengths' exp(U(-p, p))
EVERY = 20


def bodies(w: np.ndarray, sizes=SIZES, spreads=SPREADS, seed: int = 0):
    """(name, windows) of every body measured: the motion scaled as a whole, then each window's
    non-leg bones lengthened or shortened at random (one draw per window and bone)."""
    for size in sizes:
        yield f"size {size:g}", w * size
    rng = np.random.default_rng(seed)
    for p in spreads:
        scale = np.where(LEGS, 1.0, np.exp(rng.uniform(-p, p, (len(w), len(LEGS)))))
        yield f"bones +-{p:g}", from_skeleton(w, np.ones(len(w)), scale)


def measure(gen: Generator, w: np.ndarray, sizes=SIZES, spreads=SPREADS, seed: int = 0) -> list[dict]:
    """One row per body: mean error (mm) on the frames between keys, and each error / linear's."""
    keyed = np.zeros(w.shape[1], bool)
    keyed[::EVERY] = True
    mask = frames_to_mask(keyed)
    as_given = Generator(gen.backend, {**gen.meta, "skeletons": []}, gen.stats)
    rows = []
    for body, x in bodies(w, sizes, spreads, seed):
        err = lambda p: float(metrics.mpjpe(p[:, ~keyed], x[:, ~keyed]) * 1000)
        linear = err(interpolate(x, mask))
        row = {"body": body, "linear_mm": round(linear, 1)}
        for name, g in (("model_mm", gen), ("as_given_mm", as_given)):
            row[name] = round(err(run_model(g, x, mask, seed, 60)[:, 0]), 1)
            row[name.replace("_mm", "_vs_linear")] = round(row[name] / linear, 3)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="cache:val_heldout")
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--max-clips", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = Generator.load(args.checkpoint, device="cpu")
    if not len(gen.skeletons):
        raise SystemExit("these weights record no training skeletons (exported before model.body_size); "
                         "re-export them with `python -m training.train --resume` to compare")
    w, _ = windows(load_clips(args.data, max_clips=args.max_clips), ev.KEYED_LEN)
    rows = measure(gen, w)
    print(f"{len(w)} windows of {args.data}, keys every {EVERY} frames; mm on the frames between keys")
    print(f"{'body':>12}{'linear':>9}{'model':>9}{'as given':>10}{'model/linear':>14}{'as given/linear':>17}")
    for r in rows:
        print(f"{r['body']:>12}{r['linear_mm']:>9}{r['model_mm']:>9}{r['as_given_mm']:>10}"
              f"{r['model_vs_linear']:>14}{r['as_given_vs_linear']:>17}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    ev.run(main)
