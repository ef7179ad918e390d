"""The generator side by side with the PyTorch reference, same weights, same run.

    .venv/bin/python bench/torch_reference.py [--threads 2] [--repeats 7] [--ngf 64 --blocks 9]

The reference `ResnetGenerator` (training/torch_reference.py) with PyTorch's default init is
imported into Keras with `training.export` and served through the registry in every
precision it offers; PyTorch runs eager (inference_mode, channels_last, the same thread
count), in float32 and under bfloat16 autocast. All are timed in interleaved rounds on one
256 px photo crop, and compared with the limit (`bench/limit.py`'s `measure()`) measured in
this same process. PSNR: each output against PyTorch float32's, on [0, 1] pixels.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved_warm_ms, save, table, timed  # noqa: E402
from bench.limit import measure  # noqa: E402
from bench.pipeline import conv_gflop, phone_jpeg  # noqa: E402


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """dB between two [-1, 1] images, taken on [0, 1] pixels (inf when identical)."""
    mse = float(np.mean(((a - b) / 2.0) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def photo_batch(size: int = 256) -> np.ndarray:
    """A centred crop of the bench's phone-size JPEG, as the pipeline feeds the generator."""
    from pipeline.crop import CropBox, crop_and_resize
    from pipeline.intake import open_photo
    from pipeline.translate import _to_batch

    photo = open_photo(phone_jpeg())
    box = CropBox.centered(photo.width, photo.height)
    batch = _to_batch(crop_and_resize(photo.image, box))
    assert batch.shape[1] == size, batch.shape
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    args = parser.parse_args()

    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    torch.set_num_threads(args.threads)

    from pipeline.directions import SUMMER_WINTER
    from pipeline.registry import PRECISIONS, ModelRegistry, export_cyclegan
    from training import export, torch_reference

    limits = measure(args.threads)["limits_gflop_per_s"]

    net = torch_reference.resnet_generator(args.ngf, args.blocks)
    keras_generator = export.generator_from_torch(torch_reference.state_arrays(net))
    arch = {"ngf": args.ngf, "n_blocks": args.blocks}
    gflop = conv_gflop(keras_generator, 256)
    x = photo_batch()

    net = net.to(memory_format=torch.channels_last)
    x_torch = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(memory_format=torch.channels_last)

    def torch_run(bf16: bool):
        def run():
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                return net(x_torch).float().numpy().transpose(0, 2, 3, 1)
        return run

    runs, cold = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        export_cyclegan(Path(tmp), SUMMER_WINTER, keras_generator, keras_generator, arch, trained=False)
        for precision in PRECISIONS:
            loaded = ModelRegistry(tmp, precision=precision).generator("summer2winter")
            runs[f"keras {precision}"] = lambda loaded=loaded: loaded(x)
        runs["pytorch float32"] = torch_run(False)
        runs["pytorch bfloat16 (autocast)"] = torch_run(True)
        outputs = {}
        for name, run in runs.items():
            cold[name] = timed(run)
            outputs[name] = run()
        warm = interleaved_warm_ms(runs, args.repeats)

    reference = outputs["pytorch float32"]
    base = warm["pytorch float32"]
    rows, record = [], {"threads": args.threads, "architecture": arch, "size": 256, "gflop": gflop,
                        "limits_gflop_per_s": limits, "variants": []}
    for name in runs:
        dtype = "bfloat16" if "bfloat16" in name else "float32"
        rate = gflop / warm[name] * 1000
        entry = {"variant": name, "cold_ms": cold[name], "warm_ms": warm[name], "gflop_per_s": rate,
                 "percent_of_limit": 100 * rate / limits[dtype], "limit_dtype": dtype,
                 "speedup_vs_pytorch_fp32": base / warm[name],
                 "psnr_vs_pytorch_fp32_db": psnr(outputs[name], reference)}
        record["variants"].append(entry)
        rows.append([name, cold[name], warm[name], rate, f"{entry['percent_of_limit']:.0f} % of {dtype}",
                     f"{entry['speedup_vs_pytorch_fp32']:.2f}×", f"{entry['psnr_vs_pytorch_fp32_db']:.1f}"])
    print(f"ResNet generator ngf {args.ngf}, {args.blocks} blocks, 256×256: {gflop:.1f} GFLOP; "
          f"{args.threads} threads; limit float32 {limits['float32']:,.0f}, "
          f"bfloat16 {limits['bfloat16']:,.0f} GFLOP/s\n")
    print(table(["variant", "cold ms", "warm ms", "GFLOP/s", "of limit", "vs pytorch fp32", "PSNR dB"], rows))
    print(f"\nwritten to {save(f'torch_reference-t{args.threads}', record)}")


if __name__ == "__main__":
    main()
