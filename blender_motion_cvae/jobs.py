"""Inference off the main thread: numpy arrays in, numpy arrays out, never a Blender object.

The operators read the rig, hand a Request to a Job, and write the result back themselves; a Job
runs synchronously (scripts) or on a thread polled by a modal timer (UI), and its progress callback
is where Esc turns into the generator's Cancelled.
"""
from __future__ import annotations

import importlib.util
import json
import os
import threading
from dataclasses import dataclass

import numpy as np

RUNTIME = ("torch", "safetensors")
_generators: dict[tuple, object] = {}
_libraries: dict[str, tuple[float, object]] = {}
_vocab: dict[str, tuple[float, list[str], list[str]]] = {}


class ModelError(Exception):
    """The model can't run (missing runtime, weights, device, label); the message says what to do."""


class Cancelled(Exception):
    """The user pressed Esc; nothing was written."""


def missing_runtime() -> list[str]:
    """Python packages the model needs that this Blender can't import."""
    return [name for name in RUNTIME if importlib.util.find_spec(name) is None]


def _runtime_message(missing: list[str]) -> str:
    return (f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not installed, and the model "
            "needs it: open Edit > Preferences > Add-ons > Motion CVAE and click Install PyTorch "
            "(or press it in the Motion panel), then try again.")


def weights_path(override: str = "") -> str:
    if override:
        return os.path.abspath(override)
    from ..model.generator import DEFAULT_WEIGHTS
    return DEFAULT_WEIGHTS


def vocabularies(override: str = "") -> tuple[list[str], list[str]]:
    """(actions, styles) the model learned (checkpoint.trained_labels), from the checkpoint's JSON
    sidecar without loading the model; empty when the runtime or the file is missing."""
    if missing_runtime():
        return [], []
    from ..model.checkpoint import sidecar, trained_labels
    path = sidecar(weights_path(override))
    try:
        stamp = os.path.getmtime(path)
        if path not in _vocab or _vocab[path][0] != stamp:
            with open(path) as f:
                meta = json.load(f)
            _vocab[path] = (stamp, *trained_labels(meta))
    except (OSError, ValueError, KeyError):
        return [], []
    return _vocab[path][1], _vocab[path][2]


def generator(device: str = "auto", override: str = ""):
    """The loaded Generator for these weights and device, cached: loading costs seconds, a fill doesn't."""
    missing = missing_runtime()
    if missing:
        raise ModelError(_runtime_message(missing))
    from ..model.checkpoint import CheckpointError
    from ..model.generator import DeviceError, Generator
    path = weights_path(override)
    try:
        key = (path, os.path.getmtime(path), device)
    except OSError:
        raise ModelError(f"Model weights not found at {path}: reinstall the extension, or fix the weights "
                         "path in the add-on preferences.") from None
    if key not in _generators:
        _limit_threads()
        try:
            _generators[key] = Generator.load(path, device=device, backend="torch")
        except (CheckpointError, DeviceError) as exc:
            raise ModelError(str(exc)) from None
        except Exception as exc:  # anything else a damaged file can raise inside the loader
            detail = " ".join(str(exc).split())  # torch's reasons span lines; the status bar shows one
            raise ModelError(f"Model weights at {path} could not be loaded ({type(exc).__name__}: "
                             f"{detail[:200]}); the file is corrupt or incompatible: reinstall the extension.") from None
    return _generators[key]


def library_path(override: str = "") -> str:
    """The preferences' motion library, else the one a release zip bundles, else none ("")."""
    if override:
        return os.path.abspath(override)
    from ..model.library import BUNDLED
    return BUNDLED if os.path.isfile(BUNDLED) else ""


def with_library(gen, path: str):
    """The generator with the motion library at `path` (cached: reading one costs a second), or
    without one for an empty path."""
    import copy
    if not path:
        return gen
    from ..model.library import LibraryError, MotionLibrary
    path = os.path.abspath(path)
    stamp = os.path.getmtime(path) if os.path.exists(path) else None
    try:
        if stamp is None or path not in _libraries or _libraries[path][0] != stamp:
            _libraries[path] = (stamp, MotionLibrary.load(path))
    except LibraryError as exc:
        raise ModelError(f"{exc} (Edit > Preferences > Add-ons > Motion CVAE > Motion Library; or turn "
                         "Motion Library off in the panel)") from None
    gen = copy.copy(gen)  # the cached generator stays library-free for other settings
    gen.library = _libraries[path][1]
    return gen


def _limit_threads() -> None:
    """Half the cores, at most 4: Blender keeps working beside the model, and torch's OpenMP threads
    slow to a crawl when they compete for cores (measured inside Blender: 1 thread 0.07 s, 2 threads
    0.2-2 s for the same 240 frames on a busy 2-core machine)."""
    import torch
    torch.set_num_threads(max(1, min(4, (os.cpu_count() or 2) // 2)))


@dataclass
class Request:
    observed: np.ndarray  # (L, 21, 3) model space
    mask: np.ndarray      # (L, 21)
    action: str | None
    style: str | None
    variations: int
    seed: int
    device: str = "auto"
    weights: str = ""
    variety: float = 1.0  # the prior's temperature (Generator.sample)
    plant_feet: bool = True  # feet held still while they bear weight (model.feet)
    library: str = ""        # a motion library file (model.library), empty for the model alone


class Job:
    """One generator call; `run` in the caller's thread or `start` on a worker thread."""

    def __init__(self, request: Request):
        self.request = request
        self.fraction = 0.0
        self.result: np.ndarray | None = None
        self.error: Exception | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def _progress(self, fraction: float) -> bool:
        self.fraction = fraction
        return not self._cancel.is_set()

    def run(self) -> np.ndarray:
        r = self.request
        gen = with_library(generator(r.device, r.weights), r.library)
        from ..model.generator import Cancelled as GeneratorCancelled
        try:
            self.result = gen.sample(r.observed, r.mask, action=r.action, style=r.style, n=r.variations,
                                     seed=r.seed, progress=self._progress, temperature=r.variety,
                                     plant_feet=r.plant_feet, rank=r.seed)
        except GeneratorCancelled:
            raise Cancelled("Cancelled: nothing was changed.") from None
        except ValueError as exc:  # unknown label, bad shapes
            raise ModelError(str(exc)) from None
        self.fraction = 1.0
        return self.result

    def _run_catching(self) -> None:
        try:
            self.run()
        except Exception as exc:  # handed to the main thread, which reports it
            self.error = exc

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run_catching, name="motion_cvae", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def done(self) -> bool:
        return self._thread is not None and not self._thread.is_alive()
