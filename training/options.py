"""Options of the training commands: one dataclass per trainer, presets, and their flags.

A preset fills every option; flags given on the command line override it. A resumed run
reads its options back from the run directory, so it continues the recipe it started with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path

# What `export` takes from a CycleGAN run: both generators, or one (the other kept from the installed model).
EXPORTED_GENERATORS = ("both", "a2b", "b2a")


@dataclass
class CycleGANOptions:
    """The CycleGAN recipe (Zhu et al. 2017) and the run's bookkeeping."""

    data: str = ""  # pair folder, e.g. ../shared/data/summer2winter
    data_dir: str = ""  # where the TFDS build lives ('' = ~/.cache/seasons/tfds)
    run_dir: str = "runs/cyclegan"
    size: int = 256
    zoom: float = 286 / 256
    flip: bool = True
    saturation: float = 0.0
    max_photos: int = 0  # per domain, 0 = all
    ngf: int = 64
    n_blocks: int = 9
    upsample: str = "transpose"  # transpose (the paper's) | resize (see pipeline.networks.UPSAMPLERS)
    ndf: int = 64
    n_layers_d: int = 3
    epochs: int = 100  # at the initial learning rate
    epochs_decay: int = 100  # then linearly down to 0
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5  # times lambda_cycle
    pool_size: int = 50
    batch_size: int = 1
    seed: int = 0
    init_from: str = ""  # an exported pair manifest whose generators start a new run ('' = random)
    warmup_d: int = 0  # first steps that train only the discriminators (for --init-from)
    distill: int = 0  # steps fitting the generators to the --init-from model's outputs, before step 0
    distill_cycle: float = 0.0  # weight of the cycle loss beside that fit (0 = the fit alone)
    ema: float = 0.0  # decay of a moving average of the generators' weights, exported instead (0 = off)
    mixed_precision: str = "auto"  # auto | float16 | bfloat16 | off (see training.runtime.mixed_policy)
    samples: int = 4  # test photos per domain in the per-epoch grid
    save_every: int = 500  # steps between checkpoints (and one at each epoch end)
    log_every: int = 25  # steps between TensorBoard scalars
    max_steps: int = 0  # stop this invocation after so many steps (0 = train to the end)
    state_dir: str = ""  # where the run's committable state lives, e.g. models/runs/day2night ('' = none)
    state_every: int = 0  # steps between states written to state_dir (0 = only when an invocation ends)
    threads: int = 0  # TensorFlow CPU threads (0 = all cores)
    deterministic: bool = False  # enable_op_determinism (slower; bitwise repeatable)

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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> CycleGANOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(Path(path).read_text()).items() if k in known})


#: `--preset paper`: the paper's recipe (256 px, ngf 64, 9 blocks, 100 + 100 epochs, no colour jitter).
#: `--preset cpu`: what this 2-core CPU trains in hours (measured, docs/training.md): 128 px crops
#: (the reference's 6-block generator for 128 px) of photos resized to 128…286 px, so the network
#: also learns at the scale the pipeline serves (a 256 px crop); ngf 32; 30 + 30 epochs; the
#: exported generators are the moving average of the last ~1,000 steps (short runs swing most).
CYCLEGAN_PRESETS = {
    "paper": {"size": 256, "ngf": 64, "n_blocks": 9, "epochs": 100, "epochs_decay": 100, "saturation": 0.0,
              "zoom": 286 / 256},
    "cpu": {"size": 128, "ngf": 32, "n_blocks": 6, "epochs": 30, "epochs_decay": 30, "saturation": 0.1,
            "zoom": 286 / 128, "ema": 0.999},
}

