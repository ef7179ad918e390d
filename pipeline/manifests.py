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
#: The shift self-ensembles (`pipeline.networks.shift_ensemble`) by the step, in (rows, columns),
#: of their four displacements of the input, k steps for k = 0…3 (mod 4): each cancels the
#: quarter-frequency components (a, b) of a grid-tied period-4 pattern with a·rows + b·columns
#: ≢ 0 (mod 4), 12 of 15, so the one to pick is the one whose 3 survivors are the weakest.
SHIFT_STEPS = {"shifts": (1, 1), "shifts-antidiagonal": (1, 3), "shifts-vertical": (1, 0), "shifts-horizontal": (0, 1)}
#: How a generator is served: as it is, as the mean over its input's four mirror images
#: (`pipeline.networks.flip_ensemble`) or over four displacements of it (SHIFT_STEPS).
SELF_ENSEMBLES = ("none", "flips", *SHIFT_STEPS)
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
    self_ensemble: str | dict[str, str] = "none"  # one of SELF_ENSEMBLES, or one per direction
    trained: bool = True
    provenance: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def weights_path(self) -> Path:
        base = self.path.parent if self.path else Path(".")
        return base / self.weights_file

    def self_ensemble_of(self, direction: str) -> str:
        """How the generator of `direction`, one of this model's, is served."""
        return per_direction(self.self_ensemble, self.directions)[direction]

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


def per_direction(self_ensemble: str | dict[str, str], directions: list[str]) -> dict[str, str]:
    """A self-ensemble setting, one name for a model or one per direction, as one per direction;
    a ModelError names what is unknown. The generators of a pair are separate networks with
    textures of their own, so each may be served its own way."""
    if isinstance(self_ensemble, str):
        chosen = dict.fromkeys(directions, self_ensemble)
    elif isinstance(self_ensemble, dict) and set(self_ensemble) <= set(directions):
        chosen = {d: self_ensemble.get(d, "none") for d in directions}  # one it omits: as it is
    else:
        raise ModelError(f"self_ensemble must be a name or a mapping of its directions ({', '.join(directions)}) "
                         f"to names, not {self_ensemble!r}")
    unknown = sorted(set(chosen.values()) - set(SELF_ENSEMBLES))
    if unknown:
        raise ModelError(f"unknown self_ensemble {', '.join(map(repr, unknown))}; this version knows "
                         f"{', '.join(SELF_ENSEMBLES)}")
    return chosen


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
