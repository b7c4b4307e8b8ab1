"""`cli.py export RUN`: a run's live or averaged generator, from its gan.keras
or its newest checkpoint, as a SavedModel or ONNX version."""

import json
import os
import shutil

import keras
import numpy as np
import onnxruntime
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import train
from click.testing import CliRunner

import cli
from keras_gan import export
from keras_gan.export import onnx as onnx_export

LATENT_DIM = 8


def export_run(run, export_dir, *flags):
    return CliRunner().invoke(
        cli.cli, ["export", str(run), "--export-dir", str(export_dir), *flags]
    )


def exported_path(result):
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Exported generator: "), result.output
    return last.removeprefix("Exported generator: ")


def onnx_images(path, z):
    session = onnxruntime.InferenceSession(
        os.path.join(path, "model.onnx"), providers=["CPUExecutionProvider"]
    )
    return session.run(["images"], {"z": z})[0]


def checkpoint_only(run, tmp_path):
    """A copy of `run` as a run that has not finished: no gan.keras yet."""
    copy = tmp_path / "unfinished" / run.name
    shutil.copytree(run, copy)
    os.remove(copy / "gan.keras")
    os.remove(copy / "summary.json")
    return copy


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ema_run")
    result = train(
        tmp_path, "--dataset", "digits", "--name", "d", "--epochs", "1",
        "--ema-decay", "0.9", "--latent-dim", str(LATENT_DIM),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "d"
    gan = keras.saving.load_model(run / "gan.keras")
    return run, gan


@pytest.fixture(scope="module")
def latents():
    return np.random.default_rng(0).normal(size=(4, LATENT_DIM)).astype("float32")


def difference(images, model, z):
    return float(np.max(np.abs(images - keras.ops.convert_to_numpy(model(z)))))


def test_export_from_gan_keras_as_saved_model_and_onnx(ema_run, latents, tmp_path):
    import tensorflow as tf

    run, gan = ema_run
    # The default: a SavedModel of the weight average, as the run's own export.
    saved_model = exported_path(export_run(run, tmp_path))
    assert saved_model == str(tmp_path / "d" / "1")
    served = export.load_export(saved_model)
    images = served.signatures["serving_default"](z=tf.constant(latents))["images"]
    assert difference(images.numpy(), gan.ema_generator, latents) <= 1e-5
    onnx_live = ["--format", "onnx", "--generator", "live"]
    live = exported_path(export_run(run, tmp_path, *onnx_live))
    assert live == str(tmp_path / "d" / "onnx" / "1")
    assert export.versions(tmp_path / "d") == [1]
    live_images = onnx_images(live, latents)
    assert difference(live_images, gan.generator, latents) <= onnx_export.TOLERANCE
    assert np.max(np.abs(live_images - images.numpy())) > 1e-3  # live is not EMA


def test_export_from_a_checkpoint_live_and_ema(ema_run, latents, tmp_path):
    run, gan = ema_run
    unfinished = checkpoint_only(run, tmp_path)
    exports = tmp_path / "exports"
    paths = {
        which: exported_path(
            export_run(unfinished, exports, "--format", "onnx", "--generator", which)
        )
        for which in ("live", "ema", "auto")
    }
    assert paths["live"] == str(exports / "d" / "onnx" / "1")
    images = {which: onnx_images(path, latents) for which, path in paths.items()}
    # The checkpoint of the last step holds the weights gan.keras holds.
    assert difference(images["live"], gan.generator, latents) <= 1e-5
    assert difference(images["ema"], gan.ema_generator, latents) <= 1e-5
    assert np.array_equal(images["auto"], images["ema"])
    assert np.max(np.abs(images["live"] - images["ema"])) > 1e-3


def test_a_resumed_run_exports_its_newer_checkpoint(ema_run, latents, tmp_path):
    run, gan = ema_run
    resumed_root = tmp_path / "resumed"
    shutil.copytree(run, resumed_root / "runs" / "d")
    result = train(resumed_root, "--name", "d", "--resume", "--epochs", "2")
    assert result.exit_code == 0, result.output
    resumed = keras.saving.load_model(resumed_root / "runs" / "d" / "gan.keras")
    # Killed before it finished: the first invocation's gan.keras and summary
    # are still there, its checkpoints are a step further.
    for name in ("gan.keras", "summary.json"):
        shutil.copy(run / name, resumed_root / "runs" / "d" / name)
    path = exported_path(
        export_run(resumed_root / "runs" / "d", tmp_path / "x", "--format", "onnx")
    )
    images = onnx_images(path, latents)
    assert difference(images, resumed.ema_generator, latents) <= 1e-5
    assert difference(images, gan.ema_generator, latents) > 1e-4


def test_bad_export_requests_get_one_line_and_write_nothing(ema_run, tmp_path):
    run, _ = ema_run
    exports = tmp_path / "exports"
    result = export_run(tmp_path, exports)
    assert_one_line_error(result, "is not a run folder", "config.json")
    assert result.exit_code == 1

    empty = tmp_path / "runs" / "empty"
    empty.mkdir(parents=True)
    shutil.copy(run / "config.json", empty / "config.json")
    result = export_run(empty, exports)
    assert_one_line_error(result, "no gan.keras and no checkpoint")

    without_ema = tmp_path / "runs" / "plain"
    without_ema.mkdir()
    settings = json.loads((run / "config.json").read_text())
    (without_ema / "config.json").write_text(json.dumps({**settings, "ema": None}))
    result = export_run(without_ema, exports, "--generator", "ema")
    assert_one_line_error(result, "generator='ema'", "without a weight average")

    damaged = checkpoint_only(run, tmp_path)
    for step in os.listdir(damaged / "checkpoint"):
        state = damaged / "checkpoint" / step / "state.weights.h5"
        if state.exists():
            state.write_bytes(b"garbled")
    result = export_run(damaged, exports)
    assert_one_line_error(result, "No usable checkpoint")
    assert result.exit_code == 3

    result = export_run(run, exports, "--format", "tflite")
    assert_one_line_error(result, "'tflite' is not one of 'saved_model', 'onnx'")
    assert result.exit_code == 2
    assert not exports.exists()
