"""Where the generator's time goes: every layer timed alone at its own shape, and the whole
network under tf.function with and without XLA, in one process.

    .venv/bin/python bench/generator.py [--threads 2] [--inter 1] [--precision float32] [--repeats 5]

Each layer of the ResNet generator (ngf 64, 9 blocks) runs as its own tf.function on a
random tensor of the shape it sees in a 256×256 pass; the table sums them by kind (7×7 /
3×3 / stride-2 / transposed convolutions, InstanceNorm, padding, crop, ReLU, add, tanh) with
each kind's share of the sum and its GFLOP/s. Thread settings are process-wide in
TensorFlow, so compare them by running this script once per setting.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved_warm_ms, save, table  # noqa: E402
from bench.limit import conv_gflop as hot_conv_gflop  # noqa: E402
from bench.pipeline import conv_gflop  # noqa: E402


def kind(layer) -> str:
    """The row a layer's time is summed into."""
    name = type(layer).__name__
    if name == "Conv2D":
        k, s = layer.kernel_size[0], layer.strides[0]
        return f"Conv2D {k}×{k}" + (" stride 2" if s == 2 else "")
    return name


def layer_gflop(layer, input_shape) -> float:
    if type(layer).__name__ not in ("Conv2D", "Conv2DTranspose"):
        return 0.0
    return conv_gflop(lambda x: layer(x), input_shape[1]) if input_shape[1] == input_shape[2] else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument("--inter", type=int, default=1, help="inter-op threads")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)

    from pipeline import networks
    from pipeline.registry import PRECISIONS

    keras.utils.set_random_seed(0)
    model = networks.resnet_generator(64, 9)
    if PRECISIONS[args.precision]:
        model = networks.with_dtype_policy(model, PRECISIONS[args.precision])
    x = tf.random.uniform((1, 256, 256, 3), -1, 1)
    gflop = conv_gflop(model, 256)

    # The shape each layer sees, from one eager pass through the functional graph.
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers[1:]])
    outputs = dict(zip([layer.name for layer in model.layers[1:]], probe(x), strict=True))
    runs, kinds, flops = {}, {}, defaultdict(float)
    for layer in model.layers[1:]:
        parents = [n.operation.name for n in layer._inbound_nodes[0].parent_nodes]
        inputs = [outputs[p] if p in outputs else x for p in parents]
        args_in = [tf.random.normal(t.shape, dtype=t.dtype) for t in inputs]
        fn = tf.function(lambda a, layer=layer: layer(a if len(a) > 1 else a[0]))
        runs[layer.name] = lambda fn=fn, a=args_in: fn(a).numpy()
        kinds[layer.name] = kind(layer)
        if type(layer).__name__ in ("Conv2D", "Conv2DTranspose"):
            kh, kw, a, b = layer.kernel.shape
            n, h, w, _ = (outputs[layer.name] if type(layer).__name__ == "Conv2D" else args_in[0]).shape
            flops[kinds[layer.name]] += 2 * h * w * kh * kw * a * b / 1e9

    whole = {"tf.function": tf.function(lambda x: model(x, training=False)),
             "tf.function + XLA (jit_compile)": tf.function(lambda x: model(x, training=False), jit_compile=True)}
    for name, fn in whole.items():
        runs[name] = lambda fn=fn: fn(x).numpy()
    diff = float(tf.reduce_max(tf.abs(whole["tf.function"](x) - whole["tf.function + XLA (jit_compile)"](x))))
    warm = interleaved_warm_ms(runs, args.repeats)

    by_kind = defaultdict(lambda: [0, 0.0])
    for name, k in kinds.items():
        by_kind[k][0] += 1
        by_kind[k][1] += warm[name]
    layer_sum = sum(ms for _, ms in by_kind.values())
    rows = [[k, n, ms, f"{100 * ms / layer_sum:.0f} %", flops[k] or "", flops[k] / ms * 1000 if flops[k] else ""]
            for k, (n, ms) in sorted(by_kind.items(), key=lambda kv: -kv[1][1])]
    rows.append(["sum of layers alone", sum(n for n, _ in by_kind.values()), layer_sum, "100 %", gflop,
                 gflop / layer_sum * 1000])
    for name in whole:
        rows.append([f"whole network, {name}", "", warm[name], "", gflop, gflop / warm[name] * 1000])
    print(f"generator ngf 64 / 9 blocks, 256², {args.precision}, intra {args.threads or 'all'} / inter "
          f"{args.inter} threads; XLA output max |diff| {diff:.2e}; hot conv alone {hot_conv_gflop():.2f} GFLOP\n")
    print(table(["layer kind", "layers", "warm ms", "share", "GFLOP", "GFLOP/s"], rows))
    tag = f"generator-{args.precision}-t{args.threads or 'all'}-i{args.inter}"
    print(f"\nwritten to {save(tag, {'args': vars(args), 'rows': rows, 'xla_max_abs_diff': diff})}")


if __name__ == "__main__":
    main()
