"""Real headless Blender: the extension zip is built and installed once per session with
package_install_files, exactly as a user installs it; rigs are built once per module.

Runs under whichever Python runs pytest (bpy 5.0.1 in /work/venv, 4.2.23 in /work/venv42; see
scripts/test_blender.py). Skipped where bpy is not installed.
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import pytest

# Before anything imports bpy: keep Blender's user files (extension repos, caches) out of $HOME.
os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="motion_cvae_user_"))
SCRIPTS = os.path.join(os.path.dirname(__file__), "..", "..", "scripts")
sys.path.insert(0, os.path.abspath(SCRIPTS))


@pytest.fixture(scope="session")
def built_zip(tmp_path_factory) -> str:
    pytest.importorskip("bpy")
    from build_extension import build
    return build(str(tmp_path_factory.mktemp("dist")))


@pytest.fixture(scope="session")
def weights(tmp_path_factory) -> str:
    """The shipped weights when present, else an untrained checkpoint of the real network (its
    output is noise, which is all the I/O tests need)."""
    from model.generator import DEFAULT_WEIGHTS
    if os.path.exists(DEFAULT_WEIGHTS):
        return DEFAULT_WEIGHTS
    import torch
    from model import checkpoint
    from model.network import CVAE, ModelConfig
    from model.representation import Stats
    from model.skeleton import JOINTS
    torch.manual_seed(0)
    cfg = ModelConfig(n_actions=3, n_styles=3, spectral_norm=False)
    tensors = {f"generator.{k}": v.half().numpy() for k, v in CVAE(cfg).state_dict().items()}
    shape = (len(JOINTS), 3)
    stats = Stats(np.zeros(shape), np.ones(shape), np.zeros(shape), np.ones(shape), np.full(shape, 0.01))
    path = str(tmp_path_factory.mktemp("weights") / "motion_cvae.safetensors")
    checkpoint.save(path, {**tensors, **stats.arrays()}, {"config": cfg.to_dict(), "actions": ["walk", "run"],
                                                          "styles": ["normal", "happy"], "joints": list(JOINTS)})
    return path


@pytest.fixture(scope="module")
def addon(built_zip, weights):
    """The installed add-on package, enabled (again, if another module reset the preferences)."""
    import blender_rigs
    package = blender_rigs.session(built_zip)
    import bpy
    bpy.context.preferences.addons[blender_rigs.MODULE].preferences.weights_path = weights
    return package


@pytest.fixture(scope="module")
def walk(addon):
    """A Mixamo rig walking, one key every 20 frames, in a scene of its own (one per test module)."""
    import bpy
    import blender_rigs as rigs
    from .helpers import activate
    scene = rigs.new_scene("errors")
    source = rigs.new_scene("errors_source")
    clip = rigs.read_positions(addon, rigs.import_bvh(os.path.join(rigs.FIXTURES, "demo_walk.bvh")), np.arange(1, 81))
    bpy.context.window.scene = scene
    bpy.data.scenes.remove(source)
    obj = rigs.build_armature("Walker", "mixamo", connect=True)
    action = rigs.bake_motion(addon, obj, clip, np.arange(1, 81), "Walk")
    rigs.thin(action, getattr(obj.animation_data, "action_slot", None), 20, 1)
    activate(obj)
    return obj


@pytest.fixture
def variant(walk):
    """Play a throw-away copy of the walk for one test; the walk comes back afterwards."""
    import bpy
    from .helpers import play
    original = walk.animation_data.action
    copy = original.copy()
    play(walk, copy)
    yield copy
    play(walk, original)
    bpy.data.actions.remove(copy)
