"""Command line: `python -m pipeline translate|directions|models|init-random`.

Bad input and missing models end with a one-line message on stderr and exit status 2;
TensorFlow is imported only by the commands that run a network.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from pipeline.crop import CropBox
from pipeline.directions import Direction
from pipeline.errors import InputError, InputErrorCode, ModelError
from pipeline.intake import IntakeLimits, open_photo
from pipeline.manifests import CYCLEGAN, direction_status, read_manifests
from pipeline.options import FORMATS, MAX_OUTPUT_SIDE, OUTPUT_SIZES, TranslateOptions, parse_size

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "models"


def _model_dir(args) -> Path:
    return Path(args.model_dir or os.environ.get("MODEL_DIR") or DEFAULT_MODEL_DIR)


def _format_for(path: Path, requested: str | None) -> str:
    if requested:
        return requested
    suffix = path.suffix.lower().lstrip(".")
    return {"jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}.get(suffix, "png")


def cmd_translate(args) -> int:
    options = TranslateOptions(enhance=not args.no_rdn, size=args.size, transfer=not args.no_transfer,
                               format=_format_for(args.output, args.format))
    crop = CropBox.parse(args.crop) if args.crop else None
    direction = Direction.parse(args.direction)
    limits = IntakeLimits(max_bytes=args.max_bytes, max_pixels=args.max_pixels)
    try:
        data = Path(args.input).read_bytes()
    except OSError as exc:
        raise InputError(InputErrorCode.NOT_AN_IMAGE, f"cannot read {args.input}: {exc.strerror}") from None
    open_photo(data, limits)  # refuse bad input before TensorFlow and the models load

    from pipeline.registry import TINY_GENERATOR, ModelRegistry, choose_precision, random_registry
    from pipeline.translate import translate

    precision = choose_precision(args.precision)

    if args.random_weights:
        print(f"warning: using randomly initialised models ({TINY_GENERATOR}); "
              "the result is not a real translation", file=sys.stderr)
        registry = ModelRegistry(random_registry().model_dir, precision=precision)
    else:
        registry = ModelRegistry(_model_dir(args), rdn_name=args.rdn, precision=precision)
    result = translate(data, direction, crop, options, registry=registry, limits=limits, max_side=args.max_side)
    args.output.write_bytes(result.data)
    print(json.dumps({"output": str(args.output), **result.metadata}, indent=2))
    return 0


def cmd_directions(args) -> int:
    for status in direction_status(_model_dir(args)):
        d = status.direction
        state = "installed" if status.installed else f"not installed ({status.reason})"
        if status.installed and not status.trained:
            state += ", UNTRAINED weights"
        print(f"{d.value:14} {d.label:18} pair {d.pair.name:14} model {d.model_name}/{d.generator}"
              f"  {d.pair.interaction:13} {state}")
    return 0


def _served_as(manifest) -> str:
    """How a model's generators are served, for `models` (nothing when as they are)."""
    served = {d: manifest.self_ensemble_of(d) for d in manifest.directions} if manifest.kind == CYCLEGAN else {}
    if len(set(served.values())) == 1:
        ensemble = next(iter(served.values()))
        return f", served as a {ensemble} self-ensemble" if ensemble != "none" else ""
    return "".join(f", {d} served as {e}" for d, e in served.items())


def cmd_models(args) -> int:
    manifests = read_manifests(_model_dir(args))
    if not manifests:
        print(f"no models installed in {_model_dir(args)}")
        return 0
    for manifest in manifests.values():
        summary = manifest.summary()
        present = "ok" if manifest.weights_path.is_file() else "MISSING weights file"
        print(f"{manifest.name} ({manifest.kind}, {present}) directions: {', '.join(manifest.directions)}")
        print(f"  architecture {json.dumps(summary['architecture'])}, input {manifest.input_size} px, "
              f"weights {manifest.weights_file} {manifest.weights_dtype} sha256 {manifest.weights_sha256[:16]}…"
              + _served_as(manifest))
        print(f"  trained: {manifest.trained}; recipe: {manifest.provenance.get('recipe', '-')}")
        if kept := manifest.provenance.get("kept_generator"):
            print(f"  {kept['direction']}: its generator was kept from the model before (weights sha256 "
                  f"{kept['weights_sha256'][:16]}…); the recipe above trained the other one")
        if manifest.metrics:
            print(f"  metrics: {json.dumps(manifest.metrics)}")
    return 0


def cmd_init_random(args) -> int:
    from pipeline.registry import write_random_models

    generator = {"ngf": args.ngf, "n_blocks": args.n_blocks}
    for manifest in write_random_models(args.out, generator, seed=args.seed):
        print(f"wrote {manifest.weights_path} (untrained {manifest.kind})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", help="models directory (default: $MODEL_DIR or ./models)")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("translate", help="translate one photo")
    t.add_argument("input", type=Path, help="photo to translate (JPEG, PNG, WebP, GIF, TIFF, BMP, HEIC, AVIF)")
    t.add_argument("-d", "--direction", required=True, help="one of: " + ", ".join(d.value for d in Direction))
    t.add_argument("-o", "--output", type=Path, required=True, help="where to write the result")
    t.add_argument("--crop", help="square crop 'x,y,size' in pixels of the EXIF-rotated photo "
                                  "(default: the centred largest square)")
    t.add_argument("--no-rdn", action="store_true", help="skip the RDN enhancement")
    t.add_argument("--size", type=parse_size, default=512, choices=OUTPUT_SIZES,
                   help="output side in px, or 'full': the crop's own side (up to --max-side)")
    t.add_argument("--max-side", type=int, default=MAX_OUTPUT_SIDE, help="cap on the output side in px")
    t.add_argument("--no-transfer", action="store_true",
                   help="serve the network's output resized, not carried onto the photo's pixels")
    t.add_argument("--format", choices=sorted(FORMATS), help="output format (default: from -o's suffix)")
    t.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default="auto",
                   help="compute precision (auto: whichever runs a convolution block faster here)")
    t.add_argument("--rdn", help="name of the RDN model to use (default: the installed one)")
    t.add_argument("--random-weights", action="store_true",
                   help="use small untrained models instead of models/ (for trying the pipeline)")
    t.add_argument("--max-bytes", type=int, default=IntakeLimits.max_bytes, help="upload size limit")
    t.add_argument("--max-pixels", type=int, default=IntakeLimits.max_pixels, help="pixel count limit")
    t.set_defaults(func=cmd_translate)

    d = sub.add_parser("directions", help="list the six directions and whether each is installed")
    d.set_defaults(func=cmd_directions)
    m = sub.add_parser("models", help="list installed models with their manifest facts")
    m.set_defaults(func=cmd_models)

    r = sub.add_parser("init-random", help="write small untrained models (for development and tests)")
    r.add_argument("--out", type=Path, required=True, help="directory to write into")
    r.add_argument("--ngf", type=int, default=8, help="generator width")
    r.add_argument("--n-blocks", type=int, default=2, help="generator residual blocks")
    r.add_argument("--seed", type=int, default=0)
    r.set_defaults(func=cmd_init_random)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
