"""Shared fixtures: a dataset cache built from the real BVH clips in tests/fixtures, and a checkpoint
trained on it with the `tiny` config (seconds), so every test runs from a fresh clone."""
from __future__ import annotations

import os

import pytest

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


@pytest.fixture(scope="session")
def fixture_cache(tmp_path_factory) -> str:
    from training.dataset import build_cache
    return build_cache([FIXTURES], str(tmp_path_factory.mktemp("cache")), workers=1)


@pytest.fixture(scope="session")
def tiny_run(fixture_cache, tmp_path_factory) -> str:
    """A run folder with last.safetensors (resumable) and motion_cvae.safetensors (exported)."""
    from training.configs import get_config
    from training.train import train
    out = str(tmp_path_factory.mktemp("tiny_run"))
    train(get_config("tiny", max_steps=30), fixture_cache, out, resume=False, splits=["train"], ship=None)
    return out


@pytest.fixture(scope="session")
def tiny_generator(tiny_run):
    from model.generator import Generator
    return Generator.load(os.path.join(tiny_run, "motion_cvae.safetensors"), device="cpu")
