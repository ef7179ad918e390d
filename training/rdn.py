"""The RDN trainer: ×2 restoration of real photos degraded the way a generator output is.

Self-supervised: a clean high-resolution patch is blurred, downscaled ×2, given noise and
JPEG artefacts; the RDN learns to restore the clean patch (L1 loss, as ISR). Optionally a share
of each batch comes from the artefact pass (`artefact_pairs`): the installed generators' own
texture, which the pipeline's RDN must cancel.
The report compares it with bicubic and bicubic + unsharp mask — the sharpening it replaces —
on degraded held-out photos (PSNR, SSIM).

Degradations and patches are stateless random ops keyed to (seed, step): resume is exact.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pipeline import networks, registry, weights
from pipeline.manifests import RDN, read_manifest
from training import data, runtime
from training.evaluate import checkerboard_db, separable_blur
from training.options import RDNOptions

OPTIONS_FILE = "rdn_options.json"


def _blur(images: tf.Tensor, sigma, radius: int = 3) -> tf.Tensor:
    """Blur [N, H, W, 3] images with a (2·radius + 1)² Gaussian of `sigma` (≈ identity for tiny sigma)."""
    r = tf.range(-float(radius), radius + 1.0)
    k = tf.exp(-(r**2) / (2.0 * tf.maximum(tf.cast(sigma, tf.float32), 1e-3) ** 2))
    return separable_blur(images, k / tf.reduce_sum(k))


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Blur one [H, W, 3] image with a 7×7 Gaussian of `sigma`."""
    return _blur(image[None], sigma)[0]


