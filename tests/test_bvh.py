"""BVH reading: units, frame rates, channel orders, labels, and one clear error per kind of bad file."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from model.skeleton import INDEX
from training.bvh import (BVHError, Hierarchy, bvh_to_motion, forward_kinematics, load_bvh, local_transforms,
                          parse_bvh)
from training.dataset import labels_for

ROOT = os.path.join(os.path.dirname(__file__), "..")
FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
BANDAI = os.path.join(FIXTURES, "bandai_walk_tiny.bvh")           # 30 fps, cm, 6 channels per joint
CMU_120 = os.path.join(FIXTURES, "cmu", "indian", "04.bvh")       # 120 fps, cm, Daz names, no toe joint
CMU_60 = os.path.join(FIXTURES, "cmu", "salsa", "01.bvh")         # 60 fps


def read(path):
    with open(path) as f:
        return f.read()


def write_bvh(h: Hierarchy, data: np.ndarray, frame_time: float) -> str:
    """BVH text for a hierarchy (nodes in file order, so the data columns stay in place)."""
    lines = ["HIERARCHY"]

    def node(i, depth):
        pad, name = "  " * depth, h.names[i]
        kind = "ROOT " if h.parents[i] < 0 else "JOINT "
        lines.append(pad + ("End Site" if name.endswith("@end") else kind + name))
        lines.append(pad + "{")
        lines.append(pad + "  OFFSET " + " ".join(f"{v:.10g}" for v in h.offsets[i]))
        if h.channels[i]:
            lines.append(pad + f"  CHANNELS {len(h.channels[i])} " + " ".join(h.channels[i]))
        for child in np.flatnonzero(h.parents == i):
            node(child, depth + 1)
        lines.append(pad + "}")

    node(0, 0)
    lines += ["MOTION", f"Frames: {len(data)}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.10g}" for v in row) for row in data]
    return "\n".join(lines) + "\n"


def columns(h: Hierarchy, kind: str) -> list[int]:
    """Data columns of every '...position' or '...rotation' channel."""
    flat = [c for chans in h.channels for c in chans]
    return [k for k, c in enumerate(flat) if c.lower().endswith(kind)]


@pytest.mark.parametrize("clip", [BANDAI, CMU_120])
@pytest.mark.parametrize("unit, per_cm", [("m", 0.01), ("inch", 1 / 2.54), ("mm", 10.0)])
def test_units_give_identical_metres(clip, unit, per_cm):
    h, data, frame_time = parse_bvh(read(clip))
    reference = load_bvh(clip).positions
    h.offsets = h.offsets * per_cm
    data[:, columns(h, "position")] *= per_cm
    rescaled = bvh_to_motion(write_bvh(h, data, frame_time), f"{unit}.bvh").positions
    np.testing.assert_allclose(rescaled, reference, atol=1e-5)


def test_bandai_is_metres_tall():
    m = load_bvh(BANDAI)
    assert m.positions.shape == (150, 21, 3) and m.fps == 30 and m.source_fps == 30
    height = m.positions[0, INDEX["head"], 1] - m.positions[0, INDEX["l_foot"], 1]
    assert 1.2 < height < 1.6  # Bandai's head joint is the base of the skull


@pytest.mark.parametrize("clip, source_fps", [(CMU_120, 120.0), (CMU_60, 60.0)])
def test_resampling_to_30_keeps_every_nth_frame(clip, source_fps):
    h, data, frame_time = parse_bvh(read(clip))
    assert frame_time != 1 / source_fps  # the header is rounded (0.00833333) ...
    m = load_bvh(clip)
    assert m.source_fps == source_fps  # ... and snaps to the whole rate
    step = int(source_fps // 30)
    raw = forward_kinematics(h.parents, *local_transforms(h, data)) * 0.01
    every_nth = raw[::step][:, m.joint_nodes]
    assert m.fps == 30 and len(m.positions) == len(every_nth) == (len(data) - 1) // step + 1
    np.testing.assert_allclose(m.positions, every_nth, atol=1e-5)


def test_fps_override_replaces_the_header():
    m = load_bvh(CMU_120, fps_override=60)
    assert m.source_fps == 60 and len(m.positions) == (180 - 1) // 2 + 1
    np.testing.assert_allclose(m.positions[::2], load_bvh(CMU_120).positions, atol=1e-5)
    # A rate that is no multiple of 30 interpolates: frame 1 of 45 fps lies between file frames 1 and 2.
    h, data, _ = parse_bvh(read(CMU_120))
    raw = forward_kinematics(h.parents, *local_transforms(h, data))[:, INDEX["pelvis"]] * 0.01
    pelvis = load_bvh(CMU_120, fps_override=45).positions[1, INDEX["pelvis"]]
    np.testing.assert_allclose(pelvis, (raw[1] + raw[2]) / 2, atol=1e-4)


def test_leading_bind_pose_and_its_ringing_are_dropped():
    """The CMU conversions start with a bind pose then 7 filtered frames; the take starts at frame 8."""
    h, data, frame_time = parse_bvh(read(CMU_120))
    bind = data[:1].copy()
    bind[:, 3:] = 0.0  # every rotation zero, the root where the take starts
    prefixed = np.concatenate([bind, np.repeat(data[:1], 7, axis=0), data])
    m = bvh_to_motion(write_bvh(h, prefixed, frame_time))
    np.testing.assert_allclose(m.positions, load_bvh(CMU_120).positions, atol=1e-5)


@pytest.mark.parametrize("clip", [BANDAI, CMU_120])
@pytest.mark.parametrize("order", ["XYZ", "YZX", "XZY"])
def test_any_channel_order_gives_the_same_positions(clip, order):
    h, data, frame_time = parse_bvh(read(clip))
    reference = load_bvh(clip).positions
    col = 0
    for node, chans in enumerate(h.channels):
        rot = [k for k, c in enumerate(chans) if c.endswith("rotation")]
        pos = [k for k, c in enumerate(chans) if c.endswith("position")]
        if rot:
            old = "".join(chans[k][0] for k in rot)
            angles = Rotation.from_euler(old, data[:, [col + k for k in rot]], degrees=True).as_euler(
                order, degrees=True)
            data[:, [col + k for k in rot]] = angles
            for k, axis in zip(rot, order):
                chans[k] = axis + "rotation"
        if pos:  # positions reversed too: Z, Y, X
            data[:, [col + k for k in pos]] = data[:, [col + k for k in reversed(pos)]]
            for k, axis in zip(pos, "ZYX"):
                chans[k] = axis + "position"
        col += len(chans)
    np.testing.assert_allclose(bvh_to_motion(write_bvh(h, data, frame_time)).positions, reference, atol=1e-5)


def test_labels_from_bandai_json_and_cfg_and_cmu_folders(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(os.path.join(FIXTURES, "bandai", "cfg"), tmp_path / "cfg")
    shutil.copy(BANDAI, data / "dataset-2_walk_normal_001.bvh")
    shutil.copy(os.path.join(FIXTURES, "bandai", "dataset-2_walk_normal_001.json"), data)
    assert labels_for(str(data / "dataset-2_walk_normal_001.bvh")) == ("walk", "normal")
    assert labels_for(BANDAI) == ("walk", "normal")  # the tiny clip's json names its labels directly
    (data / "dataset-2_walk_normal_001.json").write_text(json.dumps({"content": 2, "style": 2}))
    assert labels_for(str(data / "dataset-2_walk_normal_001.bvh")) == ("walk-turn-right", "tired")
    assert labels_for(CMU_120) == ("indian_dance", None)
    assert labels_for(CMU_60) == ("salsa", None)


def quadruped() -> str:
    names = ["pelvis", "spine_01", "neck_01", "head", "front_leg_l", "front_paw_l", "back_leg_l", "back_paw_l"]
    parents = np.array([-1, 0, 1, 2, 1, 4, 0, 6])
    offsets = np.array([[0, 60, 0], [0, 0, 40], [0, 10, 20], [0, 5, 10], [10, -5, 0], [0, -45, 0],
                        [10, -5, 0], [0, -50, 0]], float)
    channels = [["Xposition", "Yposition", "Zposition", "Zrotation", "Xrotation", "Yrotation"]] + \
        [["Zrotation", "Xrotation", "Yrotation"]] * 7
    return write_bvh(Hierarchy(names, parents, offsets, channels), np.zeros((3, 27)), 1 / 30)


def bandai_with_scale(factor: float) -> str:
    h, data, frame_time = parse_bvh(read(BANDAI))
    h.offsets = h.offsets * factor
    data[:, columns(h, "position")] *= factor
    return write_bvh(h, data[:5], frame_time)


def daz_foot_without_end_site() -> str:
    h, data, frame_time = parse_bvh(read(CMU_120))
    h.names[h.names.index("lFoot@end")] = "lFootTip"
    return write_bvh(h, data[:5], frame_time)


BAD = {
    "truncated motion": (lambda: read(BANDAI)[:150_000],
                         "truncated: the header promises 150 frames of 132 channels but only 112 complete"),
    "truncated hierarchy": (lambda: read(BANDAI)[:2000],
                            "no MOTION section; the file is truncated or not a BVH"),
    "not a bvh": (lambda: "<html><body>404</body></html>\nMOTION\n", "does not start with HIERARCHY"),
    "no frames": (lambda: read(BANDAI).split("MOTION")[0] + "MOTION\nFrames: 0\nFrame Time: 0.0333333\n",
                  "the file has no frames of motion"),
    "bad header": (lambda: read(BANDAI).split("MOTION")[0] + "MOTION\nFrame Time: 0.03\n", "MOTION header"),
    "garbage data": (lambda: read(BANDAI).replace("93.148800", "9x.148800"), "non-number"),
    "unknown channel": (lambda: read(BANDAI).replace("CHANNELS 6 Xposition", "CHANNELS 6 Wposition", 1),
                        "joint 'joint_Root' has unknown channel 'Wposition'"),
    "zero frame time": (lambda: read(BANDAI).replace("Frame Time:\t0.0333333", "Frame Time: 0"),
                        "frame time 0.0 gives 0 fps; pass an fps override"),
    "non-humanoid": (quadruped, "not a humanoid skeleton: no joint found for chest, l_collar, l_upperarm, "
                                "l_forearm, l_hand, r_collar"),
    "no toe": (daz_foot_without_end_site, "joint 'lFoot' has no End Site to stand in for the missing l_toe"),
    "implausible unit": (lambda: bandai_with_scale(0.04), "implausible size: pelvis-to-head plus "
                                                          "pelvis-to-foot is 5.378 file units"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_gives_one_clear_message(case):
    make, message = BAD[case]
    with pytest.raises(BVHError) as err:
        bvh_to_motion(make(), "clip.bvh")
    text = str(err.value)
    assert text.startswith("clip.bvh: ") and message in text and "\n" not in text


def test_unreadable_file_is_a_bvh_error(tmp_path):
    with pytest.raises(BVHError, match=r"^missing.bvh: can't read the file \(No such file or directory\)"):
        load_bvh(str(tmp_path / "missing.bvh"))


def test_dataset_cli_prints_the_message_without_traceback(tmp_path):
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "cut.bvh").write_text(read(BANDAI)[:150_000])
    (tmp_path / "empty").mkdir()
    for folder, message in (("clips", "cut.bvh: truncated: the header promises 150 frames"),
                            ("empty", "no .bvh files in")):
        run = subprocess.run([sys.executable, "-m", "training.dataset", "--data", str(tmp_path / folder),
                              "--out", str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 2, run.stderr
        assert run.stderr.startswith("error: ") and message in run.stderr
        assert "Traceback" not in run.stderr and run.stderr.count("\n") == 1
