"""The `transfer` stage: the network's colours and tones, carried onto the photo's own pixels.

The generator sees the crop at a small fixed size, so its output is small and carries its
artefacts (a grid tied to its upsampler, blotches). Here that output is read as a recipe
rather than as the picture: in every small window, fit the affine colour map
`out ≈ A·in + b` (a 3×3 matrix and an offset) that best turns the downscaled crop into the
network's output — the colour guided filter of He, Sun & Tang (TPAMI 2013). The maps vary
slowly across the image, so they are fitted at the generator's own size (the RDN's ×2 adds
detail, not colour) and upsampled to the output's, as the fast guided filter does (He & Sun
2015), then applied to the crop at the output size. Edges and fine detail come from the
photo, colours and tones from the network, and whatever the photo cannot explain — the grid,
the blotches — averages away.

Memory: the fit works at the generator's size; the full-size step runs in row bands, so the
only full-size arrays are the 8-bit photo and the 8-bit result, and the float work at any
time is one band's. NumPy and SciPy only: no TensorFlow, callable from anywhere.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy.ndimage import uniform_filter

from pipeline.crop import MODEL_INPUT_SIZE

#: Window radius as a fraction of the side the maps are fitted at: a window spans a fixed
#: share of the picture whatever the network's size.
RADIUS_FRACTION = 1 / 64
#: Regularisation of the fit (in [0, 1]² units): how much colour variance a window needs
#: before its map follows the photo's detail rather than flattening to the window's mean.
EPSILON = 1e-3
#: Full-size pixels processed per band of the apply step (bounds its float memory).
BAND_PIXELS = 1 << 18

_CHANNELS = 3


def _box(planes: np.ndarray, radius: int) -> np.ndarray:
    """Mean over the (2r+1)² window around each pixel, per plane (edges mirrored)."""
    size = (2 * radius + 1, 2 * radius + 1) + (1,) * (planes.ndim - 2)
    return uniform_filter(planes, size=size, mode="reflect")


def _unit(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 255.0


def fit(guide: np.ndarray, target: np.ndarray, radius: int, epsilon: float = EPSILON) -> np.ndarray:
    """Per-pixel affine colour maps from `guide` to `target` (both h×w×3 uint8, same size).

    Returns h×w×4×3 float32: rows 0–2 hold A (guide channel → output channel), row 3 holds b,
    each already averaged over the windows that cover the pixel, as the guided filter does.
    """
    guide_f, target_f = _unit(guide), _unit(target)
    mean_guide, mean_target = _box(guide_f, radius), _box(target_f, radius)
    covariance = _box(guide_f[..., :, None] * guide_f[..., None, :], radius)
    covariance -= mean_guide[..., :, None] * mean_guide[..., None, :]
    covariance += epsilon * np.eye(_CHANNELS, dtype=np.float32)
    cross = _box(guide_f[..., :, None] * target_f[..., None, :], radius)
    cross -= mean_guide[..., :, None] * mean_target[..., None, :]
    a = np.linalg.solve(covariance, cross)
    b = mean_target - np.einsum("...j,...jc->...c", mean_guide, a)
    return _box(np.concatenate([a, b[..., None, :]], axis=-2).astype(np.float32), radius)


def _linear_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a linear resampling n_in → n_out, pixel centres aligned."""
    source = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
    low = np.floor(source).astype(np.intp)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (source - low).astype(np.float32)


def apply(coefficients: np.ndarray, photo: np.ndarray, band_pixels: int = BAND_PIXELS) -> np.ndarray:
    """Upsample the maps linearly to `photo`'s size (H×W×3 uint8) and apply them, band by band.

    Each output row depends only on its own taps, so any band height gives the same result.
    """
    height, width = photo.shape[:2]
    row_low, row_high, row_weight = _linear_taps(height, coefficients.shape[0])
    col_low, col_high, col_weight = _linear_taps(width, coefficients.shape[1])
    col_weight = col_weight[None, :, None, None]
    result = np.empty_like(photo)
    band = max(1, band_pixels // width)
    for top in range(0, height, band):
        rows = slice(top, min(top + band, height))
        weight = row_weight[rows, None, None, None]
        maps = coefficients[row_low[rows]] * (1 - weight) + coefficients[row_high[rows]] * weight
        maps = maps[:, col_low] * (1 - col_weight) + maps[:, col_high] * col_weight
        pixels = _unit(photo[rows])
        out = maps[..., _CHANNELS, :]
        for channel in range(_CHANNELS):
            out += pixels[..., channel, None] * maps[..., channel, :]
        result[rows] = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return result


def resized(pixels: np.ndarray, side: int) -> np.ndarray:
    """Square uint8 pixels Lanczos-resized to side×side (unchanged when already that size)."""
    if pixels.shape[0] == side:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.LANCZOS))


def transfer(recipe: np.ndarray, photo: np.ndarray, band_pixels: int = BAND_PIXELS) -> np.ndarray:
    """The network's output `recipe` (h×h×3 uint8) carried onto `photo` (N×N×3 uint8, the crop
    at the output size): an N×N×3 uint8 result.

    The maps are fitted at the generator's size (or the photo's, when smaller), between the
    photo and the recipe both brought to that side.
    """
    side = min(recipe.shape[0], photo.shape[0], MODEL_INPUT_SIZE)
    radius = max(1, round(side * RADIUS_FRACTION))
    coefficients = fit(resized(photo, side), resized(recipe, side), radius)
    return apply(coefficients, photo, band_pixels)
