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
import logging
import threading
from collections.abc import Callable, Iterator

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from pipeline.manifests import SELF_ENSEMBLES, SHIFT_STEPS


def _init() -> keras.initializers.Initializer:
    """The reference implementation's init, N(0, 0.02), drawn afresh for each convolution.

    One per layer: a Keras initializer instance holds one seed, so a shared instance gives every
    layer of a shape the same weights (both discriminators, every residual block alike). Each new
    instance takes its seed from Python's generator, which `keras.utils.set_random_seed` seeds, so
    a seeded run initialises the same in every process.
    """
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


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
        # Mirrored slices joined to the tensor: tf.pad(mode="REFLECT")'s values without MirrorPad,
        # a slow kernel on CPU (docs/performance.md).
        p = self.pad
        x = tf.concat([x[:, p:0:-1], x, x[:, -2:-p - 2:-1]], axis=1)
        return tf.concat([x[:, :, p:0:-1], x, x[:, :, -2:-p - 2:-1]], axis=2)

    def compute_output_shape(self, shape):
        grow = lambda n: None if n is None else n + 2 * self.pad
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
        # An image's own statistics are those of a batch of one, so the images go side by side
        # along the channels and one fused batch-norm kernel (oneDNN on CPU; float32 statistics
        # for bf16 inputs) normalises them all, in fewer passes over memory than moments + scale.
        shape = tf.shape(x)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        side_by_side = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c])
        ones = tf.ones([n * c], tf.float32)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(side_by_side, ones, tf.zeros_like(ones),
                                                   epsilon=self.epsilon, is_training=True)
        return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3])

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable("seasons")
class NarrowConv2D(layers.Conv2D):
    """A stride-1 'valid' convolution to a few channels (the generator's RGB output layer).

    oneDNN computes output channels in blocks of 16, so three of them waste most of each block.
    On 2×2 space-to-depth blocks the same sums become a 4×4 convolution to 4 × 3 channels (one
    per output pixel of a block): the same weights, fewer wasted lanes (docs/performance.md).
    """

    def convolution_op(self, inputs, kernel):
        k = self.kernel_size[0]
        rows, cols = inputs.shape[1], inputs.shape[2]
        if (self.strides != (1, 1) or self.padding != "valid" or k != self.kernel_size[1]
                or rows is None or cols is None or (rows - k + 1) % 2 or (cols - k + 1) % 2):
            return super().convolution_op(inputs, kernel)
        taps = k + 1 + (k + 1) % 2  # an even kernel that covers k taps at either offset in a block
        blocks = inputs
        if (extra := taps - 1 - k):  # an even k needs one more row and column of input
            blocks = tf.pad(blocks, [[0, 0], [0, extra], [0, extra], [0, 0]])
        blocks = tf.nn.space_to_depth(blocks, 2)
        cin, cout = kernel.shape[2], kernel.shape[3]
        phases = []
        for p in range(2):  # output pixel (2u + p, 2v + q) sees input taps p … p + k - 1
            for q in range(2):
                shifted = tf.pad(kernel, [[p, taps - k - p], [q, taps - k - q], [0, 0], [0, 0]])
                shifted = tf.reshape(shifted, [taps // 2, 2, taps // 2, 2, cin, cout])
                phases.append(tf.reshape(tf.transpose(shifted, [0, 2, 1, 3, 4, 5]),
                                         [taps // 2, taps // 2, 4 * cin, cout]))
        outputs = tf.nn.conv2d(blocks, tf.concat(phases, axis=3), 1, "VALID")
        return tf.nn.depth_to_space(outputs, 2)


def _conv_norm_relu(x, filters: int, kernel: int, stride: int, name: str):
    """Conv → instance norm → ReLU, the unit every generator stage is built of."""
    x = layers.Conv2D(filters, kernel, strides=stride, kernel_initializer=_init(), name=name)(x)
    x = InstanceNorm(name=f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _residual_block(x, filters: int, name: str):
    """Two reflection-padded 3×3 convolutions with a skip: the generator's transform stage."""
    y = ReflectionPad2D(1, name=f"{name}_pad1")(x)
    y = _conv_norm_relu(y, filters, 3, 1, f"{name}_conv1")
    y = ReflectionPad2D(1, name=f"{name}_pad2")(y)
    y = layers.Conv2D(filters, 3, kernel_initializer=_init(), name=f"{name}_conv2")(y)
    y = InstanceNorm(name=f"{name}_conv2_norm")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def _downsample(x, filters: int, name: str):
    """Stride-2 3×3 convolution with one pixel of zero padding (PyTorch `padding=1`)."""
    x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
    return _conv_norm_relu(x, filters, 3, 2, name)


#: How the generator doubles its resolution, twice: `transpose` is the paper's stride-2
#: transposed convolution (the PyTorch reference's layers, so its weights import); `resize` is
#: nearest-neighbour ×2 then a 3×3 convolution (Odena et al. 2016, "Deconvolution and
#: Checkerboard Artifacts"): every output pixel gets the same number of taps, so it cannot
#: print the period-2/4 pattern a transposed convolution's uneven overlap does.
UPSAMPLERS = ("transpose", "resize")


def _upsample(x, filters: int, name: str, mode: str = "transpose"):
    """Double the resolution: transposed convolution or resize-convolution (see UPSAMPLERS).

    `transpose` is cropped like PyTorch `padding=1, output_padding=1`: the full ('valid')
    transposed output has 2n+1 rows; PyTorch drops the first row and keeps the next 2n.
    """
    if mode == "transpose":
        x = layers.Conv2DTranspose(
            filters, 3, strides=2, padding="valid", kernel_initializer=_init(), name=name
        )(x)
        x = layers.Cropping2D(((1, 0), (1, 0)), name=f"{name}_crop")(x)
    elif mode == "resize":
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_resize")(x)
        x = ReflectionPad2D(1, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, 3, kernel_initializer=_init(), name=name)(x)
    else:
        raise ValueError(f"unknown upsampler {mode!r}; known: {', '.join(UPSAMPLERS)}")
    x = InstanceNorm(name=f"{name}_norm")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


#: Per axis, the four phase taps a stride-2 3×3 upsampler gives (even pixel 2m: x[m-1], x[m];
#: odd pixel 2m+1: x[m], x[m+1]) as sums of a resize-convolution's taps v0 v1 v2 …
_RESIZE_TAPS = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 1]], np.float64)
#: … and of a transposed convolution's w0 w1 w2, cropped as `_upsample` crops it.
_TRANSPOSE_TAPS = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], np.float64)
#: The least-squares map from a transposed kernel's taps to the nearest resize kernel's, per axis.
_TRANSPOSE_TO_RESIZE = np.linalg.pinv(_RESIZE_TAPS) @ _TRANSPOSE_TAPS


def resize_kernel_from_transpose(kernel: np.ndarray) -> np.ndarray:
    """The resize-convolution kernel (3, 3, in, out) nearest to a stride-2 transposed one (3, 3, out, in).

    Per axis, the transposed convolution gives an even output pixel w1·x[m] and an odd one
    w2·x[m] + w0·x[m+1]; the resize-convolution gives v0·x[m-1] + (v1+v2)·x[m] and
    (v0+v1)·x[m] + v2·x[m+1]. Least squares over these taps (in 2-D their Kronecker square)
    keeps what the two can share and drops the rest, which is the checkerboard: a trained
    transpose generator becomes a resize one that starts where it stood (`copy_generator`).
    """
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"expected a 3×3 transposed kernel, got {kernel.shape}")
    m = _TRANSPOSE_TO_RESIZE
    return np.einsum("ak,bl,kloi->abio", m, m, np.asarray(kernel, np.float64)).astype(kernel.dtype)


