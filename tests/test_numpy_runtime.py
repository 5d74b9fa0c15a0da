"""The numpy runtime (Blender without PyTorch) against the torch path, on a checkpoint built without
data: random weights with FiLM, attention gates and output convs non-zero, so every path counts."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from model.generator import Generator, TorchBackend
from model.network import ModelConfig
from model.numpy_runtime import NumpyBackend
from model import checkpoint
from model.skeleton import NUM_JOINTS
from training.bench import parity_max_abs, random_checkpoint
from training.masks import sample_mask

TOL = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """A tiny model gains nothing from threads, and OpenMP threads on busy cores crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, one_thread) -> str:
    model = ModelConfig(c1=16, c2=32, z=16, heads=2, label_dim=8, n_actions=3, n_styles=4, prior_labels=True,
                        refine=3)
    return random_checkpoint(str(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"), model)


def walk(length: int, seed: int = 0) -> np.ndarray:
    """Smooth travelling motion (L, J, 3) in metres, so masks and the canonical frame are realistic."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)[:, None, None] / 30.0
    pose = rng.normal(0, 0.3, (1, NUM_JOINTS, 3)) + [0.0, 1.0, 0.0]
    sway = 0.1 * np.sin(2 * np.pi * t * rng.uniform(0.5, 2.0, (1, NUM_JOINTS, 3)))
    return (pose + sway + t * np.array([0.8, 0.0, 1.2])).astype(np.float32)


def test_backends_agree_on_every_task(ckpt):
    tensors, meta = checkpoint.load(ckpt)
    world = np.stack([walk(128, s) for s in range(4)])
    assert parity_max_abs(tensors, meta["config"], world) < TOL
    # the comparison is not vacuous: the output differs from zero and depends on labels and noise
    backend, rng = NumpyBackend(tensors, meta["config"]), np.random.default_rng(0)
    x = rng.standard_normal((2, 3 * 3 * NUM_JOINTS, 128), np.float32)
    noise = rng.standard_normal((2, 16, 16))
    out = backend.run(x, np.array([0, 2]), np.array([0, 3]), noise)
    assert out.std() > 0.05
    assert np.abs(out - backend.run(x, np.array([1, 2]), np.array([0, 3]), noise)).max() > 1e-3
    assert np.abs(out - backend.run(x, np.array([0, 2]), np.array([0, 3]), -noise)).max() > 1e-3


@pytest.mark.parametrize("length, task, action, style", [
    (128, "inbetween", None, None), (60, "predict", "action1", "style3"),
    (300, "partial_body", "action2", None), (241, "lafan", None, "style1"),
])
def test_generator_torch_and_numpy_agree(ckpt, length, task, action, style):
    rng = np.random.default_rng(length)
    motion = walk(length)
    mask = np.concatenate([sample_mask(task, 128, rng) for _ in range(-(-length // 128))])[:length]
    results = [Generator.load(ckpt, device="cpu", backend=b).sample(motion, mask, action, style, n=3, seed=7)
               for b in ("torch", "numpy")]
    assert results[0].shape == (3, length, NUM_JOINTS, 3)
    assert np.abs(results[0] - results[1]).max() < TOL
    np.testing.assert_array_equal(results[1][:, mask], np.broadcast_to(motion[mask], (3, int(mask.sum()))))


def test_variations_are_one_batched_forward_per_window(ckpt):
    gen = Generator.load(ckpt, backend="numpy")
    calls = []
    run = gen.backend.run
    gen.backend.run = lambda inputs, *rest: calls.append(len(inputs)) or run(inputs, *rest)
    mask = np.zeros(300, bool)
    mask[::20] = True
    out = gen.sample(walk(300), mask, n=4, seed=0)
    assert calls == [4, 4, 4, 4]  # 300 frames: windows at 0, 80, 160, 172, each one forward of all 4
    assert np.abs(out[0] - out[1]).max() > 1e-3  # different noise per variation


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_batch_rows_are_independent(ckpt, backend):
    tensors, meta = checkpoint.load(ckpt)
    run = (TorchBackend(tensors, meta["config"], "cpu") if backend == "torch" else
           NumpyBackend(tensors, meta["config"])).run
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3 * 3 * NUM_JOINTS, 128), np.float32)
    ids, noise = rng.integers(0, 3, 5), rng.standard_normal((5, 16, 16))
    batched = run(x, ids, ids, noise)
    single = np.concatenate([run(x[i:i + 1], ids[i:i + 1], ids[i:i + 1], noise[i:i + 1]) for i in range(5)])
    assert np.abs(batched - single).max() < 1e-5


def test_numpy_backend_runs_without_torch(ckpt):
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np\n"
            "from model.generator import Generator\n"
            f"gen = Generator.load({ckpt!r}, backend='numpy')\n"
            "out = gen.sample(np.zeros((40, 21, 3), np.float32), np.arange(40) % 10 == 0, seed=0)\n"
            "assert gen.device == 'numpy' and out.shape == (1, 40, 21, 3) and np.isfinite(out).all()\n"
            "assert sys.modules['torch'] is None\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
