"""Naive translations: what one line of colour code does to a photo, no network involved.

A translation model earns its keep only where it beats these on the same photos, so every
evaluation reports them beside the model, and the domain classifier is trained to see through
them (they keep the photo's own label there):

- `photo`: the photo itself, unchanged.
- `colour_transfer`: Reinhard et al. 2001 — each channel of the photo in CIELAB moved to the
  mean and standard deviation of the target domain's training photos.
- `histogram_matching`: each RGB channel's histogram matched to the target domain's pooled
  training pixels (`skimage.exposure.match_histograms`).

`random_colour_transform` draws other global colour changes (gains, gamma, contrast,
saturation, brightness), the classifier's third kind of negative.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from skimage import color, exposure

NAIVE_TRANSLATIONS = ("photo", "colour_transfer", "histogram_matching")


@dataclass(frozen=True)
class DomainColours:
    """A domain's colour statistics from its training photos: CIELAB channel means and standard
    deviations (over all pixels), and a sample of its pixels for histogram matching."""

    lab_mean: np.ndarray  # (3,)
    lab_std: np.ndarray  # (3,)
    pixels: np.ndarray  # (M, 1, 3) uint8

    @classmethod
    def of(cls, images: np.ndarray, max_pixels: int = 1 << 20, seed: int = 0) -> DomainColours:
        """The statistics of uint8 images [N, H, W, 3]."""
        flat = images.reshape(-1, 3)
        if len(flat) > max_pixels:
            flat = flat[np.random.default_rng(seed).choice(len(flat), max_pixels, replace=False)]
        lab = color.rgb2lab(flat[:, None, :])[:, 0, :]
        return cls(lab.mean(axis=0), lab.std(axis=0), np.ascontiguousarray(flat[:, None, :]))


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def colour_transfer(images: np.ndarray, target: DomainColours) -> np.ndarray:
    """Reinhard colour transfer of uint8 images [N, H, W, 3] towards `target`, per image."""
    out = np.empty_like(images)
    for i, image in enumerate(images):
        lab = color.rgb2lab(image)
        mean, std = lab.reshape(-1, 3).mean(axis=0), lab.reshape(-1, 3).std(axis=0)
        moved = (lab - mean) / np.maximum(std, 1e-6) * target.lab_std + target.lab_mean
        with warnings.catch_warnings():  # colours moved out of the sRGB gamut are clipped, as meant
            warnings.simplefilter("ignore", UserWarning)
            out[i] = _to_uint8(color.lab2rgb(moved))
    return out


def histogram_matching(images: np.ndarray, target: DomainColours) -> np.ndarray:
    """Each RGB channel of each uint8 image's histogram matched to the target's pooled pixels."""
    return np.stack([np.clip(np.round(exposure.match_histograms(image, target.pixels, channel_axis=-1)),
                             0, 255).astype(np.uint8) for image in images])


def naive_translations(images: np.ndarray, target: DomainColours) -> dict[str, np.ndarray]:
    """Every naive translation of uint8 images towards the target domain, by name."""
    return {"photo": images, "colour_transfer": colour_transfer(images, target),
            "histogram_matching": histogram_matching(images, target)}


def random_colour_transform(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random global colour change per uint8 image: per-channel gains, gamma, contrast,
    saturation and brightness, drawn wide enough to turn a day photo dark or a green one brown."""
    x = images.astype(np.float32) / 255.0
    n = len(images)
    gains = rng.uniform(0.6, 1.4, (n, 1, 1, 3))
    gamma = np.exp(rng.uniform(np.log(0.5), np.log(2.5), (n, 1, 1, 1)))
    contrast = rng.uniform(0.6, 1.4, (n, 1, 1, 1))
    saturation = rng.uniform(0.3, 1.7, (n, 1, 1, 1))
    brightness = rng.uniform(0.25, 1.25, (n, 1, 1, 1))
    x = np.clip(x * gains, 0, 1) ** gamma
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * contrast + mean
    grey = x.mean(axis=-1, keepdims=True)
    x = (x - grey) * saturation + grey
    return _to_uint8(np.clip(x * brightness, 0, 1))
