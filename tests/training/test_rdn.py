"""The RDN trainer: degradations halve the size, training lowers the loss, export loads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pipeline.registry import ModelRegistry, write_random_models
from training import evaluate, export, rdn
from training.options import RDNOptions

YY, XX = np.mgrid[:64, :64]
#: What two stride-2 transposed convolutions print on an image: a pattern of period 4 px.
PERIOD_FOUR = (0.08 * np.cos(np.pi * XX / 2) * np.cos(np.pi * YY / 2))[None, :, :, None].astype(np.float32)


def test_degrade_halves_the_size_and_stays_in_range():
    opts = RDNOptions(blur=1.5, jpeg_min=30, noise=0.05)
    hr = tf.random.stateless_uniform((32, 48, 3), [0, 1])
    lr = rdn.degrade(hr, opts, tf.constant([3, 4], tf.int64))
    assert lr.shape == (16, 24, 3)
    assert float(tf.reduce_min(lr)) >= 0.0 and float(tf.reduce_max(lr)) <= 1.0
    np.testing.assert_array_equal(lr, rdn.degrade(hr, opts, tf.constant([3, 4], tf.int64)))


def _photos(n: int = 6, size: int = 128, seed: int = 0) -> np.ndarray:
    """uint8 scenes with a photo's 1/f spectrum."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    x = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(0, 1, (n, size, size, 3)), axes=(1, 2))
                             / np.maximum(f, 1 / size)[None, :, :, None], axes=(1, 2)))
    x = (x - x.mean()) / x.std()
    return np.clip(128 + 40 * x, 0, 255).astype(np.uint8)


def test_artefact_pass_keeps_the_generator_colours_and_the_photo_detail_not_its_texture():
    """A 'generator' that darkens (a translation's colour) and prints a period-4 pattern (its
    texture): the target has the darker colours, the photo's detail, and no pattern."""
    def generator(x):
        return 0.8 * x - 0.1 + PERIOD_FOUR

    photos = _photos()
    inputs, targets = rdn.artefact_pairs(generator, photos, sigma=3.0)
    assert inputs.shape == (6, 64, 64, 3) and targets.shape == photos.shape and targets.dtype == np.uint8
    to_model = lambda x: x.astype(np.float32) / 127.5 - 1
    photo_cb, input_cb, target_cb = (evaluate.checkerboard_db(to_model(x)) for x in (photos, inputs, targets))
    assert np.all(input_cb > photo_cb + 6) and np.all(np.abs(target_cb - photo_cb) < 3)
    darker = (0.8 * (photos / 127.5 - 1) - 0.1 + 1) * 127.5
    assert abs(targets.mean() - darker.mean()) < 2 and photos.mean() - targets.mean() > 10
    detail = lambda x: x.astype(np.float32) - rdn._blur(x.astype(np.float32), 3.0, 9).numpy()
    assert np.corrcoef(detail(targets).ravel(), detail(photos).ravel())[0, 1] > 0.9


def test_patches_mix_aligned_artefact_crops_and_resume_exactly():
    """Each batch: degraded photo patches, then `generator_rate` of it cut from the artefact
    pairs at matching places (input = the target halved) and flips; step k is the same batch
    whether the stream starts at 0 or at k."""
    photos = _photos(n=4, size=48)
    hr = photos.astype(np.float32) / 255
    lr = hr.reshape(4, 24, 2, 24, 2, 3).mean(axis=(2, 4))  # the 2×2 mean commutes with flips
    pairs = (np.round(lr * 255).astype(np.uint8), photos)
    opts = RDNOptions(patch=16, batch_size=4, generator_dir="models", generator_rate=0.5, seed=5)
    batches = list(rdn.patches(photos, opts, 0, pairs).take(4))
    for x, y in batches:
        assert x.shape == (4, 8, 8, 3) and y.shape == (4, 16, 16, 3)
        halved = y[2:].numpy().reshape(2, 8, 2, 8, 2, 3).mean(axis=(2, 4))
        np.testing.assert_allclose(x[2:].numpy(), halved, atol=1.5 / 255)
    x3, y3 = next(iter(rdn.patches(photos, opts, 3, pairs)))
    np.testing.assert_array_equal(x3, batches[3][0])
    np.testing.assert_array_equal(y3, batches[3][1])
    with pytest.raises(SystemExit, match="generator_rate"):
        rdn.patches(photos, dataclasses.replace(opts, generator_rate=1.0), 0, pairs)


