"""The domain classifier, the Evaluator and the Evaluate callback, on digits."""

import csv
import functools
import gzip
import json
import math
import os

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import tiny_dataset

import cli
import keras_gan
from keras_gan import data
from keras_gan import export
from keras_gan.errors import InputError
from keras_gan.evaluation import SCALARS
from keras_gan.evaluation import Evaluator
from keras_gan.evaluation import classifier as classifier_module

NUM_SAMPLES = 300


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("classifiers"))


@pytest.fixture(scope="module")
def digits_classifier(cache_dir):
    return classifier_module.load_classifier("digits", cache_dir=cache_dir)


@pytest.fixture(scope="module")
def evaluator(digits_classifier):
    images, _ = data.load_arrays("digits")
    return Evaluator(images, digits_classifier, num_samples=NUM_SAMPLES)


@pytest.fixture(scope="module")
def held_out(evaluator):
    # Real digits outside both of the evaluator's real sets: a perfect generator.
    images, labels = data.load_arrays("digits")
    order = np.random.default_rng(0).permutation(len(images))
    rest = order[2 * NUM_SAMPLES :][:NUM_SAMPLES]
    return images[rest].astype("float32") / 127.5 - 1.0, labels[rest]


def test_digits_use_the_shipped_classifier(digits_classifier):
    assert digits_classifier.origin == "shipped"
    assert digits_classifier.accuracy > 0.97  # 8x8 digits, held-out fifth
    assert digits_classifier.num_classes == 10


def test_trained_classifier_is_cached_and_verified(cache_dir):
    images, labels = data.load_arrays("digits")
    subset = (images[:1000], labels[:1000])  # not the shipped classifier's data
    load = functools.partial(
        classifier_module.load_classifier,
        "digits",
        cache_dir=cache_dir,
        train_split=subset,
        verbose=False,
    )
    trained = load(epochs=2)
    assert trained.origin == "trained" and trained.num_classes == 10
    again = load()
    assert again.origin == "cached"
    assert again.weights_sha256 == trained.weights_sha256
    assert again.accuracy == trained.accuracy
    # The cache is keyed by the training images' content.
    assert trained.dataset_key == classifier_module.cache_key(
        "digits", None, data.content_digest(*subset)
    )
    # A cached model whose weights no longer match their hash is not trusted.
    info_path = os.path.join(cache_dir, f"{trained.dataset_key}.json")
    with open(info_path) as file:
        info = json.load(file)
    assert info["epochs"] == 2
    info["weights_sha256"] = "0" * 64
    with open(info_path, "w") as file:
        json.dump(info, file)
    retrained = load(epochs=1)
    assert retrained.origin == "trained"
    assert retrained.weights_sha256 != "0" * 64
    with open(info_path) as file:
        assert json.load(file)["epochs"] == 1


def test_real_images_score_like_the_floor_and_noise_far_worse(evaluator, held_out):
    real = evaluator.evaluate_images(held_out[0])
    noise = evaluator.evaluate_images(
        np.random.default_rng(0).uniform(-1, 1, (NUM_SAMPLES, 8, 8, 1))
    )
    assert real["num_samples"] == NUM_SAMPLES
    assert real["frechet_distance"] < 3 * evaluator.floor["frechet_distance"] + 0.5
    assert noise["frechet_distance"] > 20 * real["frechet_distance"]
    assert noise["kid"] > 10 * max(real["kid"], 1e-3)
    assert real["recall"] > 0.8 and noise["recall"] < 0.1
    assert real["classes_covered"] == 10 and real["missing_classes"] == []
    assert real["inception_score"] > 5 * noise["inception_score"] / 2
    assert real["floor"] == {key: evaluator.floor[key] for key in SCALARS}
    assert real["classifier"]["weights_sha256"] == evaluator.classifier.weights_sha256


def test_one_repeated_image_covers_one_class_and_has_no_recall(evaluator, held_out):
    images, labels = held_out
    repeated = np.repeat(images[:1], NUM_SAMPLES, axis=0)
    result = evaluator.evaluate_images(repeated)
    assert result["classes_covered"] == 1
    assert len(result["missing_classes"]) == 9
    assert str(labels[0]) not in result["missing_classes"]
    assert result["recall"] < 0.02
    warning = keras_gan.evaluation.collapse_warning(result)
    assert "missing" in warning and "100%" in warning


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((NUM_SAMPLES, 8, 8)), "shape"),
        (np.zeros((NUM_SAMPLES, 28, 28, 1)), "expected (8, 8, 1)"),
        (np.full((NUM_SAMPLES, 8, 8, 1), 3.0), "expected [-1, 1]"),
        (np.full((NUM_SAMPLES, 8, 8, 1), np.nan), "NaN"),
        (np.zeros((NUM_SAMPLES, 8, 8, 1), np.uint8), "floats"),
        (np.zeros((5, 8, 8, 1)), "expected 300 generated images"),
    ],
)
def test_bad_generated_images(evaluator, images, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(
        ")", r"\)").replace("[", r"\[").replace("]", r"\]")):  # fmt: skip
        evaluator.evaluate_images(images)


