"""The CycleGAN trainer: two ResNet generators and two PatchGANs, the paper's losses and schedule.

Follows the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix, `cycle_gan_model`):
LSGAN adversarial loss, cycle loss λ·|F(G(a)) − a|, identity loss 0.5·λ·|G(b) − b|, Adam
(2e-4, β1 0.5) for both generators together and both discriminators together, learning rate
constant for `epochs` then linear decay over `epochs_decay`, discriminators trained on a pool
of 50 past fakes, loss halved for the discriminators.

Exact resume: every source of randomness is stateless and keyed to the global step (data order
via seeded shuffles, augmentation, pool decisions), and the checkpoint holds the networks, both
optimizers, both pools and the step — so a run stopped and resumed ends with the same weights
as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pipeline import networks, weights
from pipeline.manifests import CYCLEGAN, Manifest, read_manifest
from training import data, run_state, runtime, visuals
from training.options import CycleGANOptions


class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The reference's 'linear' policy: lr for `epochs`, then linearly towards 0 over `epochs_decay`.

    Changes once per epoch, as the reference's scheduler steps per epoch.
    """

    def __init__(self, lr: float, steps_per_epoch: int, epochs: int, epochs_decay: int):
        self.lr, self.steps_per_epoch, self.epochs, self.epochs_decay = lr, steps_per_epoch, epochs, epochs_decay

    def __call__(self, step):
        epoch = tf.cast(step // self.steps_per_epoch, tf.float32)
        factor = 1.0 - tf.maximum(0.0, epoch + 1.0 - self.epochs) / (self.epochs_decay + 1.0)
        return self.lr * factor

    def get_config(self):
        return {"lr": self.lr, "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "epochs_decay": self.epochs_decay}


class ImagePool(tf.Module):
    """A buffer of past generated images (Shrivastava et al. 2017), kept in variables.

    Until full it stores and returns each image; then, with probability ½, it returns a
    stored image and keeps the new one in its place. Its contents are checkpointed.
    """

    def __init__(self, size: int, shape: tuple[int, int, int], name: str):
        super().__init__(name=name)
        self.size = size
        self.images = tf.Variable(tf.zeros((max(size, 1), *shape)), trainable=False, name="images")
        self.count = tf.Variable(0, dtype=tf.int32, trainable=False, name="count")

    def query(self, images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if self.size == 0:
            return images
        out = []
        for i in range(images.shape[0]):
            image = images[i]
            draw = tf.random.experimental.stateless_split(seed, images.shape[0] * 2)
            coin = tf.random.stateless_uniform([], draw[2 * i])
            slot = tf.random.stateless_uniform([], draw[2 * i + 1], 0, self.size, dtype=tf.int32)

            def store(image=image):
                self.images[self.count].assign(image)
                self.count.assign_add(1)
                return image

            def swap(image=image, slot=slot):
                old = tf.identity(self.images[slot])
                with tf.control_dependencies([old]):
                    self.images[slot].assign(image)
                return old

            def maybe_swap(image=image, coin=coin, swap=swap):
                return tf.cond(coin > 0.5, swap, lambda: image)

            out.append(tf.cond(self.count < self.size, store, maybe_swap))
        return tf.stack(out)


def _mse(x, target: float):
    return tf.reduce_mean(tf.square(tf.cast(x, tf.float32) - target))


def _l1(x, y):
    return tf.reduce_mean(tf.abs(tf.cast(x, tf.float32) - tf.cast(y, tf.float32)))


class CycleGAN:
    """Networks, optimizers, pools and the train step of one pair's CycleGAN."""

    def __init__(self, opts: CycleGANOptions, steps_per_epoch: int):
        self.opts = opts
        self.steps_per_epoch = steps_per_epoch
        keras.utils.set_random_seed(opts.seed)
        policy = runtime.mixed_policy(opts.mixed_precision)
        with networks.dtype_policy(policy):
            self.g_ab = networks.resnet_generator(**opts.architecture, name="g_ab")
            self.g_ba = networks.resnet_generator(**opts.architecture, name="g_ba")
            self.d_a = networks.patchgan_discriminator(opts.ndf, opts.n_layers_d, name="d_a")  # real A vs F(b)
            self.d_b = networks.patchgan_discriminator(opts.ndf, opts.n_layers_d, name="d_b")  # real B vs G(a)
        schedule = LinearDecay(opts.lr, steps_per_epoch, opts.epochs, opts.epochs_decay)
        self.opt_g = keras.optimizers.Adam(schedule, beta_1=opts.beta1, beta_2=0.999)
        self.opt_d = keras.optimizers.Adam(schedule, beta_1=opts.beta1, beta_2=0.999)
        if policy == "mixed_float16":  # float16 needs loss scaling; bfloat16 has float32's range
            self.opt_g = keras.optimizers.LossScaleOptimizer(self.opt_g)
            self.opt_d = keras.optimizers.LossScaleOptimizer(self.opt_d)
        # The moving average stays float32 whatever the training policy (its updates are tiny).
        self.ema_ab = networks.resnet_generator(**opts.architecture, name="ema_ab") if opts.ema else None
        self.ema_ba = networks.resnet_generator(**opts.architecture, name="ema_ba") if opts.ema else None
        self.reset_average()
        self.g_vars = self.g_ab.trainable_variables + self.g_ba.trainable_variables
        self.d_vars = self.d_a.trainable_variables + self.d_b.trainable_variables
        self.opt_g.build(self.g_vars)
        self.opt_d.build(self.d_vars)
        shape = (opts.size, opts.size, 3)
        self.pool_a = ImagePool(opts.pool_size, shape, "pool_a")
        self.pool_b = ImagePool(opts.pool_size, shape, "pool_b")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        averages = {"ema_ab": self.ema_ab, "ema_ba": self.ema_ba} if opts.ema else {}
        self.checkpoint = tf.train.Checkpoint(
            g_ab=self.g_ab, g_ba=self.g_ba, d_a=self.d_a, d_b=self.d_b, opt_g=self.opt_g, opt_d=self.opt_d,
            pool_a=self.pool_a, pool_b=self.pool_b, step=self.step, **averages)
        self.train_step = tf.function(self._train_step)

    def start_from(self, manifest_path: str) -> tuple[Manifest, tuple[keras.Model, keras.Model]]:
        """Load both generators from an exported pair model, to train a shipped model further when
        its checkpoints are gone (exports keep no discriminators, optimizer state or pools). A
        `--upsample resize` run may start from a model of the paper's upsampler and sizes: its
        upsamplers are projected (`networks.copy_generator`). Returns the manifest and the
        exported generators as loaded, which `distill_step` fits the run's to."""
        manifest = read_manifest(Path(manifest_path))
        paper = dataclasses.replace(self.opts, upsample="transpose").architecture  # same sizes, paper's upsampler
        converts = self.opts.upsample == "resize" and manifest.architecture == paper
        if manifest.kind != CYCLEGAN or (manifest.architecture != self.opts.architecture and not converts):
            raise SystemExit(f"{manifest_path} is a {manifest.kind} with architecture {manifest.architecture}; "
                             f"this run trains a CycleGAN with {self.opts.architecture}")
        exported = []
        for generator, group in ((self.g_ab, "a2b"), (self.g_ba, "b2a")):
            loaded = networks.resnet_generator(**manifest.architecture, name=f"{group}_exported")
            weights.load_weights(manifest.weights_path, loaded, group)
            networks.copy_generator(loaded, generator)
            exported.append(loaded)
        self.reset_average()
        return manifest, (exported[0], exported[1])

    def distill_step(self, teachers: tuple[keras.Model, keras.Model], optimizer, real_a, real_b) -> dict:
        """One step fitting both generators to `teachers`' translations of both domains (mean L1),
        plus `opts.distill_cycle` times the mean cycle L1 of the photos through the new generators:
        the fit alone leaves a residual that the reconstruction compounds (cycle PSNR 1-2 dB lower)."""
        with tf.GradientTape() as tape:
            fake_b, fake_a = self.g_ab(real_a, training=True), self.g_ba(real_b, training=True)
            teacher_ab, teacher_ba = teachers
            losses = {"fit": (_l1(fake_b, teacher_ab(real_a, training=False))
                              + _l1(self.g_ab(real_b, training=True), teacher_ab(real_b, training=False))
                              + _l1(fake_a, teacher_ba(real_b, training=False))
                              + _l1(self.g_ba(real_a, training=True), teacher_ba(real_a, training=False))) / 4.0}
            loss = losses["fit"]
            if self.opts.distill_cycle:
                losses["cycle"] = tf.add_n(self.cycle_l1(real_a, real_b, fake_a, fake_b)) / 2.0
                loss += self.opts.distill_cycle * losses["cycle"]
        self._apply(optimizer, tape, loss, self.g_vars)
        return losses

    def cycle_l1(self, real_a, real_b, fake_a, fake_b, training: bool = True) -> tuple[tf.Tensor, tf.Tensor]:
        """Mean L1 of A→B→A and of B→A→B to their photos, given the translations G(a) and F(b)."""
        return (_l1(self.g_ba(fake_b, training=training), real_a),
                _l1(self.g_ab(fake_a, training=training), real_b))

    def _averaged(self) -> list[tuple[keras.Model, keras.Model]]:
        """(moving average, generator) pairs; empty when the run keeps no average."""
        return [(self.ema_ab, self.g_ab), (self.ema_ba, self.g_ba)] if self.opts.ema else []

    def reset_average(self) -> None:
        """Start the moving average at the generators' current weights."""
        for average, generator in self._averaged():
            average.set_weights(generator.get_weights())

    def _update_average(self) -> None:
        decay = self.opts.ema
        for average, generator in self._averaged():
            for a, w in zip(average.weights, generator.weights, strict=True):
                a.assign(decay * a + (1.0 - decay) * tf.cast(w, a.dtype))

    @property
    def exported(self) -> tuple[keras.Model, keras.Model]:
        """The generators a run exports: the moving average when it keeps one."""
        return (self.ema_ab, self.ema_ba) if self.opts.ema else (self.g_ab, self.g_ba)

    @property
    def learning_rate(self) -> float:
        return float(self.opt_g.learning_rate)

    def _apply(self, optimizer, tape, loss, variables):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            grads = tape.gradient(optimizer.scale_loss(loss), variables)
        else:
            grads = tape.gradient(loss, variables)
        optimizer.apply(grads, variables)

    def _train_step(self, real_a, real_b, generators: bool = True) -> dict:
        """One step of both discriminators, and of both generators unless `generators` is False
        (the discriminator warm-up: the generators only translate)."""
        if generators:
            losses, fake_a, fake_b = self._generator_step(real_a, real_b)
            self._update_average()
        else:
            losses = {}
            fake_b, fake_a = self.g_ab(real_a, training=True), self.g_ba(real_b, training=True)
        losses |= self._discriminator_step(real_a, real_b, fake_a, fake_b)
        self.step.assign_add(1)
        return losses

    def _generator_step(self, real_a, real_b) -> tuple[dict, tf.Tensor, tf.Tensor]:
        o = self.opts
        lam, lam_idt = o.lambda_cycle, o.lambda_cycle * o.lambda_identity
        with tf.GradientTape() as tape:
            fake_b = self.g_ab(real_a, training=True)
            fake_a = self.g_ba(real_b, training=True)
            cycle_a, cycle_b = self.cycle_l1(real_a, real_b, fake_a, fake_b)
            losses = {
                "g_ab": _mse(self.d_b(fake_b, training=True), 1.0),
                "g_ba": _mse(self.d_a(fake_a, training=True), 1.0),
                "cycle_a": cycle_a * lam,
                "cycle_b": cycle_b * lam,
            }
            if lam_idt > 0:
                losses["idt_a"] = _l1(self.g_ba(real_a, training=True), real_a) * lam_idt
                losses["idt_b"] = _l1(self.g_ab(real_b, training=True), real_b) * lam_idt
            loss_g = tf.add_n(list(losses.values()))
        self._apply(self.opt_g, tape, loss_g, self.g_vars)
        return losses, fake_a, fake_b

    def _discriminator_step(self, real_a, real_b, fake_a, fake_b) -> dict:
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(self.opts.seed, tf.int64), self.step]), 2)
        pooled_b = self.pool_b.query(tf.stop_gradient(fake_b), seeds[0])
        pooled_a = self.pool_a.query(tf.stop_gradient(fake_a), seeds[1])
        with tf.GradientTape() as tape:
            losses = {"d_a": 0.5 * (_mse(self.d_a(real_a, training=True), 1.0)
                                    + _mse(self.d_a(pooled_a, training=True), 0.0)),
                      "d_b": 0.5 * (_mse(self.d_b(real_b, training=True), 1.0)
                                    + _mse(self.d_b(pooled_b, training=True), 0.0))}
            loss_d = losses["d_a"] + losses["d_b"]
        self._apply(self.opt_d, tape, loss_d, self.d_vars)
        return losses

    def sample_grid(self, samples_a: np.ndarray, samples_b: np.ndarray) -> np.ndarray:
        """Rows of input | translation | reconstruction by the exported generators: A samples, then B."""
        rows = []
        g_ab, g_ba = self.exported
        for images, forward, backward in ((samples_a, g_ab, g_ba), (samples_b, g_ba, g_ab)):
            x = networks.to_model_range(images)
            y = forward(x, training=False)
            z = backward(y, training=False)
            rows += [[visuals.to_uint8(v[i]) for v in (x, y, z)] for i in range(len(images))]
        return visuals.grid(rows)


