"""The networks Seasons runs and trains: the CycleGAN ResNet generator, the 70×70 PatchGAN
discriminator (Zhu et al. 2017), and the RDN of the ISR package (Zhang et al. 2018).

The generator pads exactly as the PyTorch reference (junyanz/pytorch-CycleGAN-and-pix2pix)
does, so its published weights import with identical outputs: reflection padding before
every 7×7 and residual 3×3 convolution, one pixel of zero padding around each stride-2
convolution, and a transposed convolution cropped as PyTorch's `padding=1,
output_padding=1`. Keras's own `padding='same'` would shift both by one pixel.

Images enter the CycleGAN networks scaled to [-1, 1] (`to_model_range`) and leave through
tanh; the RDN works in [0, 1], as ISR does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import keras
import tensorflow as tf
from keras import layers

#: The init of the reference implementation: N(0, 0.02) for every convolution.
_INIT = keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def to_model_range(pixels: tf.Tensor) -> tf.Tensor:
    """uint8 pixels [0, 255] → float32 [-1, 1], as training and inference both scale."""
    return tf.cast(pixels, tf.float32) / 127.5 - 1.0


def from_model_range(values: tf.Tensor) -> tf.Tensor:
    """float [-1, 1] → uint8 [0, 255], rounded and clipped."""
    scaled = (tf.cast(values, tf.float32) + 1.0) * 127.5
    return tf.cast(tf.clip_by_value(tf.round(scaled), 0.0, 255.0), tf.uint8)


@keras.saving.register_keras_serializable("seasons")
class ReflectionPad2D(layers.Layer):
    """Mirror the border by `pad` pixels (PyTorch's ReflectionPad2d): no dark frame from zeros."""

    def __init__(self, pad: int, **kwargs):
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x):
        p = self.pad
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad  # noqa: E731
        return (shape[0], grow(shape[1]), grow(shape[2]), shape[3])

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


