"""The photos a pair is trained on: a TFDS dataset built from folders, and tf.data pipelines.

`scan_pair` finds a pair's photos in either layout — ours (`<pair>/<domain>/*.jpg`, with an
optional `split.csv` of `filename,split`) or the CycleGAN release's (`trainA`, `trainB`,
`testA`, `testB`) — and assigns each photo a split. `SeasonsPhotos` is the TFDS
`GeneratorBasedBuilder` that turns the scan into train/test splits in a data_dir outside the
repository. The build is named after the pair plus a fingerprint of the files, so changed data
gets a fresh build and unchanged data is reused.

`cyclegan_pipeline` is the training input: decoded once into memory (the cache), a seeded shuffle per
domain, and augmentation by stateless random ops keyed to the global step — so the stream
from step k onwards is the same whether or not training stopped at k (exact resume).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from filelock import FileLock
from PIL import Image

DEFAULT_DATA_DIR = Path(os.environ.get("SEASONS_TFDS_DIR", "~/.cache/seasons/tfds")).expanduser()
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}
TEST_FRACTION = 0.2
METADATA_FILE = "photos.csv"
#: split.csv values and what they mean here: a source's validation set is our test set.
SPLIT_ALIASES = {"train": "train", "test": "test", "val": "test", "valid": "test", "validation": "test"}


@dataclass(frozen=True)
class Photo:
    """One photo of a pair: where it is, its domain and split, and what it holds."""

    path: str
    name: str
    domain: str
    split: str
    width: int
    height: int
    bytes: int
    sha256: str


def domains_of(root: Path, domains: tuple[str, str] | None = None) -> tuple[str, str]:
    """The pair's (A, B) domains: given, or parsed from a folder named like a pair (`summer2winter`)."""
    if domains:
        return domains
    name = root.name
    if "2" in name:
        a, b = name.split("2", 1)
        return a, b
    raise ValueError(f"cannot tell the domains of {root}: name it like 'summer2winter' or pass domains")


def _hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _hash_split(paths: list[Path], hashes: dict[Path, str]) -> dict[Path, str]:
    """The 20 % of a domain whose content hashes sort first are its test split.

    Decided by content, not names or listing order: the same photos always split the same way.
    """
    ranked = sorted(paths, key=lambda p: hashes[p])
    n_test = round(len(ranked) * TEST_FRACTION)
    return {p: ("test" if i < n_test else "train") for i, p in enumerate(ranked)}


def scan_pair(root: Path | str, domains: tuple[str, str] | None = None) -> list[Photo]:
    """Every photo of the pair in `root`, with its domain, split, size and content hash."""
    root = Path(root).resolve()
    domain_a, domain_b = domains_of(root, domains)
    classic = (root / "trainA").is_dir()
    found: dict[Path, tuple[str, str | None]] = {}  # path -> (domain, split or None)
    if classic:
        for letter, domain in (("A", domain_a), ("B", domain_b)):
            for split in ("train", "test"):
                folder = root / f"{split}{letter}"
                if folder.is_dir():
                    found.update({p: (domain, split) for p in _images(folder)})
    else:
        given: dict[str, str] = {}
        if (root / "split.csv").is_file():
            with open(root / "split.csv", newline="") as f:
                given = {row["filename"]: SPLIT_ALIASES[row["split"].strip().lower()] for row in csv.DictReader(f)}
        for domain in (domain_a, domain_b):
            if not (root / domain).is_dir():
                raise FileNotFoundError(f"{root / domain} is missing: expected {root}/<domain>/*.jpg")
            for p in _images(root / domain):
                found[p] = (domain, given.get(p.relative_to(root).as_posix()) if given else None)
    hashes = {p: _hash(p) for p in found}
    for domain in (domain_a, domain_b):
        unsplit = [p for p, (d, s) in found.items() if d == domain and s is None]
        for p, split in _hash_split(unsplit, hashes).items():
            found[p] = (domain, split)
    photos = []
    for p, (domain, split) in sorted(found.items()):
        with Image.open(p) as image:
            width, height = image.size
        photos.append(Photo(str(p), p.relative_to(root).as_posix(), domain, split, width, height,
                            p.stat().st_size, hashes[p]))
    return photos


