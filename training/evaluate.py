"""Evaluation without downloadable feature networks: a domain classifier trained here, cycle PSNR
and input/output SSIM.

- Target rate: the share of translated held-out photos that a small CNN, trained on the
  pair's real train split, assigns to the target domain. The classifier's own accuracy on the
  real held-out photos is reported beside it, as the ceiling of what that rate means.
- Cycle PSNR: how well F(G(x)) reconstructs x (dB, on [0, 1] pixels); and again through a
  [1 2 1]/4 binomial blur of G(x) (`hidden_code_blur`), which hardly shows at 256 px but zeroes
  period-2 patterns and halves period-4 ones: a generator pair that hides the reconstruction in
  those frequencies (Chu et al. 2017, "CycleGAN, a master of steganography") loses much more.
- Luminance SSIM between input and output: does the scene survive the translation?
- Checkerboard: how far the output's spectrum peaks at the frequencies of the transposed
  convolutions' period-4 pattern, against the input's (dB; the grids' faint texture, in figures).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import networks
from pipeline.directions import pair_named
from pipeline.manifests import SHIFT_STEPS, sha256_file
from pipeline.networks import CHECKERBOARD_PERIOD
from pipeline.registry import ModelRegistry
from training import data, visuals

CLASSIFIER_SIZE = 128


def domain_classifier(size: int = CLASSIFIER_SIZE) -> keras.Model:
    """A small CNN: four stages of two 3×3 convolutions (the first with stride 2), global
    pooling, two logits (A, B). One convolution per stage underfit (52 % of the Yosemite
    winter *training* photos), so each stage has a second."""
    inputs = keras.Input((size, size, 3))
    x = inputs
    for filters in (24, 48, 96, 192):
        for strides in (2, 1):
            x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.3)(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x), name="domain_classifier")


def _labelled(builder, split: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = (data.load_images(builder, split, d, size) for d in (0, 1))
    return np.concatenate([a, b]), np.concatenate([np.zeros(len(a), np.int32), np.ones(len(b), np.int32)])


def _classifier_augment(image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Flip and a random crop of up to a fifth off each side, resized back: framing varies,
    colour (what separates the domains) does not."""
    size = image.shape[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    side = tf.random.stateless_uniform([], seeds[1], int(size * 0.8), size + 1, dtype=tf.int32)
    image = tf.image.stateless_random_crop(image, [side, side, 3], seeds[2])
    return tf.image.resize(networks.to_model_range(image), (size, size), antialias=True)


#: Pinned domain classifiers, one per pair dataset, trained once and committed: evaluations on any
#: machine then use the same classifier (retrained ones move by a few points between CPU kinds, so
#: figures from two machines could not be compared). `pin_classifier` writes them.
CLASSIFIER_DIR = Path(__file__).resolve().parents[1] / "models" / "classifiers"


def pinned_files(directory: Path | str, builder, *, epochs: int = 24, seed: int = 0,
                 size: int = CLASSIFIER_SIZE) -> tuple[Path, Path]:
    """A pinned classifier's weights and JSON in `directory`, named after the dataset's config (pair
    and a hash of its photos) and the recipe."""
    name = f"{builder.builder_config.name}_{size}_e{epochs}_s{seed}"
    return Path(directory) / f"{name}.weights.h5", Path(directory) / f"{name}.json"


def train_classifier(builder, *, epochs: int = 24, seed: int = 0, size: int = CLASSIFIER_SIZE,
                     cache: bool = True, pinned_dir: Path | str | None = CLASSIFIER_DIR) -> tuple[keras.Model, dict]:
    """The pair's domain classifier and its accuracy on the real test split: the one pinned in
    `pinned_dir` for exactly this dataset and recipe if there is one (its sha256 checked), else
    trained here (cached beside the build)."""
    keras.utils.set_random_seed(seed)
    model = domain_classifier(size)
    x_test, y_test = _labelled(builder, "test", size)
    pinned, facts_file = pinned_files(pinned_dir or "", builder, epochs=epochs, seed=seed, size=size)
    cached = Path(builder.data_dir) / f"classifier_v2_{size}_e{epochs}_s{seed}.weights.h5"
    source = "trained on this machine"
    if pinned_dir and pinned.is_file():
        if sha256_file(pinned) != json.loads(facts_file.read_text())["sha256"]:
            raise ValueError(f"{pinned} does not match the sha256 in {facts_file.name}: re-pin it "
                             "with `python -m training classifier`")
        model.load_weights(pinned)
        source = f"pinned: {pinned.name}"
    elif cache and cached.is_file():
        model.load_weights(cached)
    else:
        x, y = _labelled(builder, "train", size)
        counts = np.bincount(y, minlength=2)
        class_weights = {c: len(y) / (2 * counts[c]) for c in (0, 1)}  # balance the domains
        ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed)
        ds = ds.enumerate().map(lambda i, xy: (_classifier_augment(xy[0], tf.stack([tf.cast(seed, tf.int64), i])),
                                               xy[1]), num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(32).prefetch(tf.data.AUTOTUNE)
        steps = epochs * int(np.ceil(len(x) / 32))
        model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(ds, epochs=epochs, class_weight=class_weights, verbose=0, shuffle=False)
        if cache:
            model.save_weights(cached)
    predicted = classify(model, x_test)
    per_domain = {int(c): float(np.mean(predicted[y_test == c] == c)) for c in (0, 1)}
    return model, {"test_accuracy": float(np.mean(predicted == y_test)),
                   "balanced_accuracy": float(np.mean(list(per_domain.values()))),
                   "per_domain": per_domain, "n_test": int(len(y_test)), "n_train_epochs": epochs,
                   "source": source}


def pin_classifier(builder, out_dir: Path | str = CLASSIFIER_DIR, *, epochs: int = 24, seed: int = 0,
                   size: int = CLASSIFIER_SIZE) -> dict:
    """Write this machine's classifier for the pair (trained, or the cached one) into `out_dir`
    with a JSON of its dataset, recipe, sha256 and accuracy, which it returns; `evaluate` uses
    that classifier from then on."""
    model, facts = train_classifier(builder, epochs=epochs, seed=seed, size=size, pinned_dir=None)
    path, facts_file = pinned_files(out_dir, builder, epochs=epochs, seed=seed, size=size)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights_only = domain_classifier(size)  # a trained model would also save its optimizer's state (2× more)
    weights_only.set_weights(model.get_weights())
    weights_only.save_weights(path)
    domains = builder.builder_config.domains
    pinned = {
        "weights": path.name, "dataset": builder.builder_config.name, "size": size, "epochs": epochs,
        "seed": seed, "sha256": sha256_file(path), "tensorflow": tf.__version__,
        "pinned": datetime.date.today().isoformat(),
        **{k: facts[k] for k in ("test_accuracy", "balanced_accuracy", "n_test")},
        "per_domain": {domains[k]: v for k, v in facts["per_domain"].items()},
    }
    data.save_json(pinned, facts_file)
    return pinned


def classify(model: keras.Model, images, batch: int = 64) -> np.ndarray:
    """Predicted domain (0 = A, 1 = B) of uint8 images, or of [-1, 1] floats."""
    images = tf.convert_to_tensor(images)
    x = networks.to_model_range(images) if images.dtype == tf.uint8 else images
    x = tf.image.resize(x, (model.input_shape[1], model.input_shape[2]), antialias=True)
    return np.argmax(model.predict(x, batch_size=batch, verbose=0), axis=1)


def _luma(x):
    """[-1, 1] RGB → [0, 1] luminance (BT.601)."""
    return tf.image.rgb_to_grayscale((x + 1.0) / 2.0)


def checkerboard_power(images: np.ndarray) -> np.ndarray:
    """Per image ([-1, 1] RGB, sides a multiple of 4), [N, 4, 4]: the luminance power at each
    quarter frequency (a, b) of the period-4 pattern over the median power around it (a Hann
    window keeps the borders out); [:, 0, 0], the mean, is 1."""
    luma = _luma(tf.convert_to_tensor(images, tf.float32)).numpy()[..., 0]
    n, h, w = luma.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((luma - luma.mean(axis=(1, 2), keepdims=True)) * window)) ** 2
    ring = np.ones((7, 7), bool)
    ring[2:5, 2:5] = False
    ratios = np.ones((n, CHECKERBOARD_PERIOD, CHECKERBOARD_PERIOD))
    for i in range(CHECKERBOARD_PERIOD):
        for j in range(CHECKERBOARD_PERIOD):
            if i == j == 0:
                continue
            rows = (i * h // CHECKERBOARD_PERIOD + np.arange(-3, 4)) % h
            cols = (j * w // CHECKERBOARD_PERIOD + np.arange(-3, 4)) % w
            patch = power[:, rows][:, :, cols]
            ratios[:, i, j] = patch[:, 2:5, 2:5].mean(axis=(1, 2)) / np.median(patch[:, ring], axis=1)
    return ratios


def _pattern_db(power: np.ndarray) -> np.ndarray:
    """The mean over the 15 pattern frequencies of [..., 4, 4] power ratios, in dB."""
    return 10 * np.log10((power.sum(axis=(-2, -1)) - 1) / (CHECKERBOARD_PERIOD**2 - 1))


def checkerboard_db(images: np.ndarray) -> np.ndarray:
    """Per image ([-1, 1] RGB, sides a multiple of 4): the luminance power at the period-4 pattern's
    15 frequencies over the median power around each, in dB (`checkerboard_power`'s mean).

    Photos score about 1–3 dB (content has no peaks there; JPEG's 8×8 blocks add a little); a
    visible checkerboard stands well above its input's figure.
    """
    return _pattern_db(checkerboard_power(images))


def shift_residue_db(output_power: np.ndarray, input_power: np.ndarray, step: tuple[int, int]) -> float:
    """The checkerboard figure a shift ensemble of `step` should leave on a generator, from the
    mean [4, 4] powers of its plain outputs and of their inputs: the 3 frequencies the step keeps
    (a·step[0] + b·step[1] ≡ 0 mod 4) at the output's power, the 12 it cancels at the input's."""
    a, b = np.indices(output_power.shape)
    kept = (a * step[0] + b * step[1]) % CHECKERBOARD_PERIOD == 0
    return float(_pattern_db(np.where(kept, output_power, input_power)))


def shift_steps(data_path: str, model_dir: str, *, data_dir: str | None = None, size: int = 256,
                max_images: int = 16) -> dict:
    """For each direction of an installed pair: its generator's checkerboard served plain, the
    power at each quarter frequency, and the figure each shift ensemble should leave
    (`shift_residue_db`), best first: which `--self-ensemble` to evaluate for it."""
    builder = data.build(data_path, data_dir)
    domains = builder.builder_config.domains
    models = ModelRegistry(model_dir)
    steps = {}
    for source in (0, 1):
        direction = f"{domains[source]}2{domains[1 - source]}"
        network = models.generator(direction).network
        x = networks.to_model_range(data.load_images(builder, "test", source, size)[:max_images or None])
        y = np.concatenate([np.asarray(network(x[i:i + 8], training=False)) for i in range(0, len(x), 8)])
        output_power, input_power = checkerboard_power(y).mean(axis=0), checkerboard_power(x).mean(axis=0)
        predicted = {name: round(shift_residue_db(output_power, input_power, step), 2)
                     for name, step in SHIFT_STEPS.items()}
        steps[direction] = {"n": len(x), "plain_db": round(float(_pattern_db(output_power)), 2),
                            "input_db": round(float(_pattern_db(input_power)), 2),
                            "power_db": np.round(10 * np.log10(output_power), 1).tolist(),
                            "shift_residue_db": dict(sorted(predicted.items(), key=lambda item: item[1]))}
    return steps


def shift_steps_text(steps: dict) -> str:
    """`shift_steps` for a terminal: per direction, the figures and the power grid."""
    lines = []
    for direction, r in steps.items():
        lines.append(f"{direction}: checkerboard {r['plain_db']:.1f} dB served plain (inputs {r['input_db']:.1f}), "
                     f"{r['n']} held-out photos; each shift self-ensemble should leave:")
        lines.append("  " + " · ".join(f"{name} {db:.1f}" for name, db in r["shift_residue_db"].items()))
        lines.append("  power (dB over the neighbourhood) at quarter frequencies (a rows, b columns):")
        lines += ["    " + " ".join(f"{db:5.1f}" for db in row) for row in r["power_db"]]
    return "\n".join(lines)


def separable_blur(images: tf.Tensor, taps: tf.Tensor) -> tf.Tensor:
    """Blur [N, H, W, C] images with the outer square of an odd 1-D kernel, reflected at the borders."""
    radius = int(taps.shape[0]) // 2
    kernel = tf.tile((taps[:, None] * taps[None, :])[:, :, None, None], [1, 1, images.shape[-1], 1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def hidden_code_blur(images: tf.Tensor) -> tf.Tensor:
    """A 3×3 binomial blur ([1 2 1]/4 per axis, reflected at the borders) of [-1, 1] batches."""
    return separable_blur(tf.cast(images, tf.float32), tf.constant([1.0, 2.0, 1.0]) / 4.0)


def evaluate_direction(forward, backward, images: np.ndarray, classifier, target: int, batch: int = 8) -> dict:
    """Target rate, cycle PSNR and luminance SSIM of one direction over uint8 test photos."""
    outputs, recs, blurred_recs = [], [], []
    for i in range(0, len(images), batch):
        x = networks.to_model_range(images[i:i + batch])
        y = forward(x)
        outputs.append(np.asarray(y))
        recs.append(np.asarray(backward(y)))
        blurred_recs.append(np.asarray(backward(hidden_code_blur(y))))
    x = networks.to_model_range(images)
    y, z = np.concatenate(outputs), np.concatenate(recs)

    def psnr(reconstruction):
        return float(np.mean(tf.image.psnr((reconstruction + 1) / 2, (x + 1) / 2, max_val=1.0)))

    return {
        "target_rate": float(np.mean(classify(classifier, y) == target)),
        "cycle_psnr": psnr(z),
        "cycle_psnr_blurred": psnr(np.concatenate(blurred_recs)),
        "ssim_luma": float(np.mean(tf.image.ssim(_luma(x), _luma(y), max_val=1.0))),
        "checkerboard_db": float(np.mean(checkerboard_db(y))),
        "input_checkerboard_db": float(np.mean(checkerboard_db(x))),
        "n": int(len(images)),
        "_outputs": y, "_recs": z,
    }


def generators_of(run_dir: str | None, model_dir: str | None, pair_name: str, raw: bool = False):
    """(a2b, b2a) callables on [-1, 1] batches, from a training run or an exported models dir, and
    the report's `source`: where they came from (and, for a run, which of its weights)."""
    if run_dir:
        from training.export import load_generators, weights_kind

        opts, g_ab, g_ba, _ = load_generators(run_dir, raw)
        return ((lambda x: g_ab(x, training=False)), (lambda x: g_ba(x, training=False)),
                {"run_dir": run_dir, "generator_weights": weights_kind(opts, raw)})
    models = ModelRegistry(model_dir)
    pair = pair_named(pair_name)
    a2b, b2a = (models.generator(f"{s}2{t}") for s, t in ((pair.domain_a, pair.domain_b),
                                                         (pair.domain_b, pair.domain_a)))
    return a2b, b2a, {"model_dir": model_dir, "self_ensemble": a2b.manifest.self_ensemble}


def evaluate(data_path: str, out_dir: Path | str, *, run_dir: str | None = None, model_dir: str | None = None,
             data_dir: str | None = None, size: int = 256, grid_rows: int = 4, max_images: int = 0,
             seed: int = 0, raw: bool = False) -> dict:
    """Evaluate a pair's two directions on its held-out photos; write report.json, report.md, grid.jpg."""
    builder = data.build(data_path, data_dir)
    domains = builder.builder_config.domains
    pair_name = Path(data_path).resolve().name
    classifier, classifier_facts = train_classifier(builder, seed=seed)
    a2b, b2a, source = generators_of(run_dir, model_dir, pair_name, raw)
    report = {"pair": pair_name, "data": str(Path(data_path).resolve()), "size": size, "grid_rows": grid_rows,
              "source": source,
              "classifier": {**classifier_facts,
                             "per_domain": {domains[k]: v for k, v in classifier_facts["per_domain"].items()}},
              "directions": {}}
    rows = []
    for source, forward, backward in ((0, a2b, b2a), (1, b2a, a2b)):
        images = data.load_images(builder, "test", source, size)
        if max_images:
            images = images[:max_images]
        result = evaluate_direction(forward, backward, images, classifier, 1 - source)
        name = f"{domains[source]}2{domains[1 - source]}"
        for i in range(min(grid_rows, len(images))):
            rows.append([images[i], visuals.to_uint8(result["_outputs"][i]), visuals.to_uint8(result["_recs"][i])])
        report["directions"][name] = {k: round(v, 4) if isinstance(v, float) else v
                                      for k, v in result.items() if not k.startswith("_")}
    out_dir = Path(out_dir)
    data.save_json(report, out_dir / "report.json")
    (out_dir / "report.md").write_text(markdown(report))
    visuals.save_image(visuals.grid(rows), out_dir / "grid.jpg")
    return report


def markdown(report: dict) -> str:
    c = report["classifier"]
    per = ", ".join(f"{d} {v:.1%}" for d, v in c["per_domain"].items())
    lines = [
        f"# Evaluation: {report['pair']}", "",
        f"Source: `{json.dumps(report['source'])}`; held-out photos of `{report['data']}` at {report['size']} px.", "",
        f"Domain classifier (trained on the real train split; {c['source']}): test accuracy "
        f"{c['test_accuracy']:.1%} ({per}; {c['n_test']} photos).", "",
        "| direction | photos | classified as target | cycle PSNR (dB) | cycle PSNR, G(x) blurred (dB) "
        "| input/output luminance SSIM | checkerboard (dB), input → output |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["directions"].items():
        lines.append(f"| {name} | {r['n']} | {r['target_rate']:.1%} | {r['cycle_psnr']:.2f} "
                     f"| {r['cycle_psnr_blurred']:.2f} | {r['ssim_luma']:.3f} "
                     f"| {r['input_checkerboard_db']:.1f} → {r['checkerboard_db']:.1f} |")
    lines += ["", f"grid.jpg: input | output | reconstruction, the first {report['grid_rows']} held-out photos "
              "of each direction.", ""]
    return "\n".join(lines)