@keras.saving.register_keras_serializable("seasons")
class InstanceNorm(layers.Layer):
    """Normalise each image's channels over its own pixels (Ulyanov et al. 2016).

    Without an affine transform and with eps 1e-5, like the reference's
    `InstanceNorm2d(affine=False)`. Statistics are taken in float32 even when the layer runs
    in reduced precision, so bf16 inference does not lose the mean.
    """

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def call(self, x):
        x32 = tf.cast(x, tf.float32)
        mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
        return tf.cast((x32 - mean) * tf.math.rsqrt(variance + self.epsilon), x.dtype)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def _conv_norm_relu(x, filters: int, kernel: int, stride: int, name: str):
    """Conv → instance norm → ReLU, the unit every generator stage is built of."""
    x = layers.Conv2D(filters, kernel, strides=stride, kernel_initializer=_INIT, name=name)(x)
    x = InstanceNorm(name=f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _residual_block(x, filters: int, name: str):
    """Two reflection-padded 3×3 convolutions with a skip: the generator's transform stage."""
    y = ReflectionPad2D(1, name=f"{name}_pad1")(x)
    y = _conv_norm_relu(y, filters, 3, 1, f"{name}_conv1")
    y = ReflectionPad2D(1, name=f"{name}_pad2")(y)
    y = layers.Conv2D(filters, 3, kernel_initializer=_INIT, name=f"{name}_conv2")(y)
    y = InstanceNorm(name=f"{name}_conv2_norm")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def _downsample(x, filters: int, name: str):
    """Stride-2 3×3 convolution with one pixel of zero padding (PyTorch `padding=1`)."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return _conv_norm_relu(x, filters, 3, 2, name)


def _upsample(x, filters: int, name: str):
    """Stride-2 3×3 transposed convolution, cropped like PyTorch `padding=1, output_padding=1`.

    The full ('valid') transposed output has 2n+1 rows; PyTorch drops the first row and
    keeps the next 2n.
    """
    x = layers.Conv2DTranspose(
        filters, 3, strides=2, padding="valid", kernel_initializer=_INIT, name=name
    )(x)
    x = layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)
    x = InstanceNorm(name=f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def resnet_generator(ngf: int = 64, n_blocks: int = 9, name: str = "generator") -> keras.Model:
    """The CycleGAN ResNet generator: c7s1-ngf, d2ngf, d4ngf, n × R4ngf, u2ngf, u ngf, c7s1-3.

    Fully convolutional: any input whose sides are multiples of 4 gives an output of the
    same size. With ngf=64 and 9 blocks: 11,378,179 parameters, like the reference.
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = ReflectionPad2D(3, name="c7s1_pad")(inputs)
    x = _conv_norm_relu(x, ngf, 7, 1, "c7s1")
    x = _downsample(x, ngf * 2, "down1")
    x = _downsample(x, ngf * 4, "down2")
    for i in range(1, n_blocks + 1):
        x = _residual_block(x, ngf * 4, f"res{i}")
    x = _upsample(x, ngf * 2, "up1")
    x = _upsample(x, ngf, "up2")
    x = ReflectionPad2D(3, name="out_pad")(x)
    x = layers.Conv2D(3, 7, kernel_initializer=_INIT, name="out")(x)
    outputs = layers.Activation("tanh", name="tanh", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def patchgan_discriminator(ndf: int = 64, n_layers: int = 3, name: str = "discriminator"):
    """The 70×70 PatchGAN: C64-C128-C256-C512, then a 1-channel map of real/fake scores.

    Each output value judges one 70×70 patch of the input (with n_layers=3), so the loss
    looks at texture and local style rather than the whole composition. 4×4 kernels with
    one pixel of zero padding; no norm on the first layer; LeakyReLU 0.2; no sigmoid (LSGAN).
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = inputs
    filters = ndf
    for i in range(n_layers + 1):
        stride = 2 if i < n_layers else 1
        filters = ndf * min(2**i, 8)
        x = layers.ZeroPadding2D(1, name=f"c{i}_pad")(x)
        x = layers.Conv2D(filters, 4, strides=stride, kernel_initializer=_INIT, name=f"c{i}")(x)
        if i > 0:
            x = InstanceNorm(name=f"c{i}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"c{i}_lrelu")(x)
    x = layers.ZeroPadding2D(1, name="score_pad")(x)
    outputs = layers.Conv2D(1, 4, kernel_initializer=_INIT, name="score", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def rdn(C: int, D: int, G: int, G0: int, x: int = 2) -> keras.Model:
    """The Residual Dense Network of the ISR package (idealo/image-super-resolution).

    D residual dense blocks of C densely connected 3×3 convolutions with G filters, fused to
    G0 features; upscaling by x with ISR's 'ups' block (the layout of its published weights:
    layer names F_m1, F_0, F_d_c, LFF_d, GFF_1, GFF_2, UPN1-3, SR). Input and output in [0, 1].
    The Keras model is ISR's own; ISR's `predict` (with its per-call progress bar) is never
    used: the registry calls the model through a tf.function.
    """
    from ISR.models.rdn import RDN

    network = RDN(arch_params={"C": C, "D": D, "G": G, "G0": G0, "x": x}, patch_size=None)
    model = network.model
    model.name = "rdn"
    return model


@contextlib.contextmanager
def dtype_policy(policy: str | None) -> Iterator[None]:
    """Build networks whose layers compute in `policy` (e.g. 'mixed_bfloat16') inside this block.

    Variables stay float32, so the same weight files load; activations and matmuls run in the
    reduced type, which oneDNN maps onto AVX-512 BF16 / AMX where the CPU has them. Layers built
    as float32 on purpose (the generator's tanh, the PatchGAN score) keep it; InstanceNorm takes
    its statistics in float32 regardless. Building under the policy (rather than cloning a
    float32 model) builds each network once. Keras's policy is process-wide, so such builds are
    serialised by a lock.
    """
    if not policy:
        yield
        return
    with _policy_lock:
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy(policy)
        try:
            yield
        finally:
            keras.mixed_precision.set_global_policy(previous)


_policy_lock = threading.RLock()
