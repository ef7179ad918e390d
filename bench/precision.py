"""float32 vs bfloat16 vs auto on this CPU: the whole job per direction, the shipped models.

    .venv/bin/python bench/precision.py [--threads 1] [--repeats 5]

Runs `translate()` (a 12 MP JPEG → crop → generator → RDN → 512 px PNG) warm for each of the six
directions with the models in models/ served in float32, in bfloat16 and as `auto` chooses at
start-up (its conv-block timings are printed), interleaved round by round so that load from
other processes falls on all three alike. Prints the table and writes bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import interleaved_warm_ms, save, table  # noqa: E402
from bench.pipeline import phone_jpeg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow intra-op threads (a worker uses 1)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from pipeline import Direction
    from pipeline.registry import ModelRegistry, choose_precision
    from pipeline.translate import translate

    auto = choose_precision("auto")
    print(f"auto: {auto.describe()}")
    registries = {name: ModelRegistry(ROOT / "models", precision=name) for name in ("float32", "bfloat16")}
    registries["auto"] = ModelRegistry(ROOT / "models", precision=auto)
    data = phone_jpeg()
    rows, record = [], {"auto": {"precision": auto.precision, "timings_ms": auto.timings_ms}, "directions": {}}
    for direction in Direction:
        runs = {name: (lambda r=registry: translate(data, direction, registry=r))  # noqa: B023
                for name, registry in registries.items()}
        for run in runs.values():
            run()  # cold: traces and loads
        warm = interleaved_warm_ms(runs, args.repeats)
        best = min(warm["float32"], warm["bfloat16"])
        rows.append([direction.value, warm["float32"], warm["bfloat16"], warm["auto"],
                     f"{(warm['auto'] / best - 1) * 100:+.1f} %"])
        record["directions"][direction.value] = warm
    print(table(["direction (whole job, warm ms)", "float32", "bfloat16", f"auto ({auto.precision})",
                 "auto vs the faster"], rows))
    print(f"\nwritten to {save('precision', record)}")


if __name__ == "__main__":
    main()
