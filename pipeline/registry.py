"""The model registry: build a network from its manifest, verify its weights, cache it.

Models are loaded once per process and shared between threads (`ModelRegistry` instances
over the same directory share one cache). Each loaded model carries a tf.function with a
fixed input signature, traced on first use or by `warm_up`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import networks, weights
from pipeline.directions import PAIRS, Direction, Pair
from pipeline.errors import ModelError
from pipeline.manifests import (
    CYCLEGAN,
    MAKE_MODELS_HINT,
    RDN,
    Manifest,
    default_rdn,
    per_direction,
    read_manifests,
    sha256_file,
    write_manifest,
)

#: Small architectures for tests, the CLI's --random-weights and development installs.
TINY_GENERATOR = {"ngf": 8, "n_blocks": 2}
TINY_RDN = {"C": 2, "D": 2, "G": 8, "G0": 8, "x": 2}
#: Inference precisions: float32, or bfloat16 compute with float32 weights (Keras mixed policy).
PRECISIONS = {"float32": None, "bfloat16": "mixed_bfloat16"}

log = logging.getLogger(__name__)


def best_precision(cpuinfo: str = "/proc/cpuinfo") -> str:
    """bfloat16 where the CPU advertises native bf16 (AVX-512 BF16 or AMX), else float32: a guess
    from the flags, for training's mixed precision; serving measures instead (`choose_precision`)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return "float32"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return "bfloat16" if {"avx512_bf16", "amx_bf16"} & set(flags) else "float32"


#: The block `conv_block_ms` times: one residual block of the served generator (two 3×3
#: convolutions at 4·ngf channels, ngf 32, on the 64×64 grid of a 256 px input).
PROBE_CHANNELS, PROBE_SIZE = 128, 64


def conv_block_ms(precision: str, repeats: int = 3) -> float:
    """Milliseconds one residual convolution block takes in `precision`, the median of `repeats`
    runs after one untimed run (which creates oneDNN's kernels for the shape)."""
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    x = tf.cast(tf.random.stateless_normal([1, PROBE_SIZE, PROBE_SIZE, PROBE_CHANNELS], (1, 2)), dtype)
    w = tf.cast(tf.random.stateless_normal([3, 3, PROBE_CHANNELS, PROBE_CHANNELS], (3, 4)) * 0.03, dtype)

    def block() -> None:
        y = tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME"))
        (tf.nn.conv2d(y, w, 1, "SAME") + x).numpy()

    block()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        block()
        times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision models are served in, how it was set, and the timings `auto` chose by."""

    precision: str
    setting: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.timings_ms:
            return f"{self.precision} (set)"
        measured = ", ".join(f"{name} {ms:.1f} ms" for name, ms in self.timings_ms.items())
        return f"{self.precision} (auto: one conv block {measured})"


def choose_precision(setting: str, timer: Callable[[str], float] = conv_block_ms) -> PrecisionChoice:
    """`setting` as it is, or for `auto` the precision whose conv block `timer` finds fastest.

    Measured, not read from CPU flags: a CPU may compute bf16 natively and still run it slower
    than float32. A precision the CPU cannot run at all is left out.
    """
    if setting != "auto":
        if setting not in PRECISIONS:
            raise ValueError(f"precision must be auto or one of {', '.join(PRECISIONS)}, got {setting!r}")
        return PrecisionChoice(setting, setting)
    timings = {}
    for precision in PRECISIONS:
        try:
            timings[precision] = round(timer(precision), 2)
        except (tf.errors.OpError, RuntimeError) as error:
            log.warning("precision %s cannot run here, left out: %s", precision, error)
    return PrecisionChoice(min(timings, key=timings.get), setting, timings)


class _Template:
    """One traced inference function per architecture, precision and self-ensemble.

    Models of the same architecture (the six generators of three pairs) share it and differ only
    in the weight values they pass in (`stateless_call`), so a worker traces each architecture
    once per way of serving it instead of once per model; the Keras network under it is shared
    by all its self-ensembles.
    """

    def __init__(self, network, manifest: Manifest, self_ensemble: str) -> None:
        self.network = network
        self.warm = False  # traced and run once: every model of the architecture is then ready
        # One call at a time: a call already uses every intra-op thread, and a clean-clone CI saw
        # overlapping calls give the same photo different bytes (oneDNN may split a call's sums by
        # the threads it finds free), which serialised calls cannot.
        self.lock = threading.Lock()
        size = manifest.input_size
        spec = tf.TensorSpec([None, size, size, 3], tf.float32)

        def run(trainable, non_trainable, x):
            y, _ = self.network.stateless_call(trainable, non_trainable, x, training=False)
            return tf.cast(y, tf.float32)

        def infer(trainable, non_trainable, x):
            return networks.served(lambda batch: run(trainable, non_trainable, batch), self_ensemble)(x)

        self.infer = tf.function(infer, input_signature=[
            [tf.TensorSpec(v.shape, v.dtype) for v in self.network.trainable_variables],
            [tf.TensorSpec(v.shape, v.dtype) for v in self.network.non_trainable_variables], spec])

    def weights_of(self, path: Path, group: str | None) -> tuple[list, list]:
        """A weight file's values for this architecture (read through the template network)."""
        weights.load_weights(path, self.network, group)
        return ([tf.constant(v.numpy()) for v in self.network.trainable_variables],
                [tf.constant(v.numpy()) for v in self.network.non_trainable_variables])


