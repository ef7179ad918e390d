"""Options of the training commands: one dataclass per trainer, presets, and their flags.

Each option is declared once, as a dataclass field whose metadata carries its command-line help
(and choices); the parser is made from the fields. A preset fills every option; flags given on
the command line override it. A resumed run reads its options back from the run directory, so it
continues the recipe it started with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# What `export` takes from a CycleGAN run: both generators, or one (the other kept from the installed model).
EXPORTED_GENERATORS = ("both", "a2b", "b2a")

DATA_DIR_HELP = 'TFDS data_dir for the built dataset (default ~/.cache/seasons/tfds; never inside the repo)'
THREADS_HELP = 'TensorFlow CPU threads (0 = all cores); --threads 1 keeps a core free'
DETERMINISTIC_HELP = 'enable TensorFlow op determinism (bitwise repeatable, slower)'


def option(default: object, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A dataclass field that carries its flag's help and choices, so an option is declared in one place."""
    return field(default=default, metadata={"help": help, "choices": choices})


class _Options:
    """Saving and loading shared by the option dataclasses (JSON in the run directory)."""

    RUNTIME: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def recipe(self) -> dict:
        """What a model's provenance records: every option but those a resumed run may change and the run folder."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RUNTIME + ("run_dir",)}

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path):
        """The saved options; keys this version no longer knows are dropped."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(Path(path).read_text()).items() if k in known})


@dataclass
class CycleGANOptions(_Options):
    """The CycleGAN recipe (Zhu et al. 2017) and the run's bookkeeping."""

    data: str = option("", "pair folder: <pair>/<domain>/*.jpg (+ optional split.csv) or trainA/trainB/testA/testB")
    data_dir: str = option("", DATA_DIR_HELP)
    run_dir: str = option("runs/cyclegan", (
        "run directory: options.json, checkpoints/, samples/, logs/ (TensorBoard); reused to resume"
    ))
    size: int = option(256, "training crop size in pixels (multiple of 4)")
    zoom: float = option(286 / 256, "largest resize before the random crop, as a multiple of size (paper: 286/256)")
    flip: bool = option(True, "random horizontal flip")
    saturation: float = option(0.0, "saturation jitter s: factor drawn from [1-s, 1+s] (0 = off)")
    max_photos: int = option(0, "use at most N training photos per domain, a fixed subset (0 = all)")
    ngf: int = option(64, "generator filters in the first layer (paper 64)")
    n_blocks: int = option(9, "generator residual blocks (paper 9 at 256 px)")
    upsample: str = option("transpose", (
        "how the generator doubles resolution: transpose (the paper's stride-2 transposed convolutions, whose"
        " uneven overlap prints a checkerboard) or resize (nearest-neighbour x2 then a 3x3 convolution, Odena"
        " et al. 2016: no checkerboard; same parameters, about 3 %% slower per step)"
    ), choices=("transpose", "resize"))
    ndf: int = option(64, "discriminator filters in the first layer (paper 64)")
    n_layers_d: int = option(3, "discriminator stride-2 layers (3 = the 70x70 PatchGAN)")
    epochs: int = option(100, "epochs at the initial learning rate")
    epochs_decay: int = option(100, "further epochs with the learning rate decaying linearly to 0")
    lr: float = option(2e-4, "Adam learning rate")
    beta1: float = option(0.5, "Adam beta_1")
    lambda_cycle: float = option(10.0, "weight of the cycle-consistency loss (λ)")
    lambda_identity: float = option(0.5, "weight of the identity loss as a multiple of λ")
    pool_size: int = option(50, "image pool of past fakes shown to the discriminators (0 = none)")
    batch_size: int = option(1, "images per domain per step")
    seed: int = option(0, "seed for initialisation, data order, augmentation and the pools")
    init_from: str = option("", (
        "start a new run's generators from an exported pair model (its manifest, e.g. "
        "models/summer2winter.json); discriminators, optimizers and pools start fresh"
    ))
    warmup_d: int = option(0, (
        "train only the discriminators for the first N steps (generators frozen): a run started --init-from "
        "has random discriminators, whose weak signal at first lets the cycle and identity losses pull the "
        "generators towards the identity"
    ))
    distill: int = option(0, (
        "before the first step, N steps that fit the generators to the --init-from model's own translations "
        "(L1, both domains' training photos). A --upsample resize run started from a transposed model needs "
        "it: projecting the upsamplers alone changes the outputs a lot"
    ))
    distill_cycle: float = option(0.0, (
        "weight w of the cycle-consistency loss during --distill: the fit minimises L1 to the exported "
        "translations + w times the mean L1 of both reconstructions to their photos, so the new generators "
        "learn to invert each other, not only to copy (0 = the fit alone)"
    ))
    ema: float = option(0.0, (
        "decay of an exponential moving average of the generators' weights (e.g. 0.999, about the last 1,000 "
        "steps), kept beside them, shown in the samples and exported instead of the last step's weights; it "
        "smooths the step-to-step swings of GAN training (0 = off)"
    ))
    mixed_precision: str = option("auto", (
        "auto (float16 on a GPU, bfloat16 on a CPU with native bf16, else off), float16, bfloat16, off"
    ), choices=("auto", "float16", "bfloat16", "off"))
    samples: int = option(4, "held-out photos per domain in the per-epoch sample grid")
    save_every: int = option(500, (
        "steps between checkpoints (one is also written at each epoch end and on Ctrl-C or SIGTERM)"
    ))
    log_every: int = option(25, "steps between TensorBoard scalar logs")
    max_steps: int = option(0, "stop this invocation after N steps (checkpoint written; run again to resume)")
    state_dir: str = option("", (
        "a folder for the run's complete state in a compact, committable form (e.g. models/runs/day2night, "
        "about 23 MB for the cpu preset): written every --state-every steps and whenever this invocation ends"
        " (Ctrl-C and SIGTERM too); a run whose --run-dir holds no later checkpoint resumes from it, so a "
        "fresh clone on any machine continues the run exactly"
    ))
    state_every: int = option(0, "steps between states written to --state-dir (0 = only when this invocation ends)")
    threads: int = option(0, THREADS_HELP)
    deterministic: bool = option(False, DETERMINISTIC_HELP)

    #: Options a resumed run may change; all others are the recipe and come from the run.
    RUNTIME = ("max_steps", "threads", "save_every", "log_every", "samples", "deterministic", "state_dir",
               "state_every")
    #: Where things are on this machine, not what the recipe is: a run resumed elsewhere may change them.
    LOCATIONS = ("data", "data_dir", "run_dir")

    @property
    def architecture(self) -> dict:
        """The generators' `resnet_generator` arguments; the paper's upsampler is left implicit,
        so manifests of its architecture (and imported PyTorch models) keep their two keys."""
        upsample = {} if self.upsample == "transpose" else {"upsample": self.upsample}
        return {"ngf": self.ngf, "n_blocks": self.n_blocks, **upsample}


