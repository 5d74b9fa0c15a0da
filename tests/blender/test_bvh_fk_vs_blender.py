"""Our BVH forward kinematics against Blender's own BVH importer, on real clips.

Blender's importer gives each pose bone location = rest^-1 @ (channel position - OFFSET), which puts
the joint at parent + parent_rotation @ channel position: a position channel *replaces* the OFFSET,
on the root and on every other joint (Bandai writes all 6 channels on every joint). That is also what
training/bvh.py does; the last test moves a non-root joint's position channels away from its OFFSET
to show the two still agree there.
"""
import os

import numpy as np
import pytest

from model.skeleton import INDEX, JOINTS, map_joint_names, split_end_site
from training.bvh import load_bvh, parse_bvh

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures")
CLIPS = {"bandai": "bandai_walk_tiny.bvh", "cmu_daz_120fps": "cmu/indian/04.bvh"}
CM = 0.01  # both fixtures are in centimetres


@pytest.fixture(scope="module")
def bpy(tmp_path_factory):
    os.environ["BLENDER_USER_RESOURCES"] = str(tmp_path_factory.mktemp("blender_user"))
    return pytest.importorskip("bpy")


def blender_positions(bpy, path: str, frames: list[int]) -> np.ndarray:
    """Import with Blender's BVH importer; canonical joints (frames, 21, 3), metres, Y up, at the
    given *file* frames. A joint mapped to an end site is the bone's tail."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    result = bpy.ops.import_anim.bvh(filepath=path, global_scale=CM, rotate_mode="NATIVE", frame_start=1,
                                     use_fps_scale=False, update_scene_fps=False)
    assert result == {"FINISHED"}
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    bones = arm.pose.bones
    mapping = map_joint_names([b.name for b in bones])
    index = {b.name: i for i, b in enumerate(bones)}
    world = np.array(arm.matrix_world)
    out = np.empty((len(frames), len(JOINTS), 3))
    for k, frame in enumerate(frames):
        bpy.context.scene.frame_set(frame + 1)  # file frame 0 is Blender frame frame_start
        ends = {}
        for end in ("head", "tail"):
            buf = np.empty(len(bones) * 3)
            bones.foreach_get(end, buf)
            ends[end] = buf.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
        for j, joint in enumerate(JOINTS):
            bone, at_tail = split_end_site(mapping[joint])
            x, y, z = ends["tail" if at_tail else "head"][index[bone]]
            out[k, j] = (x, z, -y)  # Blender Z up (BVH -Z forward) back to Y up
    return out


def compare(bpy, path: str) -> float:
    motion = load_bvh(path)
    step = round(motion.source_fps / motion.fps)  # Motion frame k is file frame k * step
    ks = [0, 1, len(motion.positions) // 2, len(motion.positions) - 1]
    theirs = blender_positions(bpy, path, [k * step for k in ks])
    return float(np.abs(theirs - motion.positions[ks]).max())


@pytest.mark.parametrize("clip", CLIPS)
def test_fk_matches_blender_importer(bpy, clip):
    assert compare(bpy, os.path.join(FIXTURES, CLIPS[clip])) < 1e-3


def test_non_root_position_channels_replace_the_offset(bpy, tmp_path):
    """Move Spine's position channels off its OFFSET (Bandai's equal it): still < 1 mm apart."""
    path = os.path.join(FIXTURES, CLIPS["bandai"])
    text = open(path).read()
    h, data, _ = parse_bvh(text)
    spine = h.names.index("Spine")
    col = sum(len(c) for c in h.channels[:spine])
    assert h.channels[spine][:3] == ["Xposition", "Yposition", "Zposition"]
    assert np.allclose(data[:, col:col + 3], h.offsets[spine], atol=1e-4)
    head, motion = text.split("MOTION", 1)
    header = motion.strip().split("\n")[:2]
    data[:, col:col + 3] += np.stack([np.zeros(len(data)), np.linspace(0, 20, len(data)),
                                      np.full(len(data), 5.0)], 1)
    moved = tmp_path / "moved_spine.bvh"
    moved.write_text(head + "MOTION\n" + "\n".join(header) + "\n" +
                     "\n".join(" ".join(f"{v:.6f}" for v in row) for row in data) + "\n")
    assert compare(bpy, str(moved)) < 1e-3
    # ... and the chest really moved with the channels, by up to 20 cm.
    shift = load_bvh(str(moved)).positions - load_bvh(path).positions
    assert np.linalg.norm(shift[-1, INDEX["chest"]]) > 0.19
