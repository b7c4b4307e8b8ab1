"""keras_gan's Conv2D and Conv2DTranspose compute what Keras's do (run under
each backend; on PyTorch they take their own channels-last path, on JAX the
transposed one is a matmul and shifted adds)."""

import keras
import numpy as np
import pytest
from backend_helpers import gradients
from backend_helpers import numpy

from keras_gan import layers as gan_layers

pytestmark = pytest.mark.backends

# TensorFlow 2.21's oneDNN Conv2DBackpropFilter corrupts the heap (the process
# aborts, or fails later) when the stride exceeds the kernel: a TensorFlow bug,
# not Keras's or ours. The case is here for PyTorch's fallback to Keras.
_STRIDE_OVER_KERNEL_ON_TF = pytest.mark.skipif(
    keras.config.backend() == "tensorflow",
    reason="TensorFlow's oneDNN filter gradient corrupts memory when stride > kernel",
)

# (layer, input side, kernel, stride, padding): the architectures' shapes, and
# ones the PyTorch and JAX paths leave to Keras (odd total padding, stride >
# kernel).
CASES = [
    ("Conv2D", 28, 4, 2, "same"),
    ("Conv2D", 7, 3, 1, "same"),
    ("Conv2D", 8, 1, 1, "valid"),
    ("Conv2D", 8, 1, 1, "same"),
    ("Conv2D", 8, 1, 2, "same"),
    ("Conv2D", 9, 4, 1, "same"),
    ("Conv2D", 9, 3, 2, "valid"),
    ("Conv2DTranspose", 7, 4, 2, "same"),
    ("Conv2DTranspose", 5, 3, 1, "same"),
    ("Conv2DTranspose", 5, 3, 2, "same"),
    ("Conv2DTranspose", 5, 3, 2, "valid"),
    ("Conv2DTranspose", 6, 5, 3, "valid"),
    pytest.param("Conv2DTranspose", 5, 1, 2, "valid", marks=_STRIDE_OVER_KERNEL_ON_TF),
]


@pytest.mark.parametrize("name, side, kernel, stride, padding", CASES)
def test_same_outputs_and_gradients_as_keras(name, side, kernel, stride, padding):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(3, side, side, 5)).astype("float32")
    options = {
        "filters": 6,
        "kernel_size": kernel,
        "strides": stride,
        "padding": padding,
    }
    ours = getattr(gan_layers, name)(**options, activation="relu")
    theirs = getattr(keras.layers, name)(**options, activation="relu")
    ours.build(images.shape)
    theirs.build(images.shape)
    theirs.set_weights(ours.get_weights())
    x = keras.ops.convert_to_tensor(images)
    np.testing.assert_allclose(numpy(ours(x)), numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    shape = ours.compute_output_shape(images.shape)[1:]
    weights = keras.ops.convert_to_tensor(rng.normal(size=shape).astype("float32"))

    def objective(layer):
        return lambda: keras.ops.sum(layer(x) * weights)

    for a, b in zip(
        gradients(objective(ours), ours.trainable_variables),
        gradients(objective(theirs), theirs.trainable_variables),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_the_architectures_convolutions_take_the_pytorch_path():
    if keras.config.backend() != "torch":
        pytest.skip("the PyTorch path")
    from keras_gan.backend.torch import conv

    x = keras.ops.ones((2, 8, 8, 4))
    kernel = keras.ops.ones((4, 4, 4, 3))
    assert conv.conv2d(x, kernel, (2, 2), "same", (1, 1), "channels_last") is not None
    assert conv.conv2d(x, kernel, (1, 1), "same", (1, 1), "channels_last") is None
    transposed = keras.ops.ones((4, 4, 3, 4))  # (h, w, out, in)
    assert conv.conv2d_transpose(x, transposed, (2, 2), "same") is not None


def test_the_matmul_convolutions_take_the_jax_path():
    if keras.config.backend() != "jax":
        pytest.skip("the JAX path")
    from keras_gan.backend.jax import conv

    x = keras.ops.ones((2, 8, 8, 4))
    kernel = keras.ops.ones((4, 4, 3, 4))  # (h, w, out, in)
    assert conv.conv2d_transpose(x, kernel, (2, 2), "same") is not None
    odd = keras.ops.ones((3, 3, 3, 4))  # "same" would crop 1 row: Keras's
    assert conv.conv2d_transpose(x, odd, (2, 2), "same") is None
    shortcut = keras.ops.ones((1, 1, 4, 3))
    plain = ((1, 1), "valid", (1, 1), "channels_last")
    assert conv.conv2d(x, shortcut, *plain) is not None
    assert conv.conv2d(x, kernel, *plain) is None


def test_saved_with_their_own_class():
    layer = gan_layers.Conv2D(4, 3, padding="same")
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "keras_gan>Conv2D"
    restored = keras.saving.deserialize_keras_object(config)
    assert isinstance(restored, gan_layers.Conv2D)
    assert restored.get_config() == layer.get_config()
