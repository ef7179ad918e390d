"""Evaluation: a report with the classifier's accuracy and each direction's figures, and a grid."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from training import cyclegan, evaluate


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
