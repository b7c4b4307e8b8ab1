import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import LATENT_DIM
from helpers import copy_weights
from helpers import tiny_dataset
from helpers import tiny_gan
from helpers import tiny_images

import keras_gan
from keras_gan.errors import InputError

LOGS = {"d_loss", "g_loss", "d_real", "d_fake"}


@pytest.mark.parametrize("mode", ["eager", "xla"])
def test_fit_logs_the_four_metrics(mode):
    gan = tiny_gan()
    if mode == "eager":
        gan.compile(run_eagerly=True)
    else:
        gan.compile(jit_compile=True)
        assert gan.jit_compile is True  # honoured on a CPU-only machine
    history = gan.fit(tiny_dataset(), epochs=2, verbose=0)
    assert set(history.history) == LOGS
    for name in LOGS:
        assert all(np.isfinite(history.history[name]))
    for name in ("d_real", "d_fake"):
        assert all(0.0 < value < 1.0 for value in history.history[name])
    # Two latent draws per step, 4 steps per epoch.
    assert gan.seed_generator.state.numpy()[1] == 2 * 4 * 2


def test_xla_step_computes_what_the_eager_step_computes():
    eager, xla = tiny_gan(), tiny_gan()
    copy_weights(eager, xla)
    eager.compile(run_eagerly=True)
    xla.compile(jit_compile=True, steps_per_execution=2)
    eager_logs = eager.fit(tiny_dataset(), epochs=1, verbose=0).history
    xla_logs = xla.fit(tiny_dataset(), epochs=1, verbose=0).history
    for name in LOGS:
        np.testing.assert_allclose(eager_logs[name], xla_logs[name], rtol=1e-4)
    for a, b in zip(eager.get_weights(), xla.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_fused_steps_compute_what_single_steps_compute():
    # steps_per_execution=3 over 4 batches: one call of 3 steps, one of 1 step
    # (padded), each inside one XLA computation; the same as 4 single steps.
    single, fused = tiny_gan(), tiny_gan()
    copy_weights(single, fused)
    single.compile(jit_compile=True)
    fused.compile(jit_compile=True, steps_per_execution=3)
    single_logs = single.fit(tiny_dataset(), epochs=2, verbose=0).history
    fused_logs = fused.fit(tiny_dataset(), epochs=2, verbose=0).history
    assert fused_logs == single_logs
    for a, b in zip(single.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(fused.g_optimizer.iterations) == 8
    np.testing.assert_array_equal(
        fused.seed_generator.state.numpy(), single.seed_generator.state.numpy()
    )


def test_fused_path_handles_ragged_and_changing_datasets():
    # A last partial batch (no drop_remainder) cannot be stacked for XLA: that
    # dataset takes Keras's own loop; others keep the fused one, each with its
    # own buffer. Every path computes what single steps compute.
    single, fused = tiny_gan(), tiny_gan()
    copy_weights(single, fused)
    single.compile(jit_compile=True)
    fused.compile(jit_compile=True, steps_per_execution=2)
    ragged = tf.data.Dataset.from_tensor_slices(tiny_images(10)).batch(4)
    for dataset in (tiny_dataset(batch_size=4), ragged, tiny_dataset(batch_size=2)):
        a = single.fit(dataset, epochs=1, verbose=0).history
        b = fused.fit(dataset, epochs=1, verbose=0).history
        assert a == b
    assert int(fused.g_optimizer.iterations) == 4 + 3 + 8
    for a, b in zip(single.get_weights(), fused.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_each_player_updates_only_its_own_weights():
    gan = tiny_gan()
    gan.compile(g_optimizer=keras.optimizers.SGD(0.0), jit_compile=True)
    before_g = gan.generator.get_weights()
    before_d = gan.discriminator.get_weights()
    gan.fit(tiny_dataset(), epochs=1, verbose=0)
    for a, b in zip(before_g, gan.generator.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(before_d, gan.discriminator.get_weights(), strict=True)
    )


def test_generate_shape_range_and_seeds():
    gan = tiny_gan()
    images = gan.generate(5, seed=7, batch_size=2)
    assert images.shape == (5, 8, 8, 1) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    np.testing.assert_allclose(images, gan.generate(5, seed=7), rtol=1e-6, atol=1e-6)
    assert not np.allclose(images, gan.generate(5, seed=8))
    with pytest.raises(InputError, match="num_images"):
        gan.generate(0)


def test_call_maps_latents_to_images():
    gan = tiny_gan()
    z = np.zeros((3, LATENT_DIM), "float32")
    np.testing.assert_allclose(gan(z), gan.generator(z))


def test_keras_file_round_trip_continues_training_exactly(tmp_path):
    # 2 epochs + save + load + 1 epoch == 3 epochs straight: weights, both Adam
    # states and the noise state all come back.
    straight, interrupted = tiny_gan(seed=1), tiny_gan(seed=1)
    copy_weights(straight, interrupted)
    for gan in (straight, interrupted):
        gan.compile(jit_compile=True)
    straight.fit(tiny_dataset(), epochs=3, verbose=0)
    interrupted.fit(tiny_dataset(), epochs=2, verbose=0)
    interrupted.save(tmp_path / "gan.keras")

    restored = keras.saving.load_model(tmp_path / "gan.keras")
    assert isinstance(restored, keras_gan.GAN)
    subnets = ("generator", "discriminator")
    config = {k: v for k, v in restored.get_config().items() if k not in subnets}
    assert config == {
        k: v for k, v in interrupted.get_config().items() if k not in subnets
    }
    assert restored.jit_compile is True
    assert int(restored.d_optimizer.iterations) == 8
    assert int(restored.g_optimizer.iterations) == 8
    for a, b in zip(
        restored.d_optimizer.variables, interrupted.d_optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    restored.fit(tiny_dataset(), epochs=1, verbose=0)
    assert int(restored.g_optimizer.iterations) == 12
    for a, b in zip(restored.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_backup_and_restore_resumes_both_optimizers(tmp_path):
    straight, first, second = tiny_gan(seed=2), tiny_gan(seed=2), tiny_gan(seed=2)
    copy_weights(straight, first)
    copy_weights(straight, second)
    for gan in (straight, first, second):
        gan.compile(jit_compile=True)
    straight.fit(tiny_dataset(), epochs=2, verbose=0)
    backup = keras.callbacks.BackupAndRestore(tmp_path, delete_checkpoint=False)
    first.fit(tiny_dataset(), epochs=1, verbose=0, callbacks=[backup])
    # A fresh process would build `second` from scratch like this.
    second.fit(tiny_dataset(), epochs=2, verbose=0, callbacks=[backup])
    assert int(second.d_optimizer.iterations) == 8
    for a, b in zip(second.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_config_round_trip():
    gan = tiny_gan(seed=5)
    clone = keras_gan.GAN.from_config(gan.get_config())
    assert clone.latent_dim == gan.latent_dim and clone.seed == 5
    assert clone.generator.get_config() == gan.generator.get_config()


def test_compile_config_round_trip():
    gan = tiny_gan()
    gan.compile(
        d_optimizer=keras.optimizers.RMSprop(1e-3),
        loss="minimax",
        steps_per_execution=4,
    )
    clone = tiny_gan()
    clone.compile_from_config(gan.get_compile_config())
    assert isinstance(clone.d_optimizer, keras.optimizers.RMSprop)
    assert clone.d_optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    assert clone.g_optimizer.beta_1 == pytest.approx(0.5)
    assert clone.gan_loss.name == "minimax"
    assert clone.steps_per_execution == 4


def test_bad_compile_and_construction_arguments():
    gan = tiny_gan()
    with pytest.raises(InputError, match="does not take optimizer="):
        gan.compile(optimizer="adam")
    with pytest.raises(InputError, match="Unknown loss"):
        gan.compile(loss="l2")
    with pytest.raises(InputError, match="d_optimizer must be"):
        gan.compile(d_optimizer="no-such-optimizer")
    with pytest.raises(InputError, match="latent_dim=7 does not match"):
        keras_gan.GAN(gan.generator, gan.discriminator, latent_dim=7)
    other = keras_gan.networks.mlp_discriminator((4, 4, 1))
    with pytest.raises(InputError, match="discriminator takes"):
        keras_gan.GAN(gan.generator, other)


def test_regularization_losses_of_the_players_are_added():
    generator = keras_gan.networks.mlp_generator(LATENT_DIM, (8, 8, 1), 8)
    images = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(
        8, kernel_regularizer=keras.regularizers.L2(1e3), name="hidden"
    )(keras.layers.Flatten()(images))
    discriminator = keras.Model(images, keras.layers.Dense(1)(hidden))
    gan = keras_gan.GAN(generator, discriminator)
    gan.compile(d_optimizer=keras.optimizers.SGD(1e-4), run_eagerly=True)
    kernel = discriminator.get_layer("hidden").kernel
    before = np.abs(kernel.numpy()).sum()
    gan.fit(tiny_dataset(), epochs=1, verbose=0)
    # A strong L2 penalty shrinks the kernel; the adversarial loss alone would not.
    assert np.abs(kernel.numpy()).sum() < 0.9 * before
