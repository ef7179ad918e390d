"""The RDN trainer: degradations halve the size, training lowers the loss, export loads."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from pipeline.registry import ModelRegistry
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

    manifest = rdn.export_run(opts.run_dir, tmp_path / "models")
    assert manifest.metrics["bicubic"] == report["bicubic"]
    served = ModelRegistry(tmp_path / "models").rdn()
    assert served(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 512, 512, 3)
