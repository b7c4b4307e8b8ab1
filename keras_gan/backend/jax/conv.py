"""Channels-last 2D convolutions on JAX as matmuls, where XLA's CPU kernel
gradients of `lax` convolutions are slow.

Keras's JAX backend runs `conv_transpose` as `jax.lax.conv_transpose`, and
XLA's CPU backend differentiates it with respect to the kernel very slowly:
for the DCGAN's 7x7x128 -> 14x14x64 layer (4x4, stride 2, batch 128, 2-core
CPU) the kernel gradient took 482 ms against 21 ms for the forward pass and
17 ms for the input gradient, about 70% of the whole training step (and of the
hand-written `jax.jit` reference's step, which calls the same operation).

`conv2d_transpose` computes the same sum another way: every input pixel times
every kernel tap is one matmul, `(batch, h, w, in) x (kh, kw, out, in)`, and
tap `a` of input row `i` lands on output row `s * i + a`; writing `a = s * q
+ r`, output phase `r` is the sum over `q` of the matmul's products shifted by
`q` rows. The gradients are then a matmul and shifts too: 8.4 / 6.1 / 6.3 ms
for the same layer (forward / input / kernel gradient), equal to Keras's to
float32 rounding (`tests/test_conv_layers.py`).

`conv2d` is a matmul for 1x1 stride-1 kernels (the ResNet's shortcuts): at
batch 64, 28x28x128 -> 128, 7 / 7 / 15 ms against `lax.conv_general_dilated`'s
20 / 19 / 85 ms. Larger kernels stay with Keras: as patches and one matmul,
or as a sum of shifted matmuls, they measured 0.3-1.5x as fast on the
architectures' 3x3 and 4x4 shapes, slower on most.
"""

import jax.numpy as jnp
from keras import ops


def conv2d(inputs, kernel, strides, padding, dilation_rate, data_format):
    """`keras.ops.conv` of NHWC `inputs` and a 1x1 stride-1 `(1, 1, in, out)`
    kernel; None for other kernels and for channels-first data."""
    kernel = ops.convert_to_tensor(kernel)
    if (
        data_format != "channels_last"
        or tuple(kernel.shape[:2]) != (1, 1)
        or tuple(strides) != (1, 1)
    ):
        return None
    # "same" and "valid" agree for a 1x1 kernel, and dilation does not apply.
    return jnp.einsum("bhwc,co->bhwo", ops.convert_to_tensor(inputs), kernel[0, 0])


def conv2d_transpose(inputs, kernel, strides, padding):
    """`keras.ops.conv_transpose` of NHWC `inputs` and an `(h, w, out, in)`
    kernel, without dilation or output padding (`keras_gan.layers` calls it
    only then); None where it does not apply (as `keras_gan.backend.torch.conv`:
    asymmetric "same" padding, a kernel smaller than the stride), leaving
    those to Keras."""
    inputs, kernel = ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel)
    crops, taps = [], []
    for length, size, stride in zip(
        inputs.shape[1:3], kernel.shape[:2], strides, strict=True
    ):
        # Keras's output: length * stride ("same") or (length - 1) * stride +
        # size ("valid"), from the full (length - 1) * stride + size cropped
        # by (size - stride) / 2 on each side for "same".
        if size < stride or (padding == "same" and (size - stride) % 2):
            return None
        if padding == "same":
            start, output = (size - stride) // 2, length * stride
        else:
            start, output = 0, (length - 1) * stride + size
        crops.append((start, start + output))
        taps.append(-(-size // stride))  # q takes 0 .. ceil(size / stride) - 1
    (sh, sw), (qh, qw) = strides, taps
    _, height, width, _ = inputs.shape
    kh, kw, out_channels, _ = kernel.shape
    # Every input pixel times every tap: (batch, h, w, kh, kw, out).
    products = jnp.einsum("bhwc,ijoc->bhwijo", inputs, kernel)
    # Taps padded to whole strides and split a = s * q + r.
    products = jnp.pad(
        products, ((0, 0),) * 3 + ((0, qh * sh - kh), (0, qw * sw - kw), (0, 0))
    ).reshape(-1, height, width, qh, sh, qw, sw, out_channels)
    # Output row s * m + r sums the products of input row m - q, tap (q, r).
    full = 0
    for q1 in range(qh):
        for q2 in range(qw):
            shifted = jnp.pad(
                products[:, :, :, q1, :, q2, :, :],  # (batch, h, w, sh, sw, out)
                ((0, 0), (q1, qh - 1 - q1), (q2, qw - 1 - q2)) + ((0, 0),) * 3,
            )
            full = full + shifted
    # (batch, h + qh - 1, sh, w + qw - 1, sw, out) interleaves to full size.
    full = full.transpose(0, 1, 3, 2, 4, 5).reshape(
        -1, (height + qh - 1) * sh, (width + qw - 1) * sw, out_channels
    )
    (top, bottom), (left, right) = crops
    return full[:, top:bottom, left:right, :]