@pytest.mark.slow
def test_train_report_and_export(pair_dir, data_dir, tmp_path):
    opts = RDNOptions(data=str(pair_dir), data_dir=str(data_dir), run_dir=str(tmp_path / "rdn"), C=2, D=2, G=8,
                      G0=8, patch=16, photo_size=32, batch_size=4, steps=8, lr=1e-3, eval_size=32, save_every=0)
    report = rdn.train(opts, progress=False)
    assert report["training"]["step"] == 8 and np.isfinite(report["training"]["l1"])
    assert set(report) >= {"rdn", "bicubic", "bicubic_unsharp"} and report["n"] == 4
    assert "| rdn |" in (tmp_path / "rdn" / "report.md").read_text()
    assert "generator_outputs" not in report

    # Run again with generators installed: no more training, the report adds their outputs.
    write_random_models(tmp_path / "pairs", seed=1)
    again = rdn.train(dataclasses.replace(opts, report_generators=str(tmp_path / "pairs")), progress=False)
    assert again["training"]["step"] == 8 and again["rdn"] == report["rdn"]
    assert set(again["generator_outputs"]) == {"day2night", "spring2autumn", "summer2winter"}
    assert all(np.isfinite(r[m]["psnr"]) for r in again["generator_outputs"].values() for m in ("rdn", "bicubic"))
    assert "summer2winter generator outputs" in (tmp_path / "rdn" / "report.md").read_text()

    manifest = export.export_rdn_run(opts.run_dir, tmp_path / "models")
    assert manifest.metrics["bicubic"] == report["bicubic"]
    served = ModelRegistry(tmp_path / "models").rdn()
    assert served(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 512, 512, 3)


@pytest.mark.slow
def test_train_further_with_the_artefact_pass(pair_dir, data_dir, tmp_path):
    """`init_from` starts from an exported RDN; the artefact pass runs the installed pair's generators
    over its photos; the report adds the artefact pass and the served outputs' checkerboard."""
    opts = RDNOptions(data=str(pair_dir), data_dir=str(data_dir), run_dir=str(tmp_path / "first"), C=2, D=2, G=8,
                      G0=8, patch=16, photo_size=32, batch_size=4, steps=2, lr=1e-3, eval_size=32, save_every=0)
    rdn.train(opts, progress=False)
    shipped = export.export_rdn_run(opts.run_dir, tmp_path / "models")

    pair = tmp_path / "summer2winter"  # the test photos, under a pair the pipeline serves
    pair.mkdir()
    (pair / "summer").symlink_to(pair_dir / "warm")
    (pair / "winter").symlink_to(pair_dir / "cold")
    write_random_models(tmp_path / "pairs", seed=1)
    more = dataclasses.replace(opts, run_dir=str(tmp_path / "more"), init_from=str(shipped.path),
                               generator_dir=str(tmp_path / "pairs"), generator_data=str(pair), generator_rate=0.5,
                               generator_photos=3, report_generators=str(tmp_path / "pairs"))
    start = rdn.RDNTrainer(more)
    for got, want in zip(start.network.get_weights(), rdn.RDNTrainer(opts).network.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    report = rdn.train(more, progress=False)
    assert report["training"]["step"] == 2
    assert report["artefact_pass"]["n"] == 4 and np.isfinite(report["artefact_pass"]["rdn"]["psnr"])
    served = report["served_checkerboard"]
    assert set(served) == {"day2night", "spring2autumn", "summer2winter"}
    assert all(set(r) == {"generator", "rdn", "bicubic", "bicubic_unsharp"} for r in served.values())
    text = (tmp_path / "more" / "report.md").read_text()
    assert "artefact pass" in text and "| summer2winter |" in text

    with pytest.raises(SystemExit, match="architecture"):
        rdn.RDNTrainer(dataclasses.replace(more, run_dir=str(tmp_path / "wider"), G=16))
