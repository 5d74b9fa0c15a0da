"""The motion library: a file that round-trips and refuses what it isn't, gap fills that keep every key,
draw on the nearest recorded motion and give each variation its own segment, and the generator and
evaluation that use it."""
import json
import os

import numpy as np
import pytest

from model.library import MAX_GAP, OPEN_CHUNK, OPEN_RAMP, LibraryError, MotionLibrary
from training.bvh import load_bvh
from training.library import build

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "bandai_walk_tiny.bvh")


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    return load_bvh(FIXTURE).positions.astype(np.float64)


def keyed_every(length: int, step: int) -> np.ndarray:
    keyed = np.zeros(length, bool)
    keyed[::step] = True
    keyed[-1] = True
    return keyed


def test_a_library_file_round_trips_and_names_its_source(tmp_path):
    path, folder = str(tmp_path / "lib.safetensors"), os.path.join(os.path.dirname(FIXTURE), "cmu")
    built = build(folder, path)
    loaded = MotionLibrary.load(path)
    assert len(loaded.lengths) == 2 and loaded.lengths.sum() == len(loaded.positions) == 90
    np.testing.assert_array_equal(loaded.lengths, built.lengths)
    np.testing.assert_array_equal(loaded.positions, built.positions.astype(np.float16))
    assert loaded.meta["source"] == folder and loaded.meta["frames"] == len(loaded.positions)
    without_salsa = build(folder, path, exclude=("salsa",))
    assert len(without_salsa.lengths) == 1 and MotionLibrary.load(path).meta["excluded"] == ["salsa"]
    with pytest.raises(FileNotFoundError, match="No clips left"):
        build(folder, path, exclude=("salsa", "indian"))