#: `--preset paper`: the paper's recipe (256 px, ngf 64, 9 blocks, 100 + 100 epochs, no colour jitter).
#: `--preset cpu`: a recipe a small CPU trains in hours (docs/training.md): 128 px crops
#: (the reference's 6-block generator for 128 px) of photos resized to 128…286 px, so the network
#: also learns at the scale the pipeline serves (a 256 px crop); ngf 32; 30 + 30 epochs; the
#: exported generators are the moving average of the last ~1,000 steps (short runs swing most).
CYCLEGAN_PRESETS = {
    "paper": {"size": 256, "ngf": 64, "n_blocks": 9, "epochs": 100, "epochs_decay": 100, "saturation": 0.0,
              "zoom": 286 / 256},
    "cpu": {"size": 128, "ngf": 32, "n_blocks": 6, "epochs": 30, "epochs_decay": 30, "saturation": 0.1,
            "zoom": 286 / 128, "ema": 0.999},
}


def add_dataclass_flags(parser: argparse.ArgumentParser, cls: type, skip: tuple = ()) -> None:
    """A flag per dataclass field; defaults are None so presets and saved options can fill them."""
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        text = f"{f.metadata['help']} (default: {default if default != '' else 'none'})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(flag, type=kind, default=None, help=text, choices=f.metadata["choices"])


def cyclegan_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(CYCLEGAN_PRESETS),
                        help="start from a recipe: paper = 256 px, ngf 64, 9 blocks, 100+100 epochs; "
                             "cpu = the measured CPU recipe (see docs/training.md); flags override it")
    add_dataclass_flags(parser, CycleGANOptions)


