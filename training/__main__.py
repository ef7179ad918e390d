"""`python -m training COMMAND`: build datasets, train, evaluate, export and import models.

    dataset       build (or reuse) a pair's TFDS dataset and print its splits and metadata file
    cyclegan      train a CycleGAN on a pair, or resume the run in --run-dir
    rdn           train the RDN enhancer (×2, self-supervised on real photos) and report PSNR/SSIM
    evaluate      evaluate a CycleGAN run or exported model on a pair's held-out photos
    checkerboard  which shift self-ensemble suits each generator of an installed pair
    classifier    pin a pair's domain classifier, so every machine evaluates with the same one
    export        export a CycleGAN or RDN run into a models directory the pipeline loads
    import-torch  turn two PyTorch reference generators (*_net_G*.pth) into a pair model
    self-ensemble set how an installed pair model is served, with the metrics measured so

Each command's --help explains its options.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from pipeline.directions import PAIRS, Direction
from pipeline.manifests import SELF_ENSEMBLES
from training import options as opt

PAIR_NAMES = [pair.name for pair in PAIRS]


def _runtime_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0,
                        help="TensorFlow CPU threads (0 = all cores); --threads 1 keeps a core free")


def self_ensemble_setting(text: str) -> str | dict[str, str]:
    """`--self-ensemble`'s value: one name for both generators (`flips`), or one per direction
    (`day2night=flips,night2day=shifts-antidiagonal`; a direction left out is served as it is)."""
    if "=" not in text:
        chosen = {None: text.strip()}
    else:
        chosen = dict(item.split("=", 1) for item in text.replace(" ", "").split(",") if item)
        if set(chosen) - {d.value for d in Direction}:
            raise argparse.ArgumentTypeError(f"unknown direction in {text!r}; the directions are "
                                             f"{', '.join(d.value for d in Direction)}")
    if set(chosen.values()) - set(SELF_ENSEMBLES):
        raise argparse.ArgumentTypeError(f"unknown self-ensemble in {text!r}; known: {', '.join(SELF_ENSEMBLES)}")
    return chosen.get(None, chosen)


def _self_ensemble_flag(parser: argparse.ArgumentParser, required: bool = False) -> None:
    parser.add_argument("--self-ensemble", type=self_ensemble_setting, default=None if required else "none",
                        required=required, metavar="NAME | DIRECTION=NAME,…",
                        help="serve the generators as they are (none), as the mean over the input's four mirror "
                             "images (flips) or over four 1-pixel displacements of it along a diagonal (shifts, "
                             "shifts-antidiagonal), down (shifts-vertical) or right (shifts-horizontal); each is 4× "
                             "the generator's work and cancels most of a transposed upsampler's checkerboard. One "
                             "name serves both generators; DIRECTION=NAME pairs, comma-separated, serve each its own "
                             "way (e.g. day2night=flips,night2day=shifts-antidiagonal)")


def _data_dir_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="TFDS data_dir (default ~/.cache/seasons/tfds)")


_RAW_HELP = ("a run trained with --ema: use its last step's generator weights instead of their moving average "
             "(to compare the two)")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("dataset", help="build a pair's TFDS dataset",
                            description="Scan a pair folder, split it (split.csv, or 80/20 by content hash), "
                                        "build its TFDS dataset outside the repository and write photos.csv.")
    p.add_argument("data", help="pair folder: <pair>/<domain>/*.jpg (+ split.csv) or trainA/trainB/testA/testB")
    _data_dir_flag(p)
    p.add_argument("--domains", help="the two domains as A,B (default: from the folder name, e.g. summer2winter)")

    p = commands.add_parser("cyclegan", help="train or resume a CycleGAN",
                            description="Train a CycleGAN on a pair folder. Running it again with the same "
                                        "--run-dir resumes exactly where it stopped (Ctrl-C or SIGTERM writes a "
                                        "checkpoint).")
    opt.cyclegan_parser(p)

    p = commands.add_parser("rdn", help="train the RDN enhancer",
                            description="Train the RDN (×2) to restore degraded real photos; writes "
                                        "report.json/report.md comparing it with bicubic and unsharp masking.")
    opt.rdn_parser(p)

    p = commands.add_parser("evaluate", help="evaluate a CycleGAN on held-out photos",
                            description="Target rate and KID under the pair's domain classifier beside the naive "
                                        "baselines (the photo itself, colour transfer, histogram matching), cycle "
                                        "PSNR, input/output luminance SSIM and checkerboard per direction; writes "
                                        "report.json, report.md, grid.jpg and a sheet per direction.")
    p.add_argument("--data", required=True, help="the pair folder the model was trained on")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-dir", help="a CycleGAN run (its latest checkpoint)")
    source.add_argument("--model-dir", help="an exported models directory (e.g. models/)")
    p.add_argument("--out", required=True, help="folder for report.json, report.md and grid.jpg")
    _data_dir_flag(p)
    p.add_argument("--size", type=int, help="evaluation size in px (default: the run's training size, or 256)")
    p.add_argument("--grid-rows", type=int, default=4, help="held-out photos per direction in grid.jpg")
    p.add_argument("--max-images", type=int, default=0, help="evaluate at most N photos per direction (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the domain classifier's training")
    p.add_argument("--raw", action="store_true", help=_RAW_HELP)
    p.add_argument("--compare-with", metavar="MODEL_DIR",
                   help="a models directory (e.g. the shipped models/) whose outputs fill a column of each sheet")
    p.add_argument("--classifier", metavar="WEIGHTS",
                   help="judge with these domain-classifier weights (.weights.h5) instead of the pair's pinned "
                        "classifier, e.g. to compare classifier recipes on the same photos")
    _runtime_flags(p)

    p = commands.add_parser("checkerboard", help="which shift self-ensemble suits each generator of a pair",
                            description="Measure each generator's plain outputs on held-out photos at the 15 "
                                        "quarter frequencies of a transposed upsampler's period-4 pattern, and the "
                                        "checkerboard figure (dB, as `evaluate`'s) each shift self-ensemble should "
                                        "leave, best first; evaluate the best with `evaluate` before serving it.")
    p.add_argument("--data", required=True, help="the pair folder the model was trained on")
    p.add_argument("--model-dir", default="models", help="the models directory (default: models)")
    _data_dir_flag(p)
    p.add_argument("--max-images", type=int, default=16, help="held-out photos per direction (0 = all; default 16)")
    _runtime_flags(p)

    p = commands.add_parser("classifier", help="pin a pair's domain classifier for evaluations",
                            description="Train the pair's domain classifier on its real photos and, labelled with "
                                        "their own domain, their naive translations towards the other (or take the "
                                        "one cached on this machine) and write it with its sha256, accuracy and the "
                                        "naive translations' target rates into --out, where `evaluate` finds it: "
                                        "every machine then measures with the same classifier.")
    p.add_argument("--data", required=True, help="the pair folder")
    p.add_argument("--out", default=None, help="where pinned classifiers live (default: models/classifiers)")
    _data_dir_flag(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the classifier's training")
    _runtime_flags(p)

    p = commands.add_parser("export", help="export a run into a models directory",
                            description="Write a run's weights and manifest (recipe, steps, metrics, sha256) "
                                        "into a models directory with pipeline.registry.")
    p.add_argument("--run-dir", required=True, help="a CycleGAN or RDN run directory")
    p.add_argument("--model-dir", default="models", help="where to write weights + manifest (default: models)")
    p.add_argument("--pair", choices=PAIR_NAMES, help="pair name for a CycleGAN run (default: the data folder's name)")
    p.add_argument("--name", default="rdn", help="model name for an RDN run (default: rdn)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32",
                   help="storage precision of the weights (float16 halves the file)")
    p.add_argument("--report", help="report.json of `evaluate` (CycleGAN) to record as the model's metrics")
    _self_ensemble_flag(p)
    p.add_argument("--raw", action="store_true", help=_RAW_HELP)
    p.add_argument("--generators", choices=opt.EXPORTED_GENERATORS, default="both",
                   help="which of a CycleGAN run's generators to export: both, or only a2b (or b2a), keeping "
                        "the other from the pair model already in --model-dir, to ship the direction a run "
                        "improved without the one it made worse (evaluate that combination first)")

    p = commands.add_parser("import-torch", help="import PyTorch reference generators",
                            description="Convert two junyanz/pytorch-CycleGAN-and-pix2pix ResnetGenerator "
                                        "state dicts (A→B and B→A) into a pair model (needs torch).")
    p.add_argument("--a2b", required=True, help=".pth of the generator from domain A to B (e.g. summer→winter)")
    p.add_argument("--b2a", required=True, help=".pth of the generator from domain B to A")
    p.add_argument("--pair", required=True, choices=PAIR_NAMES, help="the pair it serves")
    p.add_argument("--model-dir", default="models", help="where to write weights + manifest (default: models)")
    p.add_argument("--dtype", choices=("float32", "float16"), default="float32", help="storage precision")
    _self_ensemble_flag(p)

    p = commands.add_parser("self-ensemble", help="set how an installed pair model is served",
                            description="Switch an installed pair model's self-ensemble (its weights untouched) and "
                                        "record the metrics of an `evaluate` report made with that setting; the "
                                        "former setting and metrics stay in the manifest's provenance.")
    p.add_argument("--pair", required=True, choices=PAIR_NAMES, help="the pair model")
    p.add_argument("--model-dir", default="models", help="the models directory (default: models)")
    p.add_argument("--report", required=True, help="report.json of `evaluate` on the model served that way")
    _self_ensemble_flag(p, required=True)
    return parser


def _run_options(args, cls, presets: dict, saved_name: str):
    """A trainer's options (preset < saved run < flags), with TensorFlow's threads set from them."""
    from training import runtime

    saved = Path(args.run_dir or cls.run_dir) / saved_name
    state_dir = getattr(args, "state_dir", None)
    if not saved.is_file() and state_dir and (Path(state_dir) / saved_name).is_file():
        saved = Path(state_dir) / saved_name  # a fresh machine: the recipe comes with the committed state
    options = opt.resolve(args, cls, presets, saved)
    if not options.data:
        raise SystemExit("--data is required for a new run")
    runtime.configure(options.threads or None, options.deterministic)
    return options


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    from training import runtime

    if args.command in ("cyclegan", "rdn"):
        # `kill PID` (what process managers and `timeout` send) stops a run as Ctrl-C does, with a
        # checkpoint to resume from: a run started with `&` from a script ignores Ctrl-C's SIGINT.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            return _train(args)
        except KeyboardInterrupt:
            print("stopped; run the same command again to resume from the checkpoint", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)

    runtime.configure(getattr(args, "threads", 0) or None)
    if args.command == "dataset":
        from training import data

        domains = tuple(args.domains.split(",")) if args.domains else None
        builder = data.build(args.data, args.data_dir, domains)
        print(json.dumps({"data_dir": builder.data_dir, "config": builder.builder_config.name,
                          "splits": {k: v.num_examples for k, v in builder.info.splits.items()},
                          "metadata": str(Path(builder.data_dir) / data.METADATA_FILE)}, indent=2))
    elif args.command == "evaluate":
        from training import evaluate

        size = args.size
        if size is None:
            size = opt.CycleGANOptions.load(Path(args.run_dir) / "options.json").size if args.run_dir else 256
        report = evaluate.evaluate(args.data, args.out, run_dir=args.run_dir, model_dir=args.model_dir,
                                   data_dir=args.data_dir, size=size, grid_rows=args.grid_rows,
                                   max_images=args.max_images, seed=args.seed, raw=args.raw,
                                   compare_with=args.compare_with, classifier_weights=args.classifier)
        print(evaluate.markdown(report))
    elif args.command == "checkerboard":
        from training import evaluate

        print(evaluate.shift_steps_text(evaluate.shift_steps(args.data, args.model_dir, data_dir=args.data_dir,
                                                             max_images=args.max_images)))
    elif args.command == "classifier":
        from training import classifier, data

        pinned = classifier.pin(data.build(args.data, args.data_dir), args.out or classifier.PINNED_DIR, seed=args.seed)
        print(json.dumps(pinned, indent=2))
    elif args.command == "export":
        from training import export

        if (Path(args.run_dir) / export.rdn.OPTIONS_FILE).is_file():
            manifest = export.export_rdn_run(args.run_dir, args.model_dir, name=args.name, dtype=args.dtype)
        else:
            manifest = export.export_cyclegan_run(args.run_dir, args.model_dir, pair=args.pair, dtype=args.dtype,
                                                  self_ensemble=args.self_ensemble, report=args.report, raw=args.raw,
                                                  generators=args.generators)
        print(json.dumps(manifest.summary(), indent=2))
    elif args.command == "import-torch":
        from training import export

        manifest = export.import_torch(args.a2b, args.b2a, args.pair, args.model_dir, dtype=args.dtype,
                                       self_ensemble=args.self_ensemble)
        print(json.dumps(manifest.summary(), indent=2))
    elif args.command == "self-ensemble":
        from training import export

        manifest = export.set_self_ensemble(args.model_dir, args.pair, args.self_ensemble, args.report)
        print(json.dumps(manifest.summary(), indent=2))
    return 0


def _train(args) -> int:
    """The two trainers; each configures TensorFlow from its resolved options."""
    if args.command == "cyclegan":
        from training import cyclegan

        options = _run_options(args, opt.CycleGANOptions, opt.CYCLEGAN_PRESETS, "options.json")
        print(json.dumps(cyclegan.train(options), default=str))
    else:
        from training import rdn

        options = _run_options(args, opt.RDNOptions, opt.RDN_PRESETS, "rdn_options.json")
        print(json.dumps(rdn.train(options), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
