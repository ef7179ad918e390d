"""The transfer stage: the network's colours on the photo's own pixels, band by band."""

import numpy as np
import pytest
from skimage.color import rgb2lab
from skimage.metrics import structural_similarity

from pipeline.transfer import apply, fit, resized, transfer

RECIPE_SIDE = 128


def _photo(side: int) -> np.ndarray:
    """Smooth colours, fine stripes and one hard edge: detail a small recipe cannot hold."""
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([0.5 + 0.4 * np.sin(9 * x + 3 * y), 0.5 + 0.4 * np.cos(7 * y),
                     0.5 + 0.3 * np.sin(5 * (x + y))], axis=-1)
    base += 0.15 * (np.sin(120 * x) * np.sin(110 * y) > 0)[..., None]
    base[side // 3:side // 2, side // 4:] *= 0.3
    return (np.clip(base, 0, 1) * 255).astype(np.uint8)


def _recipes(photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A network-like output of the photo: a colour change that drifts across the picture, and
    the same with a checkerboard artefact on top."""
    small = resized(photo, RECIPE_SIDE).astype(np.float32) / 255
    mix = np.array([[0.3, 0.1, 0.2], [0.1, 0.4, 0.1], [0.2, 0.2, 0.8]], np.float32)
    drift = np.linspace(0.6, 1.2, RECIPE_SIDE, dtype=np.float32)[:, None, None]
    clean = np.clip((small @ mix + 0.05) * drift, 0, 1)
    checker = 0.04 * ((np.indices((RECIPE_SIDE, RECIPE_SIDE)).sum(0) % 2) * 2 - 1)[..., None]
    as_bytes = lambda a: (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    return as_bytes(clean), as_bytes(clean + checker)


def _luma(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return _photo(600)


def test_keeps_the_networks_colours(photo):
    clean, recipe = _recipes(photo)
    result = transfer(recipe, photo)
    assert result.shape == photo.shape and result.dtype == np.uint8
    delta_e = np.linalg.norm(rgb2lab(resized(result, RECIPE_SIDE)) - rgb2lab(clean), axis=-1)
    assert delta_e.mean() < 3


def test_takes_structure_from_the_photo(photo):
    _, recipe = _recipes(photo)
    plain = resized(recipe, photo.shape[0])
    similarity = lambda a: structural_similarity(_luma(a), _luma(photo), data_range=255)  # noqa: E731
    assert similarity(transfer(recipe, photo)) > similarity(plain) + 0.1


def test_averages_the_checkerboard_away(photo):
    clean, recipe = _recipes(photo)
    down = resized(photo, RECIPE_SIDE)
    result = transfer(recipe, down).astype(np.float32)
    assert np.abs(result - clean).mean() < 0.5 * np.abs(recipe.astype(np.float32) - clean).mean()


@pytest.mark.parametrize("band_pixels", [1, 600 * 7, 600 * 64])
def test_bands_give_the_one_shot_result(photo, band_pixels):
    _, recipe = _recipes(photo)
    assert np.array_equal(transfer(recipe, photo, band_pixels=band_pixels),
                          transfer(recipe, photo, band_pixels=photo.size))


def test_an_exact_affine_map_is_recovered():
    """Where the recipe is an affine colour map of the photo, the fit finds it everywhere."""
    photo = _photo(64)
    mix = np.array([[0.5, 0.1, 0.0], [0.0, 0.6, 0.2], [0.1, 0.0, 0.7]], np.float32)
    recipe = np.clip(photo.astype(np.float32) @ mix + 20, 0, 255).round().astype(np.uint8)
    result = apply(fit(photo, recipe, radius=2, epsilon=1e-6), photo)
    assert np.abs(result.astype(int) - recipe).max() <= 2
