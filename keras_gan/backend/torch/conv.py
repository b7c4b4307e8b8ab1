"""Channels-last 2D convolutions on PyTorch without layout copies.

Keras's PyTorch backend runs a channels-last convolution as: permute the
input to NCHW and copy it contiguous, copy it again into PyTorch's
channels-last memory format, convolve, permute back; its transposed
convolution also computes a larger output and crops it. A channels-last
(NHWC) tensor permuted to NCHW already *is* PyTorch's channels-last memory
format, which oneDNN convolves directly, and Keras's "same" padding is
symmetric for the usual GAN kernels (3x3 stride 1, 4x4 stride 2, 1x1), so
both copies and the crop can go: `conv2d` and `conv2d_transpose` compute
`keras.ops.conv` / `keras.ops.conv_transpose` that way, and return None
where they do not apply (asymmetric padding, dilation, output padding,
channels-first data), leaving those to Keras.
"""

import torch.nn.functional as F
from keras import ops


def conv2d(inputs, kernel, strides, padding, dilation_rate, data_format):
    """`keras.ops.conv` of NHWC `inputs` and an `(h, w, in, out)` kernel."""
    if data_format != "channels_last" or tuple(dilation_rate) != (1, 1):
        return None
    inputs, kernel = ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel)
    pads = _conv_padding(inputs.shape[1:3], kernel.shape[:2], strides, padding)
    if pads is None:
        return None
    outputs = F.conv2d(
        inputs.permute(0, 3, 1, 2),
        kernel.permute(3, 2, 0, 1),
        stride=tuple(strides),
        padding=pads,
    )
    return outputs.permute(0, 2, 3, 1)


def conv2d_transpose(inputs, kernel, strides, padding):
    """`keras.ops.conv_transpose` of NHWC `inputs` and an `(h, w, out, in)`
    kernel, without dilation or output padding (`keras_gan.layers` calls it
    only then)."""
    inputs, kernel = ops.convert_to_tensor(inputs), ops.convert_to_tensor(kernel)
    pads = []
    for size, stride in zip(kernel.shape[:2], strides, strict=True):
        # "same": output = input * stride, from torch's (input - 1) * stride
        # + size - 2 * pad; "valid": no padding, output (input - 1) * stride
        # + size, as in Keras, when size >= stride.
        if size < stride:
            return None
        if padding == "valid":
            pads.append(0)
        elif (size - stride) % 2 == 0:
            pads.append((size - stride) // 2)
        else:
            return None
    outputs = F.conv_transpose2d(
        inputs.permute(0, 3, 1, 2),
        kernel.permute(3, 2, 0, 1),  # (in, out, h, w)
        stride=tuple(strides),
        padding=tuple(pads),
    )
    return outputs.permute(0, 2, 3, 1)


def _conv_padding(spatial, kernel_size, strides, padding):
    # Keras's "same": total padding max((out - 1) * stride + size - in, 0)
    # with out = ceil(in / stride); symmetric only when that total is even.
    if padding == "valid":
        return (0, 0)
    pads = []
    for length, size, stride in zip(spatial, kernel_size, strides, strict=True):
        out = -(-length // stride)
        total = max((out - 1) * stride + size - length, 0)
        if total % 2:
            return None
        pads.append(total // 2)
    return tuple(pads)
