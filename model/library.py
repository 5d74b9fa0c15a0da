"""A motion library: the recorded segment that best fits a gap, moved into place and blended so both
keys are met (motion matching). Alone it is the evaluation's `motion_matching` baseline; beside the
network (`Generator(library=...)`) each gap between two full-body keys is the average of the
network's fill and a retrieved one. The two err on different windows (training.retrieval_probe: the
per-window errors correlate 0.7-0.86), so their average is closer than either. Past the last key
(Extend, prediction) the retrieved continuation's share grows from that half to all of it over
OPEN_RAMP frames: averaging two motions out of phase would slow them, as the network's own
continuation slows, and the recorded one goes on at a recorded pace.

A gap of g frames between a start key and an end key is matched on the start pose, the start
velocity, the end pose and the root displacement, all in the frame of the start's facing and hip
position; a continuation on the start pose and velocity alone. Start frames are subsampled with
`stride`; the search is exact brute force, one matmul per block of queries. A library file is
safetensors (fp16 positions, clip lengths) plus metadata: the recorded motion it holds keeps its
licence, which the file names.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict, defaultdict

import numpy as np

from .representation import Frame
from .skeleton import INDEX, JOINTS

PELVIS = INDEX["pelvis"]
THIGHS = (INDEX["l_thigh"], INDEX["r_thigh"])
# where a release zip carries a library (scripts/build_extension.py --library); never committed
BUNDLED = os.path.join(os.path.dirname(__file__), "weights", "library.safetensors")
FORMAT = "motion-cvae-library"
VERSION = 1
WEIGHT = 0.5      # the retrieved segment's share of a gap beside the network (their plain average)
RANKS = 10        # distinct nearest segments a variation may draw on
APART = 15        # frames between the starts of two segments that count as distinct
MAX_GAP = 240     # longer gaps are left to the network alone
OPEN_RAMP = 30    # frames past the last key over which a continuation becomes all recorded motion
OPEN_CHUNK = 120  # a longer continuation chains segments, each searched from where the last one ends
SHORTLIST = 400   # nearest starts searched for RANKS distinct ones
CACHED_GAPS = 6   # end features kept for this many gap lengths (31 MB each for the train split; the
                  # start features, 60 MB, serve every gap)


class LibraryError(RuntimeError):
    """A library file that is missing, unreadable or for another skeleton; the message says which."""


def facing_frame(pose: np.ndarray, pair: tuple[int, int] = THIGHS) -> Frame:
    """Frame over the pelvis (horizontally) turned so the body faces +Z, as model/representation
    decides it; `pair` is the (left, right) joints whose span defines the facing. pose (..., J, 3)."""
    across = pose[..., pair[0], :] - pose[..., pair[1], :]
    yaw = -np.arctan2(-across[..., 2], across[..., 0])
    return Frame(pose[..., PELVIS, :] * np.array([1.0, 0.0, 1.0]), yaw)


class MotionLibrary:
    """Clips of canonical joint positions (floor at y = 0) searched for the segment that fits a gap."""

    def __init__(self, clips: list[np.ndarray], stride: int = 3, vel_weight: float = 10.0,
                 disp_weight: float = 3.0, meta: dict | None = None):
        self.positions = np.concatenate(clips) if clips else np.zeros((0, len(JOINTS), 3), np.float32)
        if self.positions.dtype not in (np.float16, np.float32):
            self.positions = self.positions.astype(np.float32)
        self.lengths = np.array([len(c) for c in clips], np.int64)
        self.clip_start = np.repeat(np.cumsum(self.lengths) - self.lengths, self.lengths)
        self.clip_end = np.repeat(np.cumsum(self.lengths), self.lengths)
        self.stride, self.vel_weight, self.disp_weight = stride, vel_weight, disp_weight
        self.meta = meta or {}
        self._start_part: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._db: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()  # gap -> _ends

    def save(self, path: str, meta: dict) -> None:
        """fp16 positions (half a millimetre at 2 m) and clip lengths; `meta` says where they came from."""
        from safetensors.numpy import save_file
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        header = {"format": FORMAT, "version": str(VERSION), "joints": json.dumps(list(JOINTS)),
                  "meta": json.dumps(meta)}
        save_file({"positions": self.positions.astype(np.float16), "lengths": self.lengths}, path, metadata=header)

    @classmethod
    def load(cls, path: str) -> "MotionLibrary":
        from safetensors import SafetensorError, safe_open
        name = os.path.basename(path)
        if not os.path.isfile(path):
            raise LibraryError(f"Motion library not found at {path}: build one with `python -m training.library`, "
                               "or clear the library path.")
        try:
            with safe_open(path, "np") as f:
                header, arrays = f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise LibraryError(f"{name}: not a readable safetensors file ({exc}).") from None
        if header.get("format") != FORMAT or header.get("version") != str(VERSION):
            raise LibraryError(f"{name} is not a motion library of version {VERSION} (a model checkpoint?): "
                               "build one with `python -m training.library`.")
        if tuple(json.loads(header["joints"])) != JOINTS or set(arrays) != {"positions", "lengths"}:
            raise LibraryError(f"{name} holds another skeleton's motion; rebuild it with this release.")
        lengths, positions = arrays["lengths"], arrays["positions"]
        if lengths.sum() != len(positions) or (lengths < 1).any():
            raise LibraryError(f"{name}: its clip lengths don't add up to its frames; the file is corrupt.")
        return cls(np.split(positions, np.cumsum(lengths)[:-1]), meta=json.loads(header.get("meta", "{}")))

    def _start_features(self, prev: np.ndarray, start: np.ndarray) -> np.ndarray:
        """(M, J, 3) each -> (M, D) float32: the start pose and velocity in the start's frame."""
        c = facing_frame(start).to_canonical(np.stack([prev, start], 1))
        m = len(c)
        return np.concatenate([c[:, 1].reshape(m, -1), self.vel_weight * (c[:, 1] - c[:, 0]).reshape(m, -1)],
                              1).astype(np.float32)

    def _end_features(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """(M, J, 3) each -> (M, D) float32: the end pose and the hips' travel in the start's frame."""
        c = facing_frame(start).to_canonical(np.stack([start, end], 1))
        return np.concatenate([c[:, 1].reshape(len(c), -1), self.disp_weight * (c[:, 1, PELVIS] - c[:, 0, PELVIS])],
                              1).astype(np.float32)

    def _chunked(self, fn, *frames: np.ndarray) -> np.ndarray:
        p = lambda i: self.positions[i].astype(np.float64)
        return np.concatenate([fn(*(p(f[s]) for f in frames)) for s in np.array_split(
            np.arange(len(frames[0])), max(1, len(frames[0]) // 20000))])

    def _starts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every start frame searched (a frame before it in its clip; every `stride`-th), its pose and
        velocity features and their squared norms: computed once, whatever the gap."""
        if self._start_part is None:
            g = np.arange(len(self.positions))
            offset = g - self.clip_start
            starts = g[(offset >= 1) & (offset % self.stride == 0)]
            feats = self._chunked(self._start_features, starts - 1, starts) if len(starts) else \
                np.zeros((0, 2 * len(JOINTS) * 3), np.float32)
            self._start_part = (starts, feats, np.einsum("md,md->m", feats, feats))
        return self._start_part

    def _ends(self, gap: int) -> tuple[np.ndarray, np.ndarray]:
        """Per start, the features of the key gap + 1 frames on and their squared norms, infinite
        where the clip ends first; kept for the CACHED_GAPS gap lengths used last."""
        if gap not in self._db:
            starts = self._starts()[0]
            ok = starts + gap + 1 < self.clip_end[starts]
            feats = self._chunked(self._end_features, starts, np.where(ok, starts + gap + 1, starts)) \
                if len(starts) else np.zeros((0, len(JOINTS) * 3 + 3), np.float32)
            self._db[gap] = (feats, np.where(ok, np.einsum("md,md->m", feats, feats), np.inf))
            if len(self._db) > CACHED_GAPS:
                self._db.popitem(last=False)
        self._db.move_to_end(gap)
        return self._db[gap]

    def distances(self, windows: np.ndarray, start: int, gap: int, block: int = 128, open_end: bool = False):
        """The database's segment starts (M,), then, block by block of windows, each window's squared
        feature distance to every segment (up to `block`, M; infinite where the segment's clip is too
        short): exact brute force, one matmul a block. `open_end`: the `gap` frames after `start`
        continue it, with no key after them."""
        starts, feats, sq = self._starts()
        w = windows.astype(np.float64)
        q = self._start_features(w[:, start - 1], w[:, start])
        if open_end:
            sq = np.where(starts + gap + 1 < self.clip_end[starts], sq, np.inf)
            end_q = end_feats = None
        else:
            end_feats, end_sq = self._ends(gap)
            sq, end_q = sq + end_sq, self._end_features(w[:, start], w[:, start + gap + 1])
        yield starts if np.isfinite(sq).any() else starts[:0]
        for i in range(0, len(q), block):
            d = sq[None] - 2.0 * q[i:i + block] @ feats.T
            yield d if end_q is None else d - 2.0 * end_q[i:i + block] @ end_feats.T

    def nearest(self, windows: np.ndarray, start: int, gap: int, k: int = 1,
                open_end: bool = False) -> np.ndarray | None:
        """(N, k) database frames where each window's k nearest segments start, each more than APART
        frames from the others (the last repeated if fewer are that far apart); None when no clip is
        long enough for the gap."""
        found = self.distances(windows, start, gap, open_end=open_end)
        starts = next(found)
        if not len(starts):
            return None
        if k == 1:
            return np.concatenate([starts[np.argmin(d, axis=1)] for d in found])[:, None]
        picks = []
        for d in found:
            short = np.argpartition(d, min(SHORTLIST, d.shape[1] - 1), axis=1)[:, :SHORTLIST]
            for row, cand in zip(d, short):
                chosen: list[int] = []
                cand = cand[np.isfinite(row[cand])]
                for at in starts[cand[np.argsort(row[cand])]]:
                    if all(abs(int(at) - c) > APART for c in chosen):
                        chosen.append(int(at))
                        if len(chosen) == k:
                            break
                picks.append(chosen + chosen[-1:] * (k - len(chosen)))
        return np.array(picks)

    def inbetween(self, windows: np.ndarray, start: int, gap: int) -> np.ndarray | None:
        """(N, T, J, 3) windows with keys at `start` and `start + gap + 1` -> (N, gap, J, 3), the
        nearest segment's fill; None when no database clip is long enough for the gap."""
        at = self.nearest(windows, start, gap)
        return None if at is None else self.paste(windows, start, gap, at[:, 0])

    def paste(self, windows: np.ndarray, start: int, gap: int, at: np.ndarray, open_end: bool = False) -> np.ndarray:
        """The database's frames at[i]..at[i] + gap + 1 moved into window i's start frame and blended
        linearly so both keys are met exactly: (N, gap, J, 3). `open_end`: the frames after at[i]
        moved there and offset to meet the start key, a continuation."""
        w = windows.astype(np.float64)
        seg = self.positions[at[:, None] + np.arange(gap + 1 + (not open_end))].astype(np.float64)
        pasted = facing_frame(w[:, start]).to_world(facing_frame(seg[:, 0]).to_canonical(seg))
        d0 = (w[:, start] - pasted[:, 0])[:, None]
        if open_end:
            return (pasted + d0)[:, 1:]
        blend = (np.arange(gap + 2) / (gap + 1))[None, :, None, None]
        d1 = (w[:, start + gap + 1] - pasted[:, -1])[:, None]
        return (pasted + (1.0 - blend) * d0 + blend * d1)[:, 1:-1]

    def blend_gaps(self, motion: np.ndarray, observed: np.ndarray, rank: int = 0, weight: float = WEIGHT,
                   spread: bool = True) -> np.ndarray:
        """motion (B, n, L, J, 3), observed (B, L, ...) its observed entries -> the same with each gap
        (frames with nothing observed) between two full-body keys moved `weight` of the way to a
        retrieved fill, and the frames after the last key, if none is observed, from `weight` of the
        way to all of it over OPEN_RAMP frames: variation i draws on the (rank + i)-th nearest
        distinct segment (modulo RANKS), searched with variation 0's velocity into the gap (a key on
        the first frame: its velocity out of the key); without `spread` every variation draws on the
        rank-th. A gap holding a partial key is left to the network, which meets it."""
        n = motion.shape[1]
        before = 2.0 * motion[:, :, :1] - motion[:, :, 1:2]  # a frame before the first, for its velocity
        out = np.concatenate([before, motion], 2).astype(np.float64)
        ranks = (rank + (np.arange(n) if spread else np.zeros(n, int))) % RANKS
        # (first key, frames, open end) -> windows
        gaps: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
        seen = observed.reshape(observed.shape[:2] + (-1,))
        length = out.shape[2]
        for b, (row, empty) in enumerate(zip(seen.all(-1), ~seen.any(-1))):
            keys = np.flatnonzero(row) + 1
            for a, e in zip(keys, list(keys[1:]) + [length]):
                open_end = bool(e == length)
                if 1 <= e - a - 1 <= (length if open_end else MAX_GAP) and empty[a:e - 1].all():
                    gaps[(int(a), int(e - a - 1), open_end)].append(b)
        for (a, g, open_end), rows in gaps.items():
            if open_end:
                self._continue(out, rows, a, g, ranks, weight)
            else:
                self._blend(out, rows, a, g, self._ranked(out, rows, a, g, ranks, False), np.full(g, weight), False)
        return out[:, :, 1:].astype(motion.dtype)

    def _ranked(self, out: np.ndarray, rows: list[int], a: int, g: int, ranks: np.ndarray, open_end: bool):
        """Per variation, where its segment starts: the ranks[i]-th nearest to variation 0's way into
        key a; None when no clip is long enough."""
        at = self.nearest(out[rows, 0], a, g, int(ranks.max()) + 1, open_end)
        return None if at is None else [at[:, r] for r in ranks]

    def _blend(self, out: np.ndarray, rows: list[int], a: int, g: int, picks, share: np.ndarray,
               open_end: bool) -> None:
        """The g frames after key a of `out`'s `rows`, in place, moved `share` (g,) of the way to the
        segment each variation picked (nothing when `picks` is None)."""
        for i, pick in enumerate(picks or []):
            now = out[rows, i, a + 1:a + 1 + g]
            fill = self.paste(out[rows, i], a, g, pick, open_end)
            out[rows, i, a + 1:a + 1 + g] = now + share[:, None, None] * (fill - now)

    def _continue(self, out: np.ndarray, rows: list[int], a: int, g: int, ranks: np.ndarray, weight: float) -> None:
        """The g frames after key a of `out`'s `rows`, in place: from `weight` of the way to the
        recorded continuation to all of it over OPEN_RAMP frames, in chunks of OPEN_CHUNK frames,
        each after the first searched (per variation) from where the motion now is."""
        share = weight + (1.0 - weight) * np.minimum(1.0, np.arange(1, g + 1) / OPEN_RAMP)
        for start in range(a, a + g, OPEN_CHUNK):
            h = min(OPEN_CHUNK, a + g - start)
            if start == a:
                picks = self._ranked(out, rows, start, h, ranks, True)
            else:  # each variation goes on from where it now is
                found = [self.nearest(out[rows, i], start, h, open_end=True) for i in range(out.shape[1])]
                picks = None if found[0] is None else [f[:, 0] for f in found]
            if picks is None:
                return  # no recorded clip is this long: the rest stays the network's
            self._blend(out, rows, start, h, picks, share[start - a:start - a + h], True)
