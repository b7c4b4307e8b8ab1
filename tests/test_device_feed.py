"""JAX and PyTorch: `fit` on a `dataset_from_arrays` pipeline gathers batches
on the device.

What it must equal, to the bit: `fit` on the same pipeline through tf.data
(a `map` of the identity hides the source), whatever the epochs, the steps
per execution, `steps_per_epoch` crossing passes, uint8 or float images,
labels or none.
"""

import warnings

import keras
import numpy as np
import pytest
from backend_helpers import numpy
from helpers import IMAGE_SHAPE

import keras_gan
from keras_gan.data import dataset_from_arrays

pytestmark = [
    pytest.mark.backends,
    pytest.mark.skipif(
        keras.config.backend() == "tensorflow",
        reason="the TensorFlow trainer streams through tf.data",
    ),
]


class FeedProbe(keras.callbacks.Callback):
    """Records, per batch, whether `fit` was fed from the device."""

    def __init__(self):
        super().__init__()
        self.fed = []

    def on_train_batch_end(self, batch, logs=None):
        self.fed.append(self.model._feed is not None)


def _gan(steps_per_execution, num_classes=None):
    keras.utils.set_random_seed(0)
    # The conditional pair is a DCGAN: batch norm statistics are state too.
    architecture = "mlp" if num_classes is None else "dcgan"
    generator, discriminator = keras_gan.networks.build(
        architecture, 4, IMAGE_SHAPE, num_classes
    )
    gan = keras_gan.GAN(generator, discriminator, seed=0, num_classes=num_classes)
    gan.compile(steps_per_execution=steps_per_execution)
    return gan


def _train(dataset, steps_per_execution, num_classes=None):
    gan, probe = _gan(steps_per_execution, num_classes), FeedProbe()
    with warnings.catch_warnings():
        # steps_per_epoch=4 over passes of 10 batches runs out mid-epoch.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        gan.fit(dataset, epochs=2, verbose=0, callbacks=[probe])
        gan.fit(dataset, epochs=3, steps_per_epoch=4, verbose=0, callbacks=[probe])
    return gan, probe.fed


@pytest.mark.parametrize("steps_per_execution", [1, 3])
@pytest.mark.parametrize("pixels", ["uint8", "float32"])
@pytest.mark.parametrize("num_classes", [None, 3])
def test_device_feed_trains_exactly_as_the_tf_data_pipeline(
    steps_per_execution, pixels, num_classes
):
    if keras.config.backend() == "torch" and steps_per_execution > 1:
        pytest.skip("Keras's PyTorch trainer runs one step per call")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (41, *IMAGE_SHAPE)).astype("uint8")
    if pixels == "float32":
        images = (images / 127.5 - 1.0).astype("float32")
    labels = None if num_classes is None else rng.integers(0, num_classes, 41)
    keras.utils.set_random_seed(0)  # before both pipelines' seeds are drawn
    fed, streamed = (
        dataset_from_arrays(images, labels, batch_size=4, seed=7) for _ in range(2)
    )
    streamed = streamed.map(lambda *batch: batch if len(batch) > 1 else batch[0])
    device_gan, device_fed = _train(fed, steps_per_execution, num_classes)
    tf_gan, tf_fed = _train(streamed, steps_per_execution, num_classes)
    assert all(device_fed) and not any(tf_fed) and len(device_fed) == len(tf_fed)
    assert device_gan._feed is None  # only during fit
    for a, b in zip(device_gan.get_weights(), tf_gan.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for player in ("d_optimizer", "g_optimizer"):
        for a, b in zip(
            getattr(device_gan, player).variables,
            getattr(tf_gan, player).variables,
            strict=True,
        ):
            np.testing.assert_array_equal(numpy(a.value), numpy(b.value))
    steps = int(numpy(device_gan.d_optimizer.iterations.value))
    assert steps == int(numpy(tf_gan.d_optimizer.iterations.value)) > 2 * 10
    np.testing.assert_array_equal(
        numpy(device_gan.seed_generator.state.value),
        numpy(tf_gan.seed_generator.state.value),
    )


def test_device_feed_only_where_it_applies(monkeypatch):
    from keras_gan.backend import feed

    images = np.zeros((16, *IMAGE_SHAPE), "uint8")
    dataset = dataset_from_arrays(images, batch_size=4)
    gan = _gan(1)
    assert gan._device_feed({"x": dataset}) is not None
    assert gan._device_feed({"x": dataset.repeat()}) is None
    assert gan._device_feed({"x": images}) is None
    monkeypatch.setattr(feed, "DEVICE_DATA_MAX_BYTES", images.nbytes - 1)
    assert gan._device_feed({"x": dataset}) is None
    monkeypatch.undo()
    if keras.config.backend() == "torch":
        return  # always eager; nothing else turns the feed off
    eager = _gan(2)
    eager.compile(run_eagerly=True)
    assert eager._device_feed({"x": dataset}) is None
    unjitted = _gan(2)
    unjitted.compile(jit_compile=False)
    assert unjitted._device_feed({"x": dataset}) is None
