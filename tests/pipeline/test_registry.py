import json

import h5py
import numpy as np
import pytest

from pipeline import Direction, ModelError, direction_status, networks, read_manifests
from pipeline.directions import PAIRS, SUMMER_WINTER
from pipeline.registry import (
    PRECISIONS,
    ModelRegistry,
    PrecisionChoice,
    choose_precision,
    conv_block_ms,
    export_cyclegan,
    export_rdn,
)


def test_random_models_are_listed_as_installed_but_untrained(tiny_model_dir):
    statuses = direction_status(tiny_model_dir)
    assert all(s.installed for s in statuses) and not any(s.trained for s in statuses)
    manifests = read_manifests(tiny_model_dir)
    assert set(manifests) == {"day2night", "spring2autumn", "summer2winter", "rdn"}
    assert manifests["rdn"].directions == [d.value for d in Direction]


def test_missing_model_is_named_with_the_command_that_makes_it(tmp_path):
    statuses = direction_status(tmp_path)
    assert not any(s.installed for s in statuses)
    with pytest.raises(ModelError) as err:
        ModelRegistry(tmp_path).generator("day2night")
    assert "day2night.json" in str(err.value) and "python -m pipeline init-random" in str(err.value)


def test_missing_weights_file(tmp_path, tiny_model_dir):
    for f in tiny_model_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "rdn.hdf5").unlink()
    assert all(s.installed for s in direction_status(tmp_path))
    with pytest.raises(ModelError, match="rdn.hdf5 .* is missing"):
        ModelRegistry(tmp_path).rdn()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_weights_round_trip(tmp_path, dtype):
    a2b = networks.resnet_generator(ngf=8, n_blocks=1, name="a2b")
    b2a = networks.resnet_generator(ngf=8, n_blocks=1, name="b2a")
    manifest = export_cyclegan(tmp_path, SUMMER_WINTER, a2b, b2a, {"ngf": 8, "n_blocks": 1}, dtype=dtype)
    assert manifest.weights_dtype == dtype
    loaded = ModelRegistry(tmp_path).generator(Direction.WINTER2SUMMER).network
    for original, restored in zip(b2a.weights, loaded.weights, strict=True):
        expected = original.numpy().astype(dtype).astype(np.float32)
        assert np.array_equal(expected, restored.numpy())  # bit-identical (fp32) / exact fp16 values


