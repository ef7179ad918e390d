import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline import networks
from pipeline.manifests import SHIFT_STEPS


@pytest.mark.parametrize("upsample", networks.UPSAMPLERS)
def test_generator_matches_the_reference_parameter_count(upsample):
    """A resize-convolution has the transposed convolution's kernel shape: same count."""
    assert networks.resnet_generator(ngf=64, n_blocks=9, upsample=upsample).count_params() == 11_378_179


@pytest.mark.parametrize("upsample, flat", [("transpose", False), ("resize", True)])
def test_only_the_resize_upsampler_keeps_a_flat_input_flat(upsample, flat):
    """The checkerboard's cause (Odena et al. 2016): a stride-2 3×3 transposed convolution gives
    even output pixels one tap per axis and odd ones two, so even a constant input comes out as
    a period-2 pattern; nearest-neighbour ×2 then a 3×3 convolution gives every pixel all nine."""
    from tensorflow import keras

    inputs = keras.Input((None, None, 4))
    model = keras.Model(inputs, networks._upsample(inputs, 3, "up", upsample))
    conv = keras.Model(inputs, model.get_layer("up_crop" if upsample == "transpose" else "up").output)
    out = conv(np.ones((1, 8, 8, 4), np.float32)).numpy()[0, 2:-2, 2:-2]  # away from the borders
    assert out.shape == (12, 12, 3)
    assert (np.ptp(out, axis=(0, 1)).max() < 1e-6) == flat


def _upsampler_pair(cin: int, cout: int):
    """A transposed and a resize upsampler (convolution only, no norm), each in its own model."""
    from tensorflow import keras

    def build(mode):
        inputs = keras.Input((None, None, cin))
        model = keras.Model(inputs, networks._upsample(inputs, cout, "up", mode))
        conv = model.get_layer("up_crop" if mode == "transpose" else "up")
        return keras.Model(inputs, conv.output), model.get_layer("up")

    return build("transpose"), build("resize")


def test_a_checkerboard_free_transposed_kernel_converts_exactly():
    """Per axis a transposed kernel (w0, w1, w2) with w1 = w0 + w2 gives both output phases the
    same sum; the resize kernel found for it then reproduces the transposed output exactly."""
    rng = np.random.default_rng(0)
    cin, cout = 4, 3

    def axis():
        w0, w2 = rng.normal(size=2)
        return np.array([w0, w0 + w2, w2])

    kernel = np.stack([np.stack([np.outer(axis(), axis()) for _ in range(cin)], -1) for _ in range(cout)], 2)
    (transpose, t_layer), (resize, r_layer) = _upsampler_pair(cin, cout)
    bias = rng.normal(size=cout).astype(np.float32)
    t_layer.set_weights([kernel.astype(np.float32), bias])
    r_layer.set_weights([networks.resize_kernel_from_transpose(kernel.astype(np.float32)), bias])
    x = rng.normal(size=(1, 8, 8, cin)).astype(np.float32)
    want, got = transpose(x).numpy()[0, 2:-2, 2:-2], resize(x).numpy()[0, 2:-2, 2:-2]  # away from the borders
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_any_transposed_kernel_converts_to_its_least_squares_nearest():
    """A trained kernel is not checkerboard-free; its conversion is the closest a resize kernel
    gets (on white input), so any nudge away from it is further from the transposed output."""
    rng = np.random.default_rng(1)
    (transpose, t_layer), (resize, r_layer) = _upsampler_pair(5, 2)
    kernel = rng.normal(size=(3, 3, 2, 5)).astype(np.float32)
    t_layer.set_weights([kernel, np.zeros(2, np.float32)])
    x = rng.normal(size=(64, 10, 10, 5)).astype(np.float32)
    want = transpose(x).numpy()[:, 2:-2, 2:-2]
    nearest = networks.resize_kernel_from_transpose(kernel)

    def error(resize_kernel):
        r_layer.set_weights([resize_kernel, np.zeros(2, np.float32)])
        return np.mean((resize(x).numpy()[:, 2:-2, 2:-2] - want) ** 2)

    best = error(nearest)
    assert best < np.mean(want ** 2)
    for _ in range(5):
        assert error(nearest + 0.05 * rng.normal(size=nearest.shape).astype(np.float32)) > best


def test_copy_generator_converts_only_the_upsamplers():
    source = networks.resnet_generator(ngf=4, n_blocks=1)
    target = networks.resnet_generator(ngf=4, n_blocks=1, upsample="resize")
    networks.copy_generator(source, target)
    for layer in (layer for layer in target.layers if layer.weights):
        for got, want in zip(layer.get_weights(), source.get_layer(layer.name).get_weights(), strict=True):
            if layer.name in ("up1", "up2") and got.ndim == 4:
                np.testing.assert_array_equal(got, networks.resize_kernel_from_transpose(want))
            else:
                np.testing.assert_array_equal(got, want)


