"""The pair's domain classifier: the judge of every evaluation, trained so colour alone cannot fool it.

A classifier trained on real photos only learns the cheapest cue that separates the domains —
usually the colour cast — and then calls a day photo pushed through histogram matching "night".
So its training set holds, beside the real photos, each photo put through the naive
translations towards the *other* domain (`training.baselines`: colour transfer, histogram
matching, a random global colour change), labelled with the photo's *own* domain. What is left
to separate the domains is what a person sees: snow, lit windows, bare branches.

Its penultimate features also give the KID (Bińkowski et al. 2018) between translated and real
photos. A classifier is pinned per pair dataset (`pin`, committed in `models/classifiers/`), so
every machine measures with the same one.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import networks
from pipeline.manifests import sha256_file
from training import baselines, data

SIZE = 128
EPOCHS = 20
#: Names the training recipe in a pinned classifier's file name: real photos + naive negatives.
RECIPE = "negatives"
#: Pinned classifiers, one per pair dataset, committed with the project: evaluations on any machine
#: use the same one (retrained ones move by a few points between CPU kinds).
PINNED_DIR = Path(__file__).resolve().parents[1] / "models" / "classifiers"


def domain_classifier(size: int = SIZE) -> keras.Model:
    """A small CNN: four stages of two 3×3 convolutions (the first with stride 2), global
    pooling (the features KID uses), two logits (A, B)."""
    inputs = keras.Input((size, size, 3))
    x = inputs
    for filters in (24, 48, 96, 192):
        for strides in (2, 1):
            x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D(name="features")(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="domain_classifier")


def labelled(builder, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Real photos of both domains and their labels (0 = A, 1 = B)."""
    a, b = (data.load_images(builder, split, d, size) for d in (0, 1))
    return np.concatenate([a, b]), np.concatenate([np.zeros(len(a), np.int32), np.ones(len(b), np.int32)])


def domain_colours(builder, size: int = SIZE) -> tuple[baselines.DomainColours, baselines.DomainColours]:
    """Both domains' colour statistics from their training photos: the targets of the naive translations."""
    return tuple(baselines.DomainColours.of(data.load_images(builder, "train", d, size)) for d in (0, 1))


#: How much a real photo weighs in training against each of its three naive translations: the real
#: photos together weigh as much as all the negatives, so accuracy on real photos is not traded away.
REAL_WEIGHT = 3.0


