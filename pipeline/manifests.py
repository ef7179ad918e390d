"""Model manifests: the JSON beside each weights file in models/, readable without TensorFlow.

A manifest says what a model is (kind, directions served, architecture, input size), which
file holds its weights and that file's sha256, and where it came from (data, recipe,
epochs, metrics). The web process lists installed directions from manifests alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.directions import Direction
from pipeline.errors import ModelError

CYCLEGAN = "cyclegan"
RDN = "rdn"
#: How a generator is served: as it is, as the mean over its input's four mirror images
#: (`pipeline.networks.flip_ensemble`) or over four diagonal displacements of it
#: (`pipeline.networks.shift_ensemble`).
SELF_ENSEMBLES = ("none", "flips", "shifts")
MAKE_MODELS_HINT = (
    "train and export one with `python -m training export`, "
    "or write small untrained models with `python -m pipeline init-random`"
)


@dataclass
class Manifest:
    """One model in the registry. `weights_file` is relative to the manifest's directory."""

    name: str
    kind: str
    directions: list[str]
    architecture: dict
    weights_file: str
    weights_sha256: str
    input_size: int = 256
    weights_dtype: str = "float32"
    self_ensemble: str = "none"  # one of SELF_ENSEMBLES
    trained: bool = True
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def weights_path(self) -> Path:
        base = self.path.parent if self.path else Path(".")
        return base / self.weights_file

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("path")
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def summary(self) -> dict:
        """What the API and `python -m pipeline models` show about the model."""
        return {
            "name": self.name,
            "kind": self.kind,
            "directions": self.directions,
            "architecture": self.architecture,
            "trained": self.trained,
            "weights_sha256": self.weights_sha256,
            "weights_dtype": self.weights_dtype,
            "self_ensemble": self.self_ensemble,
            "metrics": self.metrics,
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(Path(path).read_text())
        known = {k: data[k] for k in Manifest.__dataclass_fields__ if k in data and k != "path"}
        return Manifest(**known, path=Path(path))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelError(f"manifest {path} cannot be read: {exc}") from None


def write_manifest(manifest: Manifest, model_dir: Path) -> Path:
    path = Path(model_dir) / f"{manifest.name}.json"
    path.write_text(manifest.to_json())
    manifest.path = path
    return path


def read_manifests(model_dir: Path) -> dict[str, Manifest]:
    """Every manifest in `model_dir`, by model name (an absent directory holds none)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {}
    manifests = [read_manifest(p) for p in sorted(model_dir.glob("*.json"))]
    return {m.name: m for m in manifests if m.kind in (CYCLEGAN, RDN)}


def default_rdn(manifests: dict[str, Manifest], preferred: str | None = None) -> Manifest | None:
    """The RDN to use: the one named `preferred`, else the only/first-by-name RDN installed."""
    rdns = {n: m for n, m in manifests.items() if m.kind == RDN}
    if preferred:
        return rdns.get(preferred)
    return rdns[sorted(rdns)[0]] if rdns else None


@dataclass(frozen=True)
class DirectionStatus:
    """Whether a direction can be served from this model directory, and why not."""

    direction: Direction
    installed: bool
    model: str
    trained: bool
    reason: str | None


def direction_status(model_dir: Path) -> list[DirectionStatus]:
    """For each of the six directions: is its generator's manifest and weights file there?"""
    manifests = read_manifests(model_dir)
    statuses = []
    for direction in Direction:
        manifest = manifests.get(direction.model_name)
        reason = None
        if manifest is None or direction.value not in manifest.directions:
            reason = f"model '{direction.model_name}' is not installed"
        elif not manifest.weights_path.is_file():
            reason = f"weights file {manifest.weights_file} is missing"
        statuses.append(
            DirectionStatus(
                direction=direction,
                installed=reason is None,
                model=direction.model_name,
                trained=bool(manifest and manifest.trained),
                reason=reason,
            )
        )
    return statuses
