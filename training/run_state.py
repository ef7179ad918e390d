"""A CycleGAN run's complete state in a form small enough to commit, and exact to resume from.

Training machines are ephemeral: a run survives them only through the repository. So a run
can write its whole state — both generators and discriminators, their moving average, both
optimizers' moments and counters, both image pools and the step (the data order, the
augmentation and the pools' coin flips are all keyed to the step) — into a folder such as
`models/runs/<pair>/`, and a fresh clone on any machine continues from it.

Each kind of variable is stored only as precisely as training needs it:

| variables | stored as |
|---|---|
| generator and discriminator weights | float16 (bytes shuffled for compression) |
| the moving average | its difference from the generator (small): 63 levels per block of 256 |
| Adam's first moments | 255 levels per block of 256, scaled by the block's largest magnitude |
| Adam's second moments | 127 levels per block: the logarithm between the block's least and largest |
| pooled fake images ([-1, 1]) | uint8, as differences to their neighbours |
| step, counters, anything else | exactly |

Writing the state also loads it back into the live run (`save` rounds the run to what was
written), so a run resumed from a state continues exactly as the run that wrote it: the
rounding happens once per save, in both, and resume is bitwise exact under deterministic ops.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

STATE_FILE = "state.zip"
FACTS_FILE = "state.json"
OPTIONS_FILE = "options.json"
BLOCK = 256


def _blocks(x: np.ndarray) -> np.ndarray:
    flat = x.astype(np.float32).ravel()
    return np.pad(flat, (0, -len(flat) % BLOCK)).reshape(-1, BLOCK)


def _unblock(blocks: np.ndarray, like: tuple[int, ...]) -> np.ndarray:
    return blocks.ravel()[:int(np.prod(like))].reshape(like)


def _linear(x: np.ndarray, levels: int) -> dict[str, np.ndarray]:
    """Signed values as integers in [-levels, levels], scaled per block by its largest magnitude."""
    b = _blocks(x)
    scale = np.abs(b).max(axis=1, keepdims=True) / levels
    return {"q": np.round(b / np.where(scale > 0, scale, 1.0)).astype(np.int8), "scale": scale.astype(np.float32)}


def _from_linear(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return _unblock(parts["q"].astype(np.float32) * parts["scale"], shape)


def _log(x: np.ndarray, levels: int = 127) -> dict[str, np.ndarray]:
    """Non-negative values: 0 stays 0; the rest as 1…levels evenly between log2 of the block's least
    and largest positive value (a relative error under half a step of that range)."""
    b = _blocks(x)
    positive = b > 0
    logs = np.log2(np.where(positive, b, 1.0))
    lo = np.where(positive, logs, np.inf).min(axis=1, keepdims=True)
    hi = np.where(positive, logs, -np.inf).max(axis=1, keepdims=True)
    lo, hi = np.where(np.isfinite(lo), lo, 0.0), np.where(np.isfinite(hi), hi, 0.0)
    step = np.where(hi > lo, (hi - lo) / (levels - 1), 1.0)
    q = np.where(positive, 1 + np.round((logs - lo) / step), 0).astype(np.uint8)
    return {"q": q, "lo": lo.astype(np.float32), "step": step.astype(np.float32)}


def _from_log(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    q = parts["q"].astype(np.float32)
    values = np.where(q > 0, np.exp2(parts["lo"] + (q - 1) * parts["step"]), 0.0)
    return _unblock(values.astype(np.float32), shape)


def _float16(x: np.ndarray) -> dict[str, np.ndarray]:
    """Float16, bytes shuffled (all high bytes, then all low): the exponents then compress well."""
    return {"bytes": np.ascontiguousarray(x.astype(np.float16).ravel().view(np.uint8).reshape(-1, 2).T)}


def _from_float16(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(parts["bytes"].T).view(np.float16).astype(np.float32).reshape(shape)


def _image8(x: np.ndarray) -> dict[str, np.ndarray]:
    """[-1, 1] images [N, H, W, C] as uint8, stored as differences to the pixel above and to the left
    (mod 256, lossless): smooth images then compress about as well as in a lossless image format."""
    q = np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.int16)
    return {"delta": np.diff(np.diff(q, axis=1, prepend=0), axis=2, prepend=0).astype(np.uint8)}


def _from_image8(parts: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    q = np.cumsum(np.cumsum(parts["delta"].astype(np.int64), axis=2), axis=1) % 256
    return q.astype(np.float32) / 127.5 - 1.0


class _Codec:
    """Encodes one kind of variable into named arrays and decodes them back."""

    def __init__(self, encode: Callable[[np.ndarray], dict], decode: Callable[[dict, tuple], np.ndarray]):
        self.encode, self.decode = encode, decode


CODECS = {
    "float16": _Codec(_float16, _from_float16),
    "int8": _Codec(lambda x: _linear(x, 127), _from_linear),
    "int6": _Codec(lambda x: _linear(x, 31), _from_linear),
    "log7": _Codec(_log, _from_log),
    "image8": _Codec(_image8, _from_image8),
    "exact": _Codec(lambda x: {"x": x}, lambda p, shape: p["x"]),
}


def _entries(model) -> list[tuple[str, tf.Variable, str, tf.Variable | None]]:
    """Every variable of a `training.cyclegan.CycleGAN`: (key, variable, codec, reference), where the
    moving average is stored relative to its reference, the generator weight it averages."""
    entries = []
    networks = {"g_ab": model.g_ab, "g_ba": model.g_ba, "d_a": model.d_a, "d_b": model.d_b}
    for name, network in networks.items():
        entries += [(f"{name}/{i}", w, "float16", None) for i, w in enumerate(network.weights)]
    if model.ema_ab is not None:
        for name, average, generator in (("ema_ab", model.ema_ab, model.g_ab), ("ema_ba", model.ema_ba, model.g_ba)):
            entries += [(f"{name}/{i}", a, "int6", g)
                        for i, (a, g) in enumerate(zip(average.weights, generator.weights, strict=True))]
    for name, optimizer in (("opt_g", model.opt_g), ("opt_d", model.opt_d)):
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        roles = {id(v): "int8" for v in inner._momentums} | {id(v): "log7" for v in inner._velocities}
        inner_ids = {id(v) for v in inner.variables}
        outer = [v for v in optimizer.variables if id(v) not in inner_ids] if inner is not optimizer else []
        entries += [(f"{name}/{i}", v, roles.get(id(v), "exact"), None) for i, v in enumerate(inner.variables)]
        entries += [(f"{name}/scale/{i}", v, "exact", None) for i, v in enumerate(outer)]
    for name, pool in (("pool_a", model.pool_a), ("pool_b", model.pool_b)):
        entries += [(f"{name}/images", pool.images, "image8", None), (f"{name}/count", pool.count, "exact", None)]
    entries.append(("step", model.step, "exact", None))
    return entries


def _value(variable) -> np.ndarray:
    return np.asarray(variable.numpy())


def _numpy_dtype(variable) -> np.dtype:
    dtype = variable.dtype
    return np.dtype(dtype.as_numpy_dtype if isinstance(dtype, tf.DType) else dtype)


def encode(model) -> dict[str, np.ndarray]:
    """The run's state as named arrays (each variable's parts under `key:part`)."""
    arrays = {}
    for key, variable, codec, reference in _entries(model):
        x = _value(variable)
        if reference is not None:
            x = x - _value(reference)
        for part, array in CODECS[codec].encode(x).items():
            arrays[f"{key}:{part}"] = array
    return arrays


def restore(model, arrays: dict[str, np.ndarray]) -> None:
    """Load named arrays (`encode`'s) into the run's variables; references before what is relative to them."""
    entries = _entries(model)
    missing = sorted({key for key, *_ in entries if not any(k.startswith(key + ":") for k in arrays)})
    if missing:
        raise ValueError(f"the state lacks {len(missing)} of the run's variables, e.g. {missing[:3]}: "
                         "it was written by another recipe")
    for key, variable, codec, reference in sorted(entries, key=lambda e: e[3] is not None):
        parts = {k.split(":", 1)[1]: v for k, v in arrays.items() if k.split(":", 1)[0] == key}
        x = CODECS[codec].decode(parts, tuple(variable.shape))
        if reference is not None:
            x = x + _value(reference)
        variable.assign(np.asarray(x).astype(_numpy_dtype(variable)).reshape(variable.shape))


def _write_archive(arrays: dict[str, np.ndarray], path: Path) -> None:
    """One LZMA-compressed zip: the arrays of each part name and dtype raveled end to end into one
    .npy (so like values compress together), and index.json saying where each array lies."""
    index, groups = {}, {}
    for key, array in arrays.items():
        group = f"{key.split(':', 1)[1]}.{array.dtype.str.lstrip('<>|=')}"
        chunks = groups.setdefault(group, [])
        offset = sum(c.size for c in chunks)
        chunks.append(np.ascontiguousarray(array).ravel())
        index[key] = {"group": group, "offset": offset, "shape": list(array.shape), "dtype": array.dtype.str}
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as archive:
        archive.writestr("index.json", json.dumps(index, sort_keys=True))
        for group, chunks in groups.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.concatenate(chunks), allow_pickle=False)
            archive.writestr(group + ".npy", buffer.getvalue())
    tmp.replace(path)


def _read_archive(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        index = json.loads(archive.read("index.json"))
        groups = {name[:-4]: np.lib.format.read_array(io.BytesIO(archive.read(name)), allow_pickle=False)
                  for name in archive.namelist() if name.endswith(".npy")}
    return {key: groups[e["group"]][e["offset"]:e["offset"] + int(np.prod(e["shape"]))].astype(e["dtype"])
            .reshape(e["shape"]) for key, e in index.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save(model, state_dir: Path | str, options: dict, facts: dict | None = None) -> dict:
    """Write the run's state, its options and a JSON of facts (step, sizes, sha256) into `state_dir`,
    replacing what was there; then round the live run to exactly what was written."""
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    arrays = encode(model)
    _write_archive(arrays, state_dir / STATE_FILE)
    restore(model, arrays)
    (state_dir / OPTIONS_FILE).write_text(json.dumps(options, indent=2, sort_keys=True) + "\n")
    written = {"step": int(model.step.numpy()), "bytes": (state_dir / STATE_FILE).stat().st_size,
               "sha256": _sha256(state_dir / STATE_FILE), "written": datetime.datetime.now(datetime.UTC).isoformat(
                   timespec="seconds"), "tensorflow": tf.__version__, **(facts or {})}
    (state_dir / FACTS_FILE).write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    return written


def exists(state_dir: Path | str | None) -> bool:
    return bool(state_dir) and (Path(state_dir) / STATE_FILE).is_file()


def step_of(state_dir: Path | str) -> int:
    return int(json.loads((Path(state_dir) / FACTS_FILE).read_text())["step"])


def load(model, state_dir: Path | str) -> int:
    """Restore the run from `state_dir` (its sha256 checked); returns its step."""
    state_dir = Path(state_dir)
    facts = json.loads((state_dir / FACTS_FILE).read_text())
    if _sha256(state_dir / STATE_FILE) != facts["sha256"]:
        raise ValueError(f"{state_dir / STATE_FILE} does not match the sha256 in {FACTS_FILE}")
    restore(model, _read_archive(state_dir / STATE_FILE))
    return int(model.step.numpy())


def generator_weights(state_dir: Path | str, shapes: list[tuple[int, ...]],
                      raw: bool = False) -> tuple[list[np.ndarray], list[np.ndarray], int]:
    """The a2b and b2a generators' weights (of `shapes`, a generator's weight shapes) in a state —
    their moving average if it keeps one, unless `raw` — and its step: what export and evaluation
    need, without building the whole run."""
    arrays = _read_archive(Path(state_dir) / STATE_FILE)

    def decoded(name: str, codec: str) -> list[np.ndarray]:
        return [CODECS[codec].decode({k.split(":", 1)[1]: v for k, v in arrays.items()
                                      if k.split(":", 1)[0] == f"{name}/{i}"}, shape) for i, shape in enumerate(shapes)]

    weights = []
    for generator, average in (("g_ab", "ema_ab"), ("g_ba", "ema_ba")):
        w = decoded(generator, "float16")
        if not raw and any(k.startswith(average + "/") for k in arrays):
            w = [g + d for g, d in zip(w, decoded(average, "int6"), strict=True)]
        weights.append(w)
    return weights[0], weights[1], int(arrays["step:x"])
