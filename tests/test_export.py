import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import LATENT_DIM
from helpers import tiny_gan
from PIL import Image
from tensorflow.core.protobuf import saved_model_pb2

from keras_gan import export
from keras_gan.errors import InputError

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    gan = tiny_gan(seed=4)
    path = tmp_path_factory.mktemp("export") / "1"
    export.export_generator(gan.generator, path, max_images=32)
    return gan, str(path)


def test_saved_model_has_the_serving_tag_and_signatures(exported):
    _, path = exported
    # Read the protobuf as TF Serving does: tag set, signature names, tensors.
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as file:
        proto.ParseFromString(file.read())
    (meta_graph,) = proto.meta_graphs
    assert list(meta_graph.meta_info_def.tags) == ["serve"]
    signatures = meta_graph.signature_def
    assert {"serving_default", "generate"} <= set(signatures)
    serve = signatures["serving_default"]
    assert serve.method_name == "tensorflow/serving/predict"
    assert set(serve.inputs) == {"z"} and set(serve.outputs) == {"images"}
    assert serve.inputs["z"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in serve.inputs["z"].tensor_shape.dim] == [-1, LATENT_DIM]
    assert [d.size for d in serve.outputs["images"].tensor_shape.dim] == [-1, 8, 8, 1]
    generate = signatures["generate"]
    assert generate.inputs["seed"].dtype == tf.int64.as_datatype_enum
    assert generate.inputs["num_images"].dtype == tf.int32.as_datatype_enum
    assert not generate.inputs["seed"].tensor_shape.dim  # scalar
    assert set(generate.outputs) == {"images"}


@pytest.mark.parametrize("batch_size", [1, 3, 17])
def test_serving_default_equals_the_keras_generator(exported, batch_size):
    gan, path = exported
    served = tf.saved_model.load(path, tags=["serve"])
    z = np.random.default_rng(batch_size).normal(size=(batch_size, LATENT_DIM))
    z = z.astype("float32")
    images = served.signatures["serving_default"](z=tf.constant(z))["images"]
    np.testing.assert_allclose(images, gan.generator(z), rtol=1e-5, atol=1e-6)


def test_generate_signature_equals_gan_generate(exported):
    gan, path = exported
    served = tf.saved_model.load(path)
    for seed, count in [(0, 1), (123, 5)]:
        images = served.signatures["generate"](
            seed=tf.constant(seed, tf.int64), num_images=tf.constant(count)
        )["images"]
        assert images.shape == (count, 8, 8, 1)
        np.testing.assert_allclose(
            images, gan.generate(count, seed=seed), rtol=1e-5, atol=1e-6
        )


@pytest.mark.parametrize("count", [0, -1, 33])
def test_generate_signature_refuses_bad_counts(exported, count):
    _, path = exported
    served = tf.saved_model.load(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match="num_images"):
        served.signatures["generate"](
            seed=tf.constant(0, tf.int64), num_images=tf.constant(count)
        )


def test_versions_count_up_atomically_and_leave_earlier_ones_alone(tmp_path):
    gan = tiny_gan()
    base = tmp_path / "model"
    (base / "notes").mkdir(parents=True)  # not an integer: ignored, kept
    first = export.export_version(gan.generator, base)
    before = {
        name: os.path.getmtime(os.path.join(root, name))
        for root, _, names in os.walk(first)
        for name in names
    }
    second = export.export_version(gan.generator, base)
    assert (first, second) == (str(base / "1"), str(base / "2"))
    assert export.versions(base) == [1, 2]
    # No staging left; the lock and the highest version ever exported stay.
    kept = [".export.lock", ".last_version", "1", "2", "notes"]
    assert sorted(os.listdir(base)) == kept
    after = {
        name: os.path.getmtime(os.path.join(root, name))
        for root, _, names in os.walk(first)
        for name in names
    }
    assert after == before


def test_export_refuses_non_finite_weights(tmp_path):
    gan = tiny_gan()
    kernel = gan.generator.get_layer("pixels").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(InputError, match="NaN or infinite"):
        export.export_version(gan.generator, tmp_path / "model")
    assert (
        not (tmp_path / "model").exists() or export.versions(tmp_path / "model") == []
    )


