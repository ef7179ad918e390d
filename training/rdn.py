"""The RDN trainer: ×2 restoration of real photos degraded the way a generator output is.

Self-supervised: a clean high-resolution patch is blurred, downscaled ×2, given noise and
JPEG artefacts (and optionally a cycle through a CycleGAN's generators, whose artefacts the
pipeline's RDN must cancel); the RDN learns to restore the clean patch (L1 loss, as ISR).
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

from pipeline import networks, registry
from pipeline.crop import MODEL_INPUT_SIZE
from pipeline.manifests import Manifest
from training import data, runtime
from training.options import RDNOptions

OPTIONS_FILE = "rdn_options.json"


def _gaussian_blur(image: tf.Tensor, sigma: tf.Tensor) -> tf.Tensor:
    """Blur a [H, W, 3] image with a 7×7 Gaussian of `sigma` (≈ identity for tiny sigma)."""
    r = tf.range(-3.0, 4.0)
    k = tf.exp(-(r**2) / (2.0 * tf.maximum(sigma, 1e-3) ** 2))
    k = k / tf.reduce_sum(k)
    kernel = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]


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


def patches(images: np.ndarray, opts: RDNOptions, start_step: int) -> tf.Dataset:
    """(degraded, clean) patch batches for steps start_step, start_step + 1, …"""
    ds = tf.data.Dataset.from_tensor_slices(images)  # decoded in memory already: the cache
    ds = ds.shuffle(len(images), seed=opts.seed, reshuffle_each_iteration=True).repeat().enumerate()
    ds = ds.skip(start_step * opts.batch_size)

    def prepare(i, image):
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(opts.seed, tf.int64), i]), 2)
        hr = tf.image.stateless_random_crop(tf.cast(image, tf.float32) / 255.0, (opts.patch, opts.patch, 3), seeds[0])
        hr = tf.image.stateless_random_flip_left_right(hr, seeds[1])
        return degrade(hr, opts, seeds[1]), hr

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(opts.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


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
        self.cycle = _generator_cycle(opts)
        checkpoint = tf.train.Checkpoint(network=self.network, optimizer=self.optimizer, step=self.step)
        self.manager = tf.train.CheckpointManager(checkpoint, str(self.run_dir / "checkpoints"), max_to_keep=2,
                                                  step_counter=self.step)
        if self.manager.latest_checkpoint:
            checkpoint.restore(self.manager.latest_checkpoint).assert_consumed()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        opts.save(self.run_dir / OPTIONS_FILE)
        self.train_step = tf.function(self._train_step)

    def _train_step(self, lr, hr):
        if self.cycle is not None:
            seed = tf.stack([tf.cast(self.opts.seed, tf.int64) + 1, self.step])
            chosen = tf.random.stateless_uniform([tf.shape(lr)[0], 1, 1, 1], seed) < self.opts.generator_rate
            lr = tf.where(chosen, self.cycle(lr), lr)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(self.network(lr, training=True) - hr))
        grads = tape.gradient(loss, self.network.trainable_variables)
        self.optimizer.apply(grads, self.network.trainable_variables)
        self.step.assign_add(1)
        return loss

    def fit(self, images: np.ndarray, progress: bool = True) -> dict:
        o = self.opts
        start = int(self.step.numpy())
        end = o.steps if not o.max_steps else min(o.steps, start + o.max_steps)
        loss = math.nan
        if start < end:
            ds = patches(images, o, start).with_options(runtime.dataset_options(o.threads)).take(end - start)
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

    def report(self, images: np.ndarray, cycles: dict | None = None) -> dict:
        """PSNR and SSIM of RDN, bicubic and bicubic + unsharp mask on degraded held-out photos and,
        for each of `cycles` (pair → a2b-then-b2a on [0, 1] images), on the photos halved and
        passed through that pair's generators: the artefacts the RDN meets in the pipeline."""
        hr = tf.cast(images, tf.float32) / 255.0
        lr = tf.stack([degrade(hr[i], self.opts, tf.constant([99, i], tf.int64)) for i in range(len(images))])
        report = self.compare(lr, hr) | {"n": len(images), "size": int(hr.shape[1])}
        half = tf.image.resize(hr, (hr.shape[1] // 2, hr.shape[2] // 2), method="bicubic", antialias=True)
        for pair, cycle in (cycles or {}).items():
            cycled = tf.concat([tf.clip_by_value(cycle(half[i:i + 8]), 0.0, 1.0) for i in range(0, len(images), 8)], 0)
            report.setdefault("generator_outputs", {})[pair] = self.compare(cycled, hr)
        return report

    def compare(self, lr: tf.Tensor, hr: tf.Tensor) -> dict:
        """The three ×2 methods on low-resolution inputs `lr` against the clean `hr`."""
        bicubic = tf.clip_by_value(tf.image.resize(lr, hr.shape[1:3], method="bicubic"), 0.0, 1.0)
        candidates = {
            "rdn": tf.concat([tf.clip_by_value(self.network(lr[i:i + 8], training=False), 0.0, 1.0)
                              for i in range(0, len(lr), 8)], 0),
            "bicubic": bicubic,
            "bicubic_unsharp": unsharp(bicubic),
        }
        return {name: {"psnr": round(float(tf.reduce_mean(tf.image.psnr(out, hr, 1.0))), 3),
                       "ssim": round(float(tf.reduce_mean(tf.image.ssim(out, hr, 1.0))), 4)}
                for name, out in candidates.items()}


def _cycle(models: registry.ModelRegistry, pair_name: str):
    """a2b then b2a of an installed pair model, on [0, 1] images."""
    from pipeline.directions import Direction

    direction = next(d for d in Direction if d.pair.name == pair_name and d.generator == "a2b")
    a2b, b2a = models.generator(direction).network, models.generator(direction.reverse).network
    return lambda x: (b2a(a2b(x * 2.0 - 1.0, training=False), training=False) + 1.0) / 2.0


def _report_cycles(model_dir: str) -> dict:
    """pair → generator cycle, for every trained pair model installed in `model_dir`."""
    if not model_dir:
        return {}
    from pipeline.manifests import CYCLEGAN

    models = registry.ModelRegistry(model_dir)
    pairs = sorted(m.name for m in models.manifests().values() if m.kind == CYCLEGAN)
    return {pair: _cycle(models, pair) for pair in pairs}


def _generator_cycle(opts: RDNOptions):
    """a2b then b2a of an exported pair model on [0, 1] images, or None."""
    if not (opts.generator_dir and opts.generator_rate > 0):
        return None
    return _cycle(registry.ModelRegistry(opts.generator_dir), opts.generator_pair)


def markdown(report: dict) -> str:
    sections = {"degraded (blur, ×2 down, noise, JPEG)": report}
    sections |= {f"{pair} generator outputs (½ size, a2b then b2a)": r
                 for pair, r in report.get("generator_outputs", {}).items()}
    lines = [f"# RDN ×2 on held-out photos ({report['n']} photos, {report['size']} px)", "",
             "| input | method | PSNR (dB) | SSIM |", "|---|---|---:|---:|"]
    for label, r in sections.items():
        for name in ("rdn", "bicubic", "bicubic_unsharp"):
            lines.append(f"| {label} | {name.replace('_', ' + ')} | {r[name]['psnr']:.2f} | {r[name]['ssim']:.4f} |")
    return "\n".join(lines) + "\n"


def train(opts: RDNOptions, progress: bool = True) -> dict:
    """Train (or resume) the RDN on a pair's real train photos, then report on its test photos."""
    builder = data.build(opts.data, opts.data_dir or None)
    train_images = np.concatenate([data.load_images(builder, "train", d, opts.photo_size) for d in (0, 1)])
    trainer = RDNTrainer(opts)
    result = trainer.fit(train_images, progress)
    held_out = [data.load_images(builder, "test", d, opts.eval_size) for d in (0, 1)]
    if opts.eval_images:
        held_out = [x[:opts.eval_images] for x in held_out]
    report = trainer.report(np.concatenate(held_out), _report_cycles(opts.report_generators)) | {"training": result}
    data.save_json(report, trainer.run_dir / "report.json")
    (trainer.run_dir / "report.md").write_text(markdown(report))
    return report


def export_run(run_dir: Path | str, model_dir: Path | str, *, name: str = "rdn", dtype: str = "float32") -> Manifest:
    """Export an RDN run with its recipe and report into a models directory."""
    import json

    from training.export import git_commit

    run_dir = Path(run_dir)
    opts = RDNOptions.load(run_dir / OPTIONS_FILE)
    trainer = RDNTrainer(opts)
    report_path = run_dir / "report.json"
    metrics = json.loads(report_path.read_text()) if report_path.is_file() else {}
    metrics.pop("training", None)
    provenance = {"data": opts.data, "recipe": {k: v for k, v in opts.to_dict().items()
                                                 if k not in RDNOptions.RUNTIME + ("run_dir",)},
                  "steps": int(trainer.step.numpy()), "code_commit": git_commit(),
                  "command": f"python -m training rdn --run-dir {run_dir}"}
    return registry.export_rdn(Path(model_dir), trainer.network, opts.architecture, name=name,
                               input_size=MODEL_INPUT_SIZE, dtype=dtype, trained=True, provenance=provenance,
                               metrics=metrics)
