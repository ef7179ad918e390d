"""The CycleGAN trainer: finite losses that move, and a resumed run equal to an unbroken one."""

from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import pytest

from training import cyclegan


def weights_of(trainer: cyclegan.Trainer) -> list[np.ndarray]:
    m = trainer.model
    averages = m.ema_ab.weights + m.ema_ba.weights if m.ema_ab is not None else []
    return [v.numpy() for v in m.g_ab.weights + m.g_ba.weights + m.d_a.weights + m.d_b.weights
            + list(m.opt_g.variables) + list(m.pool_a.variables) + averages]


def test_a_few_steps_give_finite_losses_that_move(tiny_options, photos_of):
    opts = dataclasses.replace(tiny_options, max_steps=6)
    trainer = cyclegan.Trainer(opts, *photos_of(opts))
    first = {k: float(v) for k, v in trainer.model.train_step(*_batch(opts)).items()}
    result = trainer.fit(progress=False)
    assert result["step"] == 7
    assert all(math.isfinite(v) for v in result["losses"].values())
    assert set(first) == {"g_ab", "g_ba", "cycle_a", "cycle_b", "idt_a", "idt_b", "d_a", "d_b"}
    assert any(abs(first[k] - result["losses"][k]) > 1e-4 for k in first)
    assert (trainer.run_dir / "options.json").is_file()
    assert list((trainer.run_dir / "checkpoints").glob("ckpt-7*"))
    assert list((trainer.run_dir / "logs").iterdir())