def test_hash_mismatch_is_refused(tmp_path):
    export_rdn(tmp_path, networks.rdn(C=1, D=1, G=4, G0=4), {"C": 1, "D": 1, "G": 4, "G0": 4, "x": 2})
    manifest = json.loads((tmp_path / "rdn.json").read_text())
    manifest["weights_sha256"] = "0" * 64
    (tmp_path / "rdn.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="sha256"):
        ModelRegistry(tmp_path).rdn()


def test_models_are_cached_per_process(tiny_model_dir):
    first = ModelRegistry(tiny_model_dir).generator("day2night")
    assert ModelRegistry(tiny_model_dir).generator(Direction.DAY2NIGHT) is first
    assert ModelRegistry(tiny_model_dir).generator("night2day") is not first


def test_rdn_file_is_in_isr_keras_layout(tmp_path):
    """Keras' own legacy HDF5 loader (the path ISR's published .hdf5 files take) reads our RDN file."""
    architecture = {"C": 2, "D": 2, "G": 8, "G0": 8, "x": 2}
    exported = networks.rdn(**architecture)
    export_rdn(tmp_path, exported, architecture)
    with h5py.File(tmp_path / "rdn.hdf5") as f:
        assert b"F_m1" in list(f.attrs["layer_names"])
        assert "F_m1/kernel:0" in f["F_m1"]
    fresh = networks.rdn(**architecture)
    fresh.load_weights(tmp_path / "rdn.hdf5")
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    assert np.array_equal(fresh(x).numpy(), exported(x).numpy())


def test_shape_mismatch_names_the_layer(tmp_path):
    export_rdn(tmp_path, networks.rdn(C=1, D=1, G=4, G0=4), {"C": 1, "D": 1, "G": 4, "G0": 4, "x": 2})
    from pipeline import weights

    with pytest.raises(ModelError, match="F_m1"):
        weights.load_weights(tmp_path / "rdn.hdf5", networks.rdn(C=1, D=1, G=4, G0=8))


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    return float(10 * np.log10(peak**2 / np.mean((a - b) ** 2)))


@pytest.mark.slow
def test_bfloat16_matches_float32(tmp_path):
    """Reduced precision is only offered because its outputs stay ≥ 35 dB from float32's."""
    from pipeline.directions import DAY_NIGHT

    architecture = {"ngf": 32, "n_blocks": 9}
    g = networks.resnet_generator(**architecture)
    export_cyclegan(tmp_path, DAY_NIGHT, g, g, architecture)
    rdn_architecture = {"C": 4, "D": 6, "G": 32, "G0": 32, "x": 2}
    export_rdn(tmp_path, networks.rdn(**rdn_architecture), rdn_architecture)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    fp32, bf16 = ModelRegistry(tmp_path), ModelRegistry(tmp_path, precision="bfloat16")
    assert bf16.generator("day2night").facts["precision"] == "bfloat16"
    assert psnr(fp32.generator("day2night")(x), bf16.generator("day2night")(x), 2.0) >= 35
    reference = fp32.rdn()((x + 1) / 2)
    assert psnr(reference, bf16.rdn()((x + 1) / 2), float(reference.max() - reference.min())) >= 35


def test_best_precision_reads_cpu_flags(tmp_path):
    from pipeline.registry import best_precision

    (tmp_path / "with").write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n")
    (tmp_path / "without").write_text("processor : 0\nflags : fpu avx2\n")
    assert best_precision(tmp_path / "with") == "bfloat16"
    assert best_precision(tmp_path / "without") == "float32"
    assert best_precision(tmp_path / "absent") == "float32"


@pytest.mark.parametrize("timings", [{"float32": 4.0, "bfloat16": 9.5}, {"float32": 9.5, "bfloat16": 4.0}])
def test_auto_precision_follows_the_measurement(timings):
    """`auto` keeps whichever precision the timer found faster, whatever the CPU's flags say."""
    choice = choose_precision("auto", timer=timings.__getitem__)
    assert choice.precision == min(timings, key=timings.get)
    assert choice.timings_ms == timings and choice.setting == "auto"
    assert f"float32 {timings['float32']:.1f} ms" in choice.describe()


def test_auto_precision_leaves_out_what_cannot_run():
    def timer(precision: str) -> float:
        if precision == "bfloat16":
            raise RuntimeError("no bf16 kernel here")
        return 7.0

    assert choose_precision("auto", timer=timer).precision == "float32"


def test_a_set_precision_is_not_measured(tmp_path):
    def timer(precision: str) -> float:
        raise AssertionError("measured")

    assert choose_precision("bfloat16", timer=timer) == PrecisionChoice("bfloat16", "bfloat16")
    with pytest.raises(ValueError):
        ModelRegistry(tmp_path, precision="int4")


def test_conv_block_timer_runs_in_both_precisions():
    assert all(conv_block_ms(precision, repeats=1) > 0 for precision in PRECISIONS)


def test_results_record_the_measured_choice(tiny_model_dir):
    """Each job's model metadata carries the precision and the timings `auto` chose it by."""
    from pipeline.translate import translate
    from tests.pipeline.conftest import photo_bytes

    choice = choose_precision("auto", timer={"float32": 3.0, "bfloat16": 5.0}.__getitem__)
    result = translate(photo_bytes(), "day2night", registry=ModelRegistry(tiny_model_dir, precision=choice))
    for model in result.metadata["models"]:
        assert model["precision"] == "float32"
        assert model["precision_timings_ms"] == {"float32": 3.0, "bfloat16": 5.0}


def test_models_of_one_architecture_share_one_trace(tmp_path):
    """Six generators of one architecture: one traced function, six sets of weights."""
    rng = np.random.default_rng(5)
    for pair in PAIRS:
        a2b, b2a = (networks.resnet_generator(ngf=4, n_blocks=1, name=n) for n in ("a2b", "b2a"))
        for net in (a2b, b2a):
            net.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in net.get_weights()])
        export_cyclegan(tmp_path, pair, a2b, b2a, {"ngf": 4, "n_blocks": 1})
    models = ModelRegistry(tmp_path)
    for direction in Direction:  # as the worker warms up: one run for the architecture, none for the other five
        models.generator(direction).warm_up()
    template = models.generator(Direction.DAY2NIGHT)._template
    assert template.warm and template.infer.experimental_get_tracing_count() == 1
    x = np.random.default_rng(0).uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)
    outputs = {d: models.generator(d)(x) for d in Direction}
    traced = {id(models.generator(d)._template): models.generator(d)._template for d in Direction}
    assert len(traced) == 1 and next(iter(traced.values())).infer.experimental_get_tracing_count() == 1
    assert len({o.tobytes() for o in outputs.values()}) == 6
    own = models.generator(Direction.DAY2NIGHT).network  # a Keras model of its own, same weights
    np.testing.assert_allclose(own(x, training=False).numpy(), outputs[Direction.DAY2NIGHT], atol=1e-6)


