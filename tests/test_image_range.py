"""Images outside [-1, 1] never train silently: `fit` on an array refuses
them, any pipeline of integer images is refused at the first step, and the
library's own pipelines convert uint8."""

import numpy as np
import pytest
import tensorflow as tf
from helpers import IMAGE_SHAPE
from helpers import tiny_gan

import keras_gan
from keras_gan import InputError

PIXELS = np.random.default_rng(0).integers(0, 256, (32, *IMAGE_SHAPE), dtype=np.uint8)


def _compiled():
    gan = tiny_gan()
    gan.compile()
    return gan


def _weights(gan):
    return [w.copy() for w in gan.generator.get_weights()]


@pytest.mark.backends
@pytest.mark.parametrize(
    ("images", "fragment"),
    [
        (PIXELS, "uint8 images; expected floats in [-1, 1]"),
        (PIXELS.astype("float32"), "received values in [0, 255]"),
        (PIXELS.astype("float32") / 127.5 - 1 + 0.5, "expected floats scaled"),
    ],
    ids=["uint8", "float 0-255", "float shifted"],
)
def test_fit_refuses_arrays_outside_the_model_range(images, fragment):
    gan = _compiled()
    before = _weights(gan)
    with pytest.raises(InputError, match=fragment.replace("[", r"\[")):
        gan.fit(images, batch_size=8, epochs=1, verbose=0)
    for old, new in zip(before, _weights(gan), strict=True):
        np.testing.assert_array_equal(old, new)  # nothing trained


@pytest.mark.backends
def test_a_pipeline_of_integer_images_is_refused_at_its_first_step():
    dataset = tf.data.Dataset.from_tensor_slices(PIXELS).batch(8)
    with pytest.raises(InputError, match="uint8 images"):
        _compiled().fit(dataset, epochs=1, verbose=0)


@pytest.mark.backends
def test_the_librarys_pipeline_converts_uint8_and_trains():
    dataset = keras_gan.data.dataset_from_arrays(PIXELS, batch_size=8, seed=0)
    images = next(iter(dataset))
    assert images.dtype == tf.float32
    assert float(tf.reduce_min(images)) >= -1.0
    assert float(tf.reduce_max(images)) <= 1.0
    history = _compiled().fit(dataset, epochs=1, verbose=0)
    assert np.isfinite(history.history["d_loss"][0])


def test_fit_accepts_arrays_in_range():
    images = PIXELS.astype("float32") / 127.5 - 1
    history = _compiled().fit(images, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["g_loss"][0])
