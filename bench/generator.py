"""Where the generator's time goes: every layer timed alone at its own shape, and the whole
network under tf.function with and without XLA, in one process.

    .venv/bin/python bench/generator.py [--threads 2] [--inter 1] [--precision float32] [--repeats 5] [--variants]

Each layer of the ResNet generator (ngf 64, 9 blocks) runs as its own tf.function on a
random tensor of the shape it sees in a 256×256 pass; the table sums them by kind (7×7 /
3×3 / stride-2 / transposed convolutions, InstanceNorm, padding, crop, ReLU, add, tanh) with
each kind's share of the sum and its GFLOP/s. `--variants` adds the whole network with the
layer formulations shipped before (MirrorPad, moments-based InstanceNorm, a plain RGB output
conv) and a candidate, each with its output's max |diff| from the shipped one.
Thread settings are process-wide in TensorFlow, so compare them by running this script once
per setting.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import interleaved_warm_ms, save, table  # noqa: E402
from bench.limit import conv_gflop as hot_conv_gflop  # noqa: E402
from bench.pipeline import layer_gflop  # noqa: E402


def kind(layer) -> str:
    """The row a layer's time is summed into."""
    name = type(layer).__name__
    if name == "Conv2D":
        k, s = layer.kernel_size[0], layer.strides[0]
        return f"Conv2D {k}×{k}" + (" stride 2" if s == 2 else "")
    if name == "NarrowConv2D":
        return f"Conv2D {layer.kernel_size[0]}×{layer.kernel_size[0]} → {layer.filters} (space-to-depth)"
    return name


def moments_instance_norm(self, x):
    """InstanceNorm as `tf.nn.moments`, then subtract and scale in float32: the formulation
    shipped before the fused batch-norm one."""
    import tensorflow as tf

    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
    return tf.cast((x32 - mean) * tf.math.rsqrt(variance + self.epsilon), x.dtype)


def centred_instance_norm(self, x):
    """InstanceNorm with the mean subtracted once and reused for the variance (another candidate)."""
    import tensorflow as tf

    x32 = tf.cast(x, tf.float32)
    centred = x32 - tf.reduce_mean(x32, axis=[1, 2], keepdims=True)
    variance = tf.reduce_mean(tf.square(centred), axis=[1, 2], keepdims=True)
    return tf.cast(centred * tf.math.rsqrt(variance + self.epsilon), x.dtype)


def mirror_pad(self, x):
    """ReflectionPad2D as TensorFlow's MirrorPad: the formulation shipped before mirrored slices."""
    import tensorflow as tf

    p = self.pad
    return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")


def formulations() -> dict[str, list[tuple]]:
    """Whole-network variants for `--variants`: (class, method, replacement) patched in while tracing."""
    import keras

    from pipeline import networks

    before = [(networks.InstanceNorm, "call", moments_instance_norm),
              (networks.ReflectionPad2D, "call", mirror_pad),
              (networks.NarrowConv2D, "convolution_op", keras.layers.Conv2D.convolution_op)]
    return {"InstanceNorm as moments + scale (before)": before[:1],
            "InstanceNorm as centred two-pass": [(networks.InstanceNorm, "call", centred_instance_norm)],
            "ReflectionPad2D as MirrorPad (before)": before[1:2],
            "RGB output conv as a plain Conv2D (before)": before[2:],
            "all three as before": before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument("--inter", type=int, default=1, help="inter-op threads")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", action="store_true",
                        help="also time the whole network with earlier and candidate layer formulations")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter)

    from pipeline import networks
    from pipeline.registry import PRECISIONS

    keras.utils.set_random_seed(0)
    with networks.dtype_policy(PRECISIONS[args.precision]):
        model = networks.resnet_generator(64, 9)
    x = tf.random.uniform((1, 256, 256, 3), -1, 1)

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
        flops[kinds[layer.name]] += layer_gflop(layer, args_in[0].shape)
    gflop = sum(flops.values())  # the network's, from the shapes this probe already read

    whole = {"tf.function": tf.function(lambda x: model(x, training=False)),
             "tf.function + XLA (jit_compile)": tf.function(lambda x: model(x, training=False), jit_compile=True)}
    shipped = whole["tf.function"](x)
    diffs = {"tf.function": 0.0}
    if args.variants:  # each traced while its replacements are patched in, then the shipped methods restored
        for label, patches in formulations().items():
            shipped_methods = [(cls, method, cls.__dict__[method]) for cls, method, _ in patches]
            for cls, method, replacement in patches:
                setattr(cls, method, replacement)
            name = f"tf.function, {label}"
            whole[name] = tf.function(lambda x: model(x, training=False))
            diffs[name] = float(tf.reduce_max(tf.abs(whole[name](x) - shipped)))
            for cls, method, original in shipped_methods:
                setattr(cls, method, original)
    for name, fn in whole.items():
        runs[name] = lambda fn=fn: fn(x).numpy()
        if name not in diffs:
            diffs[name] = float(tf.reduce_max(tf.abs(fn(x) - shipped)))
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
    whole_rows = [[name, warm[name], gflop / warm[name] * 1000, f"{diffs[name]:.1e}"] for name in whole]
    print(f"generator ngf 64 / 9 blocks, 256², {args.precision}, intra {args.threads or 'all'} / inter "
          f"{args.inter} threads (hot conv alone: {hot_conv_gflop():.2f} GFLOP)\n")
    print(table(["layer kind", "layers", "warm ms", "share", "GFLOP", "GFLOP/s"], rows))
    print("\nwhole network (max |diff| against the shipped tf.function's output):")
    print(table(["variant", "warm ms", "GFLOP/s", "max |diff|"], whole_rows))
    tag = f"generator-{args.precision}-t{args.threads or 'all'}-i{args.inter}"
    print(f"\nwritten to {save(tag, {'args': vars(args), 'layers': rows, 'whole': whole_rows})}")


if __name__ == "__main__":
    main()