def resolve(args: argparse.Namespace, cls, presets: dict, saved: Path | None = None):
    """Options from (lowest first) the dataclass defaults, the preset, a saved run, the flags.

    For a resumed run only the RUNTIME options may change; other flags that disagree with
    the saved run are an error rather than a silent change of recipe.
    """
    given = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
    if saved is not None and saved.is_file():
        options = cls.load(saved)
        clash = {k: v for k, v in given.items()
                 if k not in cls.RUNTIME + cls.LOCATIONS and getattr(options, k) != v}
        if clash:
            raise SystemExit(f"{saved} resumes a run with other options; differing: {clash}. "
                             "Use a new --run-dir to change the recipe.")
    else:
        options = cls(**presets.get(getattr(args, "preset", None) or "", {}))
    for k, v in given.items():
        setattr(options, k, v)
    return options


@dataclass
class RDNOptions(_Options):
    """The RDN enhancer's recipe: ×2 restoration of real photos degraded like a generator's output."""

    data: str = option("", "pair folder whose real photos (both domains) are the clean targets")
    data_dir: str = option("", DATA_DIR_HELP)
    run_dir: str = option("runs/rdn", (
        "run directory: rdn_options.json, checkpoints/, report.json/.md; reused to resume"
    ))
    C: int = option(3, "convolutions per residual dense block")
    D: int = option(4, "residual dense blocks")
    G: int = option(32, "filters per convolution inside a block")
    G0: int = option(32, "filters of the fused block outputs")
    patch: int = option(64, "high-resolution training patch in px (even)")
    photo_size: int = option(256, "photos are resized to this square before patches are cropped")
    batch_size: int = option(8, "patches per step")
    steps: int = option(3000, "training steps")
    lr: float = option(1e-4, "Adam learning rate (L1 loss)")
    blur: float = option(1.0, "largest Gaussian blur sigma before the ×2 downscale")
    jpeg_min: int = option(40, "lowest JPEG quality of the degradation (quality drawn from [jpeg_min, 95])")
    noise: float = option(0.02, "largest Gaussian noise sigma on [0, 1] pixels")
    init_from: str = option("", (
        "start from an exported RDN (its manifest, e.g. models/rdn.json) instead of random weights"
    ))
    generator_dir: str = option("", (
        "models directory whose pair generators give the artefact pass: each generator translates photos of "
        "its own output domain (at half size), which shows its texture with little else"
    ))
    generator_data: str = option("", (
        "pair folders, comma-separated, whose photos go through their pair's generators in --generator-dir "
        "(default: --data)"
    ))
    generator_rate: float = option(0.0, "share of each batch's patches from the artefact pass (0 = none)")
    generator_photos: int = option(0, (
        "train photos per domain given the artefact pass, the first of the build's fixed order (0 = all; each"
        " costs a generator pass before training starts)"
    ))
    artefact_sigma: float = option(3.0, (
        "Gaussian blur in high-res px: the artefact pass's target is the generator output blurred (its "
        "colours, the pattern gone) plus the photo minus the photo blurred (its detail)"
    ))
    eval_size: int = option(256, "size of the held-out photos in the report")
    eval_images: int = option(100, "held-out photos per domain in the report (0 = all)")
    report_generators: str = option("", (
        "models directory: the report also compares the methods on real generator outputs (each installed "
        "pair's a2b then b2a at half size, upscaled ×2, against the clean photo)"
    ))
    seed: int = option(0, "seed for initialisation, patches and degradations")
    save_every: int = option(500, "steps between checkpoints")
    max_steps: int = option(0, "stop this invocation after N steps (run again to resume)")
    threads: int = option(0, THREADS_HELP)
    deterministic: bool = option(False, DETERMINISTIC_HELP)

    RUNTIME = ("max_steps", "threads", "save_every", "eval_images", "report_generators", "deterministic")
    LOCATIONS = CycleGANOptions.LOCATIONS

    @property
    def architecture(self) -> dict:
        return {"C": self.C, "D": self.D, "G": self.G, "G0": self.G0, "x": 2}


#: ISR's published 'psnr-small' RDN is C3 D10 G64 G0 64; `cpu` is a quarter of its width.
RDN_PRESETS = {
    "isr-small": {"C": 3, "D": 10, "G": 64, "G0": 64, "steps": 20000},
    "cpu": {"C": 3, "D": 4, "G": 32, "G0": 32, "steps": 3000},
}


def rdn_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(RDN_PRESETS),
                        help="start from an architecture: isr-small = ISR's C3 D10 G64 G0 64; cpu = C3 D4 G32 G0 32")
    add_dataclass_flags(parser, RDNOptions)
