"""Process-wide TensorFlow settings a training command applies before building anything."""

from __future__ import annotations

import tensorflow as tf


def configure(threads: int | None = None, deterministic: bool = False) -> None:
    """Limit TensorFlow to `threads` CPU threads (so tests and a web server stay usable
    beside a long run) and, if asked, make every op deterministic.

    Must run before the first TensorFlow op: thread pools are fixed once they exist.
    """
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def has_gpu() -> bool:
    return bool(tf.config.list_physical_devices("GPU"))


def mixed_policy(choice: str) -> str:
    """The Keras dtype policy for a trainer's `mixed_precision` option.

    auto: mixed float16 on a GPU; mixed bfloat16 on a CPU that computes bf16 natively (AVX-512
    BF16 or AMX; faster than float32 there, docs/performance.md);
    float32 elsewhere. bfloat16 keeps float32's exponent range, so it needs no loss scaling.
    """
    from pipeline.registry import best_precision

    if choice == "auto":
        choice = "float16" if has_gpu() else ("bfloat16" if best_precision() == "bfloat16" else "off")
    return {"float16": "mixed_float16", "bfloat16": "mixed_bfloat16", "off": "float32"}[choice]


def dataset_options(threads: int | None) -> tf.data.Options:
    """tf.data options: a private pool of `threads` threads when training is limited."""
    options = tf.data.Options()
    options.deterministic = True
    if threads:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
    return options
