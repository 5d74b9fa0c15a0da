"""The one generator API: the add-on, the evaluation, the demo and the benchmarks all call this.

    gen = Generator.load(path=None, device="auto")
    motion = gen.sample(observed, mask, action="walk", style="tired", n=4, seed=0, temperature=1.0)

`observed` holds world positions (L, J, 3) in metres, Y up, 30 fps; `mask` says which entries are
observed ((L,), (L, J) or (L, J, 3)); the result is (n, L, J, 3) with every observed entry exactly as
given. Windows longer than the model's T go by overlapping windows whose first frames are the
previous window's output; shorter ones are padded with hidden frames and cropped. A body is sampled
at the proportions of the training skeleton it is most like (model.body_size) and put back, and
feet that bear weight are held still (model.feet; `plant_feet=False` leaves them as the network made them).
With a motion library (`Generator.load(..., library=PATH)`, model.library), each gap between two
full-body keys is the average of the network's fill and the nearest recorded segment's, and past
the last key the recorded continuation takes over within a second (`retrieve=False` leaves the
network's alone).
`sample_windows` runs a batch of such short windows, each with its own mask, in one forward.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Protocol

import numpy as np

from . import checkpoint
from .body_size import body_fit, from_skeleton, rigid_bones, to_skeleton
from .feet import plant_feet as planted
from .keys import keep_key_velocities, smooth_hidden
from .library import MotionLibrary
from .representation import (Stats, Window, facing_unobserved, finish, full_mask, network_input, prepare,
                             residual_to_features)
from .skeleton import JOINTS

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(__file__), "weights", "motion_cvae.safetensors")
ANY = "any"
CONTEXT = 16     # frames of a window's own output that constrain the next window
LOOKAHEAD = 32   # frames generated past a window's committed part, so it sees what comes next
MAX_TEMPERATURE = 4.0  # prior noise beyond ~4 sigma is nothing the decoder saw in training
# Motion from labels alone is cut from inside a longer window, this many frames from each end: with
# nothing observed a window's ends move least (joints' speed about the pelvis in its first and last
# 16 frames 0.19 m/s, 0.27 in the middle, real motion 0.30), and the judge read their style less.
LABEL_MARGIN = 32


class Cancelled(Exception):
    """Raised when a progress callback returns False."""


class DeviceError(RuntimeError):
    """The requested device isn't usable here (a user setting, not a damaged checkpoint)."""


class Backend(Protocol):
    device: str

    def run(self, inputs: np.ndarray, action: np.ndarray, style: np.ndarray, noise: np.ndarray) -> np.ndarray:
        """(B, 3C, T) inputs, (B,) label ids, (B, Z, T/8) noise -> (B, C, T) residual."""


@contextlib.contextmanager
def _skip_init(torch):
    """Build modules without their random init: the checkpoint overwrites every weight, and the
    orthogonal init's QR decompositions were ~80% of Generator.load (seconds with busy threads)."""
    init = torch.nn.init
    names = ("orthogonal_", "normal_", "uniform_", "zeros_", "kaiming_uniform_")
    saved = {name: getattr(init, name) for name in names}
    for name in names:
        setattr(init, name, lambda tensor, *args, **kwargs: tensor)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(init, name, fn)


def generator_state(tensors: dict[str, np.ndarray]) -> dict:
    """An export's generator weights as float32 torch tensors, keyed as the (spectral norm folded)
    CVAE's state dict; torch widens fp16 several times faster than numpy's astype."""
    import torch
    return {k[len("generator."):]: torch.from_numpy(v).float() for k, v in tensors.items() if k.startswith("generator.")}


class TorchBackend:
    """The CVAE's inference path in PyTorch (spectral norm already folded into the weights)."""

    def __init__(self, tensors: dict[str, np.ndarray], config: dict, device: str = "auto"):
        import torch
        from .network import CVAE, ModelConfig

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but this PyTorch has no usable CUDA device; choose CPU or Auto.")
        self.torch, self.device = torch, device
        with _skip_init(torch):
            self.net = CVAE(ModelConfig(**{**config, "spectral_norm": False}))
        self.net.load_state_dict(generator_state(tensors))
        self.net.eval().to(device)

    def run(self, inputs, action, style, noise):
        t = self.torch
        with t.inference_mode():
            out = self.net.sample(t.from_numpy(inputs).to(self.device), t.from_numpy(action).to(self.device),
                                  t.from_numpy(style).to(self.device),
                                  t.from_numpy(noise.astype(np.float32)).to(self.device))
        return out.float().cpu().numpy()


