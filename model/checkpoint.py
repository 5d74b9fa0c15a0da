"""Weights as safetensors plus a JSON sidecar: config, skeleton, vocabularies, format version and the
sha256 of the weights file, checked at load. No pickle anywhere: a checkpoint can't run code."""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A weights file that is missing, tampered with or from another version; the message says which."""


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar(path: str) -> str:
    return os.path.splitext(path)[0] + ".json"


def save(path: str, tensors: dict[str, np.ndarray], meta: dict) -> None:
    """Write `path` (.safetensors) and its JSON sidecar atomically enough for resumable training."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp)
    os.replace(tmp, path)
    meta = {**meta, "format_version": FORMAT_VERSION, "sha256": sha256(path)}
    with open(sidecar(path) + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(sidecar(path) + ".tmp", sidecar(path))


def trained_labels(meta: dict) -> tuple[list[str], list[str]]:
    """(actions, styles) the model learned: those of its training clips. The vocabularies also hold
    labels only held-out clips have (the "youthful" style), whose embeddings never trained; weights
    exported before this was recorded offer their whole vocabularies."""
    trained = meta.get("trained_labels", {})
    return list(trained.get("actions", meta["actions"])), list(trained.get("styles", meta["styles"]))


def load(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a checkpoint; raises CheckpointError with an actionable message."""
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise CheckpointError(f"Model weights not found at {path}. Reinstall the extension or train a model "
                              "with `python -m training.train`.")
    try:
        with open(sidecar(path)) as f:
            meta = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{name}: its metadata file {os.path.basename(sidecar(path))} is missing or "
                              f"unreadable ({exc}); the checkpoint is incomplete.") from None
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{name}: format version {version} is not supported (this code reads version "
                              f"{FORMAT_VERSION}); use weights made by the matching release.")
    if sha256(path) != meta.get("sha256"):
        raise CheckpointError(f"{name}: checksum mismatch: the file is corrupt or was modified. "
                              "Reinstall the extension or re-export the weights.")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{name}: not a readable safetensors file ({exc}).") from None
    return tensors, meta