def test_an_unknown_upsampler_is_refused():
    with pytest.raises(ValueError, match="resize"):
        networks.resnet_generator(ngf=4, n_blocks=1, upsample="bilinear")


def test_generator_keeps_the_image_size_and_range():
    g = networks.resnet_generator(ngf=8, n_blocks=2)
    out = g(np.random.default_rng(0).uniform(-1, 1, (2, 64, 96, 3)).astype(np.float32)).numpy()
    assert out.shape == (2, 64, 96, 3)
    assert out.min() >= -1 and out.max() <= 1


def test_patchgan_is_70x70_with_the_reference_count():
    d = networks.patchgan_discriminator()
    assert d.count_params() == 2_764_737
    assert d(np.zeros((1, 256, 256, 3), np.float32)).shape == (1, 30, 30, 1)


def test_rdn_upscales_by_two():
    r = networks.rdn(C=2, D=2, G=8, G0=8, x=2)
    assert r(np.zeros((1, 32, 48, 3), np.float32)).shape == (1, 64, 96, 3)


def test_rdn_is_isrs_artefact_cancelling_architecture():
    """Layer names and weight shapes are ISR's, so its published C6-D20-G64-G064-x2 files load."""
    r = networks.rdn(C=6, D=20, G=64, G0=64, x=2)
    assert r.count_params() == 16_347_635
    shapes = {layer.name: [tuple(w.shape) for w in layer.weights] for layer in r.layers if layer.weights}
    assert shapes["F_m1"] == [(3, 3, 3, 64), (64,)]
    assert shapes["F_0"] == [(3, 3, 64, 64), (64,)]
    assert shapes["F_1_1"] == [(3, 3, 64, 64), (64,)]
    assert shapes["F_20_6"] == [(3, 3, 64 * 6, 64), (64,)]
    assert shapes["LFF_20"] == [(1, 1, 64 * 7, 64), (64,)]
    assert shapes["GFF_1"] == [(1, 1, 64 * 20, 64), (64,)]
    assert shapes["GFF_2"] == [(3, 3, 64, 64), (64,)]
    assert shapes["UPN1"] == [(5, 5, 64, 64), (64,)]
    assert shapes["UPN2"] == [(3, 3, 64, 32), (32,)]
    assert shapes["UPN3"] == [(3, 3, 32, 12), (12,)]
    assert shapes["SR"] == [(3, 3, 12, 3), (3,)]
    assert len(shapes) == 2 + 20 * 7 + 2 + 3 + 1


def test_instance_norm_normalises_each_image_and_channel():
    x = np.random.default_rng(1).normal(5, 3, (2, 16, 16, 4)).astype(np.float32)
    y = networks.InstanceNorm()(x).numpy()
    assert np.allclose(y.mean(axis=(1, 2)), 0, atol=1e-4)
    assert np.allclose(y.std(axis=(1, 2)), 1, atol=1e-3)


def test_instance_norm_equals_moments_in_float32_and_keeps_float32_statistics_in_bfloat16():
    import tensorflow as tf

    x = np.random.default_rng(2).normal(40, 3, (3, 8, 12, 5)).astype(np.float32)  # a large mean
    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    want = ((x - mean) / tf.sqrt(variance + 1e-5)).numpy()
    np.testing.assert_allclose(networks.InstanceNorm()(x).numpy(), want, atol=1e-4)
    with networks.dtype_policy("mixed_bfloat16"):
        half = networks.InstanceNorm()(x)
    assert half.dtype == tf.bfloat16
    # bf16 rounds 40 ± 3 to steps of 0.25 (≈ 0.08 σ): float32 statistics keep the error at that level
    assert np.abs(tf.cast(half, tf.float32).numpy() - want).max() < 0.15


@pytest.mark.parametrize("pad", [1, 3])
def test_reflection_pad_equals_mirror_pad(pad):
    import tensorflow as tf

    x = np.random.default_rng(pad).normal(size=(2, 7, 9, 3)).astype(np.float32)
    want = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT").numpy()
    np.testing.assert_array_equal(networks.ReflectionPad2D(pad)(x).numpy(), want)
    small = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    y = networks.ReflectionPad2D(1)(small).numpy()[0, :, :, 0]
    assert y.shape == (6, 6) and y[0, 1] == small[0, 1, 0, 0] and y[1, 0] == small[0, 0, 1, 0]


@pytest.mark.parametrize(("kernel", "size"), [(7, 38), (7, 21), (3, 34), (4, 35), (5, 20)])
def test_narrow_conv_on_space_to_depth_blocks_equals_the_plain_convolution(kernel, size):
    """Even output sizes take the space-to-depth path (odd ones fall back): same sums, same weights."""
    import tensorflow as tf

    layer = networks.NarrowConv2D(3, kernel, kernel_initializer="glorot_uniform", bias_initializer="ones")
    x = np.random.default_rng(kernel).normal(size=(2, size, size + 2, 16)).astype(np.float32)
    got = layer(x).numpy()
    want = (tf.nn.conv2d(x, layer.kernel, 1, "VALID") + layer.bias).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("pixels", [0, 127, 128, 255])
