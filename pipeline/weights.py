"""Weights files in the HDF5 layout of Keras 2's `save_weights` — the format ISR publishes.

Layout: a group per layer (attribute `weight_names`), a dataset per variable named
`<layer>/<variable>:0`, and the root attribute `layer_names`. ISR's RDN .hdf5 files load
as they are; CycleGAN files hold one such tree per generator, in groups `a2b` and `b2a`.
Arrays may be stored as float16 to halve the file; they are cast back on load.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from pipeline.errors import ModelError


def _layers_with_weights(model) -> list:
    return [layer for layer in model.layers if layer.weights]


def write_tree(group: h5py.Group, model, dtype: str = "float32") -> None:
    """Write `model`'s weights under `group` in Keras 2's layer/variable layout."""
    layer_names = []
    for layer in _layers_with_weights(model):
        layer_group = group.create_group(layer.name)
        names = []
        for variable in layer.weights:
            name = f"{layer.name}/{variable.name}:0"
            layer_group.create_dataset(name, data=np.asarray(variable.numpy(), dtype=dtype))
            names.append(name.encode())
        layer_group.attrs["weight_names"] = np.array(names, dtype="S")
        layer_names.append(layer.name.encode())
    group.attrs["layer_names"] = np.array(layer_names, dtype="S")
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = b"2.2.4"


def read_tree(group: h5py.Group, model) -> None:
    """Load weights written by `write_tree` (or by Keras 2 / ISR) into `model`, by layer name."""
    stored = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["layer_names"]]
    for layer in _layers_with_weights(model):
        if layer.name not in stored:
            raise ModelError(f"weights file has no layer {layer.name!r}")
        layer_group = group[layer.name]
        names = [n.decode() if isinstance(n, bytes) else n for n in layer_group.attrs["weight_names"]]
        values = [np.asarray(layer_group[n]) for n in names]
        expected = [tuple(v.shape) for v in layer.weights]
        if [v.shape for v in values] != expected:
            raise ModelError(
                f"layer {layer.name!r}: stored shapes {[v.shape for v in values]} "
                f"do not match the architecture's {expected}"
            )
        layer.set_weights([v.astype(w.dtype) for v, w in zip(values, layer.weights, strict=True)])


def save_weights(path: Path, models: dict[str | None, object], dtype: str = "float32") -> None:
    """Write models to one file: key None = at the root (ISR's layout), else one group each."""
    with h5py.File(path, "w") as f:
        for key, model in models.items():
            write_tree(f if key is None else f.create_group(key), model, dtype)


def load_weights(path: Path, model, group: str | None = None) -> None:
    """Fill `model` from `path` (the root tree, or the tree in `group`)."""
    try:
        with h5py.File(path, "r") as f:
            if group is not None and group not in f:
                raise ModelError(f"{path} has no group {group!r}")
            read_tree(f if group is None else f[group], model)
    except OSError as exc:
        raise ModelError(f"cannot read weights file {path}: {exc}") from None