def copy_generator(source: keras.Model, target: keras.Model) -> None:
    """Copy a generator's weights into one of the same sizes, layer by layer name; a transposed
    upsampler copied into a resize one goes through `resize_kernel_from_transpose`."""
    for layer in target.layers:
        if not layer.weights:
            continue
        copied = source.get_layer(layer.name)
        values = copied.get_weights()
        if isinstance(copied, layers.Conv2DTranspose) and not isinstance(layer, layers.Conv2DTranspose):
            values[0] = resize_kernel_from_transpose(values[0])
        layer.set_weights(values)


def resnet_generator(ngf: int = 64, n_blocks: int = 9, upsample: str = "transpose",
                     name: str = "generator") -> keras.Model:
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
    x = _upsample(x, ngf * 2, "up1", upsample)
    x = _upsample(x, ngf, "up2", upsample)
    x = ReflectionPad2D(3, name="out_pad")(x)
    x = NarrowConv2D(3, 7, kernel_initializer=_init(), name="out")(x)
    outputs = layers.Activation("tanh", name="tanh", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def _mean_of_copies(network: Callable[[tf.Tensor], tf.Tensor], copies: list[tf.Tensor],
                    restore: Callable[[tf.Tensor, int], tf.Tensor]) -> tf.Tensor:
    """One call of `network` on `copies` stacked as one batch; the mean of its outputs, the i-th
    put back into register by `restore(output, i)`."""
    outputs = tf.split(network(tf.concat(copies, 0)), len(copies), axis=0)
    return tf.add_n([restore(y, i) for i, y in enumerate(outputs)]) / len(copies)


#: Two stride-2 transposed convolutions stack into a pattern of period 4 pixels: its energy sits
#: at multiples of a quarter of the sampling frequency on each axis.
CHECKERBOARD_PERIOD = 4

#: The four mirrorings of an NHWC batch by the axes they reverse; each is its own inverse.
_MIRRORS = ((), (2,), (1,), (1, 2))


def flip_ensemble(network: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """The mean of `network` over the four mirror images of `x` (as is, left–right, top–bottom,
    both), each output mirrored back: one call on a batch four times as large.

    A transposed upsampler prints the same period-4 pattern on every output, tied to the output
    grid, whatever the input. A mirrored input lands under the mirrored pattern (a side of 4k
    pixels maps phase p to 3 − p), so in the mean every part of the pattern that is not
    symmetric on both axes cancels, while the translation, which mirrors with its input, stays
    (the geometric self-ensemble of Lim et al. 2017, EDSR, on two axes).
    """
    def mirror(v: tf.Tensor, i: int) -> tf.Tensor:  # its own inverse
        return tf.reverse(v, _MIRRORS[i]) if _MIRRORS[i] else v

    return _mean_of_copies(network, [mirror(x, i) for i in range(len(_MIRRORS))], mirror)


def shift_ensemble(network: Callable[[tf.Tensor], tf.Tensor], x: tf.Tensor,
                   step: tuple[int, int] = SHIFT_STEPS["shifts"]) -> tf.Tensor:
    """The mean of `network` over `x` displaced k·`step` pixels (rows down, columns right, mod 4)
    against the output grid, k = 0…3, each output cropped back into register: one call on a batch
    four times as large, each side 4 pixels longer (reflect-padded, so sides stay multiples of 4).

    The displaced copies land on a grid-tied period-4 pattern at four phases, so in the mean
    every component at quarter frequencies (a, b) with a·step[0] + b·step[1] ≢ 0 (mod 4)
    cancels, 12 of 15, mirror-symmetric ones included, which `flip_ensemble` keeps; a
    translation that moves with its input stays. Which 3 survive depends on the step
    (SHIFT_STEPS), so each generator is served with the step that leaves its weakest three
    (`python -m training checkerboard` measures them).
    """
    pad = CHECKERBOARD_PERIOD
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    shifts = [((k * step[0]) % pad, (k * step[1]) % pad) for k in range(pad)]
    copies = [padded[:, pad - dy:pad - dy + height + pad, pad - dx:pad - dx + width + pad] for dy, dx in shifts]

    def crop_back(y: tf.Tensor, i: int) -> tf.Tensor:
        dy, dx = shifts[i]
        return y[:, dy:dy + height, dx:dx + width]

    return _mean_of_copies(network, copies, crop_back)


def served(network: Callable[[tf.Tensor], tf.Tensor], self_ensemble: str) -> Callable[[tf.Tensor], tf.Tensor]:
    """`network` as a manifest says to serve one generator (`self_ensemble`, one of SELF_ENSEMBLES)."""
    if self_ensemble == "none":
        return network
    if self_ensemble == "flips":
        return lambda x: flip_ensemble(network, x)
    if self_ensemble in SHIFT_STEPS:
        return lambda x: shift_ensemble(network, x, SHIFT_STEPS[self_ensemble])
    raise ValueError(f"unknown self_ensemble {self_ensemble!r}; known: {', '.join(SELF_ENSEMBLES)}")


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
        x = layers.Conv2D(filters, 4, strides=stride, kernel_initializer=_init(), name=f"c{i}")(x)
        if i > 0:
            x = InstanceNorm(name=f"c{i}_norm")(x)
        x = layers.LeakyReLU(0.2, name=f"c{i}_lrelu")(x)
    x = layers.ZeroPadding2D(1, name="score_pad")(x)
    outputs = layers.Conv2D(1, 4, kernel_initializer=_init(), name="score", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def rdn(C: int, D: int, G: int, G0: int, x: int = 2) -> keras.Model:
    """The Residual Dense Network of the ISR package (idealo/image-super-resolution).

    D residual dense blocks of C densely connected 3×3 convolutions with G filters, fused to
    G0 features; upscaling by x with ISR's 'ups' block (the layout of its published weights:
    layer names F_m1, F_0, F_d_c, LFF_d, GFF_1, GFF_2, UPN1-3, SR). Input and output in [0, 1].
    The Keras model is ISR's own; ISR's `predict` (with its per-call progress bar) is never
    used: the registry calls the model through a tf.function.
    """
    # On import, ISR gives its utils module's logger a FileHandler writing `log_file` into the
    # current directory (ISR.utils.logger.get_logger), unless that logger has a handler already.
    isr_logger = logging.getLogger("ISR.utils.utils")
    if not isr_logger.handlers:
        isr_logger.addHandler(logging.NullHandler())
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