#: In a run started from an exported model: what that model was (export records it as provenance).
STARTED_FROM = "started_from.json"


class Trainer:
    """Runs a CycleGAN on a pair's photos: data, loop, checkpoints, samples, logs, progress."""

    def __init__(self, opts: CycleGANOptions, train_a: np.ndarray, train_b: np.ndarray,
                 samples_a: np.ndarray, samples_b: np.ndarray, dataset: str = ""):
        self.opts = opts
        self.run_dir = Path(opts.run_dir)
        self.dataset = dataset  # the TFDS build's name (pair and photos' hash), recorded in the run's state
        self._state_step = -1  # the step whose state is in state_dir
        self.train_a, self.train_b = train_a, train_b
        self.samples_a, self.samples_b = samples_a, samples_b
        self.steps_per_epoch = max(len(train_a), len(train_b)) // opts.batch_size
        self.total_steps = self.steps_per_epoch * (opts.epochs + opts.epochs_decay)
        self.model = CycleGAN(opts, self.steps_per_epoch)
        self.manager = tf.train.CheckpointManager(self.model.checkpoint, str(self.run_dir / "checkpoints"),
                                                  max_to_keep=2, step_counter=self.model.step)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        latest = self.manager.latest_checkpoint
        checkpoint_step = int(latest.rsplit("-", 1)[1]) if latest else -1
        if run_state.exists(opts.state_dir) and run_state.step_of(opts.state_dir) > checkpoint_step:
            self._resume_from_state()
        elif self.manager.latest_checkpoint:
            self.model.checkpoint.restore(self.manager.latest_checkpoint).assert_consumed()
        elif opts.init_from:
            start, exported = self.model.start_from(opts.init_from)
            record = {"model": start.name, "weights_sha256": start.weights_sha256,
                      "provenance": start.provenance, "metrics": start.metrics}
            if opts.distill:
                record["distill"] = self.distill(exported)
            data.save_json(record, self.run_dir / STARTED_FROM)
            if opts.distill:
                self.save()  # a resume starts after the fit
        opts.save(self.run_dir / "options.json")

    def _resume_from_state(self) -> None:
        """Continue from the committed state in `state_dir` (a fresh machine, or a later state than
        this run directory's), after checking it was trained on the same photos."""
        facts = json.loads((Path(self.opts.state_dir) / run_state.FACTS_FILE).read_text())
        if self.dataset and facts.get("dataset") not in (None, self.dataset):
            raise SystemExit(f"{self.opts.state_dir} was trained on {facts['dataset']}, not on these photos "
                             f"({self.dataset})")
        self._state_step = run_state.load(self.model, self.opts.state_dir)
        self.save()  # the run directory now holds the run too (export and evaluate read it)

    def save_state(self, images_per_s: float = math.nan) -> dict | None:
        """Write the run's committable state to `state_dir` (if set), rounding the live run to it;
        once per step (rounding again what was just rounded would move it by a float's last bit)."""
        if not self.opts.state_dir or self._state_step == self.step:
            return None
        self._state_step = self.step
        return run_state.save(self.model, self.opts.state_dir, self.opts.to_dict(), {
            "dataset": self.dataset, "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
            "epoch": round(self.step / self.steps_per_epoch, 3),
            "images_per_s": None if math.isnan(images_per_s) else round(images_per_s, 3)})

    def distill(self, teachers: tuple[keras.Model, keras.Model], progress: bool = True) -> dict:
        """`opts.distill` steps fitting the new run's generators to the model it starts from, on the
        training photos as augmented for training; returns the mean L1 ([-1, 1] range) to its
        translations of the held-out sample photos before and after, and their cycle L1 (A→B→A
        and B→A→B through the new generators) after."""
        o = self.opts
        optimizer = keras.optimizers.Adam(o.lr, beta_1=o.beta1, beta_2=0.999)
        optimizer.build(self.model.g_vars)
        if isinstance(self.model.opt_g, keras.optimizers.LossScaleOptimizer):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        step = tf.function(self.model.distill_step)
        ds = self._batches(seed=o.seed + 1, start_step=0)
        held_out = networks.to_model_range(np.concatenate([self.samples_a, self.samples_b]))
        held_out_a, held_out_b = np.split(held_out, [len(self.samples_a)])
        g_ab, g_ba = self.model.g_ab, self.model.g_ba

        def cycle_l1() -> float:
            cycles = self.model.cycle_l1(held_out_a, held_out_b, g_ba(held_out_b), g_ab(held_out_a), training=False)
            return round(float(tf.add_n(cycles)) / 2, 4)

        def l1() -> float:
            return round(float(tf.add_n([_l1(student(held_out), teacher(held_out)) for student, teacher
                                         in zip((g_ab, g_ba), teachers, strict=True)]) / 2), 4)

        before = l1()
        bar = tqdm(ds.take(o.distill), total=o.distill, unit="step", desc="distill", disable=not progress,
                   dynamic_ncols=True)
        for real_a, real_b in bar:
            losses = step(teachers, optimizer, real_a, real_b)
            bar.set_postfix({k: f"{float(v):.4f}" for k, v in losses.items()}, refresh=False)
        self.model.reset_average()
        return {"steps": o.distill, "cycle_weight": o.distill_cycle,
                "held_out_l1_before": before, "held_out_l1_after": l1(), "held_out_cycle_l1_after": cycle_l1()}

    def _batches(self, *, seed: int, start_step: int) -> tf.data.Dataset:
        """The training photos, augmented as the recipe says, as (real_a, real_b) batches from `start_step`."""
        o = self.opts
        aug = data.Augment(o.size, o.zoom, o.flip, o.saturation)
        return data.cyclegan_pipeline(self.train_a, self.train_b, aug, seed=seed, batch_size=o.batch_size,
                                      start_step=start_step).with_options(runtime.dataset_options(o.threads))

    @property
    def step(self) -> int:
        return int(self.model.step.numpy())

    def save(self, images_per_s: float = math.nan) -> str:
        """A checkpoint, and progress.json saying where the run stands (read by export)."""
        data.save_json({"step": self.step, "steps_per_epoch": self.steps_per_epoch, "total_steps": self.total_steps,
                        "epoch": round(self.step / self.steps_per_epoch, 3),
                        "images_per_s": None if math.isnan(images_per_s) else round(images_per_s, 3)},
                       self.run_dir / "progress.json")
        return self.manager.save(checkpoint_number=self.step)

    def end_of_epoch(self, epoch: int, writer) -> None:
        pixels = self.model.sample_grid(self.samples_a, self.samples_b)
        visuals.save_image(pixels, self.run_dir / "samples" / f"epoch_{epoch:03d}.png")
        with writer.as_default():
            tf.summary.image("samples", pixels[None], step=self.step)

    def fit(self, progress: bool = True) -> dict:
        """Train until the last epoch or `max_steps` more steps; returns the last losses and speed."""
        o = self.opts
        start = self.step
        end = self.total_steps if not o.max_steps else min(self.total_steps, start + o.max_steps)
        if start >= end:
            return {"step": start, "images_per_s": math.nan, "losses": {}}
        ds = self._batches(seed=o.seed, start_step=start)
        writer = tf.summary.create_file_writer(str(self.run_dir / "logs"))
        bar = tqdm(total=self.total_steps, initial=start, unit="step", disable=not progress, dynamic_ncols=True)
        losses: dict = {}
        timed_steps, timed_seconds = 0, 0.0
        try:
            for real_a, real_b in ds.take(end - start):
                t0 = time.perf_counter()
                generators = self.step >= o.warmup_d
                losses = {k: float(v) for k, v in self.model.train_step(real_a, real_b, generators).items()}
                if self.step > max(start, o.warmup_d) + 1:  # a step that traces the graph is left out of the speed
                    timed_steps, timed_seconds = timed_steps + 1, timed_seconds + time.perf_counter() - t0
                speed = timed_steps * o.batch_size / timed_seconds if timed_seconds else math.nan
                step = self.step
                if not all(math.isfinite(v) for v in losses.values()):
                    raise FloatingPointError(f"non-finite loss at step {step}: {losses}")
                bar.update(1)
                bar.set_postfix({"epoch": (step - 1) // self.steps_per_epoch + 1, "img/s": f"{speed:.2f}",
                                 **{k: f"{v:.3f}" for k, v in losses.items()}}, refresh=False)
                if step % o.log_every == 0 or step == end:
                    with writer.as_default():
                        for k, v in losses.items():
                            tf.summary.scalar(f"loss/{k}", v, step=step)
                        tf.summary.scalar("learning_rate", self.model.learning_rate, step=step)
                        if timed_seconds:
                            tf.summary.scalar("images_per_s", speed, step=step)
                state_due = o.state_every and step % o.state_every == 0
                if state_due:  # before the checkpoint, which then holds the run as rounded to the state
                    self.save_state(speed)
                if step % self.steps_per_epoch == 0:
                    self.end_of_epoch(step // self.steps_per_epoch, writer)
                    self.save(speed)
                elif state_due or (o.save_every and step % o.save_every == 0):
                    self.save(speed)
        except KeyboardInterrupt:
            self.save_state()
            bar.write(f"interrupted: checkpoint at step {self.step} in {self.save()}")
            raise
        finally:
            bar.close()
            writer.flush()
        speed = timed_steps * o.batch_size / timed_seconds if timed_seconds else math.nan
        if o.state_dir:
            self.save_state(speed)
            self.save(speed)
        elif self.step % self.steps_per_epoch:  # an epoch end already saved
            self.save(speed)
        if not (self.run_dir / "samples").is_dir():  # a run shorter than an epoch still shows its samples
            self.end_of_epoch(math.ceil(self.step / self.steps_per_epoch), writer)
        return {"step": self.step, "images_per_s": speed, "losses": losses}


def pick(images: np.ndarray, n: int) -> np.ndarray:
    """The first n photos of the build's fixed order (TFDS orders examples by a hash of their key)."""
    return images[:n] if n and len(images) > n else images


def train(opts: CycleGANOptions, progress: bool = True) -> dict:
    """Build (or reuse) the dataset, then train or resume the run in `opts.run_dir`."""
    builder = data.build(opts.data, opts.data_dir or None)
    aug = data.Augment(opts.size, opts.zoom, opts.flip, opts.saturation)
    train_a = pick(data.load_images(builder, "train", 0, aug.load_size), opts.max_photos)
    train_b = pick(data.load_images(builder, "train", 1, aug.load_size), opts.max_photos)
    samples_a = data.load_images(builder, "test", 0, opts.size)[:opts.samples]
    samples_b = data.load_images(builder, "test", 1, opts.size)[:opts.samples]
    trainer = Trainer(opts, train_a, train_b, samples_a, samples_b, dataset=builder.builder_config.name)
    return trainer.fit(progress)
