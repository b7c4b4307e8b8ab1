"""Latent noise: standard normal vectors from a counter-based hash generator.

One function draws every latent of the library (training steps, `generate`,
sample grids, the exported `generate` signature), on every Keras backend, so
the same seed gives the same latents eagerly, in a compiled step, on
TensorFlow, JAX and PyTorch, and in TF Serving.

Why not `keras.random.normal`: each backend has its own generator (the same
seed gives other numbers on JAX than on TensorFlow), and under XLA on CPU
TensorFlow's stateless generators are slow. Measured on a 2-core CPU inside an
XLA loop, one (256, 100) draw costs ~3 ms with TensorFlow's default algorithm,
~0.53 ms with Philox and Box-Muller, and ~0.09 ms here. Here each value is a
counter-based hash: the "lowbias32" integer hash of Chris Wellons (full
avalanche, every output bit depends on every input bit) applied to the value's
index and the two words of the seed, as in counter-based generators such as
Philox or Squares. The hash runs on int32 in `keras.ops`: multiplication wraps
modulo 2**32 on every backend, and logical right shifts are arithmetic shifts
masked to the low bits, so the bits are identical everywhere. The inverse
normal CDF maps the top 24 bits, as uniforms in (0, 1), to normals, through
Giles's single-precision `erfinv` (written here in `keras.ops`: the backends'
own `erfinv` kernels disagree by up to 6e-5 in the tails, XLA's with
TensorFlow's too).
"""

import math

import keras
import numpy as np
from keras import ops

# 2**32 / golden ratio, as int32: spreads consecutive keys apart.
GOLDEN = np.int32(0x9E3779B9 - 2**32)
_MULTIPLIER_1 = np.int32(0x7FEB352D)
_MULTIPLIER_2 = np.int32(0x846CA68B - 2**32)


def _shift_right(x, bits):
    # Logical shift of int32 words: the arithmetic shift, sign bits masked off.
    return ops.bitwise_and(ops.right_shift(x, bits), np.int32((1 << (32 - bits)) - 1))


def hash32(x):
    """lowbias32 on int32 words (read as uint32 bit patterns).

    x ^= x >> 16; x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16.
    """
    x = ops.bitwise_xor(x, _shift_right(x, 16))
    x = ops.multiply(x, _MULTIPLIER_1)
    x = ops.bitwise_xor(x, _shift_right(x, 15))
    x = ops.multiply(x, _MULTIPLIER_2)
    return ops.bitwise_xor(x, _shift_right(x, 16))


def seed_words(seed):
    """A seed (int, `(2,)` integers or a `SeedGenerator`) -> `(2,)` int32.

    A `SeedGenerator` is advanced by one, so each call inside a compiled step
    gets fresh noise. Integer seeds wrap modulo 2**32.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    if isinstance(seed, (int, np.integer)):
        seed = np.array([int(seed) % 2**32, 0], np.uint32).view(np.int32)
    elif isinstance(seed, (list, tuple, np.ndarray)):
        seed = (np.asarray(seed, np.int64).reshape(-1) % 2**32).astype(np.uint32)
        seed = seed.view(np.int32)
    seed = ops.convert_to_tensor(seed)
    if len(seed.shape) == 0:
        seed = ops.stack([seed, ops.zeros_like(seed)])
    if seed.dtype != "int32":
        seed = ops.cast(seed, "int32")  # wraps modulo 2**32 on every backend
    return seed


def random_bits(count, seed, start=0):
    """`count` hashed int32 words, a pure function of `(index, seed)`.

    Args:
        count: int or scalar int tensor.
        seed: a `(2,)` int32 tensor from `seed_words`.
        start: index of the first word: the words `start, ..., start +
            count - 1` of the seed's stream, so that the replicas of a
            distributed step can each draw their own slice of one draw.
    """
    index = ops.add(ops.arange(count, dtype="int32"), ops.cast(start, "int32"))
    key0 = hash32(ops.add(seed[0], GOLDEN))
    key1 = hash32(ops.bitwise_xor(seed[1], GOLDEN))
    return hash32(ops.bitwise_xor(hash32(ops.bitwise_xor(index, key0)), key1))


def uniforms(count, seed, start=0):
    """`count` float32 uniforms in (0, 1) from the top 23 bits k of the hash:
    (k + 1/2) / 2**23, exact in float32 (24 significant bits) and never 0 or
    1. (With 24 bits, k + 1/2 would round up to 2**24 for the largest k.)
    `start` as in `random_bits`."""
    top = ops.cast(_shift_right(random_bits(count, seed, start), 9), "float32")
    return (top + 0.5) * 2.0**-23


# Giles 2010, "Approximating the erfinv function" (GPU Computing Gems), the
# single-precision polynomials in w = -log(1 - x^2), split at w = 5: relative
# error below 4e-7 on (-1, 1).
_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
            0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
            1.50140941)  # fmt: skip
_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
         0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
         2.83297682)  # fmt: skip


def _polynomial(coefficients, w):
    p = coefficients[0]
    for coefficient in coefficients[1:]:
        p = coefficient + p * w
    return p


def erfinv(x):
    """The inverse error function of `x` in (-1, 1), in `keras.ops` and in
    `x`'s dtype: the same bits on every backend up to the backends' `log` and
    `sqrt`. (The polynomials are single-precision: relative error below 4e-7
    in float64 too.)"""
    w = -ops.log((1.0 - x) * (1.0 + x))
    central = _polynomial(_CENTRAL, w - 2.5)
    tail = _polynomial(_TAIL, ops.sqrt(w) - 3.0)
    return ops.where(w < 5.0, central, tail) * x


def latent_noise(num_images, latent_dim, seed, dtype="float32", first_image=0):
    """Draws `(num_images, latent_dim)` standard normal latents.

    Args:
        num_images: int or scalar int tensor.
        latent_dim: int, size of each latent vector.
        seed: an int, a `(2,)` integer tensor, or a
            `keras.random.SeedGenerator` (advanced by one, so each call inside
            a compiled step gets fresh noise).
        dtype: `"float32"` or `"float64"`: the inverse normal CDF is
            computed in it (the 24 random bits per value are exact in both).
        first_image: index of the first latent in the seed's stream: rows
            `first_image, ...` of the draw of `first_image + num_images`
            latents (a replica's slice of a distributed step's draw).

    Returns:
        A tensor `(num_images, latent_dim)` of `dtype`.

    Example:

    >>> z = latent_noise(4, 100, seed=0)
    >>> tuple(z.shape)
    (4, 100)
    """
    words = seed_words(seed)
    bits = random_bits(num_images * latent_dim, words, first_image * latent_dim)
    # The top 24 bits k as 2u - 1 = (k - (2**23 - 1/2)) / 2**23, u uniform in
    # (0, 1): exact in float32 and never +-1, where erfinv is infinite.
    top = ops.cast(_shift_right(bits, 8), dtype)
    centred = (top - (2.0**23 - 0.5)) * 2.0**-23
    # TensorFlow's non-XLA erfinv returns inf at 1 - 2**-24 (XLA's does not):
    # clip the two outermost values (probability 2**-24 each) one step in.
    centred = ops.clip(centred, -(1.0 - 2.0**-23), 1.0 - 2.0**-23)
    normal = math.sqrt(2.0) * erfinv(centred)
    return ops.reshape(normal, (num_images, latent_dim))