def test_too_many_samples_for_the_dataset(digits_classifier):
    images, _ = data.load_arrays("digits")
    with pytest.raises(InputError, match="expected num_samples <= 898"):
        Evaluator(images, digits_classifier, num_samples=10_000)


def test_unlabelled_data_falls_back_to_random_features(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    pixels = np.random.default_rng(0).integers(0, 256, (60, 8, 8), dtype=np.uint8)
    header = np.array([0x803, 60, 8, 8], ">u4").tobytes()
    with gzip.open(folder / "train-images-idx3-ubyte.gz", "wb") as file:
        file.write(header + pixels.tobytes())
    evaluator = Evaluator.for_dataset(
        data_dir=str(folder), num_samples=20, cache_dir=str(tmp_path / "cache")
    )
    assert evaluator.classifier.accuracy is None
    result = evaluator.evaluate_images(
        np.random.default_rng(1).uniform(-1, 1, (20, 8, 8, 1))
    )
    assert result["inception_score"] is None and result["classes_covered"] is None
    assert np.isfinite(result["frechet_distance"])
    assert "no class predictions" in keras_gan.evaluation.format_table(result)


def test_inception_features_have_the_standard_shape():
    # Random weights: shapes only (ImageNet weights are never downloaded).
    inception = classifier_module.inception_classifier(
        (8, 8, 1), weights=None, image_size=75
    )
    features, probabilities = inception.predict(np.zeros((2, 8, 8, 1), "float32"))
    assert features.shape == (2, 2048) and probabilities is None
    with pytest.raises(InputError, match="weights not found"):
        os.environ["KERAS_HOME"] = "/nonexistent"
        try:
            classifier_module.inception_classifier((8, 8, 1))
        finally:
            del os.environ["KERAS_HOME"]


def _collapsed_gan():
    # A generator whose output ignores z: every sample is the same image.
    z = keras.Input((4,))
    images = keras.layers.Reshape((8, 8, 1))(
        keras.layers.Dense(64, activation="tanh", kernel_initializer="zeros",
                           bias_initializer="ones")(z)
    )  # fmt: skip
    generator = keras.Model(z, images)
    discriminator = keras_gan.networks.mlp_discriminator((8, 8, 1), 8)
    gan = keras_gan.GAN(generator, discriminator, seed=0)
    gan.compile(g_optimizer=keras.optimizers.SGD(0.0))
    return gan


def test_evaluate_callback_logs_exports_the_best_and_warns(evaluator, tmp_path):
    gan = _collapsed_gan()
    evaluate = keras_gan.callbacks.Evaluate(
        evaluator, every_n_epochs=2, export_dir=tmp_path / "best"
    )
    logger = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    with pytest.warns(UserWarning, match="Mode collapse") as caught:
        history = gan.fit(
            tiny_dataset(), epochs=4, verbose=0, callbacks=[evaluate, logger]
        )
    messages = [str(warning.message) for warning in caught]
    assert [m[:8] for m in messages if "Mode collapse" in m] == ["Epoch 2:", "Epoch 4:"]
    fd = history.history["frechet_distance"]
    assert math.isnan(fd[0]) and math.isnan(fd[2])
    assert fd[1] > 0 and fd[3] == pytest.approx(fd[1])  # G never changes
    # The same generator is not better at epoch 4: one export, at epoch 2.
    assert export.versions(tmp_path / "best") == [1]
    assert [epoch for epoch, _ in evaluate.collapse_warnings] == [2, 4]
    with open(tmp_path / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert float(rows[1]["frechet_distance"]) == pytest.approx(fd[1])


def test_cli_evaluate_table_and_json(tmp_path, cache_dir, monkeypatch):
    monkeypatch.setattr(classifier_module, "default_cache_dir", lambda: cache_dir)
    gan = _collapsed_gan()
    export.export_version(gan.generator, tmp_path / "model")
    runner = CliRunner()
    args = ["evaluate", str(tmp_path / "model"), "--dataset", "digits",
            "--num-samples", str(NUM_SAMPLES)]  # fmt: skip
    table = runner.invoke(cli.cli, args)
    assert table.exit_code == 0, table.output
    assert "frechet_distance" in table.output and "real floor" in table.output
    assert "Warning: Mode collapse" in table.output
    line = runner.invoke(cli.cli, [*args, "--json"])
    assert line.exit_code == 0, line.output
    result = json.loads(line.output.strip().splitlines()[-1])
    assert result["num_samples"] == NUM_SAMPLES and result["classes_covered"] == 1

    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.export(str(tmp_path / "other"), verbose=False)
    bad = runner.invoke(cli.cli, ["evaluate", str(tmp_path / "other"), "--dataset",
                                  "digits", "--trust"])  # fmt: skip
    assert bad.exit_code == 1 and "no 'generate' signature" in bad.output
    wide = keras_gan.networks.mlp_generator(4, (6, 6, 1))
    export.export_version(wide, tmp_path / "wide")
    bad = runner.invoke(cli.cli, ["evaluate", str(tmp_path / "wide"), "--dataset",
                                  "digits", "--num-samples", "50"])  # fmt: skip
    assert bad.exit_code == 1 and "expected (8, 8, 1)" in bad.output
