"""Evaluation: a report with the classifier's accuracy and each direction's figures, and a grid."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline.directions import PAIRS
from pipeline.manifests import sha256_file
from training import cyclegan, data, evaluate
from training.__main__ import main


def test_evaluate_a_run_writes_json_markdown_and_grid(tiny_options, photos_of, tmp_path):
    opts = dataclasses.replace(tiny_options, max_steps=1)
    cyclegan.Trainer(opts, *photos_of(opts)).fit(progress=False)
    report = evaluate.evaluate(opts.data, tmp_path / "eval", run_dir=opts.run_dir, data_dir=opts.data_dir,
                               size=32, grid_rows=2)
    assert report["classifier"]["n_test"] == 4  # 20 % of 10 warm + 8 cold
    assert report["classifier"]["test_accuracy"] >= 0.75  # warm vs cold tints are easy
    assert set(report["directions"]) == {"warm2cold", "cold2warm"}
    for figures in report["directions"].values():
        assert 0 <= figures["target_rate"] <= 1 and figures["cycle_psnr"] > 0 and -1 <= figures["ssim_luma"] <= 1
        assert np.isfinite(figures["checkerboard_db"]) and np.isfinite(figures["input_checkerboard_db"])
    assert json.loads((tmp_path / "eval" / "report.json").read_text()) == report
    assert "| warm2cold |" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "grid.jpg").stat().st_size > 0
    assert report["classifier"]["source"] == "trained on this machine"  # no pinned one for this dataset


def test_a_pinned_classifier_is_the_one_evaluations_use_for_its_dataset_only(pair_dir, data_dir, make_pair,
                                                                             tmp_path, capsys):
    pins = tmp_path / "pins"
    main(["classifier", "--data", str(pair_dir), "--data-dir", str(data_dir), "--out", str(pins)])
    pinned = json.loads(capsys.readouterr().out)
    builder = data.build(pair_dir, data_dir)
    assert pinned["dataset"] == builder.builder_config.name and pinned["n_test"] == 4
    weights_file, facts_file = evaluate.pinned_files(pins, builder)
    assert weights_file.name == pinned["weights"] and sha256_file(weights_file) == pinned["sha256"]

    # Pinned beats the classifier cached on this machine: pin other weights and get exactly those.
    other = evaluate.domain_classifier()
    other.save_weights(weights_file)
    facts_file.write_text(json.dumps({**pinned, "sha256": sha256_file(weights_file)}))
    model, facts = evaluate.train_classifier(builder, pinned_dir=pins)
    assert facts["source"] == f"pinned: {weights_file.name}"
    for got, want in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)

    # Another set of photos under the same pair name is not measured with it.
    elsewhere = data.build(make_pair(tmp_path / "elsewhere" / "warm2cold", seed=1), data_dir)
    assert evaluate.train_classifier(elsewhere, pinned_dir=pins)[1]["source"] == "trained on this machine"

    # Weights that are not the pinned ones are refused, not silently used.
    weights_file.write_bytes(weights_file.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match the sha256"):
        evaluate.train_classifier(builder, pinned_dir=pins)


def test_the_committed_classifiers_are_the_pinned_ones_for_each_pair():
    """Every pair's evaluation uses a classifier committed with the project (its hash as pinned)."""
    pinned = [json.loads(p.read_text()) for p in sorted(evaluate.CLASSIFIER_DIR.glob("*.json"))]
    assert sorted(p["dataset"].split("_")[0] for p in pinned) == sorted(pair.name for pair in PAIRS)
    for p in pinned:
        assert sha256_file(evaluate.CLASSIFIER_DIR / p["weights"]) == p["sha256"]
        assert p["weights"] == f"{p['dataset']}_{p['size']}_e{p['epochs']}_s{p['seed']}.weights.h5"


def test_checkerboard_figure_finds_a_period_four_pattern_and_not_photo_content():
    """Random scenes with a photo's 1/f spectrum score low; the same scenes with a faint period-4
    pattern (what two stride-2 transposed convolutions print) score far higher, rising with its strength."""
    rng = np.random.default_rng(0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(256), np.fft.fftfreq(256)))
    spectra = np.fft.fft2(rng.normal(0, 1, (3, 256, 256, 3)), axes=(1, 2)) / np.maximum(f, 1 / 256)[None, :, :, None]
    scenes = np.real(np.fft.ifft2(spectra, axes=(1, 2)))
    scenes = np.clip(scenes / np.abs(scenes).max(axis=(1, 2, 3), keepdims=True) * 0.8, -1, 1).astype(np.float32)
    yy, xx = np.mgrid[:256, :256]
    pattern = (np.cos(np.pi * xx / 2) * np.cos(np.pi * yy / 2) + np.cos(np.pi * xx))[None, :, :, None]
    clean = evaluate.checkerboard_db(scenes)
    faint, strong = (evaluate.checkerboard_db(scenes + a * pattern.astype(np.float32)) for a in (0.01, 0.05))
    assert np.all(clean < 4)
    assert np.all(faint > clean + 6) and np.all(strong > faint + 6)


def test_the_blurred_cycle_exposes_a_reconstruction_hidden_in_a_period_two_code():
    """A pair that carries x through G(x) in a faint period-2 carrier reconstructs it perfectly,
    until G(x) is blurred; an honest pair (an invertible tone change) barely notices the blur."""
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(4, 64, 64, 3)), axis=1), axis=2)
    x = (0.8 * smooth / np.abs(smooth).max(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
    yy, xx = np.mgrid[:64, :64]
    carrier = ((-1.0) ** (xx + yy))[None, :, :, None].astype(np.float32)

    def psnr(reconstruction):
        return float(np.mean(10 * np.log10(4.0 / np.mean((np.asarray(reconstruction) - x) ** 2, axis=(1, 2, 3)))))

    honest_g, honest_f = (lambda v: 0.5 * v), (lambda v: 2.0 * v)
    hiding_g, hiding_f = (lambda v: 0.05 * v * carrier), (lambda v: v * carrier / 0.05)
    honest = psnr(honest_f(evaluate.hidden_code_blur(honest_g(x))))
    hiding = psnr(hiding_f(evaluate.hidden_code_blur(hiding_g(x))))
    assert psnr(hiding_f(hiding_g(x))) > 60 and honest > 30
    assert hiding < honest - 10
    assert hiding < psnr(np.zeros_like(x)) + 1  # no better than reconstructing nothing