def training_set(builder, size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The real training photos and, labelled with their own domain, each one's colour transfer and
    histogram matching towards the other domain and a random global colour change; and each
    image's training weight (`REAL_WEIGHT` for real photos, each domain's total the same)."""
    colours = domain_colours(builder, size)
    rng = np.random.default_rng(seed)
    images, labels, weights = [], [], []
    for domain in (0, 1):
        photos = data.load_images(builder, "train", domain, size)
        other = colours[1 - domain]
        variants = (photos, baselines.colour_transfer(photos, other), baselines.histogram_matching(photos, other),
                    baselines.random_colour_transform(photos, rng))
        for i, variant in enumerate(variants):
            images.append(variant)
            labels.append(np.full(len(variant), domain, np.int32))
            weights.append(np.full(len(variant), (REAL_WEIGHT if i == 0 else 1.0) / len(photos), np.float32))
    weights = np.concatenate(weights)
    return np.concatenate(images), np.concatenate(labels), weights * len(weights) / weights.sum()


def _augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Flip and a random crop of up to a fifth off each side, resized back: framing varies."""
    size = image.shape[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    side = tf.random.stateless_uniform([], seeds[1], int(size * 0.8), size + 1, dtype=tf.int32)
    image = tf.image.stateless_random_crop(image, [side, side, 3], seeds[2])
    return tf.image.resize(networks.to_model_range(image), (size, size), antialias=True)


def fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *, epochs: int = EPOCHS, seed: int = 0,
        size: int = SIZE) -> keras.Model:
    """A classifier trained on uint8 images and labels, weighted per image (default: each domain
    weighs the same)."""
    keras.utils.set_random_seed(seed)
    model = domain_classifier(size)
    if weights is None:
        counts = np.bincount(y, minlength=2)
        weights = (len(y) / (2 * counts[y])).astype(np.float32)
    # One pass over `epochs` reshuffled copies: each image gets fresh augmentation every time.
    ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).shuffle(len(x), seed=seed).repeat(epochs)
    ds = ds.enumerate().map(lambda i, xyw: (_augment(xyw[0], tf.stack([tf.cast(seed, tf.int64), i])), *xyw[1:]),
                            num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(32).prefetch(tf.data.AUTOTUNE)
    steps = int(np.ceil(epochs * len(x) / 32))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(ds, verbose=0, shuffle=False)
    return model


def pinned_files(directory: Path | str, builder, *, epochs: int = EPOCHS, seed: int = 0,
                 size: int = SIZE) -> tuple[Path, Path]:
    """A pinned classifier's weights and JSON in `directory`, named after the dataset's config (pair
    and a hash of its photos) and the recipe."""
    name = f"{builder.builder_config.name}_{size}_e{epochs}_s{seed}_{RECIPE}"
    return Path(directory) / f"{name}.weights.h5", Path(directory) / f"{name}.json"


def load_or_train(builder, *, epochs: int = EPOCHS, seed: int = 0, size: int = SIZE, cache: bool = True,
                  pinned_dir: Path | str | None = PINNED_DIR, weights: str | None = None) -> tuple[keras.Model, dict]:
    """The pair's classifier and its accuracy on the real test split: given `weights`, those; else
    the one pinned in `pinned_dir` for exactly this dataset and recipe if there is one (its sha256
    checked); else trained here (cached beside the build)."""
    model = domain_classifier(size)
    pinned, facts_file = pinned_files(pinned_dir or "", builder, epochs=epochs, seed=seed, size=size)
    cached = Path(builder.data_dir) / f"classifier_{size}_e{epochs}_s{seed}_{RECIPE}.weights.h5"
    source = "trained on this machine"
    if weights:
        model.load_weights(weights)
        source = f"given: {Path(weights).name}"
    elif pinned_dir and pinned.is_file():
        if sha256_file(pinned) != json.loads(facts_file.read_text())["sha256"]:
            raise ValueError(f"{pinned} does not match the sha256 in {facts_file.name}: re-pin it "
                             "with `python -m training classifier`")
        model.load_weights(pinned)
        source = f"pinned: {pinned.name}"
    elif cache and cached.is_file():
        model.load_weights(cached)
    else:
        model = fit(*training_set(builder, size, seed), epochs=epochs, seed=seed, size=size)
        if cache:
            model.save_weights(cached)
    x_test, y_test = labelled(builder, "test", size)
    predicted = classify(model, x_test)
    per_domain = {int(c): float(np.mean(predicted[y_test == c] == c)) for c in (0, 1)}
    return model, {"test_accuracy": float(np.mean(predicted == y_test)),
                   "balanced_accuracy": float(np.mean(list(per_domain.values()))),
                   "per_domain": per_domain, "n_test": int(len(y_test)), "epochs": epochs,
                   "recipe": None if weights else RECIPE, "source": source}


def baseline_rates(model: keras.Model, builder, size: int = SIZE) -> dict[str, dict[str, float]]:
    """Per direction, the share of each naive translation of the held-out photos that `model`
    calls the target domain: what the classifier is built to keep low."""
    domains = builder.builder_config.domains
    colours = domain_colours(builder, size)
    rates = {}
    for source in (0, 1):
        photos = data.load_images(builder, "test", source, size)
        naive = baselines.naive_translations(photos, colours[1 - source])
        rates[f"{domains[source]}2{domains[1 - source]}"] = {
            name: float(np.mean(classify(model, images) == 1 - source)) for name, images in naive.items()}
    return rates


def pin(builder, out_dir: Path | str = PINNED_DIR, *, epochs: int = EPOCHS, seed: int = 0, size: int = SIZE) -> dict:
    """Write this machine's classifier for the pair (trained, or the cached one) into `out_dir` with a
    JSON of its dataset, recipe, sha256, accuracy and the naive translations' target rates, which it
    returns; `evaluate` uses that classifier from then on."""
    model, facts = load_or_train(builder, epochs=epochs, seed=seed, size=size, pinned_dir=None)
    path, facts_file = pinned_files(out_dir, builder, epochs=epochs, seed=seed, size=size)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights_only = domain_classifier(size)  # a trained model would also save its optimizer's state
    weights_only.set_weights(model.get_weights())
    weights_only.save_weights(path)
    domains = builder.builder_config.domains
    pinned = {
        "weights": path.name, "dataset": builder.builder_config.name, "size": size, "epochs": epochs,
        "seed": seed, "recipe": RECIPE, "sha256": sha256_file(path), "tensorflow": tf.__version__,
        "pinned": datetime.date.today().isoformat(),
        **{k: facts[k] for k in ("test_accuracy", "balanced_accuracy", "n_test")},
        "per_domain": {domains[k]: v for k, v in facts["per_domain"].items()},
        "naive_target_rates": baseline_rates(model, builder, size),
    }
    data.save_json(pinned, facts_file)
    return pinned


def _resized(model: keras.Model, images) -> tf.Tensor:
    images = tf.convert_to_tensor(images)
    x = networks.to_model_range(images) if images.dtype == tf.uint8 else images
    return tf.image.resize(x, (model.input_shape[1], model.input_shape[2]), antialias=True)


def classify(model: keras.Model, images, batch: int = 64) -> np.ndarray:
    """Predicted domain (0 = A, 1 = B) of uint8 images, or of [-1, 1] floats."""
    return np.argmax(model.predict(_resized(model, images), batch_size=batch, verbose=0), axis=1)


def feature_extractor(model: keras.Model) -> keras.Model:
    """The classifier up to its pooled penultimate features [N, 192]: what KID compares."""
    return keras.Model(model.inputs, model.get_layer("features").output)


def features(extractor: keras.Model, images, batch: int = 64) -> np.ndarray:
    """`feature_extractor`'s features of uint8 images or [-1, 1] floats."""
    return extractor.predict(_resized(extractor, images), batch_size=batch, verbose=0).astype(np.float64)


def kid(x: np.ndarray, y: np.ndarray) -> float:
    """Kernel inception distance between two feature sets [m, d], [n, d]: the unbiased MMD² under
    the cubic polynomial kernel k(a, b) = (a·b / d + 1)³ (Bińkowski et al. 2018), unbiased at small n."""
    m, n, d = len(x), len(y), x.shape[1]
    k_xx, k_yy, k_xy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2 * k_xy.mean())
