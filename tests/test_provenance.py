"""Only exports that keras_gan wrote are loaded by `sample` and `evaluate`."""

import os
import shutil
import stat
import subprocess
import sys

import pytest
import tensorflow as tf
from cli_helpers import assert_one_line_error
from click.testing import CliRunner
from helpers import tiny_gan

import cli
from keras_gan import export
from keras_gan import provenance
from keras_gan.errors import InputError
from keras_gan.errors import UnsafeInputError

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A version folder that `export_version` wrote."""
    return export.export_version(
        tiny_gan(seed=3).generator, tmp_path_factory.mktemp("signed")
    )


def _copy(path, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(path, target)
    return target


def test_an_export_verifies_and_its_key_is_private(signed):
    provenance.verify(signed)
    assert os.path.exists(os.path.join(signed, provenance.MANIFEST))
    mode = stat.S_IMODE(os.stat(provenance.key_path()).st_mode)
    assert mode == 0o600, oct(mode)
    # The manifest lists the graph and the variables, with their hashes.
    listed = provenance._files_of(signed)
    assert "saved_model.pb" in listed
    assert any(name.startswith("variables/") for name in listed)


def test_a_changed_export_is_refused(signed, tmp_path):
    changed = _copy(signed, tmp_path)
    variables = next((changed / "variables").glob("*.data-*"))
    content = bytearray(variables.read_bytes())
    content[len(content) // 2] ^= 0xFF
    variables.write_bytes(bytes(content))
    with pytest.raises(UnsafeInputError, match="variables/.* changed since"):
        export.load_export(changed)
    # On the user's word the check is skipped and TensorFlow reads the bytes
    # (and finds its own checksum broken).
    with pytest.raises(InputError, match="Cannot load the SavedModel"):
        export.load_export(changed, trust=True)


def test_added_and_removed_files_are_refused(signed, tmp_path):
    added = _copy(signed, tmp_path / "a")
    (added / "assets" / "extra.txt").parent.mkdir(exist_ok=True)
    (added / "assets" / "extra.txt").write_text("x")
    with pytest.raises(UnsafeInputError, match="assets/extra.txt was added"):
        provenance.verify(added)
    removed = _copy(signed, tmp_path / "r")
    os.remove(removed / "assets.extra" / "keras_gan.json")
    with pytest.raises(UnsafeInputError, match="keras_gan.json is missing"):
        provenance.verify(removed)


def test_a_manifest_made_with_another_key_is_refused(signed, tmp_path):
    # Whoever wrote a foreign export can compute its checksums; not our HMAC.
    forged = _copy(signed, tmp_path)
    other_home = tmp_path / "other-home"
    command = (
        "import sys; from keras_gan import provenance; provenance.sign(sys.argv[1])"
    )
    env = dict(os.environ, KERAS_GAN_HOME=str(other_home), PYTHONPATH=ROOT)
    subprocess.run([sys.executable, "-c", command, str(forged)], env=env, check=True)
    assert (other_home / "export.key").exists()
    with pytest.raises(UnsafeInputError, match="not signed with this user's key"):
        export.load_export(forged)


def test_a_wrong_key_file_is_refused_not_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_GAN_HOME", str(tmp_path))
    (tmp_path / "export.key").write_bytes(b"short")
    with pytest.raises(UnsafeInputError, match="holds 5 bytes"):
        provenance.sign(tmp_path)
    assert (tmp_path / "export.key").read_bytes() == b"short"


class _Hostile(tf.Module):
    """A SavedModel whose `generate` signature writes a file when called."""

    def __init__(self, marker):
        super().__init__()
        self.marker = marker

    @tf.function(
        input_signature=[
            tf.TensorSpec((), tf.int64, name="seed"),
            tf.TensorSpec((), tf.int32, name="num_images"),
        ]
    )
    def generate(self, seed, num_images):
        write = tf.io.write_file(self.marker, "ran")
        with tf.control_dependencies([write]):
            return {"images": tf.zeros((num_images, 8, 8, 1))}


def test_sample_refuses_a_foreign_export_whose_graph_writes_a_file(tmp_path):
    marker = tmp_path / "marker"
    hostile = tmp_path / "hostile"
    module = _Hostile(str(marker))
    tf.saved_model.save(module, str(hostile), signatures={"generate": module.generate})
    grid = tmp_path / "grid.png"
    command = ["sample", str(hostile), "--num-images", "4", "--output", str(grid)]
    refused = CliRunner().invoke(cli.cli, command)
    assert refused.exit_code == UnsafeInputError.exit_code, refused.output
    assert_one_line_error(refused, "Refusing to load", "--trust")
    assert not marker.exists() and not grid.exists()
    # With --trust the graph runs: the marker proves the refusal is what
    # kept it from running.
    trusted = CliRunner().invoke(cli.cli, [*command, "--trust"])
    assert trusted.exit_code == 0, trusted.output
    assert marker.read_text() == "ran" and grid.exists()


def test_evaluate_refuses_a_foreign_export(tmp_path):
    marker = tmp_path / "marker"
    module = _Hostile(str(marker))
    hostile = tmp_path / "hostile"
    tf.saved_model.save(module, str(hostile), signatures={"generate": module.generate})
    result = CliRunner().invoke(
        cli.cli, ["evaluate", str(hostile), "--dataset", "digits"]
    )
    assert result.exit_code == UnsafeInputError.exit_code, result.output
    assert_one_line_error(result, "Refusing to load", "no assets.extra")
    assert not marker.exists()
