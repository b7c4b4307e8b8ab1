"""ONNX exports: round trips in onnxruntime, refused conversions, the layout."""

import json
import os

import keras
import numpy as np
import onnxruntime
import pytest
from helpers import LATENT_DIM
from helpers import tiny_gan
from onnxruntime.capi.onnxruntime_pybind11_state import Fail
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

import keras_gan
from keras_gan import export
from keras_gan import noise
from keras_gan import provenance
from keras_gan.errors import InputError
from keras_gan.errors import UnsafeInputError
from keras_gan.export import onnx as onnx_export

TOLERANCE = onnx_export.TOLERANCE


def run(path, name, **feed):
    session = onnxruntime.InferenceSession(
        os.path.join(path, name), providers=["CPUExecutionProvider"]
    )
    return session.run(["images"], feed)[0]


def request(seed, num_images, labels=None):
    feed = {"seed": np.array(seed, np.int64), "num_images": np.array(num_images)}
    feed["num_images"] = feed["num_images"].astype(np.int32)
    if labels is not None:
        feed["labels"] = np.array(labels, np.int32)
    return feed


def max_difference(actual, expected):
    return float(np.max(np.abs(actual - keras.ops.convert_to_numpy(expected))))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    gan = tiny_gan(seed=4)
    base = tmp_path_factory.mktemp("mlp")
    saved_model = export.export_version(gan.generator, base)
    path = export.export_version(gan.generator, base, format="onnx")
    return gan, base, saved_model, path


def test_onnx_versions_sit_beside_the_saved_model_versions(mlp):
    _, base, saved_model, path = mlp
    assert saved_model == str(base / "1")
    assert path == str(base / "onnx" / "1")
    # TF Serving and keras_gan count only integer folders: onnx/ is not one.
    assert export.versions(base) == [1]
    assert export.versions(base / "onnx") == [1]
    assert sorted(os.listdir(path)) == ["assets.extra", "generate.onnx", "model.onnx"]
    provenance.verify(path)  # signed like a SavedModel version
    info = export.export_info(path)
    assert info["latent_dim"] == LATENT_DIM and info["image_shape"] == [8, 8, 1]
    assert info["num_classes"] is None and info["opset"] == onnx_export.OPSET
    assert info["models"]["model.onnx"]["inputs"] == {
        "z": {"dtype": "float32", "shape": [None, LATENT_DIM]}
    }
    assert info["models"]["generate.onnx"]["inputs"] == {
        "seed": {"dtype": "int64", "shape": []},
        "num_images": {"dtype": "int32", "shape": []},
    }
    assert 0 <= info["max_abs_difference"] <= TOLERANCE
    with pytest.raises(InputError, match="is an ONNX export"):
        export.load_export(path)


@pytest.mark.parametrize("batch_size", [1, 3, 17])
def test_mlp_model_onnx_equals_the_keras_generator(mlp, batch_size):
    gan, _, _, path = mlp
    z = np.random.default_rng(batch_size).normal(size=(batch_size, LATENT_DIM))
    z = z.astype("float32")
    images = run(path, "model.onnx", z=z)
    assert images.shape == (batch_size, 8, 8, 1) and images.dtype == np.float32
    assert max_difference(images, gan.generator(z)) <= TOLERANCE


def test_mlp_generate_onnx_equals_gan_generate_and_the_saved_model(mlp):
    import tensorflow as tf

    gan, _, saved_model, path = mlp
    served = export.load_export(saved_model)
    for seed, count in [(0, 1), (123, 5), (2**40 + 7, 3)]:
        images = run(path, "generate.onnx", **request(seed, count))
        assert images.shape == (count, 8, 8, 1)
        assert max_difference(images, gan.generate(count, seed=seed)) <= TOLERANCE
        signature = served.signatures["generate"]
        expected = signature(
            seed=tf.constant(seed, tf.int64), num_images=tf.constant(count)
        )["images"]
        assert max_difference(images, expected) <= TOLERANCE
        # README's recipe for model.onnx: the latents of keras_gan.noise.
        z = keras.ops.convert_to_numpy(noise.latent_noise(count, LATENT_DIM, seed))
        assert max_difference(run(path, "model.onnx", z=z), expected) <= TOLERANCE


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    keras.utils.set_random_seed(3)
    generator, discriminator = keras_gan.networks.build(
        "dcgan", LATENT_DIM, (16, 16, 1), 3
    )
    gan = keras_gan.GAN(generator, discriminator, num_classes=3)
    base = tmp_path_factory.mktemp("dcgan")
    names = ["cat", "dog", "owl"]
    path = export.export_version(
        generator, base, num_classes=3, class_names=names, format="onnx"
    )
    return gan, path


def test_conditional_dcgan_round_trip(conditional):
    gan, path = conditional
    info = export.export_info(path)
    assert info["num_classes"] == 3 and info["class_names"] == ["cat", "dog", "owl"]
    assert set(info["models"]["model.onnx"]["inputs"]) == {"z", "labels"}
    z = np.random.default_rng(0).normal(size=(5, LATENT_DIM)).astype("float32")
    labels = np.array([2, 0, 1, 1, 2], np.int32)
    images = run(path, "model.onnx", z=z, labels=labels)
    assert images.shape == (5, 16, 16, 1)
    assert max_difference(images, gan.generator([z, labels])) <= TOLERANCE
    given = run(path, "generate.onnx", **request(1, 3, [2, 0, 1]))
    expected = gan.generate(3, seed=1, labels=[2, 0, 1])
    assert max_difference(given, expected) <= TOLERANCE
    cycled = run(path, "generate.onnx", **request(1, 4, []))
    assert max_difference(cycled, gan.generate(4, seed=1)) <= TOLERANCE
    assert max_difference(cycled[:3], given) > 1e-3  # the labels matter


