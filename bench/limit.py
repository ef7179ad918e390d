"""The machine's attainable multiply-add rate: the 'limit' every model figure is compared to.

    .venv/bin/python bench/limit.py [--threads 2]

A large matmul and the generator's own hot convolution (3×3, 256→256 channels on 64×64,
the residual blocks' shape), in float32 and bfloat16, through TensorFlow (oneDNN) — and in
PyTorch when it is installed, as a cross-check that TensorFlow is not leaving speed behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import save, table, timed, warm_ms  # noqa: E402

MATMUL = 2048
CONV = (1, 64, 64, 256, 256, 3)  # batch, height, width, in, out, kernel


def matmul_gflop() -> float:
    return 2 * MATMUL**3 / 1e9


def conv_gflop() -> float:
    n, h, w, cin, cout, k = CONV
    return 2 * n * h * w * cin * cout * k * k / 1e9


def tensorflow_rates(repeats: int) -> list[list]:
    import tensorflow as tf

    rows = []
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.random.uniform((MATMUL, MATMUL), dtype=tf.float32)
        a = tf.cast(a, dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        timed(lambda: matmul(a).numpy())  # noqa: B023
        ms = warm_ms(lambda: matmul(a).numpy(), repeats)  # noqa: B023
        rows.append(["tensorflow", "matmul 2048³", dtype.name, ms, matmul_gflop() / ms * 1000])
        n, h, w, cin, cout, k = CONV
        x = tf.cast(tf.random.uniform((n, h, w, cin)), dtype)
        kernel = tf.cast(tf.random.uniform((k, k, cin, cout)), dtype)
        conv = tf.function(lambda x, f: tf.nn.conv2d(x, f, 1, "SAME"))
        timed(lambda: conv(x, kernel).numpy())  # noqa: B023
        ms = warm_ms(lambda: conv(x, kernel).numpy(), repeats)  # noqa: B023
        rows.append(["tensorflow", "conv 3×3 256→256 @64²", dtype.name, ms, conv_gflop() / ms * 1000])
    return rows


def torch_rates(repeats: int, threads: int) -> list[list]:
    try:
        import torch
    except ImportError:
        return []
    if threads:
        torch.set_num_threads(threads)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        a = torch.rand(MATMUL, MATMUL).to(dtype)
        with torch.inference_mode():
            timed(lambda: a @ a)  # noqa: B023
            ms = warm_ms(lambda: a @ a, repeats)  # noqa: B023
        rows.append(["torch", "matmul 2048³", str(dtype).split(".")[1], ms, matmul_gflop() / ms * 1000])
        n, h, w, cin, cout, k = CONV
        conv = torch.nn.Conv2d(cin, cout, k, padding=1).to(dtype).to(memory_format=torch.channels_last)
        x = torch.rand(n, cin, h, w).to(dtype).to(memory_format=torch.channels_last)
        with torch.inference_mode():
            timed(lambda: conv(x))  # noqa: B023
            ms = warm_ms(lambda: conv(x), repeats)  # noqa: B023
        rows.append(["torch", "conv 3×3 256→256 @64²", str(dtype).split(".")[1], ms, conv_gflop() / ms * 1000])
    return rows


def measure(threads: int = 0, repeats: int = 10) -> dict:
    """The rates, as rows and as the best float32 / bfloat16 figure (the limits)."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    rows = tensorflow_rates(repeats) + torch_rates(repeats, threads)
    limits = {}
    for row in rows:
        limits[row[2]] = max(limits.get(row[2], 0.0), row[4])
    return {"rows": rows, "limits_gflop_per_s": limits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="threads (0: all cores)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    result = measure(args.threads, args.repeats)
    print(table(["framework", "kernel", "dtype", "warm ms", "GFLOP/s"], result["rows"]))
    limits = result["limits_gflop_per_s"]
    print("\nlimit (best measured):", ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in limits.items()))
    print(f"written to {save('limit', result)}")


if __name__ == "__main__":
    main()
