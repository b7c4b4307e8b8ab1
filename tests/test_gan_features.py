"""Penalties, several D steps, the weight average, augmentation and mixed
precision of `GAN`, against closed forms where there are some."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import IMAGE_SHAPE
from helpers import LATENT_DIM
from helpers import run_json_script
from helpers import tiny_dataset
from helpers import tiny_gan
from helpers import tiny_images

import keras_gan
from keras_gan.errors import InputError


def linear_gan(seed=0):
    """D(x) = w . x + b: its input gradient is w everywhere."""
    generator = keras_gan.networks.mlp_generator(LATENT_DIM, IMAGE_SHAPE, 8)
    images = keras.Input(IMAGE_SHAPE)
    logits = keras.layers.Dense(1)(keras.layers.Flatten()(images))
    discriminator = keras.Model(images, logits)
    return keras_gan.GAN(generator, discriminator, seed=seed)


def kernel_norm(gan):
    return float(np.linalg.norm(gan.discriminator.layers[-1].kernel.numpy()))


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"gradient_penalty": 10.0}, lambda w: 10.0 * (w - 1.0) ** 2),
        ({"r1": 2.0}, lambda w: 0.5 * 2.0 * w**2),
        ({"r2": 3.0}, lambda w: 0.5 * 3.0 * w**2),
        ({"r1": 2.0, "r2": 3.0}, lambda w: 2.5 * w**2),
        (
            {"gradient_penalty": 1.0, "r1": 1.0},
            lambda w: (w - 1.0) ** 2 + 0.5 * w**2,
        ),
    ],
)
def test_penalties_of_a_linear_discriminator(options, expected):
    gan = linear_gan()
    gan.compile(run_eagerly=True, **options)
    real, fake = tiny_images(8, seed=1), tiny_images(8, seed=2)
    penalty = gan._penalty(tf.constant(real), tf.constant(fake), None)
    np.testing.assert_allclose(float(penalty), expected(kernel_norm(gan)), rtol=1e-5)


def test_lazy_penalty_applies_every_interval_steps_scaled_by_it():
    gan = linear_gan()
    gan.compile(run_eagerly=True, r1=2.0, penalty_interval=3)
    real = tf.constant(tiny_images(4))
    full = 3 * 0.5 * 2.0 * kernel_norm(gan) ** 2
    values = []
    for step in range(4):
        gan.d_optimizer.iterations.assign(step)
        values.append(float(gan._penalty(real, real, None)))
    np.testing.assert_allclose(values, [full, 0.0, 0.0, full], rtol=1e-5)


def test_gradient_penalty_uses_uniform_interpolation_weights():
    # D(x) = sum(x^2) / 2 has gradient x: the penalty sees the interpolates.
    generator = keras_gan.networks.mlp_generator(LATENT_DIM, IMAGE_SHAPE, 8)
    images = keras.Input(IMAGE_SHAPE)
    squares = keras.layers.Lambda(
        lambda x: 0.5 * keras.ops.sum(x**2, axis=[1, 2, 3], keepdims=False)[:, None]
    )(images)
    gan = keras_gan.GAN(generator, keras.Model(images, squares), seed=0)
    gan.compile(run_eagerly=True, gradient_penalty=1.0)
    real = tf.ones((4096, *IMAGE_SHAPE))
    fake = tf.zeros((4096, *IMAGE_SHAPE))
    # Interpolate e*1 + (1-e)*0 = e: gradient norm e*8, penalty E[(8e - 1)^2]
    # with e ~ U[0, 1]: 64/3 - 8 + 1.
    penalty = float(gan._penalty(real, fake, None))
    assert penalty == pytest.approx(64 / 3 - 7, rel=0.03)


def test_penalty_gradients_train_the_discriminator():
    gan = linear_gan()
    gan.compile(
        run_eagerly=True,
        loss="wasserstein",
        gradient_penalty=10.0,
        d_optimizer=keras.optimizers.SGD(0.01),
    )
    history = gan.fit(tiny_dataset(), epochs=1, verbose=0).history
    assert "d_penalty" in history and np.isfinite(history["d_penalty"][0])


def test_several_discriminator_steps_per_generator_step():
    gan = tiny_gan()
    gan.compile(jit_compile=True, d_steps=3, steps_per_execution=2)
    generator_before = [w.copy() for w in gan.generator.get_weights()]
    gan.fit(tiny_dataset(count=4 * 7), epochs=1, verbose=0)  # 7 D steps
    assert int(gan.d_optimizer.iterations) == 7
    assert int(gan.g_optimizer.iterations) == 2  # after D steps 3 and 6
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(generator_before, gan.generator.get_weights(), strict=True)
    )


def test_ema_follows_the_closed_form():
    gan = tiny_gan()
    gan = keras_gan.GAN(
        gan.generator, gan.discriminator, seed=0, ema_decay=0.9, name="ema"
    )
    gan.compile(run_eagerly=True)
    start = [w.copy() for w in gan.generator.get_weights()]
    for a, b in zip(start, gan.ema_generator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    gan.fit(tiny_dataset(count=4), epochs=1, verbose=0)  # one step
    # First update: decay min(0.9, (1 + 1) / (10 + 1)) = 2/11.
    decay = 2 / 11
    for first, now, average in zip(
        start,
        gan.generator.get_weights(),
        gan.ema_generator.get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(
            average, decay * first + (1 - decay) * now, rtol=1e-5, atol=1e-7
        )
    assert gan.inference_generator is gan.ema_generator
    z = keras_gan.noise.latent_noise(3, LATENT_DIM, 0)
    np.testing.assert_allclose(gan.generate(3, seed=0), gan.ema_generator(z))


def test_ema_is_saved_and_restored(tmp_path):
    gan = keras_gan.GAN(
        tiny_gan().generator, tiny_gan().discriminator, seed=0, ema_decay=0.5
    )
    gan.compile(jit_compile=True)
    gan.fit(tiny_dataset(), epochs=2, verbose=0)
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.ema_decay == 0.5
    np.testing.assert_array_equal(loaded.generate(5, seed=3), gan.generate(5, seed=3))
    assert not np.allclose(
        loaded.generator(keras_gan.noise.latent_noise(5, LATENT_DIM, 3)),
        loaded.generate(5, seed=3),
    )


def test_augmentation_changes_what_the_discriminator_sees():
    plain, augmented = tiny_gan(), tiny_gan()
    augmented.generator.set_weights(plain.generator.get_weights())
    augmented.discriminator.set_weights(plain.discriminator.get_weights())
    plain.compile(run_eagerly=True)
    augmented.compile(run_eagerly=True, augment="translation,cutout")
    assert augmented.training_options["augment"] == "translation,cutout"
    a = plain.fit(tiny_dataset(), epochs=1, verbose=0).history["d_loss"]
    b = augmented.fit(tiny_dataset(), epochs=1, verbose=0).history["d_loss"]
    assert np.isfinite(b[0]) and a != b


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_with_float32_logits(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        gan = tiny_gan()
    finally:
        keras.config.set_dtype_policy(previous)
    gan.compile(jit_compile=True, r1=1.0)
    scaled = isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    assert isinstance(gan.g_optimizer, keras.optimizers.LossScaleOptimizer) == scaled
    history = gan.fit(tiny_dataset(), epochs=2, verbose=0).history
    assert all(np.isfinite(history["d_loss"] + history["g_loss"]))
    assert gan.discriminator(tiny_images(2)).dtype == "float32"
    assert all(w.dtype == "float32" for w in gan.generator.weights)


def test_compile_config_keeps_the_training_options(tmp_path):
    gan = tiny_gan()
    gan.compile(loss="hinge", r1=0.5, penalty_interval=4, d_steps=2, augment="color")
    gan.fit(tiny_dataset(), epochs=1, verbose=0)
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.training_options == gan.training_options
    assert loaded.gan_loss.name == "hinge"


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ({"gradient_penalty": -1.0}, "gradient_penalty must be"),
        ({"r1": float("nan")}, "r1 must be"),
        ({"r2": "x"}, "r2 must be"),
        ({"d_steps": 0}, "d_steps must be"),
        ({"penalty_interval": 1.5}, "penalty_interval must be"),
        ({"augment": "rotate"}, "rotate"),
        ({"loss": "nope"}, "relativistic"),
    ],
)
def test_bad_training_options(arguments, fragment):
    with pytest.raises(InputError, match=fragment):
        tiny_gan().compile(**arguments)


def test_bad_ema_decay():
    gan = tiny_gan()
    with pytest.raises(InputError, match="ema_decay"):
        keras_gan.GAN(gan.generator, gan.discriminator, ema_decay=1.0)


_REPLICAS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, keras_gan

    def make():
        # G makes zeros whatever the latents; D is linear: every gradient is
        # known, and none depends on the replicas' different noise.
        z = keras.Input((4,))
        x = keras.layers.Dense(64, kernel_initializer="zeros")(z)
        generator = keras.Model(z, keras.layers.Reshape((8, 8, 1))(x))
        images = keras.Input((8, 8, 1))
        logits = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.Constant(0.1))(
            keras.layers.Flatten()(images))
        gan = keras_gan.GAN(generator, keras.Model(images, logits), seed=0)
        gan.compile(loss="wasserstein", gradient_penalty=5.0, r1=2.0,
                    d_optimizer=keras.optimizers.SGD(1.0),
                    g_optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
        return gan

    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("f4")
    data = tf.data.Dataset.from_tensor_slices(images).batch(8)
    if sys.argv[1] == "2":
        with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
            gan = make()
    else:
        gan = make()
    gan.fit(data, epochs=1, verbose=0)
    print(json.dumps(gan.discriminator.layers[-1].kernel.numpy().ravel().tolist()))
    """
)


def test_penalties_are_scaled_for_gradients_summed_across_replicas(tmp_path):
    script = tmp_path / "replicas.py"
    script.write_text(_REPLICAS_SCRIPT)
    kernels = [np.array(run_json_script(script, replicas)) for replicas in ("1", "2")]
    single, mirrored = kernels
    assert not np.allclose(single, 0.1)  # the step did change D
    np.testing.assert_allclose(mirrored, single, rtol=1e-5, atol=1e-6)
