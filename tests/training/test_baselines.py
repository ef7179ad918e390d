"""Naive baselines, the classifier that sees through them, and KID."""

from __future__ import annotations

import numpy as np
from PIL import Image
from skimage import color

from training import baselines, classifier, data


def tinted(rng: np.random.Generator, n: int, tint: tuple[int, int, int], size: int = 48) -> np.ndarray:
    """Smooth noisy scenes in a colour cast: [n, size, size, 3] uint8."""
    ramp = np.linspace(0.4, 1.0, size)[None, :, None, None] * np.linspace(0.7, 1.0, size)[None, None, :, None]
    return np.clip(np.array(tint) * ramp + rng.normal(0, 12, (n, size, size, 3)), 0, 255).astype(np.uint8)


def test_colour_transfer_moves_each_photos_lab_statistics_to_the_target_domains():
    rng = np.random.default_rng(0)
    target = baselines.DomainColours.of(tinted(rng, 6, (100, 120, 170)))  # casts inside the sRGB gamut
    moved = baselines.colour_transfer(tinted(rng, 3, (170, 120, 100)), target)
    for image in moved:
        lab = color.rgb2lab(image).reshape(-1, 3)
        np.testing.assert_allclose(lab.mean(axis=0), target.lab_mean, atol=2.5)
        np.testing.assert_allclose(lab.std(axis=0), target.lab_std, rtol=0.15, atol=1.0)


def test_histogram_matching_gives_each_channel_the_target_domains_distribution():
    rng = np.random.default_rng(1)
    reference = tinted(rng, 6, (60, 90, 200))
    target = baselines.DomainColours.of(reference)
    matched = baselines.histogram_matching(tinted(rng, 2, (200, 90, 60)), target)
    for channel in range(3):
        for image in matched:
            got = np.quantile(image[..., channel], [0.1, 0.5, 0.9])
            want = np.quantile(reference[..., channel], [0.1, 0.5, 0.9])
            np.testing.assert_allclose(got, want, atol=3)
    naive = baselines.naive_translations(matched, target)
    assert list(naive) == list(baselines.NAIVE_TRANSLATIONS) and naive["photo"] is matched


def test_random_colour_transforms_are_global_seeded_and_varied():
    photos = tinted(np.random.default_rng(2), 8, (120, 140, 90))
    first, again = (baselines.random_colour_transform(photos, np.random.default_rng(7)) for _ in range(2))
    np.testing.assert_array_equal(first, again)
    assert first.shape == photos.shape and first.dtype == np.uint8
    means = first.reshape(8, -1, 3).mean(axis=1)
    assert np.ptp(means[:, 0] / means[:, 2]) > 0.3 and np.ptp(means.mean(axis=1)) > 30  # casts and brightness vary


def test_kid_is_unbiased_near_zero_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(3)
    same = [classifier.kid(rng.normal(0, 1, (40, 16)), rng.normal(0, 1, (40, 16))) for _ in range(30)]
    shifted = classifier.kid(rng.normal(0, 1, (40, 16)), rng.normal(0.5, 1, (40, 16)))
    assert abs(np.mean(same)) < 0.2 * shifted and min(same) < 0 < shifted  # unbiased: small draws go below 0
    assert classifier.kid(rng.normal(0, 1, (40, 16)), rng.normal(1.0, 1, (40, 16))) > shifted


def write_structure_pair(root, n: int = 30, size: int = 48):
    """`plain2dotted`: warm smooth scenes (A) and cold ones with bright dots (B): colour and content
    both separate the domains, but only the dots survive a colour transfer."""
    rng = np.random.default_rng(4)
    plain, dotted = tinted(rng, n, (200, 110, 70), size), tinted(rng, n, (70, 110, 200), size)
    for image in dotted:
        for y, x in rng.integers(2, size - 2, (12, 2)):
            image[y - 1:y + 2, x - 1:x + 2] = 255
    for domain, images in (("plain", plain), ("dotted", dotted)):
        (root / domain).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(root / domain / f"{domain}_{i:03d}.png")
    return root


def test_the_classifier_trained_with_naive_negatives_sees_content_not_colour(tmp_path):
    builder = data.build(write_structure_pair(tmp_path / "plain2dotted"), tmp_path / "tfds")
    size, epochs = 32, 80  # 48 photos: enough steps for batch norm's moving statistics to settle
    model, facts = classifier.load_or_train(builder, size=size, epochs=epochs, pinned_dir=None, cache=False)
    assert facts["test_accuracy"] >= 0.9 and facts["recipe"] == classifier.RECIPE
    with_negatives = classifier.baseline_rates(model, builder, size)
    real_photos = classifier.labelled(builder, "train", size)
    real_only = classifier.baseline_rates(classifier.fit(*real_photos, epochs=4 * epochs, size=size), builder, size)
    for direction in ("plain2dotted", "dotted2plain"):
        assert with_negatives[direction]["photo"] <= 0.25
        assert with_negatives[direction]["colour_transfer"] <= 0.25
        assert with_negatives[direction]["histogram_matching"] <= 0.25
    # Trained on real photos alone, the classifier takes the colour cast for the domain.
    assert real_only["plain2dotted"]["colour_transfer"] >= 0.5 or real_only["dotted2plain"]["colour_transfer"] >= 0.5