@pytest.mark.parametrize("self_ensemble", ["flips", "shifts", "shifts-antidiagonal"])
def test_a_manifest_with_a_self_ensemble_serves_that_ensemble_of_its_generator(tmp_path, self_ensemble):
    """What a worker runs and what training code gets (`served_network`) are the same ensemble;
    an unknown setting is refused at load, with the ones this version knows."""
    from pipeline.directions import DAY_NIGHT
    from pipeline.manifests import read_manifest, write_manifest

    architecture = {"ngf": 4, "n_blocks": 1}
    a2b, b2a = (networks.resnet_generator(**architecture, name=n) for n in ("a2b", "b2a"))
    rng = np.random.default_rng(1)
    a2b.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in a2b.get_weights()])
    export_cyclegan(tmp_path / "plain", DAY_NIGHT, a2b, b2a, architecture)
    export_cyclegan(tmp_path / "ensembled", DAY_NIGHT, a2b, b2a, architecture, self_ensemble=self_ensemble)
    x = rng.uniform(-1, 1, (2, 256, 256, 3)).astype(np.float32)
    plain, ensembled = (ModelRegistry(tmp_path / d).generator("day2night") for d in ("plain", "ensembled"))
    assert read_manifests(tmp_path / "ensembled")["day2night"].summary()["self_ensemble"] == self_ensemble
    ensemble = lambda v: networks.served(lambda batch: a2b(batch, training=False), self_ensemble)(v).numpy()
    np.testing.assert_allclose(ensembled(x), ensemble(x), atol=1e-5)
    small = x[:, :64, :64]  # training code's sizes are its own
    np.testing.assert_allclose(ensembled.served_network(small), ensemble(small), atol=1e-5)
    np.testing.assert_allclose(plain.served_network(small), a2b(small, training=False), atol=1e-5)
    assert np.abs(plain(x) - ensembled(x)).mean() > 1e-3 and plain._template is not ensembled._template

    manifest = read_manifest(tmp_path / "ensembled" / "day2night.json")
    manifest.self_ensemble = "eightfold"
    (tmp_path / "odd").mkdir()
    write_manifest(manifest, tmp_path / "odd")
    (tmp_path / "odd" / "day2night.h5").write_bytes((tmp_path / "ensembled" / "day2night.h5").read_bytes())
    with pytest.raises(ModelError, match="eightfold.*none, flips, shifts"):
        ModelRegistry(tmp_path / "odd").generator("day2night")


def test_each_generator_of_a_pair_is_served_the_way_its_direction_is_set(tmp_path):
    """A per-direction setting serves each generator its own way (a direction it leaves out: as
    it is); one naming a direction the model does not serve is refused before anything is written."""
    from pipeline.directions import DAY_NIGHT

    architecture = {"ngf": 4, "n_blocks": 1}
    a2b, b2a = (networks.resnet_generator(**architecture, name=n) for n in ("a2b", "b2a"))
    rng = np.random.default_rng(2)
    for generator in (a2b, b2a):
        generator.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32) for w in generator.get_weights()])
    setting = {"night2day": "shifts-vertical"}
    export_cyclegan(tmp_path / "mixed", DAY_NIGHT, a2b, b2a, architecture, self_ensemble=setting)
    models = ModelRegistry(tmp_path / "mixed")
    x = rng.uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32)

    day2night, night2day = models.generator("day2night"), models.generator("night2day")
    assert (day2night.self_ensemble, night2day.self_ensemble) == ("none", "shifts-vertical")
    np.testing.assert_allclose(day2night(x), a2b(x, training=False), atol=1e-5)
    np.testing.assert_allclose(night2day(x), networks.shift_ensemble(lambda v: b2a(v, training=False), x, (1, 0)),
                               atol=1e-5)
    assert read_manifests(tmp_path / "mixed")["day2night"].summary()["self_ensemble"] == setting

    with pytest.raises(ModelError, match="mapping of its directions \\(day2night, night2day\\)"):
        export_cyclegan(tmp_path / "stray", DAY_NIGHT, a2b, b2a, architecture, self_ensemble={"summer2winter": "flips"})
    assert not (tmp_path / "stray").exists()
