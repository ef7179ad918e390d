"""The pair dataset: deterministic 80/20 split by content, split.csv and classic layouts, metadata,
and augmentation that keeps shapes, ranges and determinism."""

from __future__ import annotations

import csv
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from training import data


def test_domains_come_from_a_folder_named_like_a_pair_or_are_given():
    assert data.domains_of(Path("photos/summer2winter")) == ("summer", "winter")
    assert data.domains_of(Path("photos/cats2dogs")) == ("cats", "dogs")
    assert data.domains_of(Path("photos/mixed"), ("day", "night")) == ("day", "night")
    with pytest.raises(ValueError, match="cannot tell the domains"):
        data.domains_of(Path("photos/mixed"))


def test_hash_split_is_80_20_per_domain_and_follows_content_not_names(pair_dir, tmp_path):
    photos = data.scan_pair(pair_dir)
    tests = {d: sorted(p.sha256 for p in photos if p.domain == d and p.split == "test") for d in ("warm", "cold")}
    assert {d: len(v) for d, v in tests.items()} == {"warm": 2, "cold": 2}  # round(0.2·10), round(0.2·8)

    renamed = tmp_path / "warm2cold"
    for p in pair_dir.rglob("*.jpg"):  # same bytes under other names, in another order
        target = renamed / p.parent.name / f"x_{p.stem[::-1]}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, target)
    again = data.scan_pair(renamed)
    assert {d: sorted(p.sha256 for p in again if p.domain == d and p.split == "test") for d in tests} == tests
    assert data.scan_pair(pair_dir) == photos


def test_split_csv_is_honoured_with_val_as_test(make_pair, tmp_path):
    root = make_pair(tmp_path / "warm2cold", n_a=4, n_b=4)
    rows = [("warm/warm_000.jpg", "val"), ("cold/cold_001.jpg", "test")] + [
        (f"{d}/{d}_{i:03d}.jpg", "train") for d in ("warm", "cold") for i in range(4)
        if (d, i) not in (("warm", 0), ("cold", 1))]
    with open(root / "split.csv", "w", newline="") as f:
        csv.writer(f).writerows([("filename", "split"), *rows])
    splits = {p.name: p.split for p in data.scan_pair(root)}
    assert [n for n, s in splits.items() if s == "test"] == ["cold/cold_001.jpg", "warm/warm_000.jpg"]


def test_classic_layout_maps_trainA_testB_to_domains(make_pair, tmp_path):
    source = make_pair(tmp_path / "src" / "warm2cold", n_a=3, n_b=3)
    root = tmp_path / "summer2winter"
    for folder, domain, names in (("trainA", "warm", ["warm_000", "warm_001"]), ("testA", "warm", ["warm_002"]),
                                  ("trainB", "cold", ["cold_000"]), ("testB", "cold", ["cold_001", "cold_002"])):
        (root / folder).mkdir(parents=True)
        for n in names:
            shutil.copy(source / domain / f"{n}.jpg", root / folder / f"{n}.jpg")
    photos = data.scan_pair(root)
    assert [(p.name, p.domain, p.split) for p in photos] == [
        ("testA/warm_002.jpg", "summer", "test"), ("testB/cold_001.jpg", "winter", "test"),
        ("testB/cold_002.jpg", "winter", "test"), ("trainA/warm_000.jpg", "summer", "train"),
        ("trainA/warm_001.jpg", "summer", "train"), ("trainB/cold_000.jpg", "winter", "train")]


def test_build_gives_tfds_splits_features_and_a_metadata_file(pair_dir, data_dir):
    builder = data.build(pair_dir, data_dir)
    assert Path(builder.data_dir).is_relative_to(data_dir)
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 14, "test": 4}
    assert builder.info.features["domain"].names == ["warm", "cold"]
    example = next(iter(builder.as_dataset(split="test")))
    assert example["image"].dtype == tf.uint8 and example["image"].shape[-1] == 3
    with open(Path(builder.data_dir) / data.METADATA_FILE) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18
    assert set(rows[0]) == {"path", "name", "domain", "split", "width", "height", "bytes", "sha256"}
    assert data.build(pair_dir, data_dir).builder_config.name == builder.builder_config.name  # reused


def _build_when_both_are_ready(barrier, pair_dir: Path, data_dir: Path) -> None:
    barrier.wait()
    data.build(pair_dir, data_dir)


def test_two_runs_building_one_pair_at_once_both_get_the_dataset(pair_dir, tmp_path):
    """Two trainers started together on an unbuilt pair: one builds, the other waits and reuses
    (without the lock the second died renaming its incomplete copy onto the first's)."""
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(2)
    runs = [spawn.Process(target=_build_when_both_are_ready, args=(barrier, pair_dir, tmp_path / "tfds"))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(120)
    assert [run.exitcode for run in runs] == [0, 0]
    assert {k: v.num_examples for k, v in data.build(pair_dir, tmp_path / "tfds").info.splits.items()} \
        == {"train": 14, "test": 4}


@pytest.mark.parametrize("saturation", [0.0, 0.3])
def test_augmentation_keeps_shape_and_range_and_repeats_under_a_seed(saturation):
    aug = data.Augment(size=32, zoom=1.3, saturation=saturation)
    image = np.random.default_rng(0).integers(0, 256, (aug.load_size, aug.load_size, 3), dtype=np.uint8)
    out = [data.augment(image, aug, tf.constant([1, i], tf.int64)).numpy() for i in (0, 0, 1)]
    assert out[0].shape == (32, 32, 3) and out[0].dtype == np.float32
    assert out[0].min() >= -1.0 and out[0].max() <= 1.0
    np.testing.assert_array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


def test_pipeline_from_step_k_equals_the_full_stream_from_k():
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0, 256, (n, 40, 40, 3), dtype=np.uint8) for n in (5, 3))
    aug = data.Augment(size=32, zoom=1.25)
    full = [x for x, _ in data.cyclegan_pipeline(a, b, aug, seed=7).take(12).as_numpy_iterator()]
    tail = [x for x, _ in data.cyclegan_pipeline(a, b, aug, seed=7, start_step=7).take(5).as_numpy_iterator()]
    assert full[0].shape == (1, 32, 32, 3)
    for got, want in zip(tail, full[7:], strict=True):
        np.testing.assert_array_equal(got, want)
