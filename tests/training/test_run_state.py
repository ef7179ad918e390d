"""A run's committable state: compact codecs with bounded error, and a resume from a fresh clone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training import run_state
from training.options import CycleGANOptions

REPO = Path(__file__).resolve().parents[2]
#: The issue's budget for one pair's committed state.
BUDGET_BYTES = 25_000_000


def test_codecs_round_trip_within_their_precision():
    rng = np.random.default_rng(0)
    weights = rng.normal(0, 0.05, (3, 3, 16, 32)).astype(np.float32)
    momentum = rng.normal(0, 1e-3, (1000,)).astype(np.float32)
    velocity = np.exp(rng.uniform(np.log(1e-12), np.log(1e-4), (1000,))).astype(np.float32)
    velocity[::7] = 0.0
    images = np.clip(rng.normal(0, 0.5, (2, 8, 8, 3)), -1, 1).astype(np.float32)

    def round_trip(codec, x):
        return run_state.CODECS[codec].decode(run_state.CODECS[codec].encode(x), x.shape)

    np.testing.assert_allclose(round_trip("float16", weights), weights, rtol=2 ** -11, atol=1e-7)
    for codec, levels in (("int8", 127), ("int6", 31)):
        error = np.abs(round_trip(codec, momentum) - momentum)
        assert error.max() <= np.abs(momentum).max() / (2 * levels) * 1.001
    decoded = round_trip("log7", velocity)
    assert np.all(decoded[velocity == 0] == 0) and np.all(decoded[velocity > 0] > 0)
    ratio = decoded[velocity > 0] / velocity[velocity > 0]
    assert np.abs(np.log2(ratio)).max() <= np.log2(1e8) / 126 / 2 * 1.001  # half a step of the block's range
    assert np.abs(round_trip("image8", images) - images).max() <= 1 / 255 + 1e-6
    np.testing.assert_array_equal(round_trip("exact", np.array(7, np.int64)), 7)


def train(pair: Path, tfds: Path, run: Path, *flags: str, recipe: bool = True) -> None:
    """`python -m training cyclegan` in a new process; the tiny recipe's flags unless `recipe` is False."""
    location = ["--data", str(pair), "--data-dir", str(tfds)]
    tiny = ["--size", "32", "--zoom", "1.25", "--ngf", "4",
              "--n-blocks", "1", "--ndf", "4", "--epochs", "1", "--epochs-decay", "1", "--pool-size", "3",
              "--samples", "2", "--save-every", "0", "--seed", "3", "--mixed-precision", "off", "--ema", "0.9"]
    command = [sys.executable, "-m", "training", "cyclegan", "--run-dir", str(run), "--threads", "1",
               "--deterministic", *flags]
    done = subprocess.run(command + location + (tiny if recipe else []), capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]


def decoded_state(state_dir: Path) -> dict[str, np.ndarray]:
    return run_state._read_archive(state_dir / run_state.STATE_FILE)


@pytest.mark.slow
def test_a_committed_state_resumes_in_a_fresh_clone_exactly_as_the_run_that_wrote_it(make_pair, tmp_path):
    """Process 1 trains 3 steps and writes its state; the state alone (its run directory gone, as on a
    fresh machine) resumes in process 2 for 3 more steps, with the recipe read from the state. An
    unbroken 6-step run that wrote its state at step 3 ends bitwise equal; one that wrote none ends
    close (the state's rounding, once) but not equal."""
    pair, tfds = make_pair(tmp_path / "warm2cold"), tmp_path / "tfds"
    state, clone = tmp_path / "state", tmp_path / "clone" / "models" / "runs" / "warm2cold"
    train(pair, tfds, tmp_path / "first", "--state-dir", str(state), "--max-steps", "3")
    assert json.loads((state / run_state.FACTS_FILE).read_text())["step"] == 3
    shutil.copytree(state, clone)
    shutil.rmtree(tmp_path / "first")
    train(pair, tfds, tmp_path / "resumed", "--state-dir", str(clone), "--max-steps", "3", recipe=False)
    train(pair, tfds, tmp_path / "unbroken", "--state-dir", str(tmp_path / "unbroken-state"), "--state-every", "3",
          "--max-steps", "6")
    train(pair, tfds, tmp_path / "unrounded", "--max-steps", "6")

    resumed, unbroken = decoded_state(clone), decoded_state(tmp_path / "unbroken-state")
    assert int(resumed["step:x"]) == 6 and resumed.keys() == unbroken.keys()
    for key in resumed:
        np.testing.assert_array_equal(resumed[key], unbroken[key], err_msg=key)
    opts = CycleGANOptions.load(clone / run_state.OPTIONS_FILE)
    assert opts.ngf == 4 and opts.ema == 0.9 and opts.data == str(pair)

    from training.export import load_generators

    _, rounded_ab, _, step = load_generators(tmp_path / "unbroken", raw=True)
    _, plain_ab, _, plain_step = load_generators(tmp_path / "unrounded", raw=True)
    assert step == plain_step == 6
    differences = [np.abs(a - b).max() for a, b in zip(rounded_ab.get_weights(), plain_ab.get_weights(), strict=True)]
    assert 0 < max(differences) < 1e-3


def test_committed_run_states_fit_the_budget_and_match_their_facts():
    """Each state under models/runs/ is at most 25 MB, intact, and holds its recipe's generators."""
    from pipeline import networks

    for state_dir in sorted((REPO / "models" / "runs").glob("*/")):
        facts = json.loads((state_dir / run_state.FACTS_FILE).read_text())
        assert (state_dir / run_state.STATE_FILE).stat().st_size == facts["bytes"] <= BUDGET_BYTES
        assert run_state._sha256(state_dir / run_state.STATE_FILE) == facts["sha256"]
        opts = CycleGANOptions.load(state_dir / run_state.OPTIONS_FILE)
        shapes = [tuple(w.shape) for w in networks.resnet_generator(**opts.architecture).weights]
        a2b, b2a, step = run_state.generator_weights(state_dir, shapes)
        assert step == facts["step"] and all(np.isfinite(w).all() for w in a2b + b2a)
