"""The domain classifiers shipped with the package: used only when the data
and the files are exactly what they were recorded as, else trained as before."""

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from keras_gan import data
from keras_gan import export
from keras_gan import files
from keras_gan import networks
from keras_gan.evaluation import classifier as classifier_module
from keras_gan.evaluation import shipped
from keras_gan.evaluation.network import ARCHITECTURE
from keras_gan.evaluation.network import weights_hash

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def _record(name):
    with open(os.path.join(shipped.SHIPPED_DIR, f"{name}.json")) as file:
        return json.load(file)


def _no_training(*args, **kwargs):
    raise AssertionError("train_classifier was called; expected the shipped one")


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped classifiers that the package reads instead."""
    copy = tmp_path / "shipped"
    shutil.copytree(shipped.SHIPPED_DIR, copy)
    monkeypatch.setattr(shipped, "SHIPPED_DIR", str(copy))
    return copy


@pytest.mark.backends
def test_shipped_digits_classifier_is_used_without_training(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_module, "train_classifier", _no_training)
    cache = tmp_path / "cache"
    classifier = classifier_module.load_classifier("digits", cache_dir=str(cache))
    record = _record("digits")
    assert classifier.origin == "shipped"
    assert classifier.weights_sha256 == record["weights_sha256"]
    assert weights_hash(classifier.model) == record["weights_sha256"]
    assert classifier.accuracy == record["accuracy"] >= 0.97
    path = os.path.join(shipped.SHIPPED_DIR, record["weights_file"])
    assert files.sha256(path) == record["file_sha256"]
    assert os.path.getsize(path) == record["file_bytes"] <= 500_000
    assert record["architecture"] == ARCHITECTURE
    digest = data.content_digest(*data.load_arrays("digits"))
    assert record["data_sha256"] == digest
    assert classifier.dataset_key == f"digits-{digest[:16]}-{ARCHITECTURE}"
    assert not cache.exists()  # nothing trained, nothing cached
    # Its predictions are those of a trained classifier, compiled (from
    # COMPILED_PREDICT_MIN_IMAGES on) or eager alike.
    images, labels = data.load_arrays("digits")
    images = images.astype("float32") / 127.5 - 1
    many = np.concatenate([images, images])[
        : classifier_module.COMPILED_PREDICT_MIN_IMAGES
    ]
    features, probabilities = classifier.predict(many)
    eager_features, eager_probabilities = classifier.predict(images[:200])
    np.testing.assert_allclose(features[:200], eager_features, atol=1e-4)
    np.testing.assert_allclose(probabilities[:200], eager_probabilities, atol=1e-5)
    accuracy = np.mean(np.argmax(probabilities[: len(labels)], axis=-1) == labels)
    assert accuracy > 0.97  # mostly its training images


def _flip_a_byte(copy):
    path = copy / "digits.npz"
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF  # inside the arrays, not the zip header
    path.write_bytes(bytes(content))


def _other_weights_same_file_hash(copy):
    # A valid file of other weights whose record was updated to its SHA-256:
    # the file check passes, the loaded weights' hash does not.
    path = copy / "digits.npz"
    with np.load(path) as arrays:
        changed = {key: arrays[key] + np.float16(1) for key in arrays.files}
    np.savez(path, **changed)
    record = json.loads((copy / "digits.json").read_text())
    record["file_sha256"] = files.sha256(path)
    (copy / "digits.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (_flip_a_byte, r"digits\.npz has SHA-256 \w+; expected \w+"),
        (_other_weights_same_file_hash, r"loads to weights with SHA-256 \w+; expected"),
    ],
)
def test_tampered_shipped_file_warns_once_and_is_not_used(
    shipped_copy, tmp_path, tamper, message
):
    tamper(shipped_copy)
    with pytest.warns(UserWarning, match=message) as caught:
        classifier = classifier_module.load_classifier(
            "digits", cache_dir=str(tmp_path / "cache"), epochs=1, verbose=False
        )
    warnings = [
        str(warning.message)
        for warning in caught
        if warning.category is UserWarning  # not NumPy's or TensorFlow's
    ]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "not used" in warnings[0]
    assert classifier.origin == "trained"
    assert classifier.weights_sha256 != _record("digits")["weights_sha256"]


def test_an_unreadable_record_is_left_out_with_a_warning(shipped_copy):
    record = shipped_copy / "digits.json"
    record.write_text("{not json")
    with pytest.warns(UserWarning, match=r"digits\.json is unreadable"):
        assert [found["name"] for found in shipped.records()] == ["fashion-mnist"]
    record.write_text('{"name": "digits"}')
    with pytest.warns(UserWarning, match=r"lacks \['data_sha256', "):
        assert [found["name"] for found in shipped.records()] == ["fashion-mnist"]


def test_other_data_is_trained_with_a_progress_bar_under_a_named_key(
    tmp_path, monkeypatch, capfd
):
    # The digits with one pixel changed: not what the shipped one was trained on.
    images, labels = data.load_arrays("digits")
    images, labels = images[:500].copy(), labels[:500]
    images[0, 0, 0, 0] ^= 0xFF
    path = tmp_path / "My Digits.npz"
    np.savez(path, images=images, labels=labels)
    cache = tmp_path / "cache"
    capfd.readouterr()
    classifier = classifier_module.load_classifier(
        data_dir=str(path), cache_dir=str(cache), epochs=2
    )
    out, err = capfd.readouterr()
    digest = data.content_digest(images, labels)
    assert classifier.origin == "trained"
    assert classifier.dataset_key == f"my-digits-{digest[:16]}-{ARCHITECTURE}"
    assert out == ""  # stdout is for results
    assert "Training the domain classifier my-digits-" in err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "accuracy" in err
    assert sorted(os.listdir(cache)) == [
        f"{classifier.dataset_key}.json",
        f"{classifier.dataset_key}.keras",
    ]
    # Cached: the second call trains nothing and says nothing.
    monkeypatch.setattr(classifier_module, "train_classifier", _no_training)
    again = classifier_module.load_classifier(data_dir=str(path), cache_dir=str(cache))
    assert again.origin == "cached"
    assert again.weights_sha256 == classifier.weights_sha256
    assert capfd.readouterr() == ("", "")


def test_the_key_names_the_data_and_keeps_datasets_of_one_name_apart():
    key = classifier_module.cache_key
    digest = "0123456789abcdef" * 4
    assert key("mnist", FASHION_MNIST + "/", digest) == (
        f"fashion-mnist-0123456789abcdef-{ARCHITECTURE}"
    )
    assert key("digits", None, digest).startswith("digits-0123456789abcdef-")
    assert key("emnist/letters", None, digest).startswith("emnist-letters-")
    assert key("x", "/data/Faces 64.npz", digest).startswith("faces-64-")
    assert key("x", "/", digest).startswith("data-")
    assert key("digits", None, "f" * 64) != key("digits", None, digest)


@pytest.mark.skipif(
    not os.path.isdir(FASHION_MNIST), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_evaluate_uses_the_shipped_classifier(tmp_path, monkeypatch):
    monkeypatch.setattr(classifier_module, "train_classifier", _no_training)
    monkeypatch.setenv("KERAS_GAN_CACHE", str(tmp_path / "fresh-cache"))
    generator = networks.mlp_generator(8, (28, 28, 1), hidden_units=8)
    export.export_version(generator, tmp_path / "model")
    result = CliRunner().invoke(
        cli.cli,
        ["evaluate", str(tmp_path / "model"), "--data-dir", FASHION_MNIST,
         "--num-samples", "100", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)  # stdout: exactly one JSON document
    record = _record("fashion-mnist")
    assert scores["classifier"]["origin"] == "shipped"
    assert scores["classifier"]["weights_sha256"] == record["weights_sha256"]
    assert scores["classifier"]["accuracy"] == record["accuracy"] >= 0.90
    assert scores["classifier"]["dataset"].startswith("fashion-mnist-")
    assert record["file_bytes"] <= 500_000
    assert "Epoch" not in result.stderr
    assert not (tmp_path / "fresh-cache" / "classifiers").exists()
