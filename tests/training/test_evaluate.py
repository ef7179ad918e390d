"""Evaluation: a report with the classifier's accuracy and each direction's figures, and a grid."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from pipeline.directions import PAIRS, pair_named
from pipeline.manifests import sha256_file
from training import baselines, classifier, cyclegan, data, evaluate
from training.__main__ import main


def test_evaluate_a_run_writes_json_markdown_and_grid(tiny_options, photos_of, tmp_path):
    opts = dataclasses.replace(tiny_options, max_steps=1)
    cyclegan.Trainer(opts, *photos_of(opts)).fit(progress=False)
    report = evaluate.evaluate(opts.data, tmp_path / "eval", run_dir=opts.run_dir, data_dir=opts.data_dir,
                               size=32, grid_rows=2)
    assert report["classifier"]["n_test"] == 4  # 20 % of 10 warm + 8 cold
    assert set(report["directions"]) == {"warm2cold", "cold2warm"}
    for figures in report["directions"].values():
        assert 0 <= figures["target_rate"] <= 1 and figures["cycle_psnr"] > 0 and -1 <= figures["ssim_luma"] <= 1
        assert np.isfinite(figures["checkerboard_db"]) and np.isfinite(figures["input_checkerboard_db"])
        assert set(figures["baselines"]) == set(baselines.NAIVE_TRANSLATIONS)
        best = max(b["target_rate"] for b in figures["baselines"].values())
        assert figures["margin_over_best_baseline"] == pytest.approx(figures["target_rate"] - best, abs=1e-4)
        assert all(np.isfinite(f["kid"]) for f in (figures, *figures["baselines"].values()))
    assert json.loads((tmp_path / "eval" / "report.json").read_text()) == report
    text = (tmp_path / "eval" / "report.md").read_text()
    assert "| warm2cold |" in text and "histogram matching" in text
    assert (tmp_path / "eval" / "grid.jpg").stat().st_size > 0
    for direction in ("warm2cold", "cold2warm"):  # input | output | colour transfer, 2 held-out photos each
        assert Image.open(tmp_path / "eval" / f"sheet_{direction}.jpg").size == (3 * 32 + 2 * 4, 2 * 32 + 4)
    assert report["classifier"]["source"] == "trained on this machine"  # no pinned one for this dataset


def test_a_pinned_classifier_is_the_one_evaluations_use_for_its_dataset_only(pair_dir, data_dir, make_pair,
                                                                             tmp_path, capsys):
    pins = tmp_path / "pins"
    main(["classifier", "--data", str(pair_dir), "--data-dir", str(data_dir), "--out", str(pins)])
    pinned = json.loads(capsys.readouterr().out)
    builder = data.build(pair_dir, data_dir)
    assert pinned["dataset"] == builder.builder_config.name and pinned["n_test"] == 4
    weights_file, facts_file = classifier.pinned_files(pins, builder)
    assert weights_file.name == pinned["weights"] and sha256_file(weights_file) == pinned["sha256"]

    # Pinned beats the classifier cached on this machine: pin other weights and get exactly those.
    other = classifier.domain_classifier()
    other.save_weights(weights_file)
    facts_file.write_text(json.dumps({**pinned, "sha256": sha256_file(weights_file)}))
    model, facts = classifier.load_or_train(builder, pinned_dir=pins)
    assert facts["source"] == f"pinned: {weights_file.name}"
    for got, want in zip(model.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)

    # Another set of photos under the same pair name is not measured with it.
    elsewhere = data.build(make_pair(tmp_path / "elsewhere" / "warm2cold", seed=1), data_dir)
    assert classifier.load_or_train(elsewhere, pinned_dir=pins)[1]["source"] == "trained on this machine"

    # Weights that are not the pinned ones are refused, not silently used.
    weights_file.write_bytes(weights_file.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="does not match the sha256"):
        classifier.load_or_train(builder, pinned_dir=pins)


def test_the_committed_classifiers_are_the_pinned_ones_for_each_pair():
    """Every pair's evaluation uses a classifier committed with the project (its hash as pinned)."""
    pinned = [json.loads(p.read_text()) for p in sorted(classifier.PINNED_DIR.glob("*.json"))]
    assert sorted(p["dataset"].split("_")[0] for p in pinned) == sorted(pair.name for pair in PAIRS)
    for p in pinned:
        assert sha256_file(classifier.PINNED_DIR / p["weights"]) == p["sha256"]
        assert p["weights"] == f"{p['dataset']}_{p['size']}_e{p['epochs']}_s{p['seed']}_{p['recipe']}.weights.h5"
        assert p["recipe"] == classifier.RECIPE
        pair = pair_named(p["dataset"].split("_")[0])
        assert set(p["naive_target_rates"]) == {pair.direction(g).value for g in ("a2b", "b2a")}