def fingerprint(photos: list[Photo]) -> str:
    """A short hash of what a build contains: names, contents and splits."""
    digest = hashlib.sha256()
    for p in photos:
        digest.update(f"{p.name}\t{p.sha256}\t{p.split}\n".encode())
    return digest.hexdigest()[:10]


def write_metadata(photos: list[Photo], path: Path) -> None:
    """The metadata file: one row per photo (path, name, domain, split, size, content hash)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(Photo.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(p) for p in photos)


class PairConfig(tfds.core.BuilderConfig):
    """A build of one pair's folder; `photos` is its scan."""

    def __init__(self, *, pair: str, domains: tuple[str, str], photos: list[Photo], source: str):
        super().__init__(name=f"{pair}_{fingerprint(photos)}", description=f"{pair} photos from {source}")
        self.pair = pair
        self.domains = domains
        self.photos = photos
        self.source = source


class SeasonsPhotos(tfds.core.GeneratorBasedBuilder):
    """Unpaired photos of two domains (e.g. summer, winter) with train and test splits."""

    VERSION = tfds.core.Version("1.0.0")
    # Nothing is downloaded, so no checksums file is looked up beside the code (TFDS 4.9.10's
    # lookup imports `importlib_resources`, which Python ≥ 3.9 installs do not have).
    code_path = None
    RELEASE_NOTES = {"1.0.0": "First build: photos, domain label, file name, content hash."}

    def _info(self) -> tfds.core.DatasetInfo:
        config: PairConfig = self.builder_config
        return self.dataset_info_from_configs(
            description=(
                "Unpaired photos for CycleGAN: one RGB photo per example, labelled with its "
                f"domain ({' or '.join(config.domains)}). Source: {config.source}."
            ),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg",
                                             doc="the photo as stored (JPEG bytes, decoded to uint8 RGB)"),
                "domain": tfds.features.ClassLabel(names=list(config.domains), doc="0 = domain A, 1 = domain B"),
                "name": tfds.features.Text(doc="path relative to the pair folder, e.g. summer/x.jpg"),
                "sha256": tfds.features.Text(doc="sha256 of the file's bytes (decides the 80/20 split)"),
            }),
            supervised_keys=("image", "domain"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # the photos are local; nothing is downloaded
        photos = self.builder_config.photos
        return {split: self._generate_examples([p for p in photos if p.split == split])
                for split in ("train", "test")}

    def _generate_examples(self, photos: list[Photo]):
        for p in photos:
            with Image.open(p.path) as opened:  # JPEG bytes are stored as they are; others re-encoded
                as_is = opened.format == "JPEG" and opened.mode == "RGB"
                image = p.path if as_is else np.asarray(opened.convert("RGB"))
            yield p.name, {"image": image, "domain": p.domain, "name": p.name, "sha256": p.sha256}


def build(root: Path | str, data_dir: Path | str | None = None,
          domains: tuple[str, str] | None = None) -> SeasonsPhotos:
    """Scan a pair folder, build (or reuse) its TFDS dataset, write its metadata file."""
    root = Path(root).resolve()
    domains = domains_of(root, domains)
    photos = scan_pair(root, domains)
    config = PairConfig(pair=root.name, domains=domains, photos=photos, source=str(root))
    data_dir = Path(data_dir or DEFAULT_DATA_DIR)
    data_dir.mkdir(parents=True, exist_ok=True)
    # Runs started together on an unbuilt pair would each build it, and all but the first die
    # renaming their incomplete copy onto the finished one: one builds, the others wait and reuse.
    with FileLock(data_dir / f"{config.name}.lock"):
        builder = SeasonsPhotos(data_dir=str(data_dir), config=config)
        builder.download_and_prepare()
        write_metadata(photos, Path(builder.data_dir) / METADATA_FILE)
    return builder


def load_images(builder: SeasonsPhotos, split: str, domain: int, size: int) -> np.ndarray:
    """All photos of one domain and split, resized to size×size uint8: [N, size, size, 3].

    Square resize ignoring the aspect ratio, as the CycleGAN reference's `resize` preprocess.
    """
    ds = builder.as_dataset(split=split, shuffle_files=False)
    ds = ds.filter(lambda x: x["domain"] == domain)
    ds = ds.map(lambda x: _resize(x["image"], size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images = [x.numpy() for x in ds.batch(64)]
    if not images:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.concatenate(images)


def _resize(image: tf.Tensor, size: int) -> tf.Tensor:
    resized = tf.image.resize(image, (size, size), method="bicubic", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


@dataclass(frozen=True)
class Augment:
    """The training augmentation: flip, zoom (resize up, random crop) and saturation jitter."""

    size: int = 256
    zoom: float = 286 / 256  # largest resize before the crop, as a multiple of size
    flip: bool = True
    saturation: float = 0.0  # saturation factor drawn from [1 - s, 1 + s]

    @property
    def load_size(self) -> int:
        """The size photos are cached at: large enough for the strongest zoom."""
        return int(round(self.size * self.zoom))


def augment(image: tf.Tensor, aug: Augment, seed: tf.Tensor) -> tf.Tensor:
    """One augmented float32 image in [-1, 1] from a uint8 image at `aug.load_size`.

    Every random choice is a stateless op seeded by `seed` (shape [2]): the result depends
    only on the image and the seed, never on how many images came before.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)
    x = tf.cast(image, tf.float32) / 255.0
    if aug.load_size > aug.size:
        side = tf.random.stateless_uniform([], seeds[0], aug.size, aug.load_size + 1, dtype=tf.int32)
        x = tf.image.resize(x, tf.stack([side, side]), method="bicubic", antialias=True)
        x = tf.image.stateless_random_crop(x, (aug.size, aug.size, 3), seeds[1])
    else:
        x = tf.image.resize(x, (aug.size, aug.size), method="bicubic", antialias=True)
    if aug.flip:
        x = tf.image.stateless_random_flip_left_right(x, seeds[2])
    if aug.saturation > 0:
        x = tf.image.stateless_random_saturation(x, 1 - aug.saturation, 1 + aug.saturation, seeds[3])
    x = tf.clip_by_value(x, 0.0, 1.0)
    return x * 2.0 - 1.0


def _domain_stream(images: np.ndarray, seed: int) -> tf.data.Dataset:
    """An endless stream of one domain's photos: a fresh seeded permutation each pass.

    The photos are already decoded and resized in memory (`load_images`): that is the cache,
    so no `.cache()` here (it would hold a second copy).
    """
    ds = tf.data.Dataset.from_tensor_slices(images)
    return ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()


def cyclegan_pipeline(images_a: np.ndarray, images_b: np.ndarray, aug: Augment, *, seed: int,
                      batch_size: int = 1, start_step: int = 0) -> tf.data.Dataset:
    """Batches (real_a, real_b) for steps start_step, start_step + 1, … of training.

    An epoch is max(|A|, |B|) images per domain, like the reference; both domains are
    endless seeded shuffles, zipped, so step k always sees the same photos with the same
    augmentation (stateless seeds from (seed, k)).
    """
    pairs = tf.data.Dataset.zip(_domain_stream(images_a, seed), _domain_stream(images_b, seed + 1))
    ds = pairs.enumerate().skip(start_step * batch_size)

    def prepare(i, images):
        a, b = images
        return (augment(a, aug, tf.stack([tf.cast(seed, tf.int64), 2 * i])),
                augment(b, aug, tf.stack([tf.cast(seed, tf.int64), 2 * i + 1])))

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def save_json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
