"""The command line as a package: `python -m keras_gan`, the `keras-gan`
script, `python cli.py` as a thin entry point, flags checked before
TensorFlow loads, flag names mirroring the library's arguments."""

import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

import cli
from keras_gan import choices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")


def _run(command, cwd):
    return subprocess.run(
        command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )


def _console_script():
    # Installed by `pip install -e .` beside this interpreter.
    found = shutil.which("keras-gan", path=sysconfig.get_path("scripts"))
    assert found, "the keras-gan console script is not installed: pip install -e ."
    return found


def test_python_m_keras_gan_trains_and_the_console_script_samples(tmp_path):
    trained = _run(
        [sys.executable, "-m", "keras_gan", "train", "--dataset", "digits",
         "--epochs", "1", "--batch-size", "256", "--name", "pkg"],
        tmp_path,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "Exported generator: saved_models/pkg/1" in trained.stdout
    sampled = _run(
        [_console_script(), "sample", "saved_models/pkg", "--num-images", "4",
         "--output", "grid.png"],
        tmp_path,
    )  # fmt: skip
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert (tmp_path / "grid.png").stat().st_size > 0


@pytest.mark.parametrize(
    "flags",
    [
        ["--architecture", "transformer"],
        ["--loss", "nope"],
        ["--augment", "color,zoom"],
        ["--mixed-precision", "fp8"],
    ],
)
def test_choices_are_refused_before_tensorflow_is_imported(flags):
    program = (
        "import sys\n"
        "from keras_gan.cli import cli\n"
        f"try: cli(['train', *{flags!r}], standalone_mode=False)\n"
        "except Exception as error: print(type(error).__name__, error)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = _run([sys.executable, "-c", program], ROOT)
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(("BadParameter", "UsageError")), result.stdout
    assert flags[1] in lines[0]
    assert lines[-1] == "False False", result.stdout


def test_the_top_level_cli_is_the_package_command_line():
    from keras_gan import cli as package_cli

    assert cli.cli is package_cli.cli
    assert set(cli.cli.commands) >= {"train", "sample", "evaluate"}


def _train_parameters(*flags):
    command = cli.cli.commands["train"]
    return command.make_context("train", list(flags)).params


def test_flags_are_named_as_the_library_arguments_with_old_aliases():
    assert _train_parameters("--ema-decay", "0.9")["ema_decay"] == 0.9
    assert _train_parameters("--ema", "0.9")["ema_decay"] == 0.9
    assert _train_parameters("--jit-compile")["jit_compile"] is True
    assert _train_parameters("--no-jit")["jit_compile"] is False
    assert _train_parameters("--no-jit-compile")["jit_compile"] is False
    assert _train_parameters()["jit_compile"] is None  # "auto"


def test_the_choices_match_the_library_registries():
    from keras_gan import augment
    from keras_gan import losses
    from keras_gan import networks

    assert tuple(networks.ARCHITECTURES) == choices.ARCHITECTURES
    assert tuple(losses.LOSSES) == choices.LOSSES
    assert choices.AUGMENT_POLICIES == augment.POLICIES


def test_import_keras_gan_does_not_import_keras_until_used():
    program = (
        "import sys, keras_gan\n"
        "print('keras' in sys.modules)\n"
        "keras_gan.GAN\n"
        "print('keras' in sys.modules)\n"
    )
    result = _run([sys.executable, "-c", program], ROOT)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]
