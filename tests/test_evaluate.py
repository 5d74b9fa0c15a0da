"""The evaluation harness end to end on real BVH fixtures: the JSON contract, the null rules, the
model path (a tiny checkpoint trained in seconds), determinism, and the classifier-based scores."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from training import eval_clips, evaluate as ev
from training.dataset import MotionDataset
from training.eval_clips import load_clips, windows
from training.masks import inbetween_mask

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHOD_KEYS = {"mpjpe_mm", "npss", "foot_skate_mm"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    """Two Bandai clips (one labelled via cfg/, one via its own json) and a 120 fps CMU cut."""
    d = tmp_path_factory.mktemp("bvh")
    shutil.copytree(os.path.join(FIXTURES, "bandai", "cfg"), d / "bandai" / "cfg")  # the dataset's layout
    (d / "bandai" / "data").mkdir()
    shutil.copy(os.path.join(FIXTURES, "bandai", "dataset-2_walk_normal_001.json"), d / "bandai" / "data")
    shutil.copy(os.path.join(FIXTURES, "demo_walk.bvh"), d / "bandai" / "data" / "dataset-2_walk_normal_001.bvh")
    shutil.copy(os.path.join(FIXTURES, "bandai_walk_tiny.bvh"), d / "tiny.bvh")
    shutil.copy(os.path.join(FIXTURES, "bandai_walk_tiny.json"), d / "tiny.json")
    shutil.copytree(os.path.join(FIXTURES, "cmu", "indian"), d / "indian")
    return str(d)


@pytest.fixture(scope="module")
def clips(folder):
    return load_clips(folder)


def run_cli(*args: str, cache: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MOTION_CVAE_CACHE": os.path.dirname(cache)}
    return subprocess.run([sys.executable, "-m", "training.evaluate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_clips_are_labelled_floored_and_keep_rotations(clips):
    names = {c.name: c for c in clips}
    assert len(names) == 3 and {"data/dataset-2_walk_normal_001.bvh", "indian/04.bvh"} < set(names)
    assert any(n.endswith("/tiny.bvh") for n in names)  # folder/file, as the dataset cache names clips
    walk = names["data/dataset-2_walk_normal_001.bvh"]
    assert (walk.action, walk.style) == ("walk", "normal")
    assert names["indian/04.bvh"].action == "indian_dance"
    assert len(names["indian/04.bvh"].positions) == 45  # 180 frames at 120 fps -> 30 fps
    for c in clips:
        assert abs(np.percentile(c.positions[:, ev.FEET, 1].min(1), 5)) < 1e-4 and c.motion is not None


def test_windows_every_40_frames(clips):
    w, idx = windows(clips, 71)
    starts = sorted(s for c, s in idx if len(clips[c].positions) == 150)
    assert starts == [0, 40] and w.shape[1:] == (71, 21, 3)


def test_lift_camera_round_trip(clips):
    w, _ = windows(clips, 128)
    image = ev.project(w)
    assert np.allclose(image[:, 0, ev.PELVIS], 0.5)
    yz = ev.unproject(image, w[:, 0, ev.PELVIS])
    assert np.allclose(yz, w[..., 1:], atol=1e-9)


def test_cli_writes_the_contract(folder, fixture_cache, tmp_path):
    out, plots = tmp_path / "r.json", tmp_path / "plots"
    proc = run_cli("--data", folder, "--json", str(out), "--plots", str(plots), "--seed", "3", cache=fixture_cache)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert set(r) == {"clips", "frames", "library", "inbetween", "inbetween_by_action", "inbetween_model_wins", "sparse_keys", "extend",
                      "predict", "complete", "lift", "diversity", "diversity_predict", "generate"}
    for gap, shares in r["inbetween_model_wins"].items():  # with a model, its share of closer windows per baseline
        ran = r["inbetween"][gap]["model"]["mpjpe_mm"] is not None
        assert set(shares) == ({"linear", "velocity", "motion_matching", "slerp"} if ran else set())
        assert all(0.0 <= v <= 1.0 for v in shares.values())
    for gap, groups in r["inbetween_by_action"].items():  # per action, the same errors split by label
        n = sum(g["windows"] for g in groups.values())
        whole = sum(g["windows"] * g["linear"] for g in groups.values()) / n
        assert whole == pytest.approx(r["inbetween"][gap]["linear"]["mpjpe_mm"], abs=2e-3)
    assert r["clips"] == 3 and r["frames"] == 150 + 198 + 45
    assert set(r["inbetween"]) == {"5", "15", "30", "60"}
    for gap in r["inbetween"].values():
        assert set(gap) == {"model", "linear", "velocity", "motion_matching", "slerp", "ground_truth"}
        assert all(set(v) == METHOD_KEYS for v in gap.values())
        for m in ("linear", "velocity", "motion_matching", "slerp"):
            assert gap[m]["mpjpe_mm"] > 0 and gap[m]["npss"] >= 0
        assert gap["ground_truth"]["mpjpe_mm"] is None and gap["ground_truth"]["foot_skate_mm"] >= 0
    assert set(r["sparse_keys"]) == {"10", "20"} and r["sparse_keys"]["20"]["linear"]["mpjpe_mm"] > 0
    real, linear = r["sparse_keys"]["10"]["ground_truth"], r["sparse_keys"]["10"]["linear"]
    assert real["mpjpe_mm"] is None and real["accel_mm"] > 0
    assert linear["accel_at_keys_mm"] > 2 * real["accel_at_keys_mm"]  # linear turns at each key at once
    assert set(r["predict"]) == {"400ms", "1000ms"} and r["predict"]["400ms"]["zero_velocity"]["mpjpe_mm"] > 0
    assert r["predict"]["400ms"]["velocity"]["mpjpe_mm"] > 0
    seconds = {"body_speed_1s_mps", "body_speed_2s_mps", "body_speed_3s_mps"}
    real = r["extend"]["ground_truth"]
    assert set(real) == seconds and all(0 < v < 3 for v in real.values()) and set(r["extend"]["model"]) == seconds
    assert set(r["complete"]) == {"lower_body", "upper_body"}
    assert r["complete"]["lower_body"]["mean_pose"]["mpjpe_mm"] > 0
    assert r["lift"]["mean_depth"]["mpjpe_mm"] > 0
    for part in ("diversity", "diversity_predict"):
        assert set(r[part]) == {"model", "model_t2", "model_t3", "ground_truth"}
        assert set(r[part]["model"]) == {"apd_mm", "min_of_10_mpjpe_mm", "single_mpjpe_mm", "keyframe_error_mm",
                                         "foot_skate_mm"}
        assert r[part]["ground_truth"]["foot_skate_mm"] >= 0
    assert set(r["generate"]) == {"model", "real"}
    assert set(r["generate"]["real"]) == {"action_accuracy", "style_accuracy", "fid", "body_speed_mps",
                                          "ground_speed_mps", "backward_share"}
    assert r["generate"]["real"]["body_speed_mps"] > 0.05  # real motion moves relative to its pelvis
    if not os.path.exists(ev.MODEL_PATH):
        assert r["inbetween"]["30"]["model"]["mpjpe_mm"] is None
        assert all(v is None for v in r["diversity"]["model"].values())
    assert "inbetween" in proc.stdout and "linear" in proc.stdout
    assert {p.name for p in plots.iterdir()} >= {"inbetween_error_vs_gap.png", "filmstrip_0.png"}


def test_cli_cache_split_has_no_slerp(fixture_cache, tmp_path):
    out = tmp_path / "r.json"
    proc = run_cli("--data", "cache:train", "--json", str(out), "--max-clips", "2", cache=fixture_cache)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())
    assert r["clips"] == 2
    assert r["inbetween"]["15"]["slerp"]["mpjpe_mm"] is None and r["inbetween"]["15"]["linear"]["mpjpe_mm"] > 0


def test_retrieval_baselines_are_null_without_a_cache(clips):
    r = ev.evaluate(clips[:1])
    assert r["inbetween"]["30"]["motion_matching"]["mpjpe_mm"] is None
    assert r["lift"]["mean_depth"]["mpjpe_mm"] is None and r["complete"]["upper_body"]["mean_pose"]["mpjpe_mm"] is None


def test_model_entries_filled_exact_on_keys_and_deterministic(clips, tiny_generator):
    tiny = [c for c in clips if c.name.endswith("/tiny.bvh")]
    r = ev.evaluate(tiny, gen=tiny_generator, seed=5)
    for gap in ("5", "15", "30", "60"):
        assert r["inbetween"][gap]["model"]["mpjpe_mm"] > 0
    assert r["predict"]["1000ms"]["model"]["mpjpe_mm"] > 0
    assert all(v > 0 for v in r["extend"]["model"].values())
    assert r["complete"]["upper_body"]["model"]["mpjpe_mm"] > 0 and r["lift"]["model"]["mpjpe_mm"] > 0
    d = r["diversity"]["model"]
    assert d["keyframe_error_mm"] == 0.0 and d["apd_mm"] > 0
    assert d["min_of_10_mpjpe_mm"] <= d["single_mpjpe_mm"]
    hot = r["diversity"]["model_t3"]  # the add-on's Variety: more prior noise, samples further apart
    assert hot["keyframe_error_mm"] == 0.0 and hot["apd_mm"] > d["apd_mm"]
    p = r["diversity_predict"]["model"]  # the open end: the 30 context frames exact, the future apart
    assert p["keyframe_error_mm"] == 0.0 and p["apd_mm"] > 0 and p["min_of_10_mpjpe_mm"] <= p["single_mpjpe_mm"]
    assert p != d
    assert ev.inbetween(tiny, None, tiny_generator, 5)[0] == r["inbetween"]
    for gap, shares in r["inbetween_model_wins"].items():  # no retrieval without a cache: the fills only
        assert set(shares) == {"linear", "velocity", "slerp"} and all(0.0 <= v <= 1.0 for v in shares.values())
    assert r["inbetween_model_wins"]["5"]["linear"] > 0  # trained or not, it starts from that fill and refines it
    assert ev.inbetween(tiny, None, tiny_generator, 6)[0]["30"]["model"] != r["inbetween"]["30"]["model"]


def test_model_results_do_not_depend_on_batching(clips, tiny_generator, monkeypatch):
    """One seed per window: batched evaluation gives what window-by-window evaluation gives."""
    w, _ = windows(clips, 41)
    mask = inbetween_mask(41, ev.CONTEXT, 30)
    batched = ev.run_model(tiny_generator, w, mask, 0, 40, n=3)
    monkeypatch.setattr(eval_clips, "BATCH", 1)
    np.testing.assert_allclose(ev.run_model(tiny_generator, w, mask, 0, 40, n=3), batched, atol=1e-4)
    assert batched.shape == (len(w), 3, 41, 21, 3)


def test_model_sees_nothing_it_should_not(clips):
    """Every hidden entry reaches the generator as zero, so no method can copy the answer."""
    class Spy:
        actions, styles, window = ["walk"], ["normal"], 128

        def sample_windows(self, observed, mask, action=None, style=None, n=1, seed=None, temperature=1.0):
            from model.representation import full_mask
            full = np.broadcast_to(full_mask(mask, observed.shape[1]), observed.shape)
            assert not np.any(observed[~full])
            return np.repeat(observed[:, None], n, 1)
    r = ev.evaluate(clips[:1], gen=Spy())
    assert r["lift"]["model"]["mpjpe_mm"] > 0  # depth was never given


def test_generate_scores_with_a_classifier(clips, fixture_cache, tiny_generator, tmp_path, monkeypatch):
    from training.classifier import Judge, train
    path = str(tmp_path / "clf.safetensors")
    train(MotionDataset.load(fixture_cache), steps=3, batch=8, seed=0, out=path)
    judge = Judge(path)
    r = ev.generate(clips, tiny_generator, judge, seed=0)
    assert 0.0 <= r["real"]["action_accuracy"] <= 1.0 and r["real"]["fid"] >= 0
    assert r["model"]["fid"] is not None and r["model"]["action_accuracy"] is not None
    assert r["model"]["body_speed_mps"] >= 0 and r["real"]["body_speed_mps"] > 0.05
    assert r["model"]["ground_speed_mps"] >= 0 and r["real"]["ground_speed_mps"] > 0.3  # the fixtures walk
    assert r["real"]["backward_share"] == 0.0  # the fixtures walk forwards; the tiny model may not travel at all
    assert r["model"]["backward_share"] is None or 0.0 <= r["model"]["backward_share"] <= 1.0
    # accuracy over GEN_DRAWS draws per window; FID on the first draws, which a single draw reproduces
    known = sum(clips[c].action in judge.actions for c, _ in windows(clips, ev.GEN_LEN)[1])
    scaled = r["model"]["action_accuracy"] * known * ev.GEN_DRAWS
    assert ev.GEN_DRAWS > 1 and abs(scaled - round(scaled)) < known * ev.GEN_DRAWS * 1e-4
    monkeypatch.setattr(ev, "GEN_DRAWS", 1)
    assert ev.generate(clips, tiny_generator, judge, seed=0)["model"]["fid"] == r["model"]["fid"]


def test_cli_input_errors_are_one_line(fixture_cache, tmp_path):
    proc = run_cli("--data", str(tmp_path), cache=fixture_cache)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: No .bvh files under {tmp_path}"