_HELP = {
    "data": "pair folder: <pair>/<domain>/*.jpg (+ optional split.csv) or trainA/trainB/testA/testB",
    "data_dir": "TFDS data_dir for the built dataset (default ~/.cache/seasons/tfds; never inside the repo)",
    "run_dir": "run directory: options.json, checkpoints/, samples/, logs/ (TensorBoard); reused to resume",
    "size": "training crop size in pixels (multiple of 4)",
    "zoom": "largest resize before the random crop, as a multiple of size (paper: 286/256)",
    "flip": "random horizontal flip",
    "saturation": "saturation jitter s: factor drawn from [1-s, 1+s] (0 = off)",
    "max_photos": "use at most N training photos per domain, a fixed subset (0 = all)",
    "ngf": "generator filters in the first layer (paper 64)",
    "n_blocks": "generator residual blocks (paper 9 at 256 px)",
    "upsample": "how the generator doubles resolution: transpose (the paper's stride-2 transposed convolutions, "
                "whose uneven overlap prints a checkerboard) or resize (nearest-neighbour x2 then a 3x3 "
                "convolution, Odena et al. 2016: no checkerboard; same parameters, about 3 %% slower per step)",
    "ndf": "discriminator filters in the first layer (paper 64)",
    "n_layers_d": "discriminator stride-2 layers (3 = the 70x70 PatchGAN)",
    "epochs": "epochs at the initial learning rate",
    "epochs_decay": "further epochs with the learning rate decaying linearly to 0",
    "lr": "Adam learning rate",
    "beta1": "Adam beta_1",
    "lambda_cycle": "weight of the cycle-consistency loss (λ)",
    "lambda_identity": "weight of the identity loss as a multiple of λ",
    "pool_size": "image pool of past fakes shown to the discriminators (0 = none)",
    "batch_size": "images per domain per step",
    "seed": "seed for initialisation, data order, augmentation and the pools",
    "init_from": "start a new run's generators from an exported pair model (its manifest, e.g. "
                 "models/summer2winter.json); discriminators, optimizers and pools start fresh",
    "warmup_d": "train only the discriminators for the first N steps (generators frozen): a run started "
                "--init-from has random discriminators, whose weak signal at first lets the cycle and identity "
                "losses pull the generators towards the identity",
    "distill": "before the first step, N steps that fit the generators to the --init-from model's own "
               "translations (L1, both domains' training photos). A --upsample resize run started from a "
               "transposed model needs it: projecting the upsamplers alone changes the outputs a lot",
    "distill_cycle": "weight w of the cycle-consistency loss during --distill: the fit minimises L1 to the "
                     "exported translations + w times the mean L1 of both reconstructions to their photos, so "
                     "the new generators learn to invert each other, not only to copy (0 = the fit alone)",
    "ema": "decay of an exponential moving average of the generators' weights (e.g. 0.999, about the last "
           "1,000 steps), kept beside them, shown in the samples and exported instead of the last step's "
           "weights; it smooths the step-to-step swings of GAN training (0 = off)",
    "mixed_precision": "auto (float16 on a GPU, bfloat16 on a CPU with native bf16, else off), float16, bfloat16, off",
    "samples": "held-out photos per domain in the per-epoch sample grid",
    "save_every": "steps between checkpoints (one is also written at each epoch end and on Ctrl-C or SIGTERM)",
    "log_every": "steps between TensorBoard scalar logs",
    "max_steps": "stop this invocation after N steps (checkpoint written; run again to resume)",
    "state_dir": "a folder for the run's complete state in a compact, committable form (e.g. models/runs/day2night, "
                 "about 23 MB for the cpu preset): written every --state-every steps and whenever this invocation "
                 "ends (Ctrl-C and SIGTERM too); a run whose --run-dir holds no later checkpoint resumes from it, so a "
                 "fresh clone on any machine continues the run exactly",
    "state_every": "steps between states written to --state-dir (0 = only when this invocation ends)",
    "threads": "TensorFlow CPU threads (0 = all cores); --threads 1 keeps a core free",
    "deterministic": "enable TensorFlow op determinism (bitwise repeatable, slower)",
}


_CHOICES = {"mixed_precision": ("auto", "float16", "bfloat16", "off"),
            "upsample": ("transpose", "resize")}  # pipeline.networks.UPSAMPLERS, without importing TensorFlow


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, helps: dict, skip: tuple = ()) -> None:
    """A flag per dataclass field; defaults are None so presets and saved options can fill them."""
    for f in fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        text = f"{helps[f.name]} (default: {default if default != '' else 'none'})"
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
        else:
            kind = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
            parser.add_argument(flag, type=kind, default=None, help=text, choices=_CHOICES.get(f.name))


