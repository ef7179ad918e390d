"""Fixtures for the training tests: a tiny pair folder of generated photos, tiny options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.options import CycleGANOptions


def write_pair(root: Path, n_a: int = 10, n_b: int = 8, seed: int = 0, domains: tuple[str, str] = ("warm", "cold")
               ) -> Path:
    """A `warm2cold` folder: reddish noisy photos (warm) and bluish ones (cold), varied sizes
    (`domains` names the two folders otherwise)."""
    rng = np.random.default_rng(seed)
    for domain, n, tint in ((domains[0], n_a, (200, 90, 60)), (domains[1], n_b, (60, 90, 200))):
        (root / domain).mkdir(parents=True)
        for i in range(n):
            h, w = 40 + 4 * (i % 3), 48
            base = np.array(tint, np.float32) * np.linspace(0.5, 1.0, w)[None, :, None]
            pixels = np.clip(base + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / domain / f"{domain}_{i:03d}.jpg", quality=90)
    return root


@pytest.fixture(scope="session")
def make_pair():
    return write_pair


@pytest.fixture(scope="session")
def pair_dir(tmp_path_factory) -> Path:
    return write_pair(tmp_path_factory.mktemp("photos") / "warm2cold")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture
def tiny_options(pair_dir, data_dir, tmp_path) -> CycleGANOptions:
    return CycleGANOptions(
        data=str(pair_dir), data_dir=str(data_dir), run_dir=str(tmp_path / "run"), size=32, zoom=1.25,
        saturation=0.1, ngf=4, n_blocks=1, ndf=4, epochs=1, epochs_decay=1, pool_size=3, samples=2,
        save_every=0, log_every=1, seed=3, mixed_precision="off",  # exact float32 comparisons
    )


@pytest.fixture(scope="session")
def photos_of():
    """Trainer inputs for options: train photos at the cache size, two test photos per domain."""
    from training import data

    def load(opts: CycleGANOptions):
        builder = data.build(opts.data, opts.data_dir)
        aug = data.Augment(opts.size, opts.zoom)
        return (data.load_images(builder, "train", 0, aug.load_size),
                data.load_images(builder, "train", 1, aug.load_size),
                data.load_images(builder, "test", 0, opts.size)[:2],
                data.load_images(builder, "test", 1, opts.size)[:2])

    return load
