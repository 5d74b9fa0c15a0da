"""A body against the skeletons the model was trained on: a rig of any size and proportions is put
at those of the one it is most like before the network sees it (model.generator: each bone observed
whole keeps its direction and takes the skeleton's length, the rest is scaled as the legs), and the
result is put back at the body's own. On the demo's Mixamo-named rig (upper arms 2.8x Bandai's,
hips 1.6x), one key in 20 frames: 67.7 mm against 104.2 scaled as a whole (linear 113.3).

The training data holds exactly two skeletons (every Bandai clip one, every CMU clip another, 15%
larger), and the network learned their sizes: on one held-out walk with keys every 20 frames, the
same motion 5% larger came out at 96 mm instead of 67, 20% larger at 210 (linear: 104 x the size);
on 496 held-out windows at 1.25x, 1.93x linear's error as given, 0.71x scaled (training.bench_sizes).
numpy only: the add-on's runtime without torch shares it.
"""
from __future__ import annotations

import warnings

import numpy as np

from .skeleton import INDEX, PARENTS

ROOT = PARENTS.index(-1)
CHILDREN = np.array([j for j, p in enumerate(PARENTS) if p >= 0])  # parents before children
BONE_PARENTS = np.array([PARENTS[j] for j in CHILDREN])
# hip to knee and knee to ankle: where rigs agree on the joints (a shoulder or a spine joint sits
# elsewhere in every convention: the demo's Mixamo-named rig has upper arms 2.8x Bandai's), and
# what sets the stride
LEGS = np.isin(CHILDREN, [INDEX[n] for n in ("l_shin", "l_foot", "r_shin", "r_foot")])


