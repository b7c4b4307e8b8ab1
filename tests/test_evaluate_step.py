"""`evaluate` and `fit(validation_data=...)`: D scored on held-out images."""

import keras
import numpy as np
import pytest
from helpers import LATENT_DIM
from helpers import tiny_gan
from helpers import tiny_images
from keras import ops

import keras_gan
from keras_gan import noise
from keras_gan.models.base import EVALUATION_SEED

pytestmark = pytest.mark.backends


def _state(gan):
    arrays = [*gan.generator.get_weights(), *gan.discriminator.get_weights()]
    for optimizer in (gan.d_optimizer, gan.g_optimizer):
        arrays += [ops.convert_to_numpy(v.value) for v in optimizer.variables]
    arrays.append(ops.convert_to_numpy(gan.seed_generator.state.value))
    return arrays


def _softplus(x):
    return np.logaddexp(0.0, x)


def test_evaluate_scores_the_discriminator_and_changes_nothing():
    gan = tiny_gan()
    gan.compile(r1=1.0)
    gan.fit(tiny_images(16), batch_size=4, epochs=1, verbose=0)
    held_out = tiny_images(8, seed=1)
    before = _state(gan)
    logs = gan.evaluate(held_out, batch_size=4, verbose=0, return_dict=True)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake"}
    for a, b in zip(before, _state(gan), strict=True):
        np.testing.assert_array_equal(a, b)
    # The definitions, by hand: fixed latents, inference mode.
    real = ops.convert_to_numpy(gan.discriminator(held_out)).ravel()
    z = noise.latent_noise(4, LATENT_DIM, EVALUATION_SEED)
    fake = ops.convert_to_numpy(gan.discriminator(gan.generator(z))).ravel()
    sigmoid = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    np.testing.assert_allclose(logs["d_real"], sigmoid(real).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["d_fake"], sigmoid(fake).mean(), rtol=1e-5)
    d_loss = np.mean(
        [
            _softplus(-half).mean() + _softplus(fake).mean()
            for half in real.reshape(2, 4)
        ]
    )
    np.testing.assert_allclose(logs["d_loss"], d_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["g_loss"], _softplus(-fake).mean(), rtol=1e-5)
    # Reproducible: the same numbers again.
    again = gan.evaluate(held_out, batch_size=4, verbose=0, return_dict=True)
    assert again == pytest.approx(logs, rel=1e-6)


def test_fit_logs_validation_metrics_and_monitors_them():
    gan = tiny_gan()
    gan.compile()
    stop = keras.callbacks.EarlyStopping(
        monitor="val_d_loss", patience=0, min_delta=1e9
    )
    history = gan.fit(
        tiny_images(16),
        batch_size=4,
        epochs=4,
        validation_data=(tiny_images(8, seed=1),),
        callbacks=[stop],
        verbose=0,
    ).history
    for name in ("val_d_loss", "val_g_loss", "val_d_real", "val_d_fake"):
        assert len(history[name]) == 2 and np.isfinite(history[name]).all(), name
    assert stop.monitor_op is keras.ops.less


def test_a_conditional_gan_evaluates_on_labelled_images():
    generator, discriminator = keras_gan.networks.build(
        "dcgan", LATENT_DIM, (8, 8, 1), 3
    )
    gan = keras_gan.GAN(generator, discriminator, num_classes=3, seed=0)
    gan.compile(loss="hinge")
    labels = np.arange(8) % 3
    logs = gan.evaluate(
        tiny_images(8), labels, batch_size=4, verbose=0, return_dict=True
    )
    assert all(np.isfinite(value) for value in logs.values())
    with pytest.raises(keras_gan.errors.InputError, match="labels"):
        gan.evaluate(tiny_images(8), batch_size=4, verbose=0)