class LoadedModel:
    """A ready model: its manifest, how it is served (`self_ensemble`), its weight values and its
    architecture's traced function."""

    def __init__(self, manifest: Manifest, self_ensemble: str, template: _Template, values: tuple[list, list],
                 precision: str) -> None:
        self.manifest, self.self_ensemble, self.precision = manifest, self_ensemble, precision
        self._template, self._values = template, values
        self._network = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self._template.lock:
            return self._template.infer(*self._values, tf.convert_to_tensor(batch, tf.float32)).numpy()

    def served_network(self, x: tf.Tensor) -> tf.Tensor:
        """This model as served (its `self_ensemble` included) on a batch of any size, through
        `network`: for training code that needs what a worker would make."""
        return networks.served(lambda batch: self.network(batch, training=False), self.self_ensemble)(x)

    @property
    def network(self):
        """This model as a Keras model of its own (for training code that composes networks)."""
        with _cache_lock:
            if self._network is None:
                self._network = self._own_network()
        return self._network

    def _own_network(self):
        with networks.dtype_policy(PRECISIONS[self.precision]):
            network = build_network(self.manifest)
        for variable, value in zip(network.trainable_variables + network.non_trainable_variables,
                                   self._values[0] + self._values[1], strict=True):
            variable.assign(value)
        return network

    def warm_up(self) -> None:
        """Trace and run the architecture's function once; later models of the same architecture
        need no run of their own, which keeps worker start-up short."""
        if self._template.warm:
            return
        size = self.manifest.input_size
        self(np.zeros((1, size, size, 3), np.float32))
        self._template.warm = True

    @property
    def facts(self) -> dict:
        """What a result's metadata records about the model that made it."""
        m = self.manifest
        return {"name": m.name, "kind": m.kind, "sha256": m.weights_sha256, "trained": m.trained,
                "precision": self.precision}


class _OneTracePerModel(logging.Filter):
    """Drop TensorFlow's 'frequent retracing' warning: each architecture's template traces its
    own tf.function exactly once, which that heuristic counts as retracing of one function."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_OneTracePerModel())

_cache: dict[tuple, LoadedModel] = {}
_templates: dict[tuple, _Template] = {}  # guarded by _cache_lock, as _cache
# One Keras network per architecture and precision, whatever the self-ensembles that serve it:
# its templates only call it statelessly, and weights pass through it under _cache_lock.
_networks: dict[tuple, object] = {}
_cache_lock = threading.Lock()


def build_network(manifest: Manifest):
    """An untrained Keras model with the manifest's architecture."""
    if manifest.kind == CYCLEGAN:
        return networks.resnet_generator(**manifest.architecture)
    if manifest.kind == RDN:
        return networks.rdn(**manifest.architecture)
    raise ModelError(f"model {manifest.name!r} has unknown kind {manifest.kind!r}")


def _load(manifest: Manifest, direction: Direction | None, precision: str) -> LoadedModel:
    """A pair model's generator for `direction`, or (None) a model of one network, the RDN."""
    path = manifest.weights_path
    if not path.is_file():
        raise ModelError(f"weights file {path} for model {manifest.name!r} is missing; {MAKE_MODELS_HINT}")
    actual = sha256_file(path)
    if actual != manifest.weights_sha256:
        raise ModelError(
            f"weights file {path} has sha256 {actual[:12]}…, its manifest says "
            f"{manifest.weights_sha256[:12]}…: the file is damaged or not the one the manifest describes"
        )
    try:
        self_ensemble = manifest.self_ensemble_of(direction.value) if direction else "none"
    except ModelError as error:
        raise ModelError(f"model {manifest.name!r}: {error}") from None
    architecture = (manifest.kind, json.dumps(manifest.architecture, sort_keys=True), manifest.input_size, precision)
    if architecture not in _networks:
        with networks.dtype_policy(PRECISIONS[precision]):
            _networks[architecture] = build_network(manifest)
    key = (*architecture, self_ensemble)
    if key not in _templates:
        _templates[key] = _Template(_networks[architecture], manifest, self_ensemble)
    template = _templates[key]
    values = template.weights_of(path, direction.generator if direction else None)
    return LoadedModel(manifest, self_ensemble, template, values, precision)


