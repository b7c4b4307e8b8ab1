"""The GAN trainer of the active Keras backend (run under each of them)."""

import keras
import numpy as np
import pytest
from backend_helpers import gradients
from backend_helpers import numpy
from backend_helpers import sgd
from backend_helpers import snapshot
from helpers import LATENT_DIM
from helpers import copy_weights
from helpers import tiny_gan
from helpers import tiny_images

import keras_gan
from keras_gan import noise

pytestmark = pytest.mark.backends

LOGS = {"d_loss", "g_loss", "d_real", "d_fake"}
BACKEND = keras.config.backend()


def _fit(gan, images, epochs=1, labels=None):
    return gan.fit(
        images, labels, batch_size=4, epochs=epochs, shuffle=False, verbose=0
    ).history


def test_gan_uses_this_backends_trainer():
    trainer = type(tiny_gan()).__mro__[1].__name__
    expected = {
        "tensorflow": "TensorFlowGANTrainer",
        "jax": "JAXGANTrainer",
        "torch": "TorchGANTrainer",
    }[BACKEND]
    assert trainer == expected


def test_fit_logs_the_four_metrics_and_advances_the_noise():
    gan = tiny_gan()
    gan.compile()
    history = _fit(gan, tiny_images(16), epochs=2)
    assert set(history) == LOGS
    for name in LOGS:
        assert all(np.isfinite(history[name]))
    for name in ("d_real", "d_fake"):
        assert all(0.0 < value < 1.0 for value in history[name])
    # Two latent draws per step, 4 steps per epoch.
    assert int(numpy(gan.seed_generator.state.value)[1]) == 2 * 4 * 2


