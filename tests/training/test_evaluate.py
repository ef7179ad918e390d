"""Evaluation: a report with the classifier's accuracy and each direction's figures, and a grid."""

from __future__ import annotations

import dataclasses
import json

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
    assert json.loads((tmp_path / "eval" / "report.json").read_text()) == report
    assert "| warm2cold |" in (tmp_path / "eval" / "report.md").read_text()
    assert (tmp_path / "eval" / "grid.jpg").stat().st_size > 0
