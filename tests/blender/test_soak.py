"""Soak: 100 Fill Gaps in one Blender session (scripts/soak.py) on a small rig, so it takes seconds.
Run it alone with `pytest -m soak tests/blender`; the numbers are printed (pytest -s)."""
from __future__ import annotations

import json

import pytest

import soak


@pytest.mark.soak
def test_100_fills_neither_leak_nor_slow_down(addon):
    obj = soak.small_rig(addon)
    out = soak.soak(obj, calls=100, warmup=5)
    print(json.dumps(out))
    assert out["rss_growth_mb"] <= 50
    # CPU time, not wall: work that grows call after call is what a leak costs, and wall time also
    # counts whatever else the machine runs (a training run beside it read 1.53 wall, 1.20 CPU); the
    # fastest of 20 calls, not their lower quartile, which load on a shared machine took to 1.57-1.66
    # in two CI runs that read 0.70-1.20 alone
    assert out["cpu_min_ratio"] <= 1.5, out