def test_train_step_is_algorithm_one_by_hand():
    # D descends on fresh latents z1, then G descends on fresh latents z2
    # through the *updated* D (Algorithm 1 of arXiv:1406.2661), plain SGD,
    # gradients by this backend's own autodiff.
    gan, reference = tiny_gan(seed=3), tiny_gan()
    copy_weights(gan, reference)
    learning_rate = 0.1
    gan.compile(
        d_optimizer=keras.optimizers.SGD(learning_rate),
        g_optimizer=keras.optimizers.SGD(learning_rate),
    )
    real = tiny_images(4)
    history = _fit(gan, real)

    generator, discriminator = reference.generator, reference.discriminator
    real = keras.ops.convert_to_tensor(real)
    z1 = noise.latent_noise(4, LATENT_DIM, [3, 0])
    z2 = noise.latent_noise(4, LATENT_DIM, [3, 1])
    fake = keras.ops.stop_gradient(generator(z1))

    def d_loss():
        return keras.ops.mean(
            keras.ops.softplus(-discriminator(real))
        ) + keras.ops.mean(keras.ops.softplus(discriminator(fake)))

    expected_d_loss = float(numpy(d_loss()))
    variables = discriminator.trainable_variables
    sgd(variables, gradients(d_loss, variables), learning_rate)

    def g_loss():
        return keras.ops.mean(keras.ops.softplus(-discriminator(generator(z2))))

    variables = generator.trainable_variables
    sgd(variables, gradients(g_loss, variables), learning_rate)

    for a, b in zip(gan.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert history["d_loss"][0] == pytest.approx(expected_d_loss, 1e-5)


def test_state_really_advances_every_step():
    # Both optimizers' iterations and moments, the noise and the generator's
    # batch-norm statistics move at every step (nothing is baked into a
    # compiled step as a constant).
    generator, discriminator = keras_gan.networks.build("dcgan", LATENT_DIM, (8, 8, 1))
    gan = keras_gan.GAN(generator, discriminator, seed=1)
    gan.compile()
    moving = [v for v in gan.generator.non_trainable_variables if "moving" in v.path]
    assert moving
    images = tiny_images(4)
    before = None
    for step in range(1, 4):
        _fit(gan, images)
        now = {
            "d_moments": snapshot(gan.d_optimizer.variables[1:]),
            "g_moments": snapshot(gan.g_optimizer.variables[1:]),
            "moving": snapshot(moving),
            "noise": snapshot([gan.seed_generator.state]),
        }
        assert int(numpy(gan.d_optimizer.iterations.value)) == step
        assert int(numpy(gan.g_optimizer.iterations.value)) == step
        if before is not None:
            for key, values in now.items():
                changed = [
                    not np.array_equal(a, b)
                    for a, b in zip(values, before[key], strict=True)
                ]
                assert any(changed), key
        before = now


def test_eager_and_compiled_steps_agree():
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer is eager")
    eager, compiled = tiny_gan(), tiny_gan()
    copy_weights(eager, compiled)
    eager.compile(run_eagerly=True)
    compiled.compile(jit_compile=True)
    eager_logs = _fit(eager, tiny_images(16))
    compiled_logs = _fit(compiled, tiny_images(16))
    for name in LOGS:
        np.testing.assert_allclose(eager_logs[name], compiled_logs[name], rtol=1e-4)
    for a, b in zip(eager.get_weights(), compiled.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_several_steps_per_call_compute_what_single_steps_compute():
    # steps_per_execution=3 over 4 batches per epoch: one call of 3 fused
    # steps and one single step, the same as 4 single steps.
    if BACKEND == "torch":
        pytest.skip("the PyTorch trainer is eager")
    single, fused = tiny_gan(), tiny_gan()
    copy_weights(single, fused)
    single.compile(jit_compile=True, steps_per_execution=1)
    fused.compile(jit_compile=True, steps_per_execution=3)
    single_logs = _fit(single, tiny_images(16), epochs=2)
    fused_logs = _fit(fused, tiny_images(16), epochs=2)
    for name in LOGS:
        np.testing.assert_allclose(single_logs[name], fused_logs[name], rtol=1e-6)
    for a, b in zip(single.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert int(numpy(fused.g_optimizer.iterations.value)) == 8
    np.testing.assert_array_equal(
        numpy(fused.seed_generator.state.value),
        numpy(single.seed_generator.state.value),
    )


def test_keras_file_round_trip_continues_training_exactly(tmp_path):
    # 2 epochs + save + load + 1 epoch == 3 epochs straight: weights, both Adam
    # states and the noise state all come back.
    straight, interrupted = tiny_gan(seed=1), tiny_gan(seed=1)
    copy_weights(straight, interrupted)
    for gan in (straight, interrupted):
        gan.compile()
    _fit(straight, tiny_images(16), epochs=3)
    _fit(interrupted, tiny_images(16), epochs=2)
    interrupted.save(tmp_path / "gan.keras")

    restored = keras.saving.load_model(tmp_path / "gan.keras")
    assert isinstance(restored, keras_gan.GAN)
    assert int(numpy(restored.d_optimizer.iterations.value)) == 8
    for a, b in zip(
        restored.d_optimizer.variables, interrupted.d_optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(numpy(a.value), numpy(b.value))
    _fit(restored, tiny_images(16))
    assert int(numpy(restored.g_optimizer.iterations.value)) == 12
    for a, b in zip(restored.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_conditional_gan_trains_and_generates_per_label():
    generator, discriminator = keras_gan.networks.build(
        "dcgan", LATENT_DIM, (8, 8, 1), 3
    )
    gan = keras_gan.GAN(generator, discriminator, seed=0, num_classes=3, ema_decay=0.9)
    gan.compile(r1=1.0, penalty_interval=2, augment="translation")
    labels = (np.arange(8) % 3).astype("int32")
    history = _fit(gan, tiny_images(8), labels=labels)
    assert set(history) == LOGS | {"d_penalty"}
    images = gan.generate(6, seed=2, labels=[0, 1, 2, 0, 1, 2])
    assert images.shape == (6, 8, 8, 1) and np.all(np.abs(images) <= 1.0)
    np.testing.assert_allclose(images, gan.generate(6, seed=2), atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains(policy):
    keras.config.set_dtype_policy(policy)
    try:
        gan = tiny_gan()
    finally:
        keras.config.set_dtype_policy("float32")
    gan.compile(gradient_penalty=1.0)
    scaled = isinstance(gan.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (policy == "mixed_float16")
    before = snapshot(gan.generator.trainable_variables)
    history = _fit(gan, tiny_images(8))
    assert all(np.isfinite(history[name][0]) for name in history)
    after = snapshot(gan.generator.trainable_variables)
    assert any(not np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert gan.generate(2, seed=0).dtype == np.float32
