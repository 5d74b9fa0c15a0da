"""Motion metrics, pure numpy, in the units of their inputs (the harness passes metres, reports mm).

Kept free of torch and of the data pipeline so each definition can be checked on hand-made cases
(tests/test_metrics.py) and so baselines and the model are scored by exactly the same code.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean per-joint position error: mean Euclidean distance over every (..., frame, joint)."""
    return float(np.linalg.norm(np.asarray(pred, np.float64) - gt, axis=-1).mean())


def npss(gt: np.ndarray, pred: np.ndarray) -> float:
    """Normalised power spectrum similarity (Gopalakrishnan et al. 2019). Shapes (N, T, D).

    Per sequence and dimension: the power spectrum |FFT|^2 over time, normalised to sum 1; the earth
    mover's distance between the two normalised spectra (L1 distance of their cumulative sums); the
    average of those distances weighted by the ground truth's total power in that dimension.
    Measures whether a prediction moves at the right frequencies, not where it is.
    """
    gt = np.asarray(gt, np.float64)
    pred = np.asarray(pred, np.float64)
    p_gt = np.abs(np.fft.fft(gt, axis=1)) ** 2
    p_pred = np.abs(np.fft.fft(pred, axis=1)) ** 2
    tot_gt, tot_pred = p_gt.sum(1, keepdims=True), p_pred.sum(1, keepdims=True)
    n_gt = np.divide(p_gt, tot_gt, out=np.zeros_like(p_gt), where=tot_gt > 0)
    n_pred = np.divide(p_pred, tot_pred, out=np.zeros_like(p_pred), where=tot_pred > 0)
    emd = np.abs(np.cumsum(n_gt, 1) - np.cumsum(n_pred, 1)).sum(1)
    weights = tot_gt[:, 0]
    if weights.sum() <= 0:
        return 0.0
    return float(np.average(emd, weights=weights))


def foot_skate(feet: np.ndarray, ground: np.ndarray, threshold: float = 0.025) -> float:
    """Mean horizontal slide per frame of foot joints while they are on the ground.

    feet (..., T, K, 3) Y-up positions of the K foot joints; ground (..., K) each joint's own resting
    height (the harness uses the joint's 5th-percentile height in the ground-truth clip, because an
    ankle rests ~10 cm higher than a toe). A joint is in contact over a step t -> t+1 when its height
    is below ground + threshold at both frames; the metric is the mean horizontal (XZ) displacement
    over those contact steps. NaN when no joint is ever in contact. 2.5 cm, not 5: at 5 cm the low
    part of every swing counts as contact and real walks "skate" 6-20 mm per frame.
    """
    feet = np.asarray(feet, np.float64)
    low = feet[..., 1] < np.asarray(ground)[..., None, :] + threshold
    contact = low[..., 1:, :] & low[..., :-1, :]
    step = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=-3), axis=-1)
    n = contact.sum()
    return float((step * contact).sum() / n) if n else float("nan")


def apd(samples: np.ndarray) -> float:
    """Average pairwise distance of n samples (n, ..., J, 3): the mean per-joint distance (as in MPJPE)
    between every pair of distinct samples. 0 when all samples agree; needs n >= 2."""
    s = np.asarray(samples, np.float64)
    n = s.shape[0]
    if n < 2:
        raise ValueError("APD needs at least two samples")
    total = sum(np.linalg.norm(s[i] - s[j], axis=-1).mean() for i in range(n) for j in range(i + 1, n))
    return float(total / (n * (n - 1) / 2))


def acceleration(positions: np.ndarray, frames: np.ndarray | None = None) -> float:
    """Mean joint acceleration |x[t+1] - 2 x[t] + x[t-1]| (units per frame squared) of (..., T, J, 3)
    at `frames` (indices 1..T-2; all of them when None): a fill that kinks at its keys, or jolts
    between them, shows there as spikes well above captured motion's level."""
    p = np.asarray(positions, np.float64)
    acc = np.linalg.norm(p[..., 2:, :, :] - 2.0 * p[..., 1:-1, :, :] + p[..., :-2, :, :], axis=-1)
    at = acc if frames is None else np.take(acc, np.asarray(frames) - 1, axis=-2)
    return float(at.mean())


def body_speed(positions: np.ndarray, fps: float, root: int = 0) -> float:
    """Mean speed of the joints relative to the root (..., T, J, 3) -> units per second: whether a
    body moves, which a travelling root with a frozen pose (generation's failure) hides from FID."""
    p = np.asarray(positions, np.float64)
    rel = np.delete(p - p[..., root:root + 1, :], root, axis=-2)
    return float(np.linalg.norm(np.diff(rel, axis=-3), axis=-1).mean() * fps)


def ground_speed(positions: np.ndarray, fps: float, root: int = 0, lag: float = 1.0) -> float:
    """Mean horizontal speed of the root (..., T, J, 3), y up, over steps of `lag` seconds -> units
    per second: whether a walk or a run covers ground (a body swinging its limbs on the spot does
    not); a second is about a stride, over which the pelvis's sway from side to side cancels."""
    p = np.asarray(positions, np.float64)[..., root, :][..., [0, 2]]
    k = max(1, int(round(lag * fps)))
    return float(np.linalg.norm(p[..., k:, :] - p[..., :-k, :], axis=-1).mean() * fps / k)


def backward_share(windows: np.ndarray, left: int, right: int, root: int = 0, min_travel: float = 0.3) -> float | None:
    """Of the windows (N, T, J, 3), y up, whose root ends at least `min_travel` from where it began,
    the share that went backwards: their travel against the way the body faced at the first frame
    (across the hips, left minus right, crossed with up). Real walks and runs: none; generated ones
    went backwards about as often as forwards while the network could not tell a window's start from
    its end (model.representation: the travelling prior). None when no window travels."""
    w = np.asarray(windows, np.float64)
    across = w[:, 0, left, [0, 2]] - w[:, 0, right, [0, 2]]
    forward = np.stack([-across[:, 1], across[:, 0]], -1)
    travel = w[:, -1, root, [0, 2]] - w[:, 0, root, [0, 2]]
    moving = np.linalg.norm(travel, axis=-1) >= min_travel
    if not moving.any():
        return None
    return float(((travel * forward).sum(-1)[moving] < 0).mean())


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features, for the Frechet distance."""
    f = np.asarray(features, np.float64)
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def fid(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between two Gaussians: |mu1-mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))."""
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # near-singular product: regularise as the usual FID code does
        eps = 1e-6 * np.eye(len(mu1))
        covmean = linalg.sqrtm((sigma1 + eps) @ (sigma2 + eps))
    covmean = np.real(covmean)
    diff = np.asarray(mu1) - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
