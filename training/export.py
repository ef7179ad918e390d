"""Export trained networks (CycleGAN pairs, the RDN) into a models directory, and import the PyTorch
reference's generators.

Everything goes through `pipeline.registry.export_cyclegan` / `export_rdn`, so what is
exported here is exactly what the pipeline loads (weights, sha256, manifest).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline import networks, registry
from pipeline.crop import MODEL_INPUT_SIZE
from pipeline.directions import Pair, pair_named
from pipeline.manifests import Manifest, per_direction, read_manifests, write_manifest
from training import rdn, run_state
from training.cyclegan import STARTED_FROM
from training.options import EXPORTED_GENERATORS, CycleGANOptions, RDNOptions


def git_commit() -> str:
    """The repository commit the code ran at ('' outside a git checkout)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def load_generators(run_dir: Path | str, raw: bool = False) -> tuple[CycleGANOptions, object, object, int]:
    """The run's options, its two generators from the latest checkpoint (or, in a committed run
    state's folder, from the state), and the step reached.

    A run that keeps a moving average of its generators (`--ema`) gives the average unless `raw`.
    """
    run_dir = Path(run_dir)
    opts = CycleGANOptions.load(run_dir / "options.json")
    g_ab = networks.resnet_generator(**opts.architecture, name="g_ab")
    g_ba = networks.resnet_generator(**opts.architecture, name="g_ba")
    step = tf.Variable(0, dtype=tf.int64)
    latest = tf.train.latest_checkpoint(str(run_dir / "checkpoints"))
    if latest is None and run_state.exists(run_dir):  # a committed run state (models/runs/<pair>)
        w_ab, w_ba, reached = run_state.generator_weights(run_dir, [tuple(w.shape) for w in g_ab.weights], raw)
        g_ab.set_weights(w_ab)
        g_ba.set_weights(w_ba)
        return opts, g_ab, g_ba, reached
    if latest is None:
        raise SystemExit(f"{run_dir}/checkpoints has no checkpoint to export")
    names = ("g_ab", "g_ba") if raw or not opts.ema else ("ema_ab", "ema_ba")
    tf.train.Checkpoint(**{names[0]: g_ab, names[1]: g_ba}, step=step).restore(latest).expect_partial()
    return opts, g_ab, g_ba, int(step.numpy())


def weights_kind(opts: CycleGANOptions, raw: bool) -> str:
    """Which of a run's generator weights were used, in words (for manifests and reports)."""
    return f"moving average (decay {opts.ema})" if opts.ema and not raw else "last step"


def export_cyclegan_run(run_dir: Path | str, model_dir: Path | str, *, pair: str | None = None,
                        dtype: str = "float32", self_ensemble: str | dict[str, str] = "none",
                        report: Path | str | None = None,
                        raw: bool = False, generators: str = "both") -> Manifest:
    """Export a CycleGAN run's generators, with its recipe as provenance and a report's metrics
    (which must have been measured with the same `self_ensemble`, on the model as exported).

    `generators` "a2b" or "b2a" exports only that one of the run's two generators and keeps the
    other from the pair model already installed in `model_dir`: each direction is served by its
    own generator, so a run that improved one direction and not the other can ship the one.
    """
    if generators not in EXPORTED_GENERATORS:
        raise SystemExit(f"generators must be one of {', '.join(EXPORTED_GENERATORS)}, not {generators!r}")
    opts, g_ab, g_ba, step = load_generators(run_dir, raw)
    try:
        exported_pair = pair_named(pair or Path(opts.data).name)
    except ValueError as error:  # a run on a folder not named after a pair: the CLI says what to do
        raise SystemExit(f"{error}; name the pair with --pair") from None
    steps_per_epoch = _steps_per_epoch(run_dir)
    provenance = {
        "data": opts.data,
        "recipe": opts.recipe(),
        "steps": step,
        "epochs_trained": round(step / steps_per_epoch, 2) if steps_per_epoch else None,
        "epochs_planned": opts.epochs + opts.epochs_decay,
        "trained_at_size": opts.size,
        "generator_weights": weights_kind(opts, raw),
        "code_commit": git_commit(),
        "command": f"python -m training cyclegan --run-dir {run_dir}",
    }
    started_from = Path(run_dir) / STARTED_FROM
    if started_from.is_file():  # trained further from an exported model: keep that model's history
        provenance["started_from"] = json.loads(started_from.read_text())
    if generators == "a2b":
        g_ba, provenance["kept_generator"] = installed_generator(model_dir, exported_pair, "b2a", opts.architecture)
    elif generators == "b2a":
        g_ab, provenance["kept_generator"] = installed_generator(model_dir, exported_pair, "a2b", opts.architecture)
    metrics = report_metrics(report, self_ensemble) if report else {}
    return registry.export_cyclegan(
        Path(model_dir), exported_pair, g_ab, g_ba, opts.architecture,
        input_size=MODEL_INPUT_SIZE, dtype=dtype, self_ensemble=self_ensemble, trained=True, provenance=provenance,
        metrics=metrics)


