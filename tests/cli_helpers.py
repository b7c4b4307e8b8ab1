"""Running `python cli.py` in-process and checking what it printed and left."""

import os

from click.testing import CliRunner

import cli


def train(tmp_path, *flags):
    """`cli.py train` with runs and exports under `tmp_path`."""
    return CliRunner().invoke(
        cli.cli,
        ["train", "--runs-dir", str(tmp_path / "runs"),
         "--export-dir", str(tmp_path / "saved_models"), *flags],
    )  # fmt: skip


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def snapshot(folder):
    """Every file under `folder` with its bytes: "untouched" means equal snapshots."""
    files = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as file:
                files[os.path.relpath(path, folder)] = file.read()
    return files