def degrade(hr: tf.Tensor, opts: RDNOptions, seed: tf.Tensor) -> tf.Tensor:
    """A [H, W, 3] clean image in [0, 1] → its degraded half-size version in [0, 1]."""
    s = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    h, w = hr.shape[0], hr.shape[1]
    x = _gaussian_blur(hr, tf.random.stateless_uniform([], s[0], 0.0, opts.blur))
    x = tf.image.resize(x, (h // 2, w // 2), method="bicubic", antialias=True)
    x = x + tf.random.stateless_normal(tf.shape(x), s[1]) * tf.random.stateless_uniform([], s[2], 0.0, opts.noise)
    x = tf.clip_by_value(x, 0.0, 1.0)
    x = tf.image.stateless_random_jpeg_quality(x, opts.jpeg_min, 95, s[3])
    return tf.ensure_shape(x, (h // 2, w // 2, 3))


def unsharp(image: tf.Tensor, sigma: float = 1.0, amount: float = 0.6) -> tf.Tensor:
    """Unsharp masking: add back `amount` of the detail a Gaussian blur removes."""
    return tf.clip_by_value(image + amount * (image - tf.map_fn(lambda x: _gaussian_blur(x, sigma), image)), 0.0, 1.0)


def artefact_pairs(generator, photos: np.ndarray, sigma: float, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """The artefact pass: (input, target) uint8 pairs that show the RDN a generator's own texture
    (`generator`: a [-1, 1] batch → its translation, as a worker serves it).

    A generator given a photo of its own output domain should change little (the identity loss
    asks that), so what it adds is mostly its texture: the transposed convolutions' period-4
    checkerboard, with a slight colour drift. Input: its output on the photo at half size.
    Target: that output's colours — blurred by `sigma` high-res px, past the pattern's period —
    plus the photo's detail (the photo minus the same blur). The RDN learns to replace the
    texture with detail and to keep a translation's colours, not to undo them.
    """
    inputs, targets = [], []
    radius = int(np.ceil(3 * sigma))
    for i in range(0, len(photos), batch):
        hr = tf.cast(photos[i:i + batch], tf.float32) / 255.0
        h, w = hr.shape[1:3]
        half = tf.image.resize(hr, (h // 2, w // 2), method="bicubic", antialias=True)
        out = tf.clip_by_value((generator(half * 2.0 - 1.0) + 1.0) / 2.0, 0.0, 1.0)
        up = tf.image.resize(out, (h, w), method="bicubic")
        target = _blur(up, sigma, radius) + hr - _blur(hr, sigma, radius)
        inputs.append(_to_uint8(out))
        targets.append(_to_uint8(target))
    return np.concatenate(inputs), np.concatenate(targets)


def _to_uint8(x: tf.Tensor) -> np.ndarray:
    return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8).numpy()


def artefact_data(opts: RDNOptions, split: str, limit: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """The artefact pass over the `split` photos (at most `limit` per domain, 0 = all) of each
    `generator_data` pair whose model is installed in `generator_dir`: each domain's photos
    through the generator that outputs that domain."""
    if not opts.generator_dir:
        return None
    models = registry.ModelRegistry(opts.generator_dir)
    inputs, targets = [], []
    for folder in (opts.generator_data or opts.data).split(","):
        builder = data.build(folder.strip(), opts.data_dir or None)
        domains = builder.builder_config.domains
        if Path(folder.strip()).resolve().name not in models.manifests():
            raise SystemExit(f"{opts.generator_dir} has no pair model for {folder}")
        for d in (0, 1):
            generator = models.generator(f"{domains[1 - d]}2{domains[d]}").served_network
            photos = data.load_images(builder, split, d, opts.photo_size)
            x, y = artefact_pairs(generator, photos[:limit] if limit else photos, opts.artefact_sigma)
            inputs.append(x)
            targets.append(y)
    return np.concatenate(inputs), np.concatenate(targets)


def artefact_share(opts: RDNOptions) -> int:
    """Patches per batch from the artefact pass (the rest are degraded photos)."""
    if not 0.0 <= opts.generator_rate < 1.0:
        raise SystemExit(f"generator_rate must be in [0, 1), got {opts.generator_rate}")
    return round(opts.generator_rate * opts.batch_size) if opts.generator_dir else 0


def _keyed_batches(elements, seed: int, start_step: int, per_batch: int, prepare) -> tf.data.Dataset:
    """Batches of `per_batch` prepared elements for steps start_step, start_step + 1, …: an endless
    seeded shuffle, each element prepared with its index in the stream (the key of its random
    ops), so a run resumed at a step gets the very batches an unbroken one did."""
    ds = tf.data.Dataset.from_tensor_slices(elements)  # decoded in memory already: the cache
    ds = ds.shuffle(len(tf.nest.flatten(elements)[0]), seed=seed, reshuffle_each_iteration=True).repeat().enumerate()
    ds = ds.skip(start_step * per_batch).map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(per_batch, drop_remainder=True)


def _photo_patches(images: np.ndarray, opts: RDNOptions, start_step: int, per_batch: int) -> tf.data.Dataset:
    def prepare(i, image):
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(opts.seed, tf.int64), i]), 2)
        hr = tf.image.stateless_random_crop(tf.cast(image, tf.float32) / 255.0, (opts.patch, opts.patch, 3), seeds[0])
        hr = tf.image.stateless_random_flip_left_right(hr, seeds[1])
        return degrade(hr, opts, seeds[1]), hr

    return _keyed_batches(images, opts.seed, start_step, per_batch, prepare)


def _artefact_patches(pairs: tuple[np.ndarray, np.ndarray], opts: RDNOptions, start_step: int,
                      per_batch: int) -> tf.data.Dataset:
    half, side = opts.patch // 2, pairs[0].shape[1]

    def prepare(i, pair):
        lr, hr = (tf.cast(x, tf.float32) / 255.0 for x in pair)
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(opts.seed, tf.int64) + 1, i]), 3)
        y, x = (tf.random.stateless_uniform([], seeds[k], 0, side - half + 1, dtype=tf.int32) for k in (0, 1))
        lr, hr = lr[y:y + half, x:x + half], hr[2 * y:2 * y + opts.patch, 2 * x:2 * x + opts.patch]
        flip = tf.random.stateless_uniform([], seeds[2]) < 0.5
        return (tf.cond(flip, lambda: lr[:, ::-1], lambda: lr), tf.cond(flip, lambda: hr[:, ::-1], lambda: hr))

    return _keyed_batches(pairs, opts.seed + 1, start_step, per_batch, prepare)


def patches(images: np.ndarray, opts: RDNOptions, start_step: int,
            artefacts: tuple[np.ndarray, np.ndarray] | None = None) -> tf.data.Dataset:
    """(input, clean) patch batches for steps start_step, start_step + 1, …: degraded photos, and
    `artefact_share` patches of each batch from the artefact pass when `artefacts` are given."""
    share = artefact_share(opts) if artefacts is not None else 0
    ds = _photo_patches(images, opts, start_step, opts.batch_size - share)
    if share:
        ds = tf.data.Dataset.zip(ds, _artefact_patches(artefacts, opts, start_step, share)).map(
            lambda a, b: (tf.concat([a[0], b[0]], 0), tf.concat([a[1], b[1]], 0)))
    return ds.prefetch(tf.data.AUTOTUNE)


class RDNTrainer:
    """An RDN, its optimizer and step in one checkpoint; the L1 train step; the report."""

    def __init__(self, opts: RDNOptions):
        self.opts = opts
        self.run_dir = Path(opts.run_dir)
        keras.utils.set_random_seed(opts.seed)
        self.network = networks.rdn(**opts.architecture)
        self.optimizer = keras.optimizers.Adam(opts.lr)
        self.optimizer.build(self.network.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        checkpoint = tf.train.Checkpoint(network=self.network, optimizer=self.optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(checkpoint, str(self.run_dir / "checkpoints"), max_to_keep=2,
                                                  step_counter=self.step)
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).assert_consumed()
        elif opts.init_from:
            self.start_from(opts.init_from)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        opts.save(self.run_dir / OPTIONS_FILE)
        self.train_step = tf.function(self._train_step)

    def start_from(self, manifest_path: str) -> None:
        """Load an exported RDN's weights (to train a shipped model further; exports keep no optimizer)."""
        manifest = read_manifest(Path(manifest_path))
        if manifest.kind != RDN or manifest.architecture != self.opts.architecture:
            raise SystemExit(f"{manifest_path} is a {manifest.kind} with architecture {manifest.architecture}; "
                             f"this run trains an RDN with {self.opts.architecture}")
        weights.load_weights(manifest.weights_path, self.network)

    def _train_step(self, lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(self.network(lr, training=True) - hr))
        grads = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply(grads, self.network.trainable_variables)
        self.step.assign_add(1)
        return loss

    def fit(self, images: np.ndarray | None, progress: bool = True,
            artefacts: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
        o = self.opts
        start = int(self.step.numpy())
        end = o.steps if not o.max_steps else min(o.steps, start + o.max_steps)
        loss = math.nan
        if start < end:
            ds = patches(images, o, start, artefacts).with_options(runtime.dataset_options(o.threads)).take(end - start)
            with tqdm(total=o.steps, initial=start, unit="step", disable=not progress, dynamic_ncols=True) as bar:
                try:
                    for lr, hr in ds:
                        loss = float(self.train_step(lr, hr))
                        bar.update(1)
                        bar.set_postfix(l1=f"{loss:.4f}", refresh=False)
                        if o.save_every and int(self.step.numpy()) % o.save_every == 0:
                            self.manager.save()
                except KeyboardInterrupt:
                    bar.write(f"interrupted: checkpoint {self.manager.save()}")
                    raise
            self.manager.save()
        return {"step": int(self.step.numpy()), "l1": loss if math.isfinite(loss) else None}  # None: nothing to train

    def report(self, images: np.ndarray, generators: dict | None = None,
               artefacts: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
        """PSNR and SSIM of RDN, bicubic and bicubic + unsharp mask on degraded held-out photos; for
        each of `generators` (pair → its a2b and b2a on [0, 1] images) on the photos halved and
        passed through a2b then b2a, and the checkerboard (dB, `training.evaluate`) of each method
        on what the pipeline serves (a2b's output, ×2); and on held-out `artefacts` pairs.
        `eval_images` bounds the photos: the ×2 of 256 px outputs costs seconds each on a CPU."""
        hr = tf.cast(images, tf.float32) / 255.0
        lr = tf.stack([degrade(hr[i], self.opts, tf.constant([99, i], tf.int64)) for i in range(len(images))])
        report = self.compare(lr, hr) | {"n": len(images), "size": int(hr.shape[1])}
        half = tf.image.resize(hr, (hr.shape[1] // 2, hr.shape[2] // 2), method="bicubic", antialias=True)
        for pair, (a2b, b2a) in (generators or {}).items():
            cycled = _batched(lambda x, a2b=a2b, b2a=b2a: b2a(a2b(x)), half)
            report.setdefault("generator_outputs", {})[pair] = self.compare(cycled, hr)
            report.setdefault("served_checkerboard", {})[pair] = self.checkerboard(_batched(a2b, hr))
        if artefacts is not None:
            inputs, targets = (tf.cast(x, tf.float32) / 255.0 for x in artefacts)
            report["artefact_pass"] = self.compare(inputs, targets) | {"n": len(inputs)}
        return report

    def upscaled(self, lr: tf.Tensor, size: tuple[int, int]) -> dict[str, tf.Tensor]:
        """The three ×2 methods' outputs for low-resolution inputs `lr` ([0, 1])."""
        bicubic = tf.clip_by_value(tf.image.resize(lr, size, method="bicubic"), 0.0, 1.0)
        return {"rdn": _batched(lambda x: tf.clip_by_value(self.network(x, training=False), 0.0, 1.0), lr),
                "bicubic": bicubic, "bicubic_unsharp": unsharp(bicubic)}

    def compare(self, lr: tf.Tensor, hr: tf.Tensor) -> dict:
        """The three ×2 methods on low-resolution inputs `lr` against the clean `hr`."""
        return {name: {"psnr": round(float(tf.reduce_mean(tf.image.psnr(out, hr, 1.0))), 3),
                       "ssim": round(float(tf.reduce_mean(tf.image.ssim(out, hr, 1.0))), 4)}
                for name, out in self.upscaled(lr, hr.shape[1:3]).items()}

    def checkerboard(self, lr: tf.Tensor) -> dict:
        """Checkerboard dB of generator outputs `lr` and of each method's ×2 of them (area-halved back,
        so the pattern keeps its period of 4 px)."""
        size = lr.shape[1:3]
        figure = lambda x: round(float(np.mean(checkerboard_db(x * 2.0 - 1.0))), 2)
        return {"generator": figure(lr)} | {
            name: figure(tf.image.resize(out, size, method="area"))
            for name, out in self.upscaled(lr, (2 * size[0], 2 * size[1])).items()}


def _batched(fn, images: tf.Tensor, batch: int = 8) -> tf.Tensor:
    return tf.concat([fn(images[i:i + batch]) for i in range(0, len(images), batch)], 0)


def _generators(models: registry.ModelRegistry, pair_name: str) -> tuple:
    """a2b and b2a of an installed pair model, on [0, 1] images."""
    from pipeline.directions import pair_named

    direction = pair_named(pair_name).direction("a2b")
    on_unit = lambda model: lambda x: tf.clip_by_value((model.served_network(x * 2.0 - 1.0) + 1.0) / 2.0, 0.0, 1.0)
    return on_unit(models.generator(direction)), on_unit(models.generator(direction.reverse))


def _report_generators(model_dir: str) -> dict:
    """pair → (a2b, b2a), for every trained pair model installed in `model_dir`."""
    if not model_dir:
        return {}
    from pipeline.manifests import CYCLEGAN

    models = registry.ModelRegistry(model_dir)
    pairs = sorted(m.name for m in models.manifests().values() if m.kind == CYCLEGAN)
    return {pair: _generators(models, pair) for pair in pairs}


def markdown(report: dict) -> str:
    sections = {"degraded (blur, ×2 down, noise, JPEG)": report}
    sections |= {f"{pair} generator outputs (½ size, a2b then b2a)": r
                 for pair, r in report.get("generator_outputs", {}).items()}
    if "artefact_pass" in report:
        sections["artefact pass (generator texture → colours + photo detail)"] = report["artefact_pass"]
    lines = [f"# RDN ×2 on held-out photos ({report['n']} photos, {report['size']} px)", "",
             "| input | method | PSNR (dB) | SSIM |", "|---|---|---:|---:|"]
    for label, r in sections.items():
        for name in ("rdn", "bicubic", "bicubic_unsharp"):
            lines.append(f"| {label} | {name.replace('_', ' + ')} | {r[name]['psnr']:.2f} | {r[name]['ssim']:.4f} |")
    served = report.get("served_checkerboard", {})
    if served:
        lines += ["", "Checkerboard (dB) of what the pipeline serves: each pair's a2b output at "
                  f"{report['size']} px, and each method's ×2 of it (held-out photos: about 1–3 dB)", "",
                  "| pair | generator output | rdn | bicubic | bicubic + unsharp |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {pair} | " + " | ".join(f"{r[k]:.1f}" for k in ("generator", "rdn", "bicubic", "bicubic_unsharp"))
                  + " |" for pair, r in served.items()]
    return "\n".join(lines) + "\n"


def train(opts: RDNOptions, progress: bool = True) -> dict:
    """Train (or resume) the RDN on a pair's real train photos, then report on its test photos."""
    builder = data.build(opts.data, opts.data_dir or None)
    trainer = RDNTrainer(opts)
    done = int(trainer.step.numpy()) >= opts.steps  # then only the report is made (e.g. --steps 0 --init-from)
    train_images = None if done else np.concatenate(
        [data.load_images(builder, "train", d, opts.photo_size) for d in (0, 1)])
    artefacts = artefact_data(opts, "train", opts.generator_photos) if artefact_share(opts) and not done else None
    result = trainer.fit(train_images, progress, artefacts)
    held_out = [data.load_images(builder, "test", d, opts.eval_size) for d in (0, 1)]
    if opts.eval_images:
        held_out = [x[:opts.eval_images] for x in held_out]
    report = trainer.report(np.concatenate(held_out), _report_generators(opts.report_generators),
                            artefact_data(opts, "test", opts.eval_images)) | {"training": result}
    data.save_json(report, trainer.run_dir / "report.json")
    (trainer.run_dir / "report.md").write_text(markdown(report))
    return report

