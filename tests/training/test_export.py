"""Export → pipeline load gives the trainer's outputs; PyTorch reference weights import exactly."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline import networks, weights
from pipeline.directions import Direction
from pipeline.registry import ModelRegistry
from training import cyclegan, export, torch_reference


@pytest.mark.parametrize("upsample, architecture", [
    ("transpose", {"ngf": 4, "n_blocks": 1}),  # the paper's: the manifest keeps its two keys
    ("resize", {"ngf": 4, "n_blocks": 1, "upsample": "resize"}),
])
def test_export_then_pipeline_load_gives_identical_outputs(tiny_options, photos_of, tmp_path, upsample,
                                                           architecture):
    opts = dataclasses.replace(tiny_options, max_steps=2, upsample=upsample)
    trainer = cyclegan.Trainer(opts, *photos_of(opts))
    trainer.fit(progress=False)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    want = {"a2b": trainer.model.g_ab(x).numpy(), "b2a": trainer.model.g_ba(x).numpy()}

    manifest = export.export_cyclegan_run(opts.run_dir, tmp_path / "models", pair="summer2winter")
    assert manifest.provenance["steps"] == 2 and manifest.architecture == architecture
    models = ModelRegistry(tmp_path / "models")
    np.testing.assert_array_equal(models.generator(Direction.SUMMER2WINTER)(x), want["a2b"])
    np.testing.assert_array_equal(models.generator(Direction.WINTER2SUMMER)(x), want["b2a"])

    export.export_cyclegan_run(opts.run_dir, tmp_path / "fp16", pair="summer2winter", dtype="float16")
    half = ModelRegistry(tmp_path / "fp16").generator(Direction.SUMMER2WINTER)(x)
    assert half.shape == want["a2b"].shape and np.abs(half - want["a2b"]).max() < 0.02
    size = {d: (tmp_path / d / "summer2winter.h5").stat().st_size for d in ("fp16", "models")}
    assert size["fp16"] < size["models"]

    # The run's photos (warm2cold) are no pair the pipeline serves: the CLI asks for --pair.
    with pytest.raises(SystemExit, match="unknown pair 'warm2cold'.*name the pair with --pair"):
        export.export_cyclegan_run(opts.run_dir, tmp_path / "unnamed")


def _torch_resnet_generator(ngf: int, n_blocks: int):
    torch = pytest.importorskip("torch")
    return torch, torch_reference.randomized(torch_reference.resnet_generator(ngf, n_blocks))


@pytest.mark.slow
def test_torch_reference_generator_imports_with_identical_outputs(tmp_path):
    torch, net = _torch_resnet_generator(ngf=8, n_blocks=3)
    path_a2b, path_b2a = tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_G_B.pth"
    torch.save(net.state_dict(), path_a2b)
    torch.save(net.state_dict(), path_b2a)

    x = np.random.default_rng(2).uniform(-1, 1, (1, 3, 36, 44)).astype(np.float32)  # NCHW, odd sizes ÷ 4
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    keras_model = export.generator_from_torch(export.load_torch_state(path_a2b))
    got = keras_model(x.transpose(0, 2, 3, 1)).numpy()
    assert np.abs(got - want).max() < 1e-4

    export.import_torch(path_a2b, path_b2a, "day2night", tmp_path / "models")
    served = ModelRegistry(tmp_path / "models").generator(Direction.NIGHT2DAY)
    assert served.manifest.architecture == {"ngf": 8, "n_blocks": 3}
    y = np.random.default_rng(3).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(y.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
    assert np.abs(served(y) - ref).max() < 1e-4


def test_a_run_can_start_from_an_exported_model_and_records_it(tiny_options, photos_of, tmp_path):
    """Checkpoints are not shipped: `init_from` trains a shipped pair model further, with its history."""
    first = dataclasses.replace(tiny_options, max_steps=2, run_dir=str(tmp_path / "first"))
    cyclegan.Trainer(first, *photos_of(first)).fit(progress=False)
    shipped = export.export_cyclegan_run(first.run_dir, tmp_path / "models", pair="summer2winter")

    more = dataclasses.replace(tiny_options, max_steps=2, run_dir=str(tmp_path / "more"), seed=9,
                               init_from=str(shipped.path), ema=0.9)
    trainer = cyclegan.Trainer(more, *photos_of(more))
    x = np.random.default_rng(2).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    loaded = ModelRegistry(tmp_path / "models")
    np.testing.assert_array_equal(trainer.model.g_ab(x).numpy(), loaded.generator(Direction.SUMMER2WINTER)(x))
    np.testing.assert_array_equal(trainer.model.g_ba(x).numpy(), loaded.generator(Direction.WINTER2SUMMER)(x))
    np.testing.assert_array_equal(trainer.model.ema_ab(x).numpy(), loaded.generator(Direction.SUMMER2WINTER)(x))
    trainer.fit(progress=False)

    again = export.export_cyclegan_run(more.run_dir, tmp_path / "again", pair="summer2winter")
    assert again.provenance["steps"] == 2
    assert again.provenance["started_from"]["weights_sha256"] == shipped.weights_sha256
    assert again.provenance["started_from"]["provenance"]["steps"] == 2

    changed = dataclasses.replace(more, run_dir=str(tmp_path / "changed"), ngf=8)
    with pytest.raises(SystemExit, match="architecture"):
        cyclegan.Trainer(changed, *photos_of(changed))


def test_exporting_one_generator_keeps_the_installed_other(tiny_options, photos_of, tmp_path):
    """`generators="a2b"` ships a run's summer→winter generator beside the installed
    winter→summer one (its weights exactly, its history in the manifest)."""
    first = dataclasses.replace(tiny_options, max_steps=2, run_dir=str(tmp_path / "first"))
    cyclegan.Trainer(first, *photos_of(first)).fit(progress=False)
    shipped = export.export_cyclegan_run(first.run_dir, tmp_path / "models", pair="summer2winter")
    x = np.random.default_rng(4).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    installed = ModelRegistry(tmp_path / "models")
    kept_output = installed.generator(Direction.WINTER2SUMMER)(x)
    replaced_output = installed.generator(Direction.SUMMER2WINTER)(x)

    second = dataclasses.replace(tiny_options, max_steps=2, run_dir=str(tmp_path / "second"), seed=9)
    trainer = cyclegan.Trainer(second, *photos_of(second))
    trainer.fit(progress=False)
    manifest = export.export_cyclegan_run(second.run_dir, tmp_path / "models", pair="summer2winter",
                                          generators="a2b")
    served = ModelRegistry(tmp_path / "models")
    np.testing.assert_array_equal(served.generator(Direction.SUMMER2WINTER)(x), trainer.model.g_ab(x).numpy())
    assert np.abs(served.generator(Direction.SUMMER2WINTER)(x) - replaced_output).max() > 1e-3
    np.testing.assert_array_equal(served.generator(Direction.WINTER2SUMMER)(x), kept_output)
    kept = manifest.provenance["kept_generator"]
    assert (kept["generator"], kept["direction"]) == ("b2a", "winter2summer")
    assert kept["weights_sha256"] == shipped.weights_sha256 and kept["provenance"]["steps"] == 2
    assert manifest.provenance["steps"] == 2 and manifest.weights_sha256 != shipped.weights_sha256

    with pytest.raises(SystemExit, match="has no summer2winter model"):
        export.export_cyclegan_run(second.run_dir, tmp_path / "empty", pair="summer2winter", generators="b2a")
    installed_manifest = tmp_path / "models" / "summer2winter.json"
    wider = json.loads(installed_manifest.read_text())
    wider["architecture"] = {**wider["architecture"], "ngf": 8}  # as if the installed model were wider
    installed_manifest.write_text(json.dumps(wider))
    with pytest.raises(SystemExit, match="one architecture"):
        export.export_cyclegan_run(second.run_dir, tmp_path / "models", pair="summer2winter", generators="a2b")


def test_a_resize_run_can_start_from_a_transpose_model_but_not_back(tiny_options, photos_of, tmp_path):
    """The shipped models have the paper's transposed upsamplers; a `--upsample resize` run starts
    from them with every other layer as it was and the upsamplers' checkerboard projected out."""
    first = dataclasses.replace(tiny_options, max_steps=1, run_dir=str(tmp_path / "first"))
    cyclegan.Trainer(first, *photos_of(first)).fit(progress=False)
    shipped = export.export_cyclegan_run(first.run_dir, tmp_path / "models", pair="summer2winter")

    resize = dataclasses.replace(tiny_options, max_steps=1, run_dir=str(tmp_path / "resize"),
                                 upsample="resize", init_from=str(shipped.path))
    trainer = cyclegan.Trainer(resize, *photos_of(resize))
    source = networks.resnet_generator(**shipped.architecture)
    weights.load_weights(shipped.weights_path, source, "a2b")
    expected = networks.resnet_generator(**shipped.architecture, upsample="resize")
    networks.copy_generator(source, expected)
    for got, want in zip(trainer.model.g_ab.get_weights(), expected.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    trainer.fit(progress=False)
    resized = export.export_cyclegan_run(resize.run_dir, tmp_path / "resized", pair="summer2winter")
    assert resized.architecture["upsample"] == "resize"

    fitted = dataclasses.replace(resize, run_dir=str(tmp_path / "fitted"), distill=60)
    cyclegan.Trainer(fitted, *photos_of(fitted))
    record = json.loads((tmp_path / "fitted" / cyclegan.STARTED_FROM).read_text())["distill"]
    assert record["steps"] == 60
    assert record["held_out_l1_after"] < 0.9 * record["held_out_l1_before"]
    assert cyclegan.Trainer(fitted, *photos_of(fitted)).step == 0  # resumes after the fit, not into another
    assert record["cycle_weight"] == 0.0
    cycled = dataclasses.replace(fitted, run_dir=str(tmp_path / "cycled"), distill_cycle=5.0)
    cyclegan.Trainer(cycled, *photos_of(cycled))
    with_cycle = json.loads((tmp_path / "cycled" / cyclegan.STARTED_FROM).read_text())["distill"]
    assert with_cycle["cycle_weight"] == 5.0
    assert with_cycle["held_out_cycle_l1_after"] < record["held_out_cycle_l1_after"]  # the term is optimised
    assert with_cycle["held_out_l1_after"] > record["held_out_l1_after"]  # at some cost to the fit

    back = dataclasses.replace(first, run_dir=str(tmp_path / "back"), init_from=str(resized.path))
    with pytest.raises(SystemExit, match="architecture"):
        cyclegan.Trainer(back, *photos_of(back))
