"""Exports and the command line on the active Keras backend (run under each)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import LATENT_DIM
from helpers import tiny_gan

import keras_gan
from keras_gan import export

pytestmark = pytest.mark.backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_export_from_this_backend_serves_what_the_generator_makes(tmp_path):
    import tensorflow as tf

    gan = tiny_gan(seed=4)
    path = export.export_version(gan.inference_generator, tmp_path / "tiny")
    assert path.endswith(os.path.join("tiny", "1"))
    served = export.load_export(path)
    assert set(served.signatures) >= {"serving_default", "generate"}
    z = np.random.default_rng(0).normal(size=(5, LATENT_DIM)).astype("float32")
    images = served.signatures["serving_default"](z=tf.constant(z))["images"]
    expected = keras.ops.convert_to_numpy(gan.generator(z))
    np.testing.assert_allclose(images.numpy(), expected, rtol=1e-5, atol=1e-6)
    generated = served.signatures["generate"](
        seed=tf.constant(7, tf.int64), num_images=tf.constant(3)
    )["images"]
    np.testing.assert_allclose(generated.numpy(), gan.generate(3, seed=7), atol=1e-5)


def test_conditional_export_takes_labels(tmp_path):
    import tensorflow as tf

    generator, discriminator = keras_gan.networks.build(
        "dcgan", LATENT_DIM, (8, 8, 1), 3
    )
    gan = keras_gan.GAN(generator, discriminator, num_classes=3)
    path = export.export_version(generator, tmp_path / "c", num_classes=3)
    served = export.load_export(path)
    labels = tf.constant([2, 0, 1], tf.int32)
    generated = served.signatures["generate"](
        seed=tf.constant(1, tf.int64), num_images=tf.constant(3), labels=labels
    )["images"]
    expected = gan.generate(3, seed=1, labels=[2, 0, 1])
    np.testing.assert_allclose(generated.numpy(), expected, atol=1e-5)
    assert export.export_info(path)["num_classes"] == 3


def _cli(*args, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "cli.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_resumes_a_tensorflow_run_and_samples_on_this_backend(tmp_path):
    # The first epoch on TensorFlow, the second on this backend: the run's
    # checkpoint (weights, both optimizers, noise state) loads on every backend.
    train = ["train", "--dataset", "digits", "--name", "b"]
    first = _cli("--backend", "tensorflow", *train, "--epochs", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert os.path.isdir(tmp_path / "saved_models" / "b" / "1")
    backend = keras.config.backend()
    resumed = _cli(
        "--backend", backend, *train, "--epochs", "2", "--resume", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((tmp_path / "runs" / "b" / "summary.json").read_text())
    assert summary["epochs"] == 2, summary
    assert os.path.isdir(tmp_path / "saved_models" / "b" / "2")
    sampled = _cli("sample", "saved_models/b", "--output", "grid.png", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_cli_names_a_missing_or_unknown_backend(tmp_path):
    result = _cli("--backend", "theano", "train", cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "theano" in result.stderr


def test_import_under_an_unsupported_backend_says_so_in_one_line():
    env = dict(os.environ, KERAS_BACKEND="numpy", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", "import keras_gan"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "tensorflow, jax, torch" in last and "'numpy'" in last, last


def test_readme_library_snippet_runs_on_this_backend(tmp_path):
    # README's "From your own code" snippet, unchanged, on 256 random images.
    with open(os.path.join(ROOT, "README.md")) as file:
        readme = file.read()
    start = readme.index("```python", readme.index("## From your own code"))
    snippet = readme[start + len("```python") : readme.index("```", start + 9)]
    images = (
        "import numpy as np\n"
        "images = np.random.default_rng(0).uniform(-1, 1, (256, 28, 28, 1))"
        ".astype('float32')\n"
    )
    (tmp_path / "snippet.py").write_text(images + snippet)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "runs" / "demo" / "gan.keras").exists()
    assert os.path.isdir(tmp_path / "saved_models" / "demo" / "1")