class ModelRegistry:
    """The models in one directory: which are installed (from manifests) and loaded ones."""

    def __init__(self, model_dir: Path | str, rdn_name: str | None = None,
                 precision: str | PrecisionChoice = "float32") -> None:
        choice = precision if isinstance(precision, PrecisionChoice) else choose_precision(precision)
        self.model_dir = Path(model_dir)
        self.rdn_name = rdn_name
        self.precision_choice = choice
        self.precision = choice.precision

    def facts(self, model: LoadedModel) -> dict:
        """What a result's metadata records about `model`: its own facts, and the timings that
        chose its precision when it was chosen by measurement."""
        if not self.precision_choice.timings_ms:
            return model.facts
        return {**model.facts, "precision_timings_ms": self.precision_choice.timings_ms}

    def manifests(self) -> dict[str, Manifest]:
        return read_manifests(self.model_dir)

    def _get(self, manifest: Manifest, direction: Direction | None) -> LoadedModel:
        key = (str(manifest.weights_path.resolve()), manifest.weights_sha256, direction,
               json.dumps(manifest.self_ensemble, sort_keys=True), self.precision)
        with _cache_lock:
            if key not in _cache:
                _cache[key] = _load(manifest, direction, self.precision)
            return _cache[key]

    def generator(self, direction: Direction | str) -> LoadedModel:
        """The generator that translates `direction` (loaded once per process)."""
        direction = Direction.parse(direction)
        manifest = self.manifests().get(direction.model_name)
        if manifest is None or direction.value not in manifest.directions:
            raise ModelError(
                f"no model for {direction.value}: {self.model_dir / (direction.model_name + '.json')} "
                f"is missing; {MAKE_MODELS_HINT}"
            )
        return self._get(manifest, direction)

    def rdn(self) -> LoadedModel:
        """The enhancer (RDN) this registry serves: `rdn_name`, or the one installed."""
        manifest = default_rdn(self.manifests(), self.rdn_name)
        if manifest is None:
            wanted = f"RDN model {self.rdn_name!r}" if self.rdn_name else "an RDN model"
            raise ModelError(f"{wanted} is not installed in {self.model_dir}; {MAKE_MODELS_HINT}")
        return self._get(manifest, None)


def export_cyclegan(model_dir: Path, pair: Pair, generator_a2b, generator_b2a, architecture: dict,
                    **facts) -> Manifest:
    """Write a pair's two generators and their manifest into `model_dir`.

    `facts`: input_size (256), dtype ('float32' | 'float16' storage), self_ensemble (one of
    SELF_ENSEMBLES, or one per direction), trained (True), provenance and metrics (dicts), as the
    manifest records them.
    """
    directions = [d.value for d in Direction if d.pair == pair]
    return _export(Path(model_dir), pair.model_name, CYCLEGAN, directions, f"{pair.model_name}.h5",
                   {"a2b": generator_a2b, "b2a": generator_b2a}, architecture, **facts)


def export_rdn(model_dir: Path, network, architecture: dict, *, name: str = "rdn", **facts) -> Manifest:
    """Write an RDN in ISR's weight layout (at the file's root) and its manifest into `model_dir`."""
    return _export(Path(model_dir), name, RDN, [d.value for d in Direction], f"{name}.hdf5",
                   {None: network}, architecture, **facts)


def _export(model_dir: Path, name: str, kind: str, directions: list[str], weights_file: str, trees: dict,
            architecture: dict, *, input_size: int = 256, dtype: str = "float32",
            self_ensemble: str | dict[str, str] = "none",
            trained: bool = True, provenance: dict | None = None, metrics: dict | None = None) -> Manifest:
    per_direction(self_ensemble, directions)  # an unknown setting is refused before anything is written
    model_dir.mkdir(parents=True, exist_ok=True)
    weights.save_weights(model_dir / weights_file, trees, dtype)
    manifest = Manifest(
        name=name,
        kind=kind,
        directions=directions,
        architecture=dict(architecture),
        weights_file=weights_file,
        weights_sha256=sha256_file(model_dir / weights_file),
        input_size=input_size,
        weights_dtype=dtype,
        self_ensemble=self_ensemble,
        trained=trained,
        provenance=provenance or {},
        metrics=metrics or {},
    )
    write_manifest(manifest, model_dir)
    return manifest


def write_random_models(
    model_dir: Path | str,
    generator: dict | None = None,
    rdn_architecture: dict | None = None,
    seed: int = 0,
) -> list[Manifest]:
    """Write untrained models for all three pairs and an RDN (manifests say `trained: false`)."""
    generator = generator or TINY_GENERATOR
    rdn_architecture = rdn_architecture or TINY_RDN
    tf.keras.utils.set_random_seed(seed)
    provenance = {"recipe": "random initialisation (untrained)", "seed": seed}
    manifests = [
        export_cyclegan(
            Path(model_dir), pair,
            networks.resnet_generator(**generator, name="a2b"),
            networks.resnet_generator(**generator, name="b2a"),
            generator, trained=False, provenance=provenance,
        )
        for pair in PAIRS
    ]
    manifests.append(
        export_rdn(Path(model_dir), networks.rdn(**rdn_architecture), rdn_architecture,
                   trained=False, provenance=provenance)
    )
    return manifests


def random_registry(generator: dict | None = None, rdn_architecture: dict | None = None,
                    seed: int = 0) -> ModelRegistry:
    """A registry over freshly written untrained models in a temporary directory."""
    model_dir = Path(tempfile.mkdtemp(prefix="seasons-random-models-"))
    write_random_models(model_dir, generator, rdn_architecture, seed)
    return ModelRegistry(model_dir)
