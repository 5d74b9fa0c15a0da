"""The action / style classifier that scores action-conditioned generation (accuracy and FID).

Generated motion has no ground truth to compare with, so (as ACTOR / MDM do) a classifier trained on
real motion judges it: does it recognise the requested label, and do its penultimate features of
generated windows sit where those of real windows sit (Frechet distance)? Trained on the train split
only, on 64-frame windows in the canonical frame (facing +Z at the first frame, pelvis trajectory plus
root-relative joints). Saved as safetensors with JSON metadata (vocabularies, window, the train
features' mean and covariance for FID): no pickle, no torch.load.

    python -m training.classifier [--steps N] [--out model/weights/classifier.safetensors]
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from model.representation import first_frame_canonical, to_output_features
from model.skeleton import NUM_JOINTS
from training.dataset import MotionDataset
from training.metrics import feature_stats

WINDOW = 64
DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "..", "model", "weights", "classifier.safetensors")


def canonical_windows(windows: np.ndarray) -> np.ndarray:
    """(N, WINDOW, J, 3) world positions -> (N, J*3, WINDOW) float32 network input."""
    canon = first_frame_canonical(windows.astype(np.float64))
    feat = to_output_features(canon).reshape(len(windows), WINDOW, -1)
    return np.ascontiguousarray(feat.transpose(0, 2, 1), dtype=np.float32)


class Classifier(nn.Module):
    """Small 1D-conv net: T 64 -> 8 by three strided convs, mean over time, a feature layer, two heads.
    Sized to train in a few minutes on a shared 2-core CPU."""

    def __init__(self, n_actions: int, n_styles: int, channels: int = 128, features: int = 64):
        super().__init__()
        k = NUM_JOINTS * 3
        self.register_buffer("mean", torch.zeros(k, 1))
        self.register_buffer("std", torch.ones(k, 1))
        act = lambda: nn.LeakyReLU(0.1)
        self.trunk = nn.Sequential(
            nn.Conv1d(k, channels, 4, stride=2, padding=1), act(),
            nn.Conv1d(channels, channels, 4, stride=2, padding=1), act(),
            nn.Conv1d(channels, channels, 4, stride=2, padding=1), act())
        self.embed = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels, features), act())
        self.action = nn.Linear(features, n_actions)
        self.style = nn.Linear(features, n_styles)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.trunk((x - self.mean) / self.std).mean(-1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.action(f), self.style(f)


class Judge:
    """A loaded classifier as the harness uses it: world-space windows in, numpy out."""

    def __init__(self, path: str = DEFAULT_PATH):
        with safe_open(path, "pt") as f:
            meta = json.loads(f.metadata()["motion_cvae"])
        tensors = load_file(path)
        self.actions, self.styles = meta["actions"], meta["styles"]
        self.fid_mu = tensors.pop("fid_mu").double().numpy()
        self.fid_sigma = tensors.pop("fid_sigma").double().numpy()
        self.net = Classifier(len(self.actions), len(self.styles), meta["channels"], meta["features"])
        self.net.load_state_dict(tensors)
        self.net.eval()

    @torch.no_grad()
    def __call__(self, windows: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, 64, J, 3) -> features (N, F), predicted action index (N,), predicted style index (N,)."""
        feats, acts, styles = [], [], []
        for i in range(0, len(windows), batch):
            f = self.net.features(torch.from_numpy(canonical_windows(windows[i:i + batch])))
            feats.append(f.numpy()); acts.append(self.net.action(f).argmax(1).numpy())
            styles.append(self.net.style(f).argmax(1).numpy())
        return np.concatenate(feats), np.concatenate(acts), np.concatenate(styles)