@pytest.mark.parametrize(
    "labels, reason",
    [
        ([0, 1, 2, 0, 3], "Gather"),  # a class past the last
        ([0, 1, 2, 0, -1], "Gather"),  # not the last class, as Gather would read it
        ([1], "Reshape"),  # one label for five latents
    ],
)
def test_conditional_onnx_refuses_bad_labels(conditional, labels, reason):
    _, path = conditional
    z = np.zeros((5, LATENT_DIM), np.float32)
    with pytest.raises((Fail, InvalidArgument), match=reason):
        run(path, "model.onnx", z=z, labels=np.array(labels, np.int32))
    with pytest.raises((Fail, InvalidArgument), match=reason):
        run(path, "generate.onnx", **request(0, 5, labels))


class Erfinv(keras.layers.Layer):
    """A layer whose TensorFlow op tf2onnx cannot convert (the op the issue's
    reporter saw flagged)."""

    def call(self, x):
        import tensorflow as tf

        return tf.math.erfinv(0.5 * x)


def erfinv_generator():
    z = keras.Input((LATENT_DIM,), name="z")
    return keras.Model(z, keras.layers.Reshape((2, 2, 1))(Erfinv()(z)))


def test_a_flagged_conversion_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(InputError, match=r"Unsupported ops: .*'Erfinv'"):
        export.export_version(erfinv_generator(), tmp_path / "model", format="onnx")
    assert not (tmp_path / "model").exists()


def test_the_converters_default_opset_is_flagged(tmp_path, monkeypatch):
    # tf2onnx's default opset predates BitwiseXor / BitwiseAnd: it logs them
    # as unsupported and still writes a model that no runtime loads.
    monkeypatch.setattr(onnx_export, "OPSET", 15)
    with pytest.raises(InputError, match=r"generate.onnx: Unsupported ops.*Bitwise"):
        export.export_version(tiny_gan().generator, tmp_path / "model", format="onnx")
    assert not (tmp_path / "model").exists()


def test_onnx_checker_refuses_what_the_converter_let_through(tmp_path, monkeypatch):
    class Silenced:  # the converter's logged errors, unheard
        def __enter__(self):
            return []

        def __exit__(self, *error):
            return False

    monkeypatch.setattr(onnx_export, "_converter_errors", Silenced)
    with pytest.raises(InputError, match="onnx.checker rejected .*Erfinv"):
        export.export_onnx(erfinv_generator(), tmp_path / "model")
    assert not (tmp_path / "model").exists()


class Drifting(keras.layers.Layer):
    """Adds a Python counter: the traced graph keeps the value it had when
    converted, the Keras generator moves on (a graph that differs)."""

    calls = 0

    def call(self, x):
        Drifting.calls += 1
        return x + 1e-3 * Drifting.calls


def test_onnx_that_differs_from_the_keras_generator_is_refused(tmp_path):
    z = keras.Input((LATENT_DIM,), name="z")
    generator = keras.Model(z, keras.layers.Reshape((2, 2, 1))(Drifting()(z)))
    with pytest.raises(InputError, match=r"model.onnx differ .* at most 1e-05"):
        export.export_version(generator, tmp_path / "model", format="onnx")
    assert not (tmp_path / "model").exists()


def test_a_mixed_precision_generator_is_exported_in_float32(tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        generator, _ = keras_gan.networks.build("dcgan", LATENT_DIM, (8, 8, 1))
    finally:
        keras.config.set_dtype_policy("float32")
    path = export.export_onnx(generator, tmp_path / "model")
    z = np.random.default_rng(0).normal(size=(4, LATENT_DIM)).astype("float32")
    images = run(path, "model.onnx", z=z)
    # Within bfloat16's rounding of the mixed-precision generator (8 bits).
    assert 0 < max_difference(images, generator(z)) < 0.05
    assert generator.get_layer("project").compute_dtype == "bfloat16"  # untouched


def test_bad_requests_write_nothing(tmp_path):
    generator = tiny_gan().generator
    with pytest.raises(InputError, match="Unknown export format 'tflite'"):
        export.export_version(generator, tmp_path / "a", format="tflite")
    with pytest.raises(InputError, match="2 class names .* None classes"):
        export.export_onnx(generator, tmp_path / "b", class_names=["x", "y"])
    (tmp_path / "c").mkdir()
    with pytest.raises(InputError, match="exists; expected a new folder"):
        export.export_onnx(generator, tmp_path / "c")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, tmp_path / "c" / "onnx")
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        export.export_version(generator, tmp_path / "c", format="onnx")
    assert sorted(os.listdir(tmp_path)) == ["c", "elsewhere"]
    assert os.listdir(elsewhere) == []


@pytest.mark.backends
def test_onnx_export_from_this_backend(tmp_path):
    # On JAX and PyTorch through the TensorFlow process, then checked against
    # this backend's generator.
    gan = tiny_gan(seed=5)
    path = export.export_version(gan.generator, tmp_path / "tiny", format="onnx")
    assert path == str(tmp_path / "tiny" / "onnx" / "1")
    z = np.random.default_rng(0).normal(size=(3, LATENT_DIM)).astype("float32")
    images = run(path, "model.onnx", z=z)
    assert max_difference(images, gan.generator(z)) <= TOLERANCE
    generated = run(path, "generate.onnx", **request(7, 2))
    assert max_difference(generated, gan.generate(2, seed=7)) <= TOLERANCE
    with open(os.path.join(path, "assets.extra", "keras_gan.json")) as file:
        assert json.load(file)["format"] == "onnx"