def test_discriminator_warm_up_leaves_the_generators_alone(tiny_options, photos_of):
    """`warmup_d`: the first steps train only the discriminators; then both train as usual."""
    opts = dataclasses.replace(tiny_options, warmup_d=2, max_steps=2)
    trainer = cyclegan.Trainer(opts, *photos_of(opts))
    m = trainer.model
    generators, discriminators = (lambda: [v.numpy() for v in m.g_ab.weights + m.g_ba.weights],
                                  lambda: [v.numpy() for v in m.d_a.weights + m.d_b.weights])
    g0, d0 = generators(), discriminators()
    result = trainer.fit(progress=False)
    assert result["step"] == 2 and set(result["losses"]) == {"d_a", "d_b"}
    assert all(np.array_equal(a, b) for a, b in zip(generators(), g0, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(discriminators(), d0, strict=True))
    result = cyclegan.Trainer(dataclasses.replace(opts, max_steps=1), *photos_of(opts)).fit(progress=False)
    assert result["step"] == 3 and {"g_ab", "cycle_a", "d_b"} <= set(result["losses"])


def test_moving_average_of_the_generators_is_what_a_run_exports(tiny_options, photos_of, tmp_path):
    """`ema`: after each generator step average = d·average + (1 − d)·weights; export, evaluation
    and the samples use the average, `raw` the last step's weights."""
    from training import export

    opts = dataclasses.replace(tiny_options, ema=0.75, warmup_d=1, max_steps=3)
    trainer = cyclegan.Trainer(opts, *photos_of(opts))
    m = trainer.model
    generators = lambda: [v.numpy() for v in m.g_ab.weights + m.g_ba.weights]
    averages = lambda: [v.numpy() for v in m.ema_ab.weights + m.ema_ba.weights]
    assert all(np.array_equal(a, g) for a, g in zip(averages(), generators(), strict=True))
    m.train_step(*_batch(opts), False)  # the warm-up: generators and average stay
    assert all(np.array_equal(a, g) for a, g in zip(averages(), generators(), strict=True))
    expected = generators()
    for _ in range(2):
        m.train_step(*_batch(opts))
        expected = [0.75 * a + 0.25 * g for a, g in zip(expected, generators(), strict=True)]
    for got, want in zip(averages(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    assert not all(np.allclose(a, g) for a, g in zip(averages(), generators(), strict=True))
    trainer.save()

    x = np.random.default_rng(4).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    for raw, (g_ab, g_ba) in ((False, (m.ema_ab, m.ema_ba)), (True, (m.g_ab, m.g_ba))):
        _, a2b, b2a, step = export.load_generators(opts.run_dir, raw=raw)
        assert step == 3
        np.testing.assert_array_equal(a2b(x).numpy(), g_ab(x).numpy())
        np.testing.assert_array_equal(b2a(x).numpy(), g_ba(x).numpy())
    manifest = export.export_cyclegan_run(opts.run_dir, tmp_path / "models", pair="summer2winter")
    assert manifest.provenance["generator_weights"] == "moving average (decay 0.75)"
    assert manifest.provenance["recipe"]["ema"] == 0.75


@pytest.mark.slow
def test_stop_and_resume_equals_an_unbroken_run(tiny_options, photos_of, tmp_path):
    # 10 warm / 8 cold training photos at 80 % → 8 / 6: 8 steps per epoch, 16 in all.
    # Stop mid-epoch (step 5) and again at step 11, then finish: pools full, lr decaying.
    unbroken = dataclasses.replace(tiny_options, run_dir=str(tmp_path / "unbroken"), ema=0.9)
    expected = cyclegan.Trainer(unbroken, *photos_of(unbroken))
    expected.fit(progress=False)
    assert expected.step == expected.total_steps == 16

    broken = dataclasses.replace(unbroken, run_dir=str(tmp_path / "broken"))
    for stop in (5, 6, 0):
        trainer = cyclegan.Trainer(dataclasses.replace(broken, max_steps=stop), *photos_of(broken))
        trainer.fit(progress=False)
    assert trainer.step == 16
    for got, want in zip(weights_of(trainer), weights_of(expected), strict=True):
        np.testing.assert_array_equal(got, want)


def test_bfloat16_training_keeps_float32_weights_and_exports(tiny_options, photos_of, tmp_path):
    """Mixed bfloat16 (the CPU default where bf16 is native): bf16 compute, float32 variables, no
    loss scaling, finite losses, and an export the float32 pipeline loads close to the trainer's output."""
    from pipeline.directions import Direction
    from pipeline.registry import ModelRegistry
    from training import export

    opts = dataclasses.replace(tiny_options, max_steps=4, mixed_precision="bfloat16")
    trainer = cyclegan.Trainer(opts, *photos_of(opts))
    assert trainer.model.g_ab.layers[2].dtype_policy.name == "mixed_bfloat16"
    assert not isinstance(trainer.model.opt_g, keras.optimizers.LossScaleOptimizer)
    result = trainer.fit(progress=False)
    assert all(math.isfinite(v) for v in result["losses"].values())
    assert all(v.dtype == "float32" for v in trainer.model.g_ab.weights)

    export.export_cyclegan_run(opts.run_dir, tmp_path / "models", pair="summer2winter")
    x = np.random.default_rng(1).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    served = ModelRegistry(tmp_path / "models").generator(Direction.SUMMER2WINTER).network(x).numpy()
    assert np.abs(served - np.asarray(trainer.model.g_ab(x), np.float32)).max() < 0.05


@pytest.mark.parametrize(("choice", "gpu", "cpu_bf16", "policy"), [
    ("auto", True, False, "mixed_float16"), ("auto", False, True, "mixed_bfloat16"),
    ("auto", False, False, "float32"), ("off", True, True, "float32"), ("bfloat16", False, False, "mixed_bfloat16")])
def test_mixed_policy_follows_the_hardware(monkeypatch, choice, gpu, cpu_bf16, policy):
    from pipeline import registry
    from training import runtime

    monkeypatch.setattr(runtime, "has_gpu", lambda: gpu)
    monkeypatch.setattr(registry, "best_precision", lambda: "bfloat16" if cpu_bf16 else "float32")
    assert runtime.mixed_policy(choice) == policy


def _batch(opts):
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, (1, opts.size, opts.size, 3)).astype(np.float32) for _ in range(2)]
