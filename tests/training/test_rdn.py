"""The RDN trainer: degradations halve the size, training lowers the loss, export loads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from pipeline.registry import ModelRegistry, write_random_models
from training import rdn
from training.options import RDNOptions


def test_degrade_halves_the_size_and_stays_in_range():
    opts = RDNOptions(blur=1.5, jpeg_min=30, noise=0.05)
    hr = tf.random.stateless_uniform((32, 48, 3), [0, 1])
    lr = rdn.degrade(hr, opts, tf.constant([3, 4], tf.int64))
    assert lr.shape == (16, 24, 3)
    assert float(tf.reduce_min(lr)) >= 0.0 and float(tf.reduce_max(lr)) <= 1.0
    np.testing.assert_array_equal(lr, rdn.degrade(hr, opts, tf.constant([3, 4], tf.int64)))


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

    manifest = rdn.export_run(opts.run_dir, tmp_path / "models")
    assert manifest.metrics["bicubic"] == report["bicubic"]
    served = ModelRegistry(tmp_path / "models").rdn()
    assert served(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 512, 512, 3)