def cyclegan_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(CYCLEGAN_PRESETS),
                        help="start from a recipe: paper = 256 px, ngf 64, 9 blocks, 100+100 epochs; "
                             "cpu = the measured CPU recipe (see docs/training.md); flags override it")
    add_dataclass_flags(parser, CycleGANOptions, _HELP)


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
class RDNOptions:
    """The RDN enhancer's recipe: ×2 restoration of real photos degraded like a generator's output."""

    data: str = ""
    data_dir: str = ""
    run_dir: str = "runs/rdn"
    C: int = 3
    D: int = 4
    G: int = 32
    G0: int = 32
    patch: int = 64  # high-resolution training patch (the network sees patch/2)
    photo_size: int = 256  # photos are resized to this square before cropping patches
    batch_size: int = 8
    steps: int = 3000
    lr: float = 1e-4
    blur: float = 1.0  # largest Gaussian blur sigma before downscaling
    jpeg_min: int = 40  # JPEG quality drawn from [jpeg_min, 95]
    noise: float = 0.02  # largest Gaussian noise sigma (on [0, 1] pixels)
    init_from: str = ""  # an exported RDN manifest whose weights start the run ('' = random)
    generator_dir: str = ""  # models dir whose pair generators give the artefact pass
    generator_data: str = ""  # pair folders (comma-separated) for the artefact pass ('' = data)
    generator_rate: float = 0.0  # share of each batch's patches from the artefact pass
    generator_photos: int = 0  # train photos per domain given the artefact pass (0 = all)
    artefact_sigma: float = 3.0  # blur (high-res px) splitting the artefact target's colours from its detail
    eval_size: int = 256  # held-out photos are evaluated at this size (the pipeline's output size)
    eval_images: int = 100  # held-out photos per domain in the report (0 = all)
    report_generators: str = ""  # models dir: the report also measures the RDN on its generators' outputs
    seed: int = 0
    save_every: int = 500
    max_steps: int = 0
    threads: int = 0
    deterministic: bool = False

    RUNTIME = ("max_steps", "threads", "save_every", "eval_images", "report_generators", "deterministic")
    LOCATIONS = CycleGANOptions.LOCATIONS

    @property
    def architecture(self) -> dict:
        return {"C": self.C, "D": self.D, "G": self.G, "G0": self.G0, "x": 2}

    to_dict = CycleGANOptions.to_dict
    save = CycleGANOptions.save
    load = classmethod(CycleGANOptions.load.__func__)


#: ISR's published 'psnr-small' RDN is C3 D10 G64 G0 64; `cpu` is a quarter of its width.
RDN_PRESETS = {
    "isr-small": {"C": 3, "D": 10, "G": 64, "G0": 64, "steps": 20000},
    "cpu": {"C": 3, "D": 4, "G": 32, "G0": 32, "steps": 3000},
}

_RDN_HELP = {
    "data": "pair folder whose real photos (both domains) are the clean targets",
    "data_dir": _HELP["data_dir"],
    "run_dir": "run directory: rdn_options.json, checkpoints/, report.json/.md; reused to resume",
    "C": "convolutions per residual dense block",
    "D": "residual dense blocks",
    "G": "filters per convolution inside a block",
    "G0": "filters of the fused block outputs",
    "patch": "high-resolution training patch in px (even)",
    "photo_size": "photos are resized to this square before patches are cropped",
    "batch_size": "patches per step",
    "steps": "training steps",
    "lr": "Adam learning rate (L1 loss)",
    "blur": "largest Gaussian blur sigma before the ×2 downscale",
    "jpeg_min": "lowest JPEG quality of the degradation (quality drawn from [jpeg_min, 95])",
    "noise": "largest Gaussian noise sigma on [0, 1] pixels",
    "init_from": "start from an exported RDN (its manifest, e.g. models/rdn.json) instead of random weights",
    "generator_dir": "models directory whose pair generators give the artefact pass: each generator translates "
                     "photos of its own output domain (at half size), which shows its texture with little else",
    "generator_data": "pair folders, comma-separated, whose photos go through their pair's generators in "
                      "--generator-dir (default: --data)",
    "generator_rate": "share of each batch's patches from the artefact pass (0 = none)",
    "generator_photos": "train photos per domain given the artefact pass, the first of the build's fixed order "
                        "(0 = all; each costs a generator pass before training starts)",
    "artefact_sigma": "Gaussian blur in high-res px: the artefact pass's target is the generator output blurred "
                      "(its colours, the pattern gone) plus the photo minus the photo blurred (its detail)",
    "eval_size": "size of the held-out photos in the report",
    "eval_images": "held-out photos per domain in the report (0 = all)",
    "report_generators": "models directory: the report also compares the methods on real generator outputs "
                         "(each installed pair's a2b then b2a at half size, upscaled ×2, against the clean photo)",
    "seed": "seed for initialisation, patches and degradations",
    "save_every": "steps between checkpoints",
    "max_steps": "stop this invocation after N steps (run again to resume)",
    "threads": _HELP["threads"],
    "deterministic": _HELP["deterministic"],
}


def rdn_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(RDN_PRESETS),
                        help="start from an architecture: isr-small = ISR's C3 D10 G64 G0 64; cpu = C3 D4 G32 G0 32")
    add_dataclass_flags(parser, RDNOptions, _RDN_HELP)