def test_model_range_round_trip(pixels):
    values = networks.to_model_range(np.array([pixels], np.uint8))
    assert -1 <= float(values[0]) <= 1
    assert int(networks.from_model_range(values)[0]) == pixels


def test_flip_ensemble_cancels_a_grid_tied_pattern_and_keeps_a_mirror_equivariant_translation():
    """A 'generator' = a per-pixel translation (it mirrors with its input) + a fixed period-4
    pattern tied to the output grid (a transposed upsampler's texture): the ensemble keeps the
    translation exactly and leaves only the pattern's mirror-symmetric part, with no Nyquist
    (period-2) component and under half of its power."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    cell = rng.normal(0, 0.1, (4, 4, 3)).astype(np.float32)
    pattern = np.tile(cell, (8, 8, 1))[None]  # 32 × 32, period 4 on both axes
    translate = lambda x: tf.tanh(0.8 * x) - 0.1
    x = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))

    assert np.allclose(networks.flip_ensemble(translate, x), translate(x), atol=1e-6)
    residue = (networks.flip_ensemble(lambda v: translate(v) + pattern, x) - translate(x)).numpy()[0]
    symmetric = (cell + cell[::-1] + cell[:, ::-1] + cell[::-1, ::-1]) / 4  # phase p ↔ 3 − p per axis
    np.testing.assert_allclose(residue, np.tile(symmetric, (8, 8, 1)), atol=1e-6)
    nyquist = lambda p: np.abs(np.fft.fft2(p, axes=(0, 1))[[0, 16, 16], [16, 0, 16]]).max()
    assert nyquist(residue) < 1e-4 < nyquist(pattern[0])
    power = lambda p: ((p - p.mean((0, 1))) ** 2).sum()
    assert power(residue) < 0.5 * power(pattern[0])


@pytest.mark.parametrize("name", sorted(SHIFT_STEPS))
def test_shift_ensemble_cancels_the_mirror_symmetric_pattern_that_flips_keep(name):
    """A grid-tied period-4 pattern that is symmetric under both mirrors passes `flip_ensemble`
    whole; each shift ensemble, served by its name, keeps the translation exactly (the crops are
    in register) and leaves only the pattern's quarter-frequency components (a, b) with
    a·rows + b·columns ≡ 0 (mod 4) for its step (rows, columns)."""
    import tensorflow as tf

    rng = np.random.default_rng(4)
    cell = rng.normal(0, 0.1, (4, 4, 3)).astype(np.float32)
    cell = (cell + cell[::-1] + cell[:, ::-1] + cell[::-1, ::-1]) / 4  # phase p ↔ 3 − p per axis
    grid_tied = lambda v: np.tile(cell, (v.shape[1] // 4, v.shape[2] // 4, 1))[None]
    translate = lambda x: tf.tanh(0.8 * x) - 0.1
    x = tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    generator = lambda v: translate(v) + grid_tied(v)
    served = networks.served(generator, name)
    rows, columns = SHIFT_STEPS[name]

    assert np.allclose(networks.served(translate, name)(x), translate(x), atol=1e-6)
    np.testing.assert_allclose((networks.flip_ensemble(generator, x) - translate(x))[1], grid_tied(x)[0], atol=1e-6)
    residue = (served(x) - translate(x)).numpy()[0]
    mean_over_steps = sum(np.roll(cell, (-k * rows, -k * columns), (0, 1)) for k in range(4)) / 4
    np.testing.assert_allclose(residue, np.tile(mean_over_steps, (8, 8, 1)), atol=1e-6)
    spectrum = np.abs(np.fft.fft2(residue, axes=(0, 1)))[::8, ::8].max(-1)  # the quarter frequencies
    a, b = np.indices((4, 4))
    kept = (a * rows + b * columns) % 4 == 0
    assert spectrum[~kept].max() < 1e-4 < spectrum[kept][1:].max()


def test_served_knows_only_the_listed_self_ensembles():
    network = lambda x: x
    assert networks.served(network, "none") is network
    with pytest.raises(ValueError, match="flips"):
        networks.served(network, "eightfold")


def test_building_an_rdn_writes_no_file_into_the_working_directory(tmp_path):
    """ISR's import attaches a FileHandler on `./log_file`; a worker's directory stays clean."""
    root = Path(__file__).resolve().parents[2]
    code = "from pipeline.networks import rdn; rdn(C=1, D=1, G=4, G0=4)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True, capture_output=True)
    assert list(tmp_path.iterdir()) == []