def test_bad_library_files_are_refused_with_a_reason(walk, tmp_path):
    with pytest.raises(LibraryError, match="not found.*training.library"):
        MotionLibrary.load(str(tmp_path / "none.safetensors"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(LibraryError, match="not a readable safetensors"):
        MotionLibrary.load(str(junk))
    from safetensors.numpy import save_file
    weights = str(tmp_path / "weights.safetensors")
    save_file({"generator.w": np.zeros(3, np.float16)}, weights)
    with pytest.raises(LibraryError, match="not a motion library"):
        MotionLibrary.load(weights)
    good = str(tmp_path / "good.safetensors")
    MotionLibrary([walk[:40], walk[40:]]).save(good, {})
    from safetensors import safe_open
    with safe_open(good, "np") as f:
        header, arrays = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    save_file({**arrays, "lengths": arrays["lengths"] + 1}, str(tmp_path / "bad.safetensors"), metadata=header)
    with pytest.raises(LibraryError, match="corrupt"):
        MotionLibrary.load(str(tmp_path / "bad.safetensors"))
    save_file(arrays, str(tmp_path / "other.safetensors"), metadata={**header, "joints": json.dumps(["a", "b"])})
    with pytest.raises(LibraryError, match="another skeleton"):
        MotionLibrary.load(str(tmp_path / "other.safetensors"))


def test_gaps_move_halfway_to_the_recorded_motion_and_keys_stay(walk):
    """A library holding the very clip: a linear fill moves halfway to the truth between every pair
    of keys (each with its frame before keyed too, so the search sees the true velocity), the keys
    untouched."""
    library = MotionLibrary([walk], stride=1)
    truth = walk[20:81]
    keyed = keyed_every(len(truth), 10)
    keyed[np.flatnonzero(keyed)[1:] - 1] = keyed[0] = keyed[1] = True
    frames = np.flatnonzero(keyed)
    linear = np.stack([np.interp(np.arange(len(truth)), frames, truth[frames, j, a])
                       for j in range(truth.shape[1]) for a in range(3)], -1).reshape(truth.shape)
    out = library.blend_gaps(linear[None, None], keyed[None])[0, 0]
    np.testing.assert_array_equal(out[keyed], linear[keyed])
    hidden = ~keyed
    np.testing.assert_allclose(out[hidden], (linear[hidden] + truth[hidden]) / 2, atol=1e-6)
    untouched = library.blend_gaps(linear[None, None], keyed[None], weight=0.0)[0, 0]
    np.testing.assert_allclose(untouched, linear)


def test_each_variation_draws_on_its_own_segment(walk):
    library = MotionLibrary([walk], stride=1)
    window = walk[30:71].copy()
    keyed = np.zeros(len(window), bool)
    keyed[:10] = keyed[40] = True
    motion = np.repeat(window[None, None], 3, 1)
    motion[:, :, 10:40] = window[9]  # a held pose to fill
    out = library.blend_gaps(motion, keyed[None])[0]
    assert np.abs(out[0] - out[1]).max() > 0.01 and np.abs(out[1] - out[2]).max() > 0.01
    shifted = library.blend_gaps(motion, keyed[None], rank=1)[0]
    np.testing.assert_allclose(shifted[0], out[1])  # rank shifts which segment a variation draws on
    for variation in out:
        np.testing.assert_array_equal(variation[keyed], window[keyed])


def test_a_gap_from_the_first_frame_is_searched_with_the_velocity_out_of_its_key(walk):
    library = MotionLibrary([walk], stride=1)
    motion = walk[None, None, 30:61].copy()
    keyed = np.zeros(31, bool)
    keyed[[0, 30]] = True
    err = lambda m: np.linalg.norm(m - motion, axis=-1).mean()
    assert err(library.blend_gaps(motion, keyed[None])) < 0.015  # this walk, or a frame or two beside it
    linear = motion.copy()
    linear[:, :, 1:30] = motion[:, :, :1] + np.linspace(0, 1, 31)[1:30, None, None] * (motion[:, :, 30:] - motion[:, :, :1])
    assert err(library.blend_gaps(linear, keyed[None])) < 0.6 * err(linear)


def test_past_the_last_key_the_recorded_continuation_takes_over(walk):
    """Ten keyed frames, then nothing: from half the way to the recorded continuation to all of it
    OPEN_RAMP frames on (here it is this very walk, so the result becomes the walk itself)."""
    library = MotionLibrary([walk], stride=1)
    truth = walk[20:100]
    keyed = np.zeros(80, bool)
    keyed[:11] = True
    stopped = truth.copy()
    stopped[11:] = truth[10]  # a continuation that stops dead
    out = library.blend_gaps(stopped[None, None], keyed[None])[0, 0]
    np.testing.assert_array_equal(out[keyed], stopped[keyed])
    np.testing.assert_allclose(out[10 + OPEN_RAMP:], truth[10 + OPEN_RAMP:], atol=1e-9)
    np.testing.assert_allclose(out[11], stopped[11] + (0.5 + 0.5 / OPEN_RAMP) * (truth[11] - stopped[11]), atol=1e-9)


def test_a_long_continuation_chains_recorded_segments(walk):
    """Past OPEN_CHUNK frames the next segment is searched from where the motion has got to: here the
    walk finds itself again, so all 137 frames after the keys become the walk."""
    library = MotionLibrary([walk], stride=1)
    truth = walk[:140]
    keyed = np.zeros(140, bool)
    keyed[:3] = True
    stopped = truth.copy()
    stopped[3:] = truth[2]
    out = library.blend_gaps(stopped[None, None], keyed[None])[0, 0]
    assert 140 - 3 > OPEN_CHUNK
    np.testing.assert_allclose(out[2 + OPEN_RAMP:], truth[2 + OPEN_RAMP:], atol=1e-9)


def test_gaps_without_two_full_keys_are_left_alone(walk):
    library = MotionLibrary([walk], stride=1)
    motion = walk[None, None, :60].copy()
    partial = np.zeros((60, 21), bool)
    partial[[5, 59]] = True
    partial[20, 3] = True  # one joint keyed inside the gap: the network meets it, retrieval would not
    np.testing.assert_array_equal(library.blend_gaps(motion, partial[None]), motion)
    long_gap = np.zeros(MAX_GAP + 3, bool)
    long_gap[[1, MAX_GAP + 2]] = True
    motion = np.zeros((1, 1, MAX_GAP + 3, 21, 3))
    np.testing.assert_array_equal(library.blend_gaps(motion, long_gap[None]), motion)


def test_the_generator_fills_gaps_with_its_library_only_when_asked(tiny_generator, walk):
    import copy
    gen = copy.copy(tiny_generator)
    gen.library = MotionLibrary([walk], stride=1)
    window = walk[10:81]
    mask = keyed_every(len(window), 15)
    mask[:3] = True
    alone = gen.sample(window, mask, n=2, seed=1, retrieve=False)
    np.testing.assert_array_equal(alone, tiny_generator.sample(window, mask, n=2, seed=1))
    with_library = gen.sample(window, mask, n=2, seed=1)
    np.testing.assert_array_equal(with_library[:, mask], np.broadcast_to(window[mask], with_library[:, mask].shape))
    err = lambda out: np.linalg.norm(out[:, ~mask] - window[~mask], axis=-1).mean()
    assert err(with_library) < err(alone)  # the library holds this very walk
    likeliest = gen.sample(window, mask, n=2, seed=1, temperature=0.0, rank=4)
    np.testing.assert_array_equal(likeliest, gen.sample(window, mask, n=2, seed=2, temperature=0.0))
    np.testing.assert_array_equal(likeliest[0], likeliest[1])  # the prior's mean and the nearest segment
    batched = gen.sample_windows(window[None], mask, n=2, seed=[1])[0]
    assert np.linalg.norm(batched[:, ~mask] - window[~mask], axis=-1).mean() < err(alone)


def test_evaluation_with_a_library_reports_it_and_leaves_the_generator_alone(tiny_generator, fixture_cache):
    from training import evaluate as ev
    from training.dataset import MotionDataset
    from training.eval_clips import load_clips
    clips = load_clips(os.path.dirname(FIXTURE), max_clips=1)  # bandai_walk_tiny: 150 frames
    assert len(clips[0].positions) >= 71
    train = MotionDataset.load(fixture_cache)
    assert tiny_generator.library is None
    with_library = ev.evaluate(clips, train, tiny_generator, library=True)
    alone = ev.evaluate(clips, train, tiny_generator)
    assert tiny_generator.library is None and with_library["library"] and not alone["library"]
    gap = [g for g in with_library["inbetween"] if with_library["inbetween"][g]["model"]["mpjpe_mm"] is not None][0]
    assert with_library["inbetween"][gap]["model"] != alone["inbetween"][gap]["model"]
