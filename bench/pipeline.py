"""Per-stage pipeline timings, cold and warm, for every generator and RDN size offered.

    .venv/bin/python bench/pipeline.py [--threads 2] [--repeats 5]

Stages as `translate()` runs them: decode (a 12 MP phone-size JPEG), crop_resize (to 256),
generator (ResNet-9 at ngf 64 and 32, and the shipped ResNet-6 at ngf 32), rdn (each RDN
configuration), encode (512 px PNG), and the whole `translate()` with the models installed in
models/ as their manifests serve them.
Cold = the first call of a freshly loaded model (tf.function tracing included); warm = the
median of the next calls. Weights are random: time does not depend on their values.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save, table, timed, warm_ms  # noqa: E402

#: name → (architecture, self_ensemble)
GENERATORS = {"ngf64-9blocks": ({"ngf": 64, "n_blocks": 9}, "none"),
              "ngf32-9blocks": ({"ngf": 32, "n_blocks": 9}, "none"),
              "ngf32-6blocks (CPU recipe)": ({"ngf": 32, "n_blocks": 6}, "none"),
              "ngf32-6blocks, flips self-ensemble": ({"ngf": 32, "n_blocks": 6}, "flips"),
              "ngf32-6blocks, shifts self-ensemble": ({"ngf": 32, "n_blocks": 6}, "shifts"),
              "ngf32-6blocks, resize upsampler": ({"ngf": 32, "n_blocks": 6, "upsample": "resize"}, "none")}
RDNS = {
    "C6-D20-G64-G064 (ISR artefact cancelling)": {"C": 6, "D": 20, "G": 64, "G0": 64, "x": 2},
    "C3-D10-G64-G064 (ISR psnr-small)": {"C": 3, "D": 10, "G": 64, "G0": 64, "x": 2},
    "C4-D6-G32-G032": {"C": 4, "D": 6, "G": 32, "G0": 32, "x": 2},
    "C3-D4-G32-G032": {"C": 3, "D": 4, "G": 32, "G0": 32, "x": 2},
}


def conv_gflop(model, size: int) -> float:
    """2 × multiply-adds of every (transposed) convolution layer for one size×size input: the
    network's nominal work, however a layer computes it (`NarrowConv2D` does a little more in a
    faster shape), read off the shapes of one pass."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
    probe = keras.Model(model.inputs, [layer.input for layer in convs])
    inputs = probe(np.zeros((1, size, size, 3), np.float32))
    return sum(layer_gflop(layer, x.shape) for layer, x in zip(convs, inputs, strict=True))


def layer_gflop(layer, input_shape) -> float:
    """A 'valid' convolution's or a transposed convolution's 2 × multiply-adds, in GFLOP."""
    import keras

    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        return 0.0
    n, h, w, _ = input_shape
    kh, kw = layer.kernel_size
    per_pixel = 2 * kh * kw * layer.kernel.shape[2] * layer.kernel.shape[3]
    if isinstance(layer, keras.layers.Conv2DTranspose):  # one kernel per input pixel
        return n * h * w * per_pixel / 1e9
    sh, sw = layer.strides
    if layer.padding == "same":
        return n * -(-h // sh) * -(-w // sw) * per_pixel / 1e9
    return n * ((h - kh) // sh + 1) * ((w - kw) // sw + 1) * per_pixel / 1e9


def phone_jpeg() -> bytes:
    """A 4032×3024 JPEG with photo-like detail (smooth gradients plus texture)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3024, 0:4032].astype(np.float32)
    base = np.stack([x / 16, y / 12, (x + y) / 28], -1) % 255
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow threads (0: all cores)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)

    from PIL import Image

    from pipeline import networks
    from pipeline.crop import CropBox, crop_and_resize
    from pipeline.directions import SUMMER_WINTER
    from pipeline.intake import open_photo
    from pipeline.registry import PRECISIONS, ModelRegistry, export_cyclegan, export_rdn
    from pipeline.translate import _encode, _to_batch, translate

    rows, record = [], {"stages": []}

    def add(stage: str, variant: str, cold: float, warm: float, gflop: float | None = None) -> None:
        rate = gflop / (warm / 1000) if gflop else None
        rows.append([stage, variant, cold, warm, gflop if gflop else "", rate if rate else ""])
        record["stages"].append({"stage": stage, "variant": variant, "cold_ms": cold, "warm_ms": warm,
                                 "gflop": gflop, "gflop_per_s": rate})

    data = phone_jpeg()
    photo = open_photo(data)
    add("decode", "4032×3024 JPEG (12 MP)", timed(lambda: open_photo(data)),
        warm_ms(lambda: open_photo(data), args.repeats))
    box = CropBox.centered(photo.width, photo.height)
    crop = lambda: crop_and_resize(photo.image, box)
    add("crop_resize", "3024² → 256² Lanczos", timed(crop), warm_ms(crop, args.repeats))
    model_input = _to_batch(crop())

    with tempfile.TemporaryDirectory() as tmp:
        for name, (arch, ensemble) in GENERATORS.items():
            model_dir = Path(tmp) / name
            g = networks.resnet_generator(**arch)
            export_cyclegan(model_dir, SUMMER_WINTER, g, g, arch, self_ensemble=ensemble, trained=False)
            gflop = conv_gflop(g, 256)
            for precision in PRECISIONS:
                loaded = ModelRegistry(model_dir, precision=precision).generator("summer2winter")
                cold = timed(lambda: loaded(model_input))  # noqa: B023
                warm = warm_ms(lambda: loaded(model_input), args.repeats)  # noqa: B023
                add("generator", f"{name} {precision}", cold, warm, gflop)
        rdn_input = (model_input + 1) / 2
        for name, arch in RDNS.items():
            model_dir = Path(tmp) / name.split()[0]
            network = networks.rdn(**arch)
            export_rdn(model_dir, network, arch, trained=False)
            gflop = conv_gflop(network, 256)
            repeats = 2 if gflop > 500 else args.repeats
            for precision in PRECISIONS:
                loaded = ModelRegistry(model_dir, precision=precision).rdn()
                cold = timed(lambda: loaded(rdn_input))  # noqa: B023
                add("rdn", f"{name} {precision}", cold, warm_ms(lambda: loaded(rdn_input), repeats), gflop)  # noqa: B023

    pixels = np.asarray(Image.fromarray(np.uint8(np.clip((model_input[0] + 1) * 127.5, 0, 255))).resize((512, 512)))
    for fmt in ("png", "jpeg", "webp"):
        encode = lambda: _encode(pixels, fmt)  # noqa: B023
        add("encode", f"512² {fmt}", timed(encode), warm_ms(encode, args.repeats))

    shipped = ModelRegistry(Path(__file__).resolve().parent.parent / "models", precision="auto")
    if shipped.manifests():  # the service's target: the installed models, warm, crop → 512 px PNG with RDN
        for direction in ("summer2winter", "day2night"):
            run = lambda: translate(data, direction, registry=shipped)  # noqa: B023
            add("translate", f"models/ {direction}, {shipped.precision}, RDN, 12 MP JPEG → 512² PNG",
                timed(run), warm_ms(run, args.repeats))

    print(table(["stage", "variant", "cold ms", "warm ms", "GFLOP", "GFLOP/s"], rows))
    print(f"\nwritten to {save('pipeline', record)}")


if __name__ == "__main__":
    main()
