"""Evaluation without downloadable feature networks: target rate and KID under the pair's own
domain classifier, beside naive baselines; cycle PSNR, input/output SSIM, checkerboard.

- Target rate: the share of translated held-out photos that the pair's domain classifier
  (`training.classifier`, trained to see through colour casts) assigns to the target domain;
  its accuracy on the real held-out photos is reported beside it, as the ceiling of what that
  rate means.
- KID between the translated held-out photos and the real held-out photos of the target
  domain, in the classifier's features (lower is closer).
- Baselines: both figures for the naive translations of the same photos (`training.baselines`:
  the photo itself, colour transfer, histogram matching). A model is only as good as its margin
  over the best of them.
- Cycle PSNR: how well F(G(x)) reconstructs x (dB, on [0, 1] pixels); and again through a
  [1 2 1]/4 binomial blur of G(x) (`hidden_code_blur`), which hardly shows at 256 px but zeroes
  period-2 patterns and halves period-4 ones: a generator pair that hides the reconstruction in
  those frequencies (Chu et al. 2017, "CycleGAN, a master of steganography") loses much more.
- Luminance SSIM between input and output: does the scene survive the translation?
- Checkerboard: how far the output's spectrum peaks at the frequencies of the transposed
  convolutions' period-4 pattern, against the input's (dB; the grids' faint texture, in figures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline import networks
from pipeline.directions import pair_named
from pipeline.manifests import SHIFT_STEPS
from pipeline.networks import CHECKERBOARD_PERIOD
from pipeline.registry import ModelRegistry
from training import baselines, classifier, data, visuals

#: Held-out photos per direction in each sheet (input | compared model | model | colour transfer).
SHEET_ROWS = 8

def _luma(x):
    """[-1, 1] RGB → [0, 1] luminance (BT.601)."""
    return tf.image.rgb_to_grayscale((x + 1.0) / 2.0)


def checkerboard_power(images: np.ndarray) -> np.ndarray:
    """Per image ([-1, 1] RGB, sides a multiple of 4), [N, 4, 4]: the luminance power at each
    quarter frequency (a, b) of the period-4 pattern over the median power around it (a Hann
    window keeps the borders out); [:, 0, 0], the mean, is 1."""
    luma = _luma(tf.convert_to_tensor(images, tf.float32)).numpy()[..., 0]
    n, h, w = luma.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2((luma - luma.mean(axis=(1, 2), keepdims=True)) * window)) ** 2
    ring = np.ones((7, 7), bool)
    ring[2:5, 2:5] = False
    ratios = np.ones((n, CHECKERBOARD_PERIOD, CHECKERBOARD_PERIOD))
    for i in range(CHECKERBOARD_PERIOD):
        for j in range(CHECKERBOARD_PERIOD):
            if i == j == 0:
                continue
            rows = (i * h // CHECKERBOARD_PERIOD + np.arange(-3, 4)) % h
            cols = (j * w // CHECKERBOARD_PERIOD + np.arange(-3, 4)) % w
            patch = power[:, rows][:, :, cols]
            ratios[:, i, j] = patch[:, 2:5, 2:5].mean(axis=(1, 2)) / np.median(patch[:, ring], axis=1)
    return ratios


def _pattern_db(power: np.ndarray) -> np.ndarray:
    """The mean over the 15 pattern frequencies of [..., 4, 4] power ratios, in dB."""
    return 10 * np.log10((power.sum(axis=(-2, -1)) - 1) / (CHECKERBOARD_PERIOD**2 - 1))


def checkerboard_db(images: np.ndarray) -> np.ndarray:
    """Per image ([-1, 1] RGB, sides a multiple of 4): the luminance power at the period-4 pattern's
    15 frequencies over the median power around each, in dB (`checkerboard_power`'s mean).

    Photos score about 1–3 dB (content has no peaks there; JPEG's 8×8 blocks add a little); a
    visible checkerboard stands well above its input's figure.
    """
    return _pattern_db(checkerboard_power(images))


def shift_residue_db(output_power: np.ndarray, input_power: np.ndarray, step: tuple[int, int]) -> float:
    """The checkerboard figure a shift ensemble of `step` should leave on a generator, from the
    mean [4, 4] powers of its plain outputs and of their inputs: the 3 frequencies the step keeps
    (a·step[0] + b·step[1] ≡ 0 mod 4) at the output's power, the 12 it cancels at the input's."""
    a, b = np.indices(output_power.shape)
    kept = (a * step[0] + b * step[1]) % CHECKERBOARD_PERIOD == 0
    return float(_pattern_db(np.where(kept, output_power, input_power)))


def shift_steps(data_path: str, model_dir: str, *, data_dir: str | None = None, size: int = 256,
                max_images: int = 16) -> dict:
    """For each direction of an installed pair: its generator's checkerboard served plain, the
    power at each quarter frequency, and the figure each shift ensemble should leave
    (`shift_residue_db`), best first: which `--self-ensemble` to evaluate for it."""
    builder = data.build(data_path, data_dir)
    domains = builder.builder_config.domains
    models = ModelRegistry(model_dir)
    steps = {}
    for source in (0, 1):
        direction = f"{domains[source]}2{domains[1 - source]}"
        network = models.generator(direction).network
        x = networks.to_model_range(data.load_images(builder, "test", source, size)[:max_images or None])
        y = np.concatenate([np.asarray(network(x[i:i + 8], training=False)) for i in range(0, len(x), 8)])
        output_power, input_power = checkerboard_power(y).mean(axis=0), checkerboard_power(x).mean(axis=0)
        predicted = {name: round(shift_residue_db(output_power, input_power, step), 2)
                     for name, step in SHIFT_STEPS.items()}
        steps[direction] = {"n": len(x), "plain_db": round(float(_pattern_db(output_power)), 2),
                            "input_db": round(float(_pattern_db(input_power)), 2),
                            "power_db": np.round(10 * np.log10(output_power), 1).tolist(),
                            "shift_residue_db": dict(sorted(predicted.items(), key=lambda item: item[1]))}
    return steps


def shift_steps_text(steps: dict) -> str:
    """`shift_steps` for a terminal: per direction, the figures and the power grid."""
    lines = []
    for direction, r in steps.items():
        lines.append(f"{direction}: checkerboard {r['plain_db']:.1f} dB served plain (inputs {r['input_db']:.1f}), "
                     f"{r['n']} held-out photos; each shift self-ensemble should leave:")
        lines.append("  " + " · ".join(f"{name} {db:.1f}" for name, db in r["shift_residue_db"].items()))
        lines.append("  power (dB over the neighbourhood) at quarter frequencies (a rows, b columns):")
        lines += ["    " + " ".join(f"{db:5.1f}" for db in row) for row in r["power_db"]]
    return "\n".join(lines)


def separable_blur(images: tf.Tensor, taps: tf.Tensor) -> tf.Tensor:
    """Blur [N, H, W, C] images with the outer square of an odd 1-D kernel, reflected at the borders."""
    radius = int(taps.shape[0]) // 2
    kernel = tf.tile((taps[:, None] * taps[None, :])[:, :, None, None], [1, 1, images.shape[-1], 1])
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def hidden_code_blur(images: tf.Tensor) -> tf.Tensor:
    """A 3×3 binomial blur ([1 2 1]/4 per axis, reflected at the borders) of [-1, 1] batches."""
    return separable_blur(tf.cast(images, tf.float32), tf.constant([1.0, 2.0, 1.0]) / 4.0)


@dataclass(frozen=True)
class Judge:
    """The pair's domain classifier and the features of both domains' real held-out photos: the
    target rate and KID of any set of translated photos."""

    model: keras.Model
    extractor: keras.Model
    real_features: tuple[np.ndarray, np.ndarray]

    @classmethod
    def of(cls, model: keras.Model, builder, size: int) -> Judge:
        extractor = classifier.feature_extractor(model)
        return cls(model, extractor, tuple(classifier.features(extractor, data.load_images(builder, "test", d, size))
                                           for d in (0, 1)))

    def figures(self, images, target: int) -> dict[str, float]:
        """Target rate and KID (to the target domain's real held-out photos) of uint8 or [-1, 1] images."""
        return {"target_rate": float(np.mean(classifier.classify(self.model, images) == target)),
                "kid": classifier.kid(classifier.features(self.extractor, images), self.real_features[target])}


def evaluate_direction(forward, backward, images: np.ndarray, judge: Judge, target: int, batch: int = 8) -> dict:
    """Target rate, KID, cycle PSNR, luminance SSIM and checkerboard of one direction over uint8 photos."""
    outputs, recs, blurred_recs = [], [], []
    for i in range(0, len(images), batch):
        x = networks.to_model_range(images[i:i + batch])
        y = forward(x)
        outputs.append(np.asarray(y))
        recs.append(np.asarray(backward(y)))
        blurred_recs.append(np.asarray(backward(hidden_code_blur(y))))
    x = networks.to_model_range(images)
    y, z = np.concatenate(outputs), np.concatenate(recs)

    def psnr(reconstruction):
        return float(np.mean(tf.image.psnr((reconstruction + 1) / 2, (x + 1) / 2, max_val=1.0)))

    return {
        **judge.figures(y, target),
        "cycle_psnr": psnr(z),
        "cycle_psnr_blurred": psnr(np.concatenate(blurred_recs)),
        "ssim_luma": float(np.mean(tf.image.ssim(_luma(x), _luma(y), max_val=1.0))),
        "checkerboard_db": float(np.mean(checkerboard_db(y))),
        "input_checkerboard_db": float(np.mean(checkerboard_db(x))),
        "n": int(len(images)),
        "_outputs": y, "_recs": z,
    }


def naive_baselines(images: np.ndarray, judge: Judge, target: int,
                    colours: baselines.DomainColours) -> tuple[dict, dict[str, np.ndarray]]:
    """The figures of each naive translation of the same photos towards the target domain, and the translations."""
    naive = baselines.naive_translations(images, colours)
    return {name: judge.figures(translated, target) for name, translated in naive.items()}, naive


def generators_of(run_dir: str | None, model_dir: str | None, pair_name: str, raw: bool = False):
    """(a2b, b2a) callables on [-1, 1] batches, from a training run or an exported models dir, and
    the report's `source`: where they came from (and, for a run, which of its weights)."""
    if run_dir:
        from training.export import load_generators, weights_kind

        opts, g_ab, g_ba, _ = load_generators(run_dir, raw)
        return ((lambda x: g_ab(x, training=False)), (lambda x: g_ba(x, training=False)),
                {"run_dir": run_dir, "generator_weights": weights_kind(opts, raw)})
    models = ModelRegistry(model_dir)
    pair = pair_named(pair_name)
    a2b, b2a = (models.generator(f"{s}2{t}") for s, t in ((pair.domain_a, pair.domain_b),
                                                         (pair.domain_b, pair.domain_a)))
    return a2b, b2a, {"model_dir": model_dir, "self_ensemble": a2b.manifest.self_ensemble}


def _translated(generator, images: np.ndarray, batch: int = 8) -> np.ndarray:
    return np.concatenate([visuals.to_uint8(np.asarray(generator(networks.to_model_range(images[i:i + batch]))))
                           for i in range(0, len(images), batch)])


def evaluate(data_path: str, out_dir: Path | str, *, run_dir: str | None = None, model_dir: str | None = None,
             data_dir: str | None = None, size: int = 256, grid_rows: int = 4, max_images: int = 0,
             seed: int = 0, raw: bool = False, compare_with: str | None = None,
             classifier_weights: str | None = None) -> dict:
    """Evaluate a pair's two directions on its held-out photos beside the naive baselines; write
    report.json, report.md, grid.jpg (input | output | reconstruction) and one sheet per direction
    (`sheet_<direction>.jpg`: input | the `compare_with` models' output, if given | output | colour
    transfer, the same first held-out photos every time). `classifier_weights` judges with those
    weights instead of the pair's pinned classifier (to compare classifier recipes)."""
    builder = data.build(data_path, data_dir)
    domains = builder.builder_config.domains
    pair_name = Path(data_path).resolve().name
    model, classifier_facts = classifier.load_or_train(builder, seed=seed, weights=classifier_weights)
    judge = Judge.of(model, builder, size)
    colours = classifier.domain_colours(builder)
    a2b, b2a, source = generators_of(run_dir, model_dir, pair_name, raw)
    compared = generators_of(None, compare_with, pair_name)[:2] if compare_with else None
    report = {"pair": pair_name, "data": str(Path(data_path).resolve()), "size": size, "grid_rows": grid_rows,
              "source": source, "compared_with": compare_with,
              "classifier": {**classifier_facts,
                             "per_domain": {domains[k]: v for k, v in classifier_facts["per_domain"].items()}},
              "directions": {}}
    rows = []
    out_dir = Path(out_dir)
    for source, forward, backward in ((0, a2b, b2a), (1, b2a, a2b)):
        images = data.load_images(builder, "test", source, size)
        if max_images:
            images = images[:max_images]
        target = 1 - source
        result = evaluate_direction(forward, backward, images, judge, target)
        result["baselines"], naive = naive_baselines(images, judge, target, colours[target])
        result["margin_over_best_baseline"] = result["target_rate"] - max(
            b["target_rate"] for b in result["baselines"].values())
        name = f"{domains[source]}2{domains[target]}"
        for i in range(min(grid_rows, len(images))):
            rows.append([images[i], visuals.to_uint8(result["_outputs"][i]), visuals.to_uint8(result["_recs"][i])])
        shown = slice(0, min(SHEET_ROWS, len(images)))
        columns = [images[shown]]
        if compared:
            columns.append(_translated(compared[source], images[shown]))
        columns += [visuals.to_uint8(result["_outputs"][shown]), naive["colour_transfer"][shown]]
        visuals.save_image(visuals.grid([list(row) for row in zip(*columns, strict=True)]),
                           out_dir / f"sheet_{name}.jpg")
        report["directions"][name] = _rounded({k: v for k, v in result.items() if not k.startswith("_")})
    data.save_json(report, out_dir / "report.json")
    (out_dir / "report.md").write_text(markdown(report))
    visuals.save_image(visuals.grid(rows), out_dir / "grid.jpg")
    return report


def _rounded(value):
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return round(value, 5) if isinstance(value, float) else value


def markdown(report: dict) -> str:
    c = report["classifier"]
    per = ", ".join(f"{d} {v:.1%}" for d, v in c["per_domain"].items())
    compared = f"`{report['compared_with']}` | " if report.get("compared_with") else ""
    lines = [
        f"# Evaluation: {report['pair']}", "",
        f"Source: `{json.dumps(report['source'])}`; held-out photos of `{report['data']}` at {report['size']} px.", "",
        f"Domain classifier ({'real photos + naive translations as negatives; ' if c.get('recipe') else ''}"
        f"{c['source']}): accuracy on real "
        f"held-out photos {c['test_accuracy']:.1%} ({per}; {c['n_test']} photos).", "",
        "Target rate (classified as the target domain) and KID ×10³ to the target domain's real held-out photos "
        "(classifier features; lower is closer), the model beside the naive translations of the same photos:", "",
        "| direction | photos | model | photo itself | colour transfer | histogram matching | margin over best |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in report["directions"].items():
        cells = [r] + [r["baselines"][b] for b in baselines.NAIVE_TRANSLATIONS]
        lines.append(f"| {name} | {r['n']} | " + " | ".join(f"{f['target_rate']:.1%} · {1000 * f['kid']:.1f}"
                                                            for f in cells)
                     + f" | {100 * r['margin_over_best_baseline']:+.1f} pts |")
    lines += ["", "| direction | cycle PSNR (dB) | cycle PSNR, G(x) blurred (dB) | input/output luminance SSIM "
              "| checkerboard (dB), input → output |", "|---|---:|---:|---:|---:|"]
    for name, r in report["directions"].items():
        lines.append(f"| {name} | {r['cycle_psnr']:.2f} | {r['cycle_psnr_blurred']:.2f} | {r['ssim_luma']:.3f} "
                     f"| {r['input_checkerboard_db']:.1f} → {r['checkerboard_db']:.1f} |")
    lines += ["", f"grid.jpg: input | output | reconstruction, the first {report['grid_rows']} held-out photos "
              f"of each direction. sheet_<direction>.jpg: input | {compared}output | colour transfer, the first "
              f"{SHEET_ROWS}.", ""]
    return "\n".join(lines)
