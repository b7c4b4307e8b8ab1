"""Losses, penalties and latents in the networks' full precision."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_gan
from keras_gan import precision


@pytest.fixture
def float64():
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def test_widen_casts_half_precision_only():
    for dtype, widened in (
        ("float16", "float32"),
        ("bfloat16", "float32"),
        ("float32", "float32"),
        ("float64", "float64"),
    ):
        x = ops.ones((2,), dtype)
        assert keras.backend.standardize_dtype(precision.widen(x).dtype) == widened


@pytest.mark.parametrize("architecture", ["mlp", "dcgan", "resnet"])
def test_a_float64_gan_trains_in_float64(float64, architecture):
    assert precision.full_dtype() == "float64"
    num_classes = None if architecture == "mlp" else 2  # the MLP is unconditional
    generator, discriminator = keras_gan.networks.build(
        architecture, 4, (8, 8, 3), num_classes
    )
    gan = keras_gan.GAN(
        generator, discriminator, seed=0, num_classes=num_classes, ema_decay=0.9
    )
    # Every output layer, the logit's included, is float64.
    for network in (gan.generator, gan.discriminator):
        assert {w.dtype for w in network.weights} == {"float64"}, network.name
    gan.compile(gradient_penalty=1.0, r1=1.0, d_steps=2, penalty_interval=2)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 3))
    labels = np.arange(8) % 2 if num_classes else None
    before = [w.copy() for w in gan.discriminator.get_weights()]
    logs = gan.fit(images, labels, batch_size=4, epochs=1, verbose=0).history
    assert all(np.isfinite(values[-1]) for values in logs.values())
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(before, gan.discriminator.get_weights(), strict=True)
    )
    real = ops.convert_to_tensor(images[:4])
    batch_labels = None if labels is None else ops.convert_to_tensor(labels[:4])
    inputs = real if labels is None else [real, batch_labels]
    logits = gan.discriminator(inputs)
    assert keras.backend.standardize_dtype(logits.dtype) == "float64"
    z = keras_gan.noise.latent_noise(4, 4, 0, gan._full_dtype)
    assert keras.backend.standardize_dtype(z.dtype) == "float64"
    penalty = gan._penalty(real, real, batch_labels)
    assert keras.backend.standardize_dtype(penalty.dtype) == "float64"
    # float64 latents are the float32 latents to the float32 polynomial's error.
    z32 = keras_gan.noise.latent_noise(4, 4, 0)
    np.testing.assert_allclose(
        ops.convert_to_numpy(z), ops.convert_to_numpy(z32), atol=2e-6
    )


def test_float32_and_mixed_precision_keep_float32_outputs():
    assert precision.full_dtype() == "float32"
    keras.config.set_dtype_policy("mixed_float16")
    try:
        assert precision.full_dtype() == "float32"
        generator, discriminator = keras_gan.networks.build("dcgan", 4, (8, 8, 1))
    finally:
        keras.config.set_dtype_policy("float32")
    assert discriminator.layers[-1].dtype_policy.name == "float32"
    assert generator.layers[-1].dtype_policy.name == "float32"
    logits = discriminator(ops.zeros((2, 8, 8, 1)))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
