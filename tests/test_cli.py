"""End-to-end tests of `python cli.py`: real training runs on tiny settings."""

import csv
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from cli_helpers import assert_one_line_error
from cli_helpers import snapshot
from cli_helpers import train
from click.testing import CliRunner
from PIL import Image

import cli
from keras_gan import export
from keras_gan.data import tfds_source

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ["--epochs", "2", "--batch-size", "64", "--latent-dim", "8"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("cli")
    result = train(tmp_path, "--dataset", "digits", "--name", "quick", *FAST)
    assert result.exit_code == 0, result.output
    return tmp_path, result


def test_train_writes_the_whole_run(finished_run):
    tmp_path, result = finished_run
    run = tmp_path / "runs" / "quick"
    assert "Exported generator:" in result.output
    for name in ("config.json", "log.csv", "gan.keras"):
        assert (run / name).is_file()
    samples = sorted(os.listdir(run / "samples"))
    assert samples == ["epoch_0001.png", "epoch_0002.png", "samples.gif"]
    assert os.listdir(run / "tensorboard" / "train")
    # Digits at batch 64: 28 steps per epoch; the epochs' ends are checkpoints.
    assert sorted(os.listdir(run / "checkpoint")) == [
        "latest",
        "step-000000028",
        "step-000000056",
    ]
    with open(run / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2 and {"d_loss", "g_loss", "d_real", "d_fake"} <= set(rows[0])
    assert export.versions(tmp_path / "saved_models" / "quick") == [1]
    settings = json.loads((run / "config.json").read_text())
    assert settings["dataset"] == "digits" and settings["latent_dim"] == 8


def test_sample_writes_a_grid_from_the_export(finished_run, tmp_path):
    run_tmp, _ = finished_run
    output = tmp_path / "grid.png"
    result = CliRunner().invoke(
        cli.cli,
        [
            "sample",
            str(run_tmp / "saved_models" / "quick" / "1"),
            "--num-images",
            "16",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    # 4x4 tiles of 8 px, shown 4x.
    assert Image.open(output).size == (4 * (4 * 9 - 1), 4 * (4 * 9 - 1))


def test_resume_continues_and_keeps_earlier_outputs(tmp_path):
    first = train(tmp_path, "--dataset", "digits", "--name", "r", *FAST)
    assert first.exit_code == 0, first.output
    assert "Trained 2 epochs in" in first.output
    run = tmp_path / "runs" / "r"
    first_grid = (run / "samples" / "epoch_0001.png").read_bytes()
    first_version = snapshot(tmp_path / "saved_models" / "r" / "1")

    again = train(tmp_path, "--dataset", "digits", "--name", "r", "--epochs", "3")
    assert_one_line_error(again, "already holds a run", "--resume")

    conflict = train(tmp_path, "--name", "r", "--resume", "--latent-dim", "9")
    assert_one_line_error(conflict, "--latent-dim 9 differs from the run's 8")

    done = train(tmp_path, "--name", "r", "--resume", "--epochs", "2")
    assert_one_line_error(done, "already trained 2 epochs")

    resumed = train(tmp_path, "--name", "r", "--resume", "--epochs", "3")
    assert resumed.exit_code == 0, resumed.output
    assert "Epoch 3/3" in resumed.output and "Epoch 1/3" not in resumed.output
    assert "Trained 1 epoch (epoch 3 of the run, from step 56) in" in resumed.output
    with open(run / "log.csv") as file:
        assert [row["epoch"] for row in csv.DictReader(file)] == ["0", "1", "2"]
    assert (run / "samples" / "epoch_0003.png").exists()
    assert (run / "samples" / "epoch_0001.png").read_bytes() == first_grid
    assert export.versions(tmp_path / "saved_models" / "r") == [1, 2]
    assert snapshot(tmp_path / "saved_models" / "r" / "1") == first_version


def test_resume_without_a_run_is_an_error(tmp_path):
    result = train(tmp_path, "--name", "ghost", "--resume")
    assert_one_line_error(result, "No run to resume")


def _write_idx(folder, images, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    header = np.array([0x803, *images.shape], ">u4").tobytes()
    content = header + images.astype(np.uint8).tobytes()
    name = "train-images-idx3-ubyte"
    if gz:
        with gzip.open(folder / f"{name}.gz", "wb") as file:
            file.write(content)
    else:
        (folder / name).write_bytes(content)
    return folder / (f"{name}.gz" if gz else name)


def test_train_on_an_idx_folder(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (40, 6, 6))
    _write_idx(tmp_path / "idx", images)
    result = train(
        tmp_path, "--data-dir", str(tmp_path / "idx"), "--epochs", "1",
        "--batch-size", "8", "--latent-dim", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    # The run is named after the folder.
    assert export.versions(tmp_path / "saved_models" / "idx") == [1]


def test_train_on_a_tfds_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(tfds_source, "_can_reach", lambda *args, **kwargs: True)
    with tfds.testing.mock_data(num_examples=16):
        result = train(
            tmp_path, "--dataset", "mnist", "--epochs", "1", "--batch-size", "8",
            "--latent-dim", "4", "--name", "tfds",
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert export.versions(tmp_path / "saved_models" / "tfds") == [1]


@pytest.mark.parametrize(
    ("flags", "fragments"),
    [
        (
            ["--dataset", "no_such_dataset_xyz"],
            ["unknown dataset 'no_such_dataset_xyz'"],
        ),
        (["--dataset", "digits", "--batch-size", "5000"], ["larger than the dataset"]),
        (["--data-dir", "/no/such/folder"], ["does not exist"]),
        (["--dataset", "digits", "--name", "../escape"], ["Invalid run name"]),
        (["--dataset", "digits", "--name", "a/b"], ["Invalid run name"]),
        (["--dataset", "digits", "--architecture", "vit"], ["--architecture", "'vit'"]),
        (["--dataset", "digits", "--loss", "l1"], ["--loss", "'l1'"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--batch-size", "-3"], ["--batch-size"]),
        (["--learning-rate", "0"], ["--learning-rate"]),
        (["--steps-per-execution", "0"], ["--steps-per-execution"]),
        (["--epochs", "two"], ["--epochs"]),
    ],
)
def test_bad_flags_get_one_line_and_write_nothing(tmp_path, flags, fragments):
    result = train(tmp_path, *flags)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "saved_models").exists()
    assert not (tmp_path / "runs").exists()


def test_truncated_and_corrupt_idx_files(tmp_path):
    path = _write_idx(tmp_path / "cut", np.zeros((10, 4, 4)), gz=False)
    path.write_bytes(path.read_bytes()[:-5])
    assert_one_line_error(train(tmp_path, "--data-dir", str(tmp_path / "cut")))
    path = _write_idx(tmp_path / "bad", np.zeros((10, 4, 4)))
    path.write_bytes(b"\x1f\x8b" + b"\x00" * 30)
    assert_one_line_error(
        train(tmp_path, "--data-dir", str(tmp_path / "bad")), "corrupt"
    )
    assert not (tmp_path / "saved_models").exists()


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = CliRunner().invoke(
        cli.cli,
        ["train", "--dataset", "digits", "--runs-dir", str(blocker / "runs"),
         "--export-dir", str(tmp_path / "saved_models"), *FAST],
    )  # fmt: skip
    assert_one_line_error(result, "Cannot create folder")
    assert export.versions(tmp_path / "saved_models" / "digits") == []


def test_diverged_training_exports_nothing_and_keeps_earlier_versions(tmp_path):
    assert train(tmp_path, "--dataset", "digits", "--name", "d", *FAST).exit_code == 0
    before = snapshot(tmp_path)
    result = train(
        tmp_path, "--name", "d", "--resume", "--epochs", "4",
        "--learning-rate", "1e30",
    )  # fmt: skip
    # The learning rate is a model setting: resuming cannot change it.
    assert_one_line_error(result, "differs from the run's")
    result = train(
        tmp_path, "--dataset", "digits", "--name", "nan", "--learning-rate", "1e30",
        *FAST,
    )  # fmt: skip
    assert_one_line_error(result, "Training diverged")
    assert export.versions(tmp_path / "saved_models" / "nan") == []
    assert not (tmp_path / "runs" / "nan" / "checkpoint").exists()
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before


def test_sample_bad_inputs(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli.cli, ["sample", str(tmp_path / "missing")])
    assert_one_line_error(result, "is not a folder")
    result = runner.invoke(cli.cli, ["sample", str(tmp_path)])
    assert_one_line_error(result, "no saved_model.pb")
    result = runner.invoke(cli.cli, ["sample", str(tmp_path), "--num-images", "0"])
    assert_one_line_error(result, "--num-images")


def test_every_command_has_help():
    for args in (["--help"], ["train", "--help"], ["sample", "--help"]):
        result = CliRunner().invoke(cli.cli, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def test_the_real_command_line_prints_one_line_without_traceback(tmp_path):
    completed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "cli.py"), "train", "--dataset",
         "no_such_dataset_xyz"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.strip().count("\n") == 0, completed.stderr
    assert completed.stderr.startswith("Error: unknown dataset")
    assert os.listdir(tmp_path) == []


def test_every_flag_says_what_it_does():
    import click

    import cli

    for name, command in [("cli", cli.cli), *cli.cli.commands.items()]:
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "help":
                text = (param.help or "").strip()
                # A description, not only a "[default: ...]" tag.
                assert text and not text.startswith("["), (name, param.opts)
                # ... and the default, as --help shows it.
                record = param.get_help_record(click.Context(command))
                assert "[default: " in record[1], (name, param.opts, record)
