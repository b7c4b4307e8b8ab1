"""`python cli.py` with the model flags: architectures, conditional runs, EMA,
losses, penalties, augmentation and mixed precision, on the offline digits."""

import csv
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from cli_helpers import assert_one_line_error
from cli_helpers import snapshot
from cli_helpers import train
from click.testing import CliRunner
from helpers import tiny_gan
from PIL import Image

import cli
from keras_gan import export


def _sample(*args):
    return CliRunner().invoke(cli.cli, ["sample", *map(str, args)])


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("conditional")
    result = train(
        tmp_path, "--dataset", "digits", "--name", "cond", "--architecture", "dcgan",
        "--conditional", "--ema", "0.99", "--batch-size", "32", "--epochs", "1",
        "--latent-dim", "8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return tmp_path


def test_conditional_run_has_class_rows_and_a_labelled_export(conditional_run):
    run = conditional_run / "runs" / "cond"
    settings = json.loads((run / "config.json").read_text())
    assert settings["architecture"] == "dcgan" and settings["conditional"] is True
    assert settings["ema"] == 0.99
    # One row per digit class, 8 tiles of 8x8 px with 1 px padding each,
    # shown 4x.
    grid = Image.open(run / "samples" / "epoch_0001.png")
    assert grid.size == (4 * (8 * 9 - 1), 4 * (10 * 9 - 1))

    path = conditional_run / "saved_models" / "cond" / "1"
    assert export.export_info(path)["num_classes"] == 10
    served = export.load_export(path)
    inputs = served.signatures["serving_default"].structured_input_signature[1]
    assert inputs["labels"] == tf.TensorSpec((None,), tf.int32, name="labels")
    assert "labels" in served.signatures["generate"].structured_input_signature[1]
    # The export holds the weight average: GAN.generate, not the raw generator.
    gan = keras.saving.load_model(run / "gan.keras")
    assert (gan.num_classes, gan.ema_decay) == (10, 0.99)
    images = served.signatures["generate"](
        seed=tf.constant(1, tf.int64),
        num_images=tf.constant(12),
        labels=tf.constant([], tf.int32),
    )["images"]
    np.testing.assert_allclose(images, gan.generate(12, seed=1), atol=1e-5)
    z, labels = np.zeros((2, 8), "float32"), np.array([0, 1], "int32")
    assert not np.allclose(gan.generator([z, labels]), gan(z, labels=labels))


def test_sample_writes_one_row_per_label(conditional_run, tmp_path):
    export_path = conditional_run / "saved_models" / "cond" / "1"
    output = tmp_path / "x.png"
    result = _sample(export_path, "--labels", "0,3", "--output", output)
    assert result.exit_code == 0, result.output
    assert Image.open(output).size == (4 * (8 * 9 - 1), 4 * (2 * 9 - 1))


def test_sample_refuses_labels_the_export_cannot_take(conditional_run, tmp_path):
    conditional = conditional_run / "saved_models" / "cond" / "1"
    unconditional = export.export_version(tiny_gan().generator, tmp_path / "plain")
    output = tmp_path / "x.png"
    result = _sample(conditional, "--labels", "99", "--output", output)
    assert_one_line_error(result, "labels must be classes in [0, 9]")
    result = _sample(conditional, "--labels", "1,x", "--output", output)
    assert_one_line_error(result, "unknown class 'x'", "integers")
    result = _sample(unconditional, "--labels", "1", "--output", output)
    assert_one_line_error(result, "conditional exports", "unconditional")
    assert not output.exists()


def test_export_of_a_conditional_checkpoint_to_onnx_takes_labels(
    conditional_run, tmp_path
):
    import onnxruntime

    # A run that has not finished: the GAN is built from config.json and its
    # data's classes, then the newest checkpoint restored.
    unfinished = tmp_path / "runs" / "cond"
    shutil.copytree(conditional_run / "runs" / "cond", unfinished)
    os.remove(unfinished / "gan.keras")
    result = CliRunner().invoke(
        cli.cli,
        ["export", str(unfinished), "--format", "onnx",
         "--export-dir", str(tmp_path / "exports")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = result.output.strip().splitlines()[-1].removeprefix("Exported generator: ")
    assert path == str(tmp_path / "exports" / "cond" / "onnx" / "1")
    assert export.export_info(path)["num_classes"] == 10
    gan = keras.saving.load_model(conditional_run / "runs" / "cond" / "gan.keras")
    z = np.random.default_rng(0).normal(size=(10, 8)).astype("float32")
    labels = np.arange(10, dtype="int32")
    session = onnxruntime.InferenceSession(os.path.join(path, "model.onnx"))
    (images,) = session.run(["images"], {"z": z, "labels": labels})
    expected = keras.ops.convert_to_numpy(gan.inference_generator([z, labels]))
    np.testing.assert_allclose(images, expected, atol=1e-5)


def test_resume_with_another_ema_is_refused(conditional_run):
    before = snapshot(conditional_run)
    result = train(
        conditional_run, "--name", "cond", "--resume", "--ema", "0.5", "--epochs", "2"
    )
    assert_one_line_error(result, "--ema 0.5 differs from the run's 0.99")
    assert snapshot(conditional_run) == before


BAD_FLAGS = [
    (["--loss", "nope"], ["--loss", "'nope'"]),
    (["--architecture", "nope"], ["--architecture", "'nope'"]),
    (["--augment", "nope"], ["Unknown augmentation 'nope'"]),
    (["--mixed-precision", "fp8"], ["--mixed-precision", "fp8"]),
    (["--ema", "1.5"], ["--ema", "1.5"]),
    (["--d-steps", "0"], ["--d-steps"]),
    (["--architecture", "mlp", "--conditional"], ["no conditional version"]),
    (["--gradient-penalty", "-1"], ["--gradient-penalty"]),
]


@pytest.mark.parametrize(
    ("flags", "fragments"), BAD_FLAGS, ids=[" ".join(flags) for flags, _ in BAD_FLAGS]
)
def test_bad_model_flags_get_one_line_and_write_nothing(tmp_path, flags, fragments):
    result = train(tmp_path, "--dataset", "digits", "--epochs", "1", *flags)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "saved_models").exists()


def test_every_training_flag_at_once_finishes_and_exports(tmp_path):
    result = train(
        tmp_path, "--dataset", "digits", "--name", "all", "--architecture", "mlp",
        "--loss", "hinge", "--gradient-penalty", "1", "--r1", "0.5",
        "--penalty-interval", "2", "--d-steps", "2", "--augment",
        "translation,cutout", "--mixed-precision", "mixed_bfloat16", "--epochs", "1",
        "--batch-size", "64", "--latent-dim", "8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert keras.config.dtype_policy().name == "float32"  # restored after the run
    run = tmp_path / "runs" / "all"
    with open(run / "log.csv") as file:
        (row,) = list(csv.DictReader(file))
    for name in ("d_loss", "g_loss", "d_penalty"):
        assert np.isfinite(float(row[name])), row
    # The flags reached the model that was trained and saved.
    gan = keras.saving.load_model(run / "gan.keras")
    assert gan.gan_loss.name == "hinge"
    assert gan.training_options == {
        "gradient_penalty": 1.0, "r1": 0.5, "r2": 0.0, "penalty_interval": 2,
        "d_steps": 2, "augment": "translation,cutout",
    }  # fmt: skip
    hidden = gan.discriminator.get_layer("hidden")
    assert hidden.dtype_policy.name == "mixed_bfloat16"
    served = export.load_export(tmp_path / "saved_models" / "all")
    images = served.signatures["generate"](
        seed=tf.constant(0, tf.int64), num_images=tf.constant(4)
    )["images"]
    assert images.dtype == tf.float32 and images.shape == (4, 8, 8, 1)
    assert np.all(np.abs(images) <= 1.0)

    # A run without a weight average cannot gain one on resume.
    before = snapshot(tmp_path)
    result = train(tmp_path, "--name", "all", "--resume", "--ema", "0.9")
    assert_one_line_error(result, "--ema 0.9 differs from the run's None")
    assert snapshot(tmp_path) == before