def sample_window(run: Callable[..., np.ndarray], observed: np.ndarray, mask: np.ndarray, stats: Stats,
                  ids: tuple[np.ndarray, np.ndarray], noise: np.ndarray) -> tuple[np.ndarray, Window]:
    """World window (B, T, J, 3) + mask -> world output through `run` (a Backend's run, or training's
    network during validation), and the prepared Window (its prior is the linear baseline)."""
    win = prepare(observed, mask, stats)
    residual = run(network_input(win.inputs, win.mask, win.prior, stats), ids[0], ids[1], noise)
    return facing_unobserved(finish(residual_to_features(residual, win), win, observed, mask), win.mask), win


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _check_temperature(temperature: float) -> None:
    if not (np.isfinite(temperature) and 0.0 <= temperature <= MAX_TEMPERATURE):
        raise ValueError(f"temperature must be between 0 and {MAX_TEMPERATURE:g}; got {temperature}")


class Generator:
    """Loads a checkpoint and samples motion for any task mask."""

    def __init__(self, backend: Backend, meta: dict, stats: Stats, library: MotionLibrary | None = None):
        self.backend, self.meta, self.stats, self.library = backend, meta, stats, library
        self.config = meta["config"]
        self.window: int = self.config["window"]
        self.fps: float = meta.get("fps", 30.0)
        self.actions: list[str] = meta["actions"]  # the vocabularies: label ids are positions in them
        self.styles: list[str] = meta["styles"]
        self.trained_actions, self.trained_styles = checkpoint.trained_labels(meta)  # what a user may ask for
        # the training skeletons' bone lengths: a body is sampled at the nearest one's proportions (body_size)
        self.skeletons = np.asarray(meta.get("skeletons", []), np.float64).reshape(-1, len(JOINTS) - 1)
        if tuple(meta["joints"]) != JOINTS:
            raise checkpoint.CheckpointError("The checkpoint was trained on another skeleton; it can't be used here.")

    @classmethod
    def load(cls, path: str | None = None, device: str = "auto", backend: str = "auto",
             library: str | None = None) -> "Generator":
        """`backend`: 'torch', 'numpy', or 'auto' (torch when importable); `library`: a motion
        library file (training.library) whose segments fills draw on, or None for the network alone."""
        tensors, meta = checkpoint.load(path or DEFAULT_WEIGHTS)
        if backend == "auto":
            backend = "torch" if torch_available() else "numpy"
        if backend == "torch":
            runner: Backend = TorchBackend(tensors, meta["config"], device)
        else:
            from .numpy_runtime import NumpyBackend
            runner = NumpyBackend(tensors, meta["config"])
        return cls(runner, meta, Stats.from_arrays(tensors, meta["config"]),
                   MotionLibrary.load(library) if library else None)

    @property
    def device(self) -> str:
        return self.backend.device

    def label_id(self, value: str | None, vocab: list[str], trained: list[str], kind: str) -> int:
        if value in (None, "", ANY):
            return 0
        if value not in trained:
            known = f"this model knows: {', '.join(trained)}"
            raise ValueError(f"The model never learned the {kind} {value!r} (no training clip has it); {known}"
                             if value in vocab else f"Unknown {kind} {value!r}; {known}")
        return vocab.index(value) + 1

    def _window(self, observed: np.ndarray, mask: np.ndarray, ids: tuple[np.ndarray, np.ndarray],
                noise: np.ndarray) -> np.ndarray:
        """One T-frame window for a batch: (B, T, J, 3) world -> (B, T, J, 3) world."""
        return sample_window(self.backend.run, observed, mask, self.stats, ids, noise)[0]

    def _ids(self, action, style, count: int, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Label ids for `count` windows x `n` variations; a label is one value or one per window."""
        def ids(value, vocab, trained, kind):
            values = [value] * count if value is None or isinstance(value, str) else list(value)
            if len(values) != count:
                raise ValueError(f"{len(values)} {kind} labels for {count} windows")
            return np.repeat(np.array([self.label_id(v, vocab, trained, kind) for v in values], np.int64), n)
        return (ids(action, self.actions, self.trained_actions, "action"),
                ids(style, self.styles, self.trained_styles, "style"))

    def _noise(self, seed, count: int, n: int) -> np.ndarray:
        """(count * n, Z, T/8) latent noise for one window position: one generator for the batch
        (an int or None), or one seed per window, which then gets exactly the noise `sample` would
        draw for its first window with that seed."""
        shape = (self.config["z"], self.window // 8)
        if seed is None or np.ndim(seed) == 0:
            return np.random.default_rng(seed).standard_normal((count * n,) + shape)
        if len(seed) != count:
            raise ValueError(f"{len(seed)} seeds for {count} windows")
        return np.concatenate([np.random.default_rng(int(s)).standard_normal((n,) + shape) for s in seed])

    @staticmethod
    def _checked(observed: np.ndarray, mask: np.ndarray, batched: bool) -> tuple[np.ndarray, np.ndarray]:
        """float32 positions ([B,] L, J, 3) and their full mask, with observed entries finite."""
        observed = np.asarray(observed, np.float32)
        if observed.ndim != 3 + batched or observed.shape[-2:] != (len(JOINTS), 3):
            lead = "windows, " if batched else ""
            raise ValueError(f"observed must be ({lead}frames, {len(JOINTS)}, 3); got {observed.shape}")
        mask = np.broadcast_to(full_mask(mask, observed.shape[-3]), observed.shape)
        if not np.isfinite(observed[mask]).all():
            raise ValueError("observed positions contain NaN or infinite values")
        return observed, mask

    @staticmethod
    def _padded(observed: np.ndarray, mask: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
        """The first `total` frames (..., total, J, 3), hidden entries zeroed, padded with hidden frames."""
        k = min(total, observed.shape[-3])
        obs = np.zeros(observed.shape[:-3] + (total,) + observed.shape[-2:], np.float32)
        msk = np.zeros(obs.shape, bool)
        obs[..., :k, :, :] = np.where(mask[..., :k, :, :], observed[..., :k, :, :], 0.0)
        msk[..., :k, :, :] = mask[..., :k, :, :]
        return obs, msk

    @staticmethod
    def _retrieval(retrieve: bool, rank: int, temperature: float) -> tuple[int, bool] | None:
        """(rank, spread) for MotionLibrary.blend_gaps, None for the network alone: at temperature 0,
        the most likely motion, every variation of every seed draws on the nearest segment."""
        return None if not retrieve else (rank, True) if temperature > 0 else (0, False)

    def _restored(self, out: np.ndarray, observed: np.ndarray, mask: np.ndarray, fit, plant_feet: bool,
                  retrieval: tuple[int, bool] | None) -> np.ndarray:
        """Output made at the training skeleton's proportions, its jolts between keys smoothed out
        (smooth_hidden), its gaps averaged with the library's fills unless `retrieval` is None (recorded
        motion, not smoothed; retrieved at those proportions: the library's bodies), back at the
        body's own, observed entries exact, keys passed at the velocity their observed neighbours or
        the fill on both sides give them (keep_key_velocities), bones seen from one side kept rigid
        (body_size.rigid_bones) and, with `plant_feet`, feet held still while they bear weight."""
        out = smooth_hidden(out, mask)
        if self.library is not None and retrieval is not None:
            length = out.shape[-3]
            seen = mask.reshape((-1, length) + mask.shape[-2:])
            out = self.library.blend_gaps(out.reshape((len(seen), -1) + out.shape[-3:]), seen, retrieval[0],
                                          spread=retrieval[1]).reshape(out.shape)
        pasted = np.where(mask, observed, from_skeleton(out, *fit))
        out = rigid_bones(keep_key_velocities(pasted, observed, mask), observed, mask)
        return (planted(out, mask, self.fps, fit[0]) if plant_feet else out).astype(np.float32)

    @staticmethod
    def _cropped(out: np.ndarray, lead: np.ndarray, length: int, masks: np.ndarray) -> np.ndarray:
        """Frames lead[i]:lead[i] + length of each output (B, total, J, 3); a label-only one (its
        `masks` entry all hidden) put back over the origin facing +Z, where its crop now starts."""
        if not lead.any():
            return out[:, :length]
        return facing_unobserved(np.stack([o[k:k + length] for o, k in zip(out, lead)]), masks)

    def sample(self, observed: np.ndarray, mask: np.ndarray, action: str | None = None,
               style: str | None = None, n: int = 1, seed: int | None = None, length: int | None = None,
               progress: Callable[[float], bool] | None = None, temperature: float = 1.0,
               plant_feet: bool = True, retrieve: bool = True, rank: int = 0) -> np.ndarray:
        """(n, length, J, 3) world positions, observed entries exact. `temperature` scales the prior's
        noise: 0 is its mean (the most likely motion, the same for every seed), 1 the model's own
        spread, more gives variations that differ more and keep less close to the data. `plant_feet`
        holds each foot still while it bears weight (model.feet), as animators clean mocap up.
        `retrieve` averages each gap between full-body keys with a library segment, and continues
        past the last key with one, when the generator has a library: variation i with the
        (rank + i)-th nearest (MotionLibrary.blend_gaps); at temperature 0 every one with the nearest."""
        observed, mask = self._checked(observed, mask, batched=False)
        length = int(length or observed.shape[0])
        if length < 1 or n < 1:
            raise ValueError("length and n must be at least 1")
        _check_temperature(temperature)
        T = self.window
        margin = 0 if mask[:length].any() else LABEL_MARGIN
        total = max(length + 2 * margin, T)
        fit = body_fit(observed[:length], mask[:length], self.skeletons)  # the body of the frames kept
        given, msk = self._padded(observed[:length], mask[:length], total)
        obs = to_skeleton(given, msk, *fit).astype(np.float32)
        ids = self._ids(action, style, 1, n)
        rng = np.random.default_rng(seed)
        z_shape = (n, self.config["z"], T // 8)
        out = np.broadcast_to(obs, (n,) + obs.shape).copy()
        known = np.broadcast_to(msk, (n,) + msk.shape).copy()
        start = 0
        while True:
            end = start + T
            noise = temperature * rng.standard_normal(z_shape)
            result = self._window(out[:, start:end], known[:, start:end], ids, noise)
            commit = T if end >= total else T - LOOKAHEAD
            out[:, start:start + commit] = result[:, :commit]
            known[:, start:start + commit] = True
            if progress is not None and progress(min(1.0, (start + commit) / total)) is False:
                raise Cancelled("generation cancelled")
            if end >= total:
                break
            start = min(start + commit - CONTEXT, total - T)
        out = self._cropped(out, np.full(n, margin), length, np.broadcast_to(msk[:length], (n,) + msk[:length].shape))
        return self._restored(out, given[:length], msk[:length], fit, plant_feet,
                              self._retrieval(retrieve, rank, temperature))

    def sample_windows(self, observed: np.ndarray, mask: np.ndarray, action=None, style=None, n: int = 1,
                       seed=None, temperature: float = 1.0, plant_feet: bool = True, retrieve: bool = True,
                       rank: int = 0) -> np.ndarray:
        """Many independent short windows in one forward (evaluation runs thousands; one `sample`
        call each was most of its time): observed (B, L, J, 3) with L <= window, mask broadcast to it
        -> (B, n, L, J, 3), observed entries exact. `action`/`style`: one label or one per window;
        `seed`: an int, or one per window to match `sample(observed[b], mask[b], n=n, seed=seed[b])`
        (label-only windows: up to window - 2 * LABEL_MARGIN frames; longer ones keep smaller margins)."""
        observed, mask = self._checked(observed, mask, batched=True)
        _check_temperature(temperature)
        if not 1 <= observed.shape[1] <= self.window or n < 1:
            raise ValueError(f"windows must be 1 to {self.window} frames and n at least 1; "
                             f"got {observed.shape[1]} frames, n={n}")
        B, L = observed.shape[:2]
        ratio, bone_scale = body_fit(observed, mask, self.skeletons)
        obs, msk = self._padded(to_skeleton(observed, mask, ratio, bone_scale), mask, self.window)
        out = self._window(np.repeat(obs, n, 0), np.repeat(msk, n, 0), self._ids(action, style, B, n),
                           temperature * self._noise(seed, B, n))
        empty = ~mask.reshape(B, -1).any(1)
        lead = np.repeat(np.where(empty, min(LABEL_MARGIN, (self.window - L) // 2), 0), n)
        out = self._cropped(out, lead, L, np.repeat(mask, n, 0)).reshape((B, n, L) + obs.shape[2:])
        return self._restored(out, observed[:, None], mask[:, None], (ratio[:, None], bone_scale[:, None]),
                              plant_feet, self._retrieval(retrieve, rank, temperature))