def bone_lengths(positions: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(..., T, J, 3) positions -> (..., bones) median length of each bone over the frames where both
    of its ends are observed on every axis (NaN for a bone never observed so)."""
    lengths = np.linalg.norm(positions[..., CHILDREN, :] - positions[..., BONE_PARENTS, :], axis=-1)
    if mask is not None:
        seen = mask.all(-1)
        lengths = np.where(seen[..., CHILDREN] & seen[..., BONE_PARENTS], lengths, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: that bone is never observed
        return np.nanmedian(lengths, axis=-2)


def distinct_skeletons(clips: list[np.ndarray], tolerance: float = 0.01) -> list[list[float]]:
    """The training clips' skeletons (bone lengths, metres), one per group whose total lengths are
    within `tolerance` of each other: what a checkpoint records as the sizes it knows."""
    out: list[np.ndarray] = []
    for clip in clips:
        bones = bone_lengths(clip)
        if not any(abs(np.log(bones.sum() / known.sum())) < tolerance for known in out):
            out.append(bones)
    return [np.round(b, 5).tolist() for b in sorted(out, key=np.sum)]


def body_fit(observed: np.ndarray, mask: np.ndarray, skeletons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(..., T, J, 3) observed positions and mask -> how the body maps onto the training skeleton it
    is most like: `ratio` (...,), its leg length over that skeleton's, and `bone_scale` (..., bones),
    each bone's length over the skeleton's (`ratio` for a bone never observed whole). The ratio is 1
    where no leg bone is observed (generation, lifting's side view, arm-only keys) or no skeleton is
    known. "Most like" is by proportions: each observed bone's length over the skeleton's, the size
    taken out (mean |log| of what is left, by bone length). By size alone, Bandai motion 10% larger
    went to the CMU skeleton (15% larger, collars 1.7x as long) and came out at 1.3x linear's error
    instead of 0.71x."""
    lengths = bone_lengths(observed, mask)                                # (..., bones)
    seen = np.isfinite(lengths) & (np.nan_to_num(lengths) > 1e-3)
    legs = seen & LEGS
    if len(skeletons) == 0:
        return np.ones(lengths.shape[:-1]), np.ones(lengths.shape)
    own = np.where(seen, lengths, 1.0)[..., None, :]                     # (..., 1, bones)
    with np.errstate(divide="ignore", invalid="ignore"):
        def ratio(use):                                                   # (..., skeletons)
            weight = np.where(use[..., None, :], skeletons, 0.0)
            return (own * weight / skeletons).sum(-1) / weight.sum(-1), weight
        size, weight = ratio(seen)
        mismatch = (np.abs(np.log(own / (size[..., None] * skeletons))) * weight).sum(-1) / weight.sum(-1)
        leg = ratio(legs)[0]
    best = np.nan_to_num(mismatch, nan=np.inf).argmin(-1)[..., None]
    nearest = np.take_along_axis(leg, best, -1)[..., 0]
    size = np.where(legs.any(-1) & np.isfinite(nearest) & (nearest > 0), nearest, 1.0)
    skeleton = skeletons[best[..., 0]]                                   # (..., bones)
    return size, np.where(seen, own[..., 0, :] / skeleton, size[..., None])


def to_skeleton(positions: np.ndarray, mask: np.ndarray, ratio: np.ndarray, bone_scale: np.ndarray) -> np.ndarray:
    """(..., T, J, 3) -> the body at the skeleton's proportions (what the network saw in training): a
    bone observed whole on a frame keeps its direction and takes the skeleton's length, the rest is
    scaled by 1 / ratio (the pelvis's path too: the legs set the stride)."""
    s = np.asarray(bone_scale)
    out = positions / np.asarray(ratio)[..., None, None, None]
    seen = np.asarray(mask).all(-1)                                      # (..., T, J)
    for b, (j, p) in enumerate(zip(CHILDREN, BONE_PARENTS)):             # parents first
        whole = (seen[..., j] & seen[..., p])[..., None]
        moved = out[..., p, :] + (positions[..., j, :] - positions[..., p, :]) / s[..., b, None, None]
        out[..., j, :] = np.where(whole, moved, out[..., j, :])
    return out


def from_skeleton(out: np.ndarray, ratio: np.ndarray, bone_scale: np.ndarray) -> np.ndarray:
    """The inverse for a whole output (..., T, J, 3): the pelvis's path scaled back by the ratio, each
    bone its direction at the body's own length. With every bone scaled as the legs it is a uniform
    scale; where the body is the skeleton it changes nothing."""
    s = np.asarray(bone_scale)
    res = np.empty_like(out)
    res[..., ROOT, :] = out[..., ROOT, :] * np.asarray(ratio)[..., None, None]
    for b, (j, p) in enumerate(zip(CHILDREN, BONE_PARENTS)):
        res[..., j, :] = res[..., p, :] + (out[..., j, :] - out[..., p, :]) * s[..., b, None, None]
    return res


def rigid_bones(out: np.ndarray, observed: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Where a joint and its parent are observed on two axes and the child's third is hidden (an
    orthographic view: lifting), the hidden coordinate is set so that the bone keeps one length over
    the motion, on the side the network put it: |d| = sqrt(L^2 - d_seen^2) (Taylor, CVPR 2000). The
    network's bones stretch from frame to frame, and in depth a few cm of stretch is the whole error.
    L is the bone's length observed whole if it ever is, else the longer of the output's median
    length and the 95th percentile of what the view shows of it (a lower bound). Parents first;
    (..., T, J, 3) arrays, `out` holding the observed entries."""
    mask = np.broadcast_to(mask, out.shape)
    single = (~mask).sum(-1) == 1                                        # (..., T, J)
    if not single.any():  # whole joints observed or hidden (every task but lifting): nothing to fix
        return out
    res = out.copy()
    hidden_axis = (~mask).argmax(-1)
    whole = bone_lengths(observed, mask)                                 # (..., bones), NaN if never whole
    for b, (j, p) in enumerate(zip(CHILDREN, BONE_PARENTS)):
        axis = hidden_axis[..., j]
        seen = (np.arange(3) != axis[..., None]) & mask[..., p, :]       # (..., T, 3): the other two axes
        fix = single[..., j] & (seen.sum(-1) == 2)
        if not fix.any():
            continue
        d = out[..., j, :] - out[..., p, :]                               # the network's bone
        d_seen = np.sqrt(np.where(seen, d ** 2, 0.0).sum(-1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a window with no frame to fix
            shown = np.nanpercentile(np.where(fix, d_seen, np.nan), 95, axis=-1)
        length = np.median(np.linalg.norm(d, axis=-1), -1)
        length = np.where(np.isfinite(whole[..., b]), whole[..., b], np.fmax(length, shown))[..., None]
        along = np.take_along_axis(d, axis[..., None], -1)[..., 0]
        depth = np.where(along < 0, -1.0, 1.0) * np.sqrt(np.maximum(length ** 2 - d_seen ** 2, 0.0))
        parent = np.take_along_axis(res[..., p, :], axis[..., None], -1)[..., 0]
        fixed = res[..., j, :].copy()
        np.put_along_axis(fixed, axis[..., None], (parent + depth)[..., None], -1)
        res[..., j, :] = np.where(fix[..., None], fixed, res[..., j, :])
    return res
