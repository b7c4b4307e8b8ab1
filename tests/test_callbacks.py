import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_dataset
from helpers import tiny_gan
from PIL import Image

from keras_gan import callbacks
from keras_gan import export
from keras_gan import images
from keras_gan import noise
from keras_gan.errors import InputError


def _fit(gan, epochs, *cbs, dataset=None):
    if not gan.compiled:
        gan.compile(jit_compile=True)
    return gan.fit(
        dataset or tiny_dataset(), epochs=epochs, verbose=0, callbacks=list(cbs)
    )


def test_sample_grid_writes_grids_from_fixed_latents_and_a_gif(tmp_path):
    gan = tiny_gan()
    grid = callbacks.SampleGrid(tmp_path, num_rows=2, every_n_epochs=2, seed=3)
    _fit(gan, 4, grid)
    assert sorted(os.listdir(tmp_path)) == [
        "epoch_0002.png",
        "epoch_0004.png",
        "samples.gif",
    ]
    assert Image.open(tmp_path / "samples.gif").n_frames == 2
    written = np.asarray(Image.open(tmp_path / "epoch_0004.png"))
    # The grid is the model's images of the latents drawn from the seed.
    z = noise.latent_noise(4, gan.latent_dim, 3)
    expected = images.image_grid(gan.generator(z), num_rows=2)[..., 0]
    # 8x8 images are shown 4x: nearest neighbour, 32 pixels a side.
    assert images.readable_scale(8, 8) == 4 and written.shape == (4 * 17, 4 * 17)
    np.testing.assert_array_equal(written[::4, ::4], expected)
    np.testing.assert_array_equal(written[3::4, 3::4], expected)


def test_sample_grid_continues_numbering_when_resumed(tmp_path):
    gan = tiny_gan()
    _fit(gan, 1, callbacks.SampleGrid(tmp_path, num_rows=2))
    gan.fit(
        tiny_dataset(),
        epochs=2,
        initial_epoch=1,
        verbose=0,
        callbacks=[callbacks.SampleGrid(tmp_path, num_rows=2)],
    )
    assert sorted(os.listdir(tmp_path)) == [
        "epoch_0001.png",
        "epoch_0002.png",
        "samples.gif",
    ]
    assert Image.open(tmp_path / "samples.gif").n_frames == 2


def test_generator_exporter_versions(tmp_path):
    gan = tiny_gan()
    (tmp_path / "7").mkdir()  # an earlier version: kept, and counted from
    (tmp_path / "7" / "marker").write_text("old")
    exporter = callbacks.GeneratorExporter(tmp_path, every_n_epochs=2)
    _fit(gan, 3, exporter)
    # After epoch 2, then at the end (epoch 3); never twice for one epoch.
    assert export.versions(tmp_path) == [7, 8, 9]
    assert (tmp_path / "7" / "marker").read_text() == "old"
    assert exporter.exported == [str(tmp_path / "8"), str(tmp_path / "9")]

    _fit(gan, 2, callbacks.GeneratorExporter(tmp_path, every_n_epochs=2))
    assert export.versions(tmp_path) == [7, 8, 9, 10]


def test_a_failed_fit_exports_nothing(tmp_path):
    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _fit(tiny_gan(), 1, Crash(), callbacks.GeneratorExporter(tmp_path))
    assert export.versions(tmp_path) == []


def test_terminate_on_non_finite_raises_before_anything_is_saved(tmp_path):
    bad = tf.data.Dataset.from_tensors(tf.fill((4, 8, 8, 1), np.nan)).repeat(4)
    backup = keras.callbacks.BackupAndRestore(tmp_path / "backup")
    with pytest.raises(callbacks.TrainingDivergedError, match="d_loss is nan"):
        _fit(
            tiny_gan(),
            1,
            callbacks.TerminateOnNonFinite(),
            backup,
            callbacks.GeneratorExporter(tmp_path / "export"),
            dataset=bad,
        )
    assert not (tmp_path / "backup").exists()
    assert export.versions(tmp_path / "export") == []


def test_callbacks_need_a_gan_and_good_arguments(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(loss="mse")
    with pytest.raises(InputError, match="needs a keras_gan.GAN"):
        model.fit(
            np.zeros((4, 2)),
            np.zeros((4, 1)),
            verbose=0,
            callbacks=[callbacks.SampleGrid(tmp_path)],
        )
    with pytest.raises(InputError, match="positive num_rows"):
        callbacks.SampleGrid(tmp_path, num_rows=0)
    with pytest.raises(InputError, match="every_n_epochs >= 1"):
        callbacks.GeneratorExporter(tmp_path, every_n_epochs=0)


def test_sample_grid_gif_leaves_out_files_it_did_not_write(tmp_path):
    (tmp_path / "epoch_0000.png").write_text("not an image")  # a stray file
    Image.new("L", (5, 5)).save(tmp_path / "epoch_0009.png")  # another shape
    gan = tiny_gan()
    with pytest.warns(UserWarning, match="epoch_0000.png is not a PNG grid"):
        _fit(gan, 2, callbacks.SampleGrid(tmp_path, num_rows=2))
    assert Image.open(tmp_path / "samples.gif").n_frames == 2
