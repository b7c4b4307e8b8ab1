"""TensorBoard on a GAN: the sample grid as an image per epoch, and one
weight histogram per weight, tagged by its network's role. The `backends`
tests run under every Keras backend in CI."""

import glob
import io
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_helpers import train
from helpers import IMAGE_SHAPE
from helpers import LATENT_DIM
from helpers import tiny_images
from PIL import Image

import keras_gan
from keras_gan import callbacks
from keras_gan import networks
from keras_gan import resnet
from keras_gan.errors import InputError

ROLES = ("generator", "discriminator", "ema_generator")


def _summaries(folder):
    """{tag: {step: (plugin name, value)}} of the event files in `folder`."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                found.setdefault(value.tag, {})[event.step] = (
                    plugin,
                    tf.make_ndarray(value.tensor),
                )
    return found


def _decoded(image_summary):
    # An image summary's tensor: [width, height, PNG bytes].
    with Image.open(io.BytesIO(image_summary[2])) as image:
        return np.asarray(image)


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image)


def _ema_gan():
    generator = networks.mlp_generator(LATENT_DIM, IMAGE_SHAPE, hidden_units=8)
    discriminator = networks.mlp_discriminator(IMAGE_SHAPE, hidden_units=8)
    gan = keras_gan.GAN(generator, discriminator, seed=0, ema_decay=0.5)
    # Large steps, so that successive epochs' grids differ. Compiled on JAX
    # (unjitted, it runs op by op); not on TensorFlow, whose XLA compile
    # outlasts these few steps.
    gan.compile(
        d_optimizer=keras.optimizers.Adam(0.05),
        g_optimizer=keras.optimizers.Adam(0.05),
        jit_compile=keras.config.backend() == "jax",
    )
    return gan


def _fit(gan, log_dir, samples_dir, initial_epoch, epochs):
    log_dir, samples_dir = str(log_dir), str(samples_dir)
    gan.fit(
        tiny_images(8),
        batch_size=4,
        initial_epoch=initial_epoch,
        epochs=epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.TensorBoard(log_dir, histogram_freq=1),
            callbacks.SampleGrid(samples_dir, num_rows=2, log_dir=log_dir),
        ],
    )


@pytest.mark.backends
def test_sample_grids_and_weight_histograms_of_every_epoch(tmp_path):
    log_dir, samples_dir = tmp_path / "tensorboard", tmp_path / "samples"
    gan = _ema_gan()
    _fit(gan, log_dir, samples_dir, 0, 2)
    _fit(gan, log_dir, samples_dir, 2, 3)  # resumed: appends an event file
    assert len(glob.glob(str(log_dir / "samples" / "events.out.tfevents.*"))) == 2
    images = _summaries(log_dir / "samples")
    train = _summaries(log_dir / "train")

    # Step = the epoch's index, the step of Keras's epoch scalars.
    assert list(images) == ["samples"]
    assert sorted(images["samples"]) == sorted(train["epoch_d_loss"]) == [0, 1, 2]
    grids = []
    for step, (plugin, value) in sorted(images["samples"].items()):
        assert plugin == "images"
        # The PNG that SampleGrid wrote for the epoch, pixel for pixel.
        grid = _decoded(value)
        np.testing.assert_array_equal(
            grid, _png(samples_dir / f"epoch_{step + 1:04d}.png")
        )
        grids.append(grid)
    assert grids[0].shape == (4 * 17, 4 * 17)  # 2x2 tiles of 8 px, shown 4x
    assert not np.array_equal(grids[0], grids[-1])

    # One histogram per weight, tagged with its network's role.
    weights = [weight for role in ROLES for weight in getattr(gan, role).weights]
    histograms = {tag for tag in train if tag.endswith("/histogram")}
    assert histograms == {f"{weight.path}/histogram" for weight in weights}
    assert len(histograms) == len(weights) == 3 * 4
    for role in ROLES:
        for weight in getattr(gan, role).weights:
            assert weight.path.startswith(f"{role}/"), weight.path
    # The layer that both networks call "hidden": a histogram of each kernel.
    for role, size in (("generator", LATENT_DIM * 8), ("discriminator", 64 * 8)):
        steps = train[f"{role}/hidden/kernel/histogram"]
        assert sorted(steps) == [0, 1, 2]
        assert steps[2][1][:, 2].sum() == size  # (buckets, [left, right, count])


@pytest.mark.backends
def test_sample_grid_config_keeps_log_dir(tmp_path):
    grid = callbacks.SampleGrid(tmp_path / "s", num_rows=3, log_dir=tmp_path / "t")
    restored = callbacks.SampleGrid(**grid.get_config())
    assert restored.get_config() == grid.get_config()
    assert restored.log_dir == str(tmp_path / "t")


def _paths(gan):
    return [weight.path for weight in gan.weights]


def _assert_role_paths(gan):
    paths = _paths(gan)
    assert len(set(paths)) == len(paths), paths
    for role in ROLES:
        network = getattr(gan, role)
        for weight in [] if network is None else network.weights:
            assert weight.path.startswith(f"{role}/"), weight.path


@pytest.mark.backends
@pytest.mark.parametrize(
    "build",
    [
        lambda: networks.build("mlp", LATENT_DIM, IMAGE_SHAPE),
        lambda: networks.build("dcgan", LATENT_DIM, IMAGE_SHAPE, 3),
        lambda: (
            resnet.resnet_generator(LATENT_DIM, IMAGE_SHAPE, 3, channels=8),
            resnet.resnet_discriminator(IMAGE_SHAPE, 3, channels=8),
        ),
    ],
    ids=["mlp", "dcgan_conditional", "resnet_conditional"],
)
def test_weight_paths_start_with_the_role_when_built_and_loaded(tmp_path, build):
    generator, discriminator = build()
    num_classes = 3 if len(generator.inputs) == 2 else None
    gan = keras_gan.GAN(
        generator, discriminator, seed=0, num_classes=num_classes, ema_decay=0.9
    )
    _assert_role_paths(gan)
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    _assert_role_paths(loaded)
    for saved, restored in zip(gan.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)


@pytest.mark.backends
def test_built_as_scopes_a_builder_of_your_own():
    with pytest.raises(InputError, match="received 'generator/hidden'"):
        networks.built_as("generator/hidden")

    @networks.built_as("critic")
    def critic():
        images = keras.Input(IMAGE_SHAPE)
        logits = keras.layers.Dense(1, name="logit")(keras.layers.Flatten()(images))
        return keras.Model(images, logits)

    assert [weight.path for weight in critic().weights] == [
        "critic/logit/kernel",
        "critic/logit/bias",
    ]


def _unscoped_mlp(inputs_shape, units, name):
    # As networks were built before their roles' name scopes (files written
    # then, and a user's own networks): both have a layer named "hidden".
    inputs = keras.Input(inputs_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(8, activation="tanh", name="hidden")(x)
    outputs = keras.layers.Dense(units, activation="tanh")(x)
    if name == "generator":
        outputs = keras.layers.Reshape(IMAGE_SHAPE)(outputs)
    return keras.Model(inputs, outputs, name=name)


@pytest.mark.backends
def test_networks_built_without_scopes_load_with_role_paths(tmp_path):
    generator = _unscoped_mlp((LATENT_DIM,), 64, "generator")
    discriminator = _unscoped_mlp(IMAGE_SHAPE, 1, "discriminator")
    gan = keras_gan.GAN(generator, discriminator, seed=0)
    assert _paths(gan).count("hidden/kernel") == 2
    gan.save(str(tmp_path / "gan.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "gan.keras"))
    _assert_role_paths(loaded)
    assert {"generator/hidden/kernel", "discriminator/hidden/kernel"} <= set(
        _paths(loaded)
    )
    for saved, restored in zip(gan.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(saved, restored)


def test_a_run_shows_its_sample_grids_in_its_tensorboard_folder(tmp_path):
    # On the default backend only (the callbacks are tested on each above);
    # --no-jit: XLA would compile for longer than the epoch trains.
    result = train(
        tmp_path, "--dataset", "digits", "--name", "tb", "--epochs", "1",
        "--batch-size", "64", "--latent-dim", "8", "--no-jit",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "tb"
    images = _summaries(run / "tensorboard" / "samples")
    assert sorted(images["samples"]) == [0]
    np.testing.assert_array_equal(
        _decoded(images["samples"][0][1]), _png(run / "samples" / "epoch_0001.png")
    )