def export_rdn_run(run_dir: Path | str, model_dir: Path | str, *, name: str = "rdn",
                   dtype: str = "float32") -> Manifest:
    """Export an RDN run with its recipe and report into a models directory."""
    run_dir = Path(run_dir)
    opts = RDNOptions.load(run_dir / rdn.OPTIONS_FILE)
    trainer = rdn.RDNTrainer(opts)
    report_path = run_dir / "report.json"
    metrics = json.loads(report_path.read_text()) if report_path.is_file() else {}
    metrics.pop("training", None)
    provenance = {"data": opts.data, "recipe": opts.recipe(),
                  "steps": int(trainer.step.numpy()), "code_commit": git_commit(),
                  "command": f"python -m training rdn --run-dir {run_dir}"}
    return registry.export_rdn(Path(model_dir), trainer.network, opts.architecture, name=name,
                               input_size=MODEL_INPUT_SIZE, dtype=dtype, trained=True, provenance=provenance,
                               metrics=metrics)


def installed_generator(model_dir: Path | str, pair: Pair, generator: str, architecture: dict) -> tuple[object, dict]:
    """One generator (`a2b` or `b2a`) of the pair model installed in `model_dir`, as a Keras
    model (its sha256 checked by the registry), and what the new manifest records of it."""
    manifest = read_manifests(Path(model_dir)).get(pair.model_name)
    if manifest is None:
        raise SystemExit(f"{model_dir} has no {pair.name} model to keep the {generator} generator of")
    if manifest.architecture != architecture:
        raise SystemExit(f"the installed {pair.name} generators are {manifest.architecture}, the run's "
                         f"{architecture}: a pair model holds one architecture")
    direction = pair.direction(generator)
    network = registry.ModelRegistry(model_dir).generator(direction).network
    return network, {"generator": generator, "direction": direction.value,
                     "weights_sha256": manifest.weights_sha256, "provenance": manifest.provenance,
                     "metrics": manifest.metrics.get(direction.value, {})}


def report_metrics(report: Path | str, self_ensemble: str | dict[str, str]) -> dict:
    """The per-direction metrics of an `evaluate` report, refused if they were measured with
    another self-ensemble than the model will be served with (in any of its directions)."""
    data = json.loads(Path(report).read_text())
    measured = data["source"].get("self_ensemble", "none")
    directions = list(data["directions"])
    if per_direction(measured, directions) != per_direction(self_ensemble, directions):
        raise SystemExit(f"{report} was measured with self_ensemble {measured!r}, not {self_ensemble!r}: "
                         "evaluate the model as it will be served")
    return data["directions"]


def set_self_ensemble(model_dir: Path | str, pair: str, self_ensemble: str | dict[str, str],
                      report: Path | str) -> Manifest:
    """Serve an installed pair model with `self_ensemble` (one for both generators, or one per
    direction), its weights (and their sha256) untouched.

    The manifest takes the metrics of `report` (an evaluation of the model served that way) and
    keeps the ones they replace, with the former setting, in provenance's `served_before`.
    """
    manifest = read_manifests(Path(model_dir)).get(pair_named(pair).model_name)
    if manifest is None:
        raise SystemExit(f"{model_dir} has no {pair} model")
    metrics = report_metrics(report, self_ensemble)
    manifest.provenance.setdefault("served_before", []).append(
        {"self_ensemble": manifest.self_ensemble, "metrics": manifest.metrics, "code_commit": git_commit()})
    manifest.metrics, manifest.self_ensemble = metrics, self_ensemble
    write_manifest(manifest, Path(model_dir))
    return manifest


def _steps_per_epoch(run_dir: Path) -> int:
    """From a run's progress.json, or a committed state's facts (both record it)."""
    for name in ("progress.json", run_state.FACTS_FILE):
        if (Path(run_dir) / name).is_file():
            return json.loads((Path(run_dir) / name).read_text()).get("steps_per_epoch", 0)
    return 0