def test_export_into_an_unwritable_place_fails_cleanly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InputError, match="Cannot create folder"):
        export.export_version(tiny_gan().generator, blocker / "model")


def test_load_export_finds_the_newest_version(tmp_path):
    gan = tiny_gan()
    export.export_version(gan.generator, tmp_path)
    export.export_version(gan.generator, tmp_path)
    os.rename(tmp_path / "1", tmp_path / "10")
    loaded = export.load_export(tmp_path)
    assert "generate" in loaded.signatures


def test_load_export_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="is not a folder"):
        export.load_export(tmp_path / "missing")
    with pytest.raises(InputError, match="no saved_model.pb"):
        export.load_export(tmp_path)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x96\x01garbage")
    with pytest.raises(InputError, match="Refusing to load .* no assets.extra"):
        export.load_export(corrupt)
    with pytest.raises(InputError, match="Cannot load the SavedModel"):
        export.load_export(corrupt, trust=True)
    other = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    other.export(str(tmp_path / "other"), verbose=False)
    with pytest.raises(InputError, match="no 'generate' signature"):
        export.load_export(tmp_path / "other", trust=True)


def test_sample_grid_writes_a_png(tmp_path):
    gan = tiny_gan()
    export.export_version(gan.generator, tmp_path / "model")
    output = tmp_path / "out" / "grid.png"
    export.sample_grid(tmp_path / "model", output, num_images=6, seed=1)
    # 6 images: 2 rows of 3 tiles of 8 px with 1 px padding, shown 4x.
    assert Image.open(output).size == (4 * (3 * 9 - 1), 4 * (2 * 9 - 1))
    with pytest.raises(InputError, match=r"\.png"):
        export.sample_grid(tmp_path / "model", tmp_path / "grid.jpg")
    with pytest.raises(InputError, match="do not fill 4 rows"):
        export.sample_grid(tmp_path / "model", output, num_images=6, num_rows=4)
    with pytest.raises(InputError, match="refused the request"):
        export.sample_grid(tmp_path / "model", output, num_images=5000)


def test_version_numbers_are_never_reused_nor_empty_folders_overwritten(tmp_path):
    gan = tiny_gan()
    export.export_version(gan.generator, tmp_path)
    second = export.export_version(gan.generator, tmp_path)
    shutil.rmtree(second)  # an operator deletes the newest version
    (tmp_path / "3").mkdir()  # and someone made an empty folder with the next
    assert export.export_version(gan.generator, tmp_path) == str(tmp_path / "4")
    assert os.listdir(tmp_path / "3") == []


def test_staging_folders_of_dead_exporters_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / f".export-{dead.stdout.strip()}-abc" / "model").mkdir(parents=True)
    alive = tmp_path / f".export-{os.getpid()}-xyz"  # a live exporter's: kept
    alive.mkdir()
    export.export_version(tiny_gan().generator, tmp_path)
    staging = sorted(n for n in os.listdir(tmp_path) if n.startswith(".export-"))
    assert staging == [alive.name]


_EXPORTER = """
import os, sys, time
from helpers import tiny_gan
from keras_gan import export
base, me = sys.argv[1].split(",")
gan = tiny_gan(seed=int(me))
open(os.path.join(os.path.dirname(base), "ready" + me), "w").close()
while not os.path.exists(os.path.join(os.path.dirname(base), "go")):
    time.sleep(0.005)
print(export.export_version(gan.generator, base))
"""


def test_concurrent_exporters_get_distinct_complete_versions(tmp_path):
    script = tmp_path / "exporter.py"
    script.write_text(_EXPORTER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, TESTS])}
    base = tmp_path / "model"
    processes = [
        subprocess.Popen([sys.executable, str(script), f"{base},{me}"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for me in ("1", "2")
    ]  # fmt: skip
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{me}").exists() for me in ("1", "2")):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "go").touch()
    paths = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        paths.append(out.strip().splitlines()[-1])
    assert sorted(paths) == [str(base / "1"), str(base / "2")]
    for path in paths:  # both complete, each with its own weights
        loaded = export.load_export(path)
        assert "generate" in loaded.signatures