def photo_like_scenes(seed: int, n: int = 3, size: int = 256) -> np.ndarray:
    """Random [-1, 1] scenes with a photo's 1/f spectrum."""
    rng = np.random.default_rng(seed)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    spectra = np.fft.fft2(rng.normal(0, 1, (n, size, size, 3)), axes=(1, 2)) / np.maximum(f, 1 / size)[None, :, :, None]
    scenes = np.real(np.fft.ifft2(spectra, axes=(1, 2)))
    return np.clip(scenes / np.abs(scenes).max(axis=(1, 2, 3), keepdims=True) * 0.8, -1, 1).astype(np.float32)


def test_checkerboard_figure_finds_a_period_four_pattern_and_not_photo_content():
    """Random scenes with a photo's 1/f spectrum score low; the same scenes with a faint period-4
    pattern (what two stride-2 transposed convolutions print) score far higher, rising with its strength."""
    scenes = photo_like_scenes(0)
    yy, xx = np.mgrid[:256, :256]
    pattern = (np.cos(np.pi * xx / 2) * np.cos(np.pi * yy / 2) + np.cos(np.pi * xx))[None, :, :, None]
    clean = evaluate.checkerboard_db(scenes)
    faint, strong = (evaluate.checkerboard_db(scenes + a * pattern.astype(np.float32)) for a in (0.01, 0.05))
    assert np.all(clean < 4)
    assert np.all(faint > clean + 6) and np.all(strong > faint + 6)


def test_the_shift_ensemble_to_serve_is_predicted_from_where_the_pattern_sits():
    """A 'generator' printing a grid-tied pattern at quarter frequencies (1, 1) and, fainter, (2, 0):
    `checkerboard_power` finds both; `shift_residue_db` ranks the shift ensembles by what each
    keeps (the antidiagonal keeps (1, 1), the horizontal (2, 0), the others neither) and predicts
    the figure each leaves when served, within a decibel."""
    from pipeline import networks
    from pipeline.manifests import SHIFT_STEPS

    scenes = photo_like_scenes(1)

    def generator(x):  # the pattern is tied to the output grid, whatever the size
        yy, xx = np.mgrid[:x.shape[1], :x.shape[2]]
        pattern = 0.04 * np.cos(np.pi * (xx + yy) / 2) + 0.008 * np.cos(np.pi * yy)
        return x + pattern[None, :, :, None].astype(np.float32)

    output, inputs = (evaluate.checkerboard_power(v).mean(axis=0) for v in (generator(scenes), scenes))
    assert output[1, 1] > output[2, 0] > 10 * inputs[2, 0] and output[1, 1] > 100 * inputs[1, 1]

    predicted = {name: evaluate.shift_residue_db(output, inputs, step) for name, step in SHIFT_STEPS.items()}
    served = {name: float(evaluate.checkerboard_db(networks.served(generator, name)(scenes).numpy()).mean())
              for name in SHIFT_STEPS}
    for name in SHIFT_STEPS:
        assert abs(predicted[name] - served[name]) < 1.0, (name, predicted, served)
    plain = float(evaluate.checkerboard_db(generator(scenes)).mean())
    assert plain > predicted["shifts-antidiagonal"] > predicted["shifts-horizontal"] + 3
    assert predicted["shifts-horizontal"] > max(predicted["shifts"], predicted["shifts-vertical"]) + 3


def test_checkerboard_command_ranks_the_shift_ensembles_for_each_generator_of_an_installed_pair(
        make_pair, data_dir, tmp_path, capsys):
    from pipeline.manifests import SHIFT_STEPS
    from pipeline.registry import write_random_models

    write_random_models(tmp_path / "models")
    photos = make_pair(tmp_path / "day2night", domains=("day", "night"))
    assert main(["checkerboard", "--data", str(photos), "--model-dir", str(tmp_path / "models"),
                 "--data-dir", str(data_dir), "--max-images", "2"]) == 0
    text = capsys.readouterr().out
    for direction in ("day2night", "night2day"):
        line = next(line for line in text.splitlines() if line.startswith(direction))
        assert "served plain" in line and "2 held-out photos" in line
    assert all(text.count(name + " ") == 2 for name in SHIFT_STEPS)


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