# --- PyTorch reference (junyanz/pytorch-CycleGAN-and-pix2pix) ---------------------------------

def torch_layer_map(n_blocks: int) -> dict[str, str]:
    """Keras layer name → index in the reference ResnetGenerator's `model` Sequential.

    The reference builds: 0 pad, 1 conv, 2 norm, 3 relu; downsampling convs at 4 and 7; the
    residual blocks at 10…; transposed convs at 10+n and 13+n; 16+n pad, 17+n conv, 18+n tanh.
    Inside a block (no dropout): conv_block.1 and conv_block.5 are the convolutions.
    """
    names = {"c7s1": "model.1", "down1": "model.4", "down2": "model.7",
             "up1": f"model.{10 + n_blocks}", "up2": f"model.{13 + n_blocks}", "out": f"model.{17 + n_blocks}"}
    for i in range(n_blocks):
        names[f"res{i + 1}_conv1"] = f"model.{10 + i}.conv_block.1"
        names[f"res{i + 1}_conv2"] = f"model.{10 + i}.conv_block.5"
    return names


def torch_architecture(state: dict[str, np.ndarray]) -> dict:
    """ngf and n_blocks of a reference generator, read from its state dict's shapes."""
    ngf = state["model.1.weight"].shape[0]
    n_blocks = len({k.split(".")[1] for k in state if ".conv_block." in k})
    return {"ngf": int(ngf), "n_blocks": n_blocks}


def load_torch_state(path: Path | str) -> dict[str, np.ndarray]:
    """A `*_net_G*.pth` state dict as numpy arrays (needs torch: `pip install torch`)."""
    try:
        import torch
    except ImportError:
        raise SystemExit("import-torch needs PyTorch: pip install torch==2.13.0 (the CPU wheel is enough)") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state:
        state = state["state_dict"]
    # Old reference checkpoints carry InstanceNorm running stats it never uses (its own loader drops them).
    return {k.removeprefix("module."): v.numpy() for k, v in state.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def generator_from_torch(state: dict[str, np.ndarray], name: str = "generator"):
    """A Keras ResNet generator holding the reference generator's weights.

    Conv2d weights (out, in, kh, kw) become Keras kernels (kh, kw, in, out). ConvTranspose2d
    weights (in, out, kh, kw) become Conv2DTranspose kernels (kh, kw, out, in) with no spatial
    flip: both frameworks define the transposed convolution as the gradient of the forward one
    (checked numerically in tests/training/test_export.py).
    """
    arch = torch_architecture(state)
    model = networks.resnet_generator(**arch, name=name)
    used = set()
    for layer_name, prefix in torch_layer_map(arch["n_blocks"]).items():
        weight, bias = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        # One permutation serves both: Conv2d (out,in,kh,kw) → (kh,kw,in,out) and
        # ConvTranspose2d (in,out,kh,kw) → (kh,kw,out,in), each what its Keras layer expects.
        model.get_layer(layer_name).set_weights([weight.transpose(2, 3, 1, 0), bias])
        used |= {f"{prefix}.weight", f"{prefix}.bias"}
    unused = sorted(set(state) - used)
    if unused:
        raise ValueError(f"state dict has entries the generator does not use: {unused[:5]}")
    return model


def import_torch(a2b: Path | str, b2a: Path | str, pair: str, model_dir: Path | str, *,
                 dtype: str = "float32", self_ensemble: str | dict[str, str] = "none") -> Manifest:
    """Export a pair model made of two reference generators (A→B and B→A)."""
    states = {"a2b": load_torch_state(a2b), "b2a": load_torch_state(b2a)}
    archs = {k: torch_architecture(v) for k, v in states.items()}
    if archs["a2b"] != archs["b2a"]:
        raise SystemExit(f"the two generators differ in architecture: {archs}")
    provenance = {"recipe": "imported from junyanz/pytorch-CycleGAN-and-pix2pix (PyTorch)",
                  "sources": {"a2b": str(a2b), "b2a": str(b2a)}, "code_commit": git_commit()}
    return registry.export_cyclegan(
        Path(model_dir), pair_named(pair), generator_from_torch(states["a2b"], "a2b"),
        generator_from_torch(states["b2a"], "b2a"), archs["a2b"], input_size=MODEL_INPUT_SIZE, dtype=dtype,
        self_ensemble=self_ensemble, trained=True, provenance=provenance)
