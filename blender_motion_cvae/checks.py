"""Rigs the model would fill with nonsense, refused by what their clip says: a body that is not a
standing human, or one whose size says the scene's units are off. Each message names what to fix."""
from __future__ import annotations

import numpy as np

from ..model.skeleton import INDEX
from .rig_io import Clip, RigError


def check_biped(obj, clip: Clip) -> None:
    """A rig whose names map but whose spine lies flat on every keyed frame is not a standing human."""
    rows = clip.observed.any(1)
    pos = clip.positions[rows] if rows.any() else clip.positions[:1]
    spine = pos[:, INDEX["head"]] - pos[:, INDEX["pelvis"]]
    up = spine[:, 1] / np.maximum(np.linalg.norm(spine, axis=-1), 1e-9)
    hands = pos[:, [INDEX["l_hand"], INDEX["r_hand"]], 1].mean(1)
    if np.median(up) < 0.5 and np.median(hands - pos[:, INDEX["pelvis"], 1]) < 0:
        raise RigError(f"'{obj.name}' does not look like a standing biped (its spine is horizontal and its "
                       "front limbs reach the ground): the model only knows human motion.")


HEIGHT_LIMITS = (0.3, 5.0)  # metres, feet to head: outside, the units are off, not the character


def check_size(obj, clip: Clip, scene) -> None:
    """A rig built in centimetres read as metres is a 150 m giant (or 1.5 cm, the other way round):
    the model only knows human sizes, so say which setting to fix instead of filling nonsense."""
    p = clip.positions[0]  # always evaluated; bone lengths don't change with the pose

    def chain(*names: str) -> float:
        return sum(float(np.linalg.norm(p[INDEX[a]] - p[INDEX[b]])) for a, b in zip(names, names[1:]))
    height = chain("head", "neck", "chest", "spine", "pelvis") + 0.5 * (
        chain("l_thigh", "l_shin", "l_foot") + chain("r_thigh", "r_shin", "r_foot"))
    if not HEIGHT_LIMITS[0] <= height <= HEIGHT_LIMITS[1]:
        raise RigError(f"'{obj.name}' is {height:.3g} m from feet to head as this scene measures it (unit scale "
                       f"{scene.unit_settings.scale_length:g}, object scale {max(obj.matrix_world.to_scale()):.3g}); "
                       "a human measures about 1.5 m this way. Scale the object, or set Scene > Units > Unit Scale "
                       "(a rig built in centimetres: Unit Scale 0.01).")