class WindowSampler:
    """Random 64-frame windows of a split, actions weighted by 1/sqrt(frequency) so the many short
    Bandai actions are not drowned by walks and long CMU dances."""

    def __init__(self, ds: MotionDataset, split: str, rng: np.random.Generator):
        self.ds, self.rng = ds, rng
        self.clips = np.array([i for i in ds.clips(split, WINDOW) if ds.action[i] >= 0], int)
        starts = ds.lengths[self.clips] - WINDOW + 1
        frames_per_action = np.bincount(ds.action[self.clips], weights=starts, minlength=len(ds.actions))
        w = starts / np.sqrt(frames_per_action[ds.action[self.clips]])
        self.p = w / w.sum()

    def windows(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        clips = self.rng.choice(self.clips, n, p=self.p)
        starts = self.ds.starts[clips] + (self.rng.random(n) * (self.ds.lengths[clips] - WINDOW + 1)).astype(int)
        x = self.ds.positions[starts[:, None] + np.arange(WINDOW)]
        return canonical_windows(x), self.ds.action[clips], self.ds.style[clips]


def all_windows(ds: MotionDataset, split: str, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every window of a split at a fixed stride (deterministic evaluation and FID reference)."""
    idx = [(i, s) for i in ds.clips(split, WINDOW) for s in range(0, ds.lengths[i] - WINDOW + 1, stride)]
    x = np.stack([ds.clip(i)[s:s + WINDOW] for i, s in idx])
    clips = np.array([i for i, _ in idx])
    return x, ds.action[clips], ds.style[clips]


@torch.no_grad()
def accuracy(net: Classifier, ds: MotionDataset, split: str) -> tuple[float | None, float | None]:
    """Action and style accuracy over a split's labelled windows; None where there are none."""
    if not ds.clips(split, WINDOW):
        return None, None
    x, a, s = all_windows(ds, split, 32)
    logits = [net(torch.from_numpy(canonical_windows(x[i:i + 512]))) for i in range(0, len(x), 512)]
    pa = torch.cat([l[0] for l in logits]).argmax(1).numpy()
    ps = torch.cat([l[1] for l in logits]).argmax(1).numpy()
    score = lambda pred, true: float((pred == true)[true >= 0].mean()) if (true >= 0).any() else None
    return score(pa, a), score(ps, s)


def train(ds: MotionDataset, steps: int, batch: int, seed: int, out: str) -> dict:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sampler = WindowSampler(ds, "train", rng)
    net = Classifier(len(ds.actions), len(ds.styles))
    x, _, _ = sampler.windows(4096)
    net.mean.copy_(torch.from_numpy(x.mean((0, 2))[:, None]))
    net.std.copy_(torch.from_numpy(x.std((0, 2))[:, None] + 1e-3))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    ce = nn.CrossEntropyLoss(ignore_index=-1)
    t0 = time.time()
    for step in range(1, steps + 1):
        x, a, s = sampler.windows(batch)
        la, ls = net(torch.from_numpy(x))
        loss = ce(la, torch.from_numpy(a)) + ce(ls, torch.from_numpy(s))
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        if step % 200 == 0 or step == steps:
            print(f"step {step:5d} loss {loss.item():.3f} ({time.time() - t0:.0f}s)", flush=True)
    net.eval()
    scores = {split: dict(zip(("action_accuracy", "style_accuracy"), accuracy(net, ds, split)))
              for split in ("train", "val_takes", "val_heldout")}
    with torch.no_grad():
        x, _, _ = all_windows(ds, "train", 16)
        f = torch.cat([net.features(torch.from_numpy(canonical_windows(x[i:i + 512])))
                       for i in range(0, len(x), 512)]).numpy()
    mu, sigma = feature_stats(f)
    meta = {"kind": "motion-cvae action/style classifier", "version": 1, "window": WINDOW,
            "actions": ds.actions, "styles": ds.styles, "channels": 128, "features": 64,
            "train": {"steps": steps, "batch": batch, "seed": seed, "seconds": round(time.time() - t0),
                      "fid_reference_windows": len(f)}, "scores": scores}
    tensors = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    tensors["fid_mu"] = torch.from_numpy(mu.astype(np.float32))
    tensors["fid_sigma"] = torch.from_numpy(sigma.astype(np.float32))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    save_file(tensors, out, metadata={"motion_cvae": json.dumps(meta)})
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the evaluation classifier on the train split.")
    ap.add_argument("--cache", default=None, help="dataset cache (default: ~/.cache/motion-cvae)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=DEFAULT_PATH)
    args = ap.parse_args()
    ds = MotionDataset.load(args.cache) if args.cache else MotionDataset.load()
    meta = train(ds, args.steps, args.batch, args.seed, args.out)
    print(json.dumps(meta["scores"], indent=1))
    print(f"wrote {os.path.abspath(args.out)}")


if __name__ == "__main__":
    main()
