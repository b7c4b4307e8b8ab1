import gzip
import os
import socket
import time

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import constants as tfds_constants

from keras_gan import data
from keras_gan.data import tfds_source
from keras_gan.errors import InputError

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def write_idx(path, array, magic=None, compress=False):
    """Writes a uint8 array as an MNIST-format IDX file (gzipped if asked)."""
    array = np.asarray(array, dtype=np.uint8)
    if magic is None:
        magic = 0x00000800 | array.ndim
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    content = header + array.tobytes()
    if compress:
        path, content = f"{path}.gz", gzip.compress(content)
    with open(path, "wb") as file:
        file.write(content)
    return path


def write_split(folder, split="train", num_images=10, compress=False, labels=True):
    """Writes random 4x5 images (and labels) of a split; returns them."""
    images_name, labels_name = data.IDX_FILES[split]
    rng = np.random.default_rng(num_images)
    images = rng.integers(0, 256, (num_images, 4, 5), dtype=np.uint8)
    write_idx(os.path.join(folder, images_name), images, compress=compress)
    targets = np.arange(num_images) % 10
    if labels:
        write_idx(os.path.join(folder, labels_name), targets, compress=compress)
    return images, targets


def first_epoch(dataset):
    return np.concatenate([batch.numpy() for batch in dataset])


def assert_one_line_error(error, *fragments):
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


# IDX files


@pytest.mark.parametrize("compress", [False, True])
def test_load_arrays_reads_idx_files(tmp_path, compress):
    images, labels = write_split(tmp_path, compress=compress)
    loaded_images, loaded_labels = data.load_arrays(data_dir=str(tmp_path))
    assert loaded_images.dtype == np.uint8
    np.testing.assert_array_equal(loaded_images, images[..., np.newaxis])
    assert loaded_labels.dtype == np.int64
    np.testing.assert_array_equal(loaded_labels, labels)


def test_load_arrays_prefers_raw_idx_over_gzipped(tmp_path):
    write_split(tmp_path, num_images=3, compress=True)
    raw_images, _ = write_split(tmp_path, num_images=5)
    images, labels = data.load_arrays(data_dir=str(tmp_path))
    np.testing.assert_array_equal(images[..., 0], raw_images)
    assert len(labels) == 5


def test_load_arrays_reads_the_test_split_and_ignores_dataset(tmp_path):
    write_split(tmp_path, "train", num_images=6)
    write_split(tmp_path, "test", num_images=4)
    images, _ = data.load_arrays("no_such_dataset", str(tmp_path), split="test")
    assert images.shape == (4, 4, 5, 1)


def test_load_arrays_without_labels_file(tmp_path):
    write_split(tmp_path, labels=False)
    images, labels = data.load_arrays(data_dir=str(tmp_path))
    assert images.shape == (10, 4, 5, 1)
    assert labels is None
    with pytest.raises(InputError) as error:
        data.make_dataset(data_dir=str(tmp_path), batch_size=2, with_labels=True)
    assert_one_line_error(error, "with_labels=True", "train-labels-idx1-ubyte")


def test_make_dataset_from_idx_files(tmp_path):
    write_split(tmp_path, num_images=10)
    dataset = data.make_dataset(
        data_dir=str(tmp_path), batch_size=4, seed=1, with_labels=True
    )
    batches = list(dataset)
    assert len(batches) == 2  # 10 images, remainder of 2 dropped.
    images, labels = batches[0]
    assert images.shape == (4, 4, 5, 1) and images.dtype == tf.float32
    assert labels.shape == (4,) and labels.dtype == tf.int32
    assert data.image_shape(dataset) == (4, 5, 1)


def test_real_fashion_mnist_idx_files():
    if not os.path.isdir(FASHION_MNIST):
        pytest.skip(f"{FASHION_MNIST} is not installed")
    images, labels = data.load_arrays(data_dir=FASHION_MNIST, split="test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
    assert sorted(np.unique(labels)) == list(range(10))


def test_idx_label_count_mismatch(tmp_path):
    write_split(tmp_path, num_images=10, labels=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(9))
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, "9 labels", "10 images", "train-labels-idx1-ubyte")


def test_idx_truncated_file(tmp_path):
    write_split(tmp_path, labels=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, str(path), "209 bytes", "needs 216")


def test_idx_file_shorter_than_its_header(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08")
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, "shorter than the IDX header")


@pytest.mark.parametrize(
    "content",
    [b"not gzip at all", gzip.compress(b"\x00" * 1000)[:20]],
    ids=["not-gzip", "truncated-gzip"],
)
def test_idx_corrupt_gzip(tmp_path, content):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, str(path), "gzip")


def test_idx_corrupt_deflate_stream(tmp_path):
    content = bytearray(gzip.compress(np.arange(1000, dtype=np.uint8).tobytes()))
    content[12:20] = b"\xff" * 8  # Garbles the deflate data, not the gzip header.
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(bytes(content))
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, str(path), "gzip")


def test_idx_wrong_magic_number(tmp_path):
    # A labels file where the images file belongs.
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros(10))
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, "0x00000801", "0x00000803")


def test_idx_zero_size(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((0, 4, 4)))
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, "(0, 4, 4)", "above zero")


def test_idx_missing_directory(tmp_path):
    with pytest.raises(InputError) as error:
        data.make_dataset(data_dir=str(tmp_path / "nowhere"))
    assert_one_line_error(error, "nowhere", "does not exist")


def test_idx_missing_images_file(tmp_path):
    write_split(tmp_path, "test")
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, "train-images-idx3-ubyte.gz", str(tmp_path))


def test_idx_unknown_split(tmp_path):
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path), split="validation")
    assert_one_line_error(error, "'validation'", "'test'", "'train'")


# scikit-learn digits


def test_load_arrays_digits():
    images, labels = data.load_arrays("digits")
    assert images.shape == (1797, 8, 8, 1) and images.dtype == np.uint8
    assert images.min() == 0 and images.max() == 255
    assert labels.dtype == np.int64 and sorted(np.unique(labels)) == list(range(10))


def test_make_dataset_digits_with_labels():
    dataset = data.make_dataset("digits", batch_size=500, with_labels=True)
    batches = list(dataset)
    assert len(batches) == 3  # 1797 // 500
    images, labels = batches[0]
    assert images.shape == (500, 8, 8, 1)
    assert images.numpy().min() >= -1.0 and images.numpy().max() <= 1.0
    assert labels.dtype == tf.int32


def test_digits_has_no_test_split():
    with pytest.raises(InputError) as error:
        data.make_dataset("digits", split="test")
    assert_one_line_error(error, "'test'", "'train'")


# dataset_from_arrays


def test_uint8_pixels_map_to_minus_one_and_one():
    images = np.array([0, 255], dtype=np.uint8).reshape(2, 1, 1)
    batch = first_epoch(data.dataset_from_arrays(images, batch_size=2, shuffle=False))
    assert batch.dtype == np.float32
    np.testing.assert_allclose(batch.ravel(), [-1.0, 1.0])


def test_float_images_kept_and_rank_3_gets_a_channel():
    images = np.linspace(-1.0, 1.0, 6 * 3 * 2, dtype=np.float64).reshape(6, 3, 2)
    dataset = data.dataset_from_arrays(images, batch_size=3, shuffle=False)
    assert data.image_shape(dataset) == (3, 2, 1)
    np.testing.assert_allclose(first_epoch(dataset)[..., 0], images, rtol=1e-6)


def test_tiny_float_excursions_are_clipped():
    images = np.full((2, 2, 2, 1), 1.0 + 5e-7, dtype=np.float64)
    assert first_epoch(data.dataset_from_arrays(images, batch_size=2)).max() == 1.0


def test_fixed_batch_shape_drops_the_remainder():
    for shuffle in (True, False):
        dataset = data.dataset_from_arrays(
            np.zeros((10, 2, 2, 3), np.uint8), batch_size=4, shuffle=shuffle
        )
        assert dataset.element_spec.shape == (4, 2, 2, 3)
        assert len(list(dataset)) == 2
        assert int(dataset.cardinality()) == 2  # known: Keras sizes epochs by it


def test_shuffle_is_seeded_and_new_each_epoch():
    images = np.arange(64, dtype=np.uint8).reshape(64, 1, 1)

    def order(dataset):
        return first_epoch(dataset).ravel().tolist()

    dataset = data.dataset_from_arrays(images, batch_size=8, seed=3)
    first, second = order(dataset), order(dataset)
    assert sorted(first) == sorted(second) and first != second
    again = data.dataset_from_arrays(images, batch_size=8, seed=3)
    assert order(again) == first
    in_order = data.dataset_from_arrays(images, batch_size=8, shuffle=False)
    assert order(in_order) == sorted(first)


def test_repeat_reshuffles_every_pass_and_drops_a_different_remainder():
    # 10 images, batches of 4: each pass is 8 distinct images in a new order.
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1)
    dataset = data.dataset_from_arrays(images, batch_size=4, seed=5).repeat()
    pixels = [
        np.round((batch.numpy().ravel() + 1.0) * 127.5).astype(int).tolist()
        for batch in dataset.take(8)
    ]
    passes = [pixels[i] + pixels[i + 1] for i in range(0, 8, 2)]
    for order in passes:
        assert len(set(order)) == 8 and set(order) <= set(range(10))
    assert len({tuple(order) for order in passes}) == 4


def test_in_memory_source_draws_the_pipelines_next_pass():
    # A trainer reading the source sees what iterating the dataset gives:
    # the same arrays, and each pass's order from the pipeline's own state.
    images = np.arange(30, dtype=np.uint8).reshape(30, 1, 1)
    labels = np.arange(30) % 7
    dataset = data.dataset_from_arrays(images, labels, batch_size=4, seed=2)
    source = data.in_memory_source(dataset)
    assert (source.num_batches, source.batch_size) == (7, 4)
    np.testing.assert_array_equal(source.images, images[..., np.newaxis])
    assert source.labels.dtype == np.int32
    through_tf = [batch_labels.numpy() for _, batch_labels in dataset]
    from_source = source.next_order()
    again = [batch_labels.numpy() for _, batch_labels in dataset]
    # Pass 2 came from the source, pass 3 from the pipeline: all differ.
    assert source.images[from_source].shape == (7, 4, 1, 1, 1)
    orders = [np.stack(through_tf), labels[from_source], np.stack(again)]
    assert len({order.tobytes() for order in orders}) == 3
    replay = data.dataset_from_arrays(images, labels, batch_size=4, seed=2)
    replayed = data.in_memory_source(replay)
    np.testing.assert_array_equal(labels[replayed.next_order()], orders[0])
    assert [b.numpy().tolist() for _, b in replay] == labels[from_source].tolist()


def test_derived_datasets_have_no_in_memory_source():
    dataset = data.dataset_from_arrays(np.zeros((8, 2, 2), np.uint8), batch_size=4)
    assert data.in_memory_source(dataset.repeat()) is None
    assert data.in_memory_source(dataset.map(lambda x: x)) is None
    assert data.in_memory_source(tf.data.Dataset.range(3)) is None


def test_labels_follow_their_images():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1)
    dataset = data.dataset_from_arrays(images, labels=np.arange(20), batch_size=5)
    assert dataset.element_spec[1].dtype == tf.int32
    for batch_images, batch_labels in dataset:
        pixels = np.round((batch_images.numpy().ravel() + 1.0) * 127.5)
        np.testing.assert_array_equal(pixels, batch_labels.numpy())
    assert data.image_shape(dataset) == (1, 1, 1)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_non_positive_batch_size(batch_size):
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(np.zeros((4, 2, 2), np.uint8), batch_size=batch_size)
    assert_one_line_error(error, f"received {batch_size}")


@pytest.mark.parametrize("batch_size", [2.0, True])
def test_non_integer_batch_size(batch_size):
    with pytest.raises(InputError) as error:
        data.make_dataset("digits", batch_size=batch_size)
    assert_one_line_error(error, "integer", repr(batch_size))


def test_batch_size_larger_than_the_dataset():
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(np.zeros((100, 2, 2), np.uint8), batch_size=128)
    assert str(error.value) == (
        "batch size 128 is larger than the dataset (100 images); expected at most 100."
    )


def test_empty_dataset():
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(np.zeros((0, 2, 2, 1), np.float32), batch_size=1)
    assert_one_line_error(error, "empty")


@pytest.mark.parametrize("shape", [(4, 4), (2, 4, 4, 1, 1)])
def test_wrong_image_rank(shape):
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(np.zeros(shape, np.uint8), batch_size=1)
    assert_one_line_error(error, str(shape))


def test_wrong_image_dtype():
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(np.zeros((4, 2, 2), np.int64), batch_size=1)
    assert_one_line_error(error, "int64", "uint8")


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_images(bad_value):
    images = np.zeros((4, 2, 2), np.float32)
    images[1, 0, 0] = bad_value
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(images, batch_size=1)
    assert_one_line_error(error, "NaN or infinite", "1 of them")


def test_float_images_outside_minus_one_one():
    images = np.linspace(0.0, 255.0, 16, dtype=np.float32).reshape(4, 2, 2)
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(images, batch_size=1)
    assert_one_line_error(error, "[0, 255]", "[-1, 1]")


@pytest.mark.parametrize(
    "labels, fragment",
    [(np.zeros(3, np.int64), "shape (3,)"), (np.zeros(4, np.float32), "float32")],
)
def test_bad_labels(labels, fragment):
    with pytest.raises(InputError) as error:
        data.dataset_from_arrays(np.zeros((4, 2, 2), np.uint8), labels, batch_size=1)
    assert_one_line_error(error, fragment)


def test_image_shape_needs_batched_images():
    unbatched = tf.data.Dataset.from_tensor_slices(np.zeros((4, 2, 2, 1)))
    with pytest.raises(InputError) as error:
        data.image_shape(unbatched)
    assert_one_line_error(error, "(2, 2, 1)")


# Preflight connection check


@pytest.fixture
def listener():
    """A local TCP socket that accepts connections; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server.getsockname()[1]
    server.close()


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)


def test_can_reach_an_open_port(listener, no_proxy_env):
    assert tfds_source._can_reach("127.0.0.1", listener, timeout=1.0)


def test_cannot_reach_a_closed_port(no_proxy_env):
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert not tfds_source._can_reach("127.0.0.1", port, timeout=1.0)


def test_can_reach_checks_the_https_proxy(listener, monkeypatch, no_proxy_env):
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{listener}")
    assert tfds_source._can_reach("host.invalid", timeout=1.0)


# TFDS


@pytest.fixture
def tfds_data_dir(tmp_path, monkeypatch):
    """Points TFDS's default data dir (read once at import) at a temporary one."""
    monkeypatch.setattr(tfds_constants, "DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def mnist_metadata(tmp_path):
    """Writes MNIST metadata with 20 train and 10 test images; returns its dir.

    Under `mock_data(data_dir=...)` the builder then reads real split sizes and
    counts as prepared.
    """
    builder = tfds.builder("mnist", data_dir=tmp_path)
    template = tfds.core.ShardedFileTemplate(
        data_dir=builder.data_path, dataset_name="mnist", filetype_suffix="tfrecord"
    )
    splits = [
        tfds.core.SplitInfo(
            name=name, shard_lengths=[size], num_bytes=0, filename_template=template
        )
        for name, size in [("train", 20), ("test", 10)]
    ]
    builder.info.set_splits(tfds.core.SplitDict(splits))
    builder.data_path.mkdir(parents=True)
    builder.info.write_to_directory(builder.data_path)
    return tmp_path


def refuse_preflight(host, *args, **kwargs):
    raise AssertionError(f"unexpected connection check to {host}")


def test_mock_mnist_batches(mnist_metadata, monkeypatch):
    monkeypatch.setattr(tfds_source, "_can_reach", refuse_preflight)  # Prepared.
    with tfds.testing.mock_data(num_examples=20, data_dir=str(mnist_metadata)):
        dataset = data.make_dataset("mnist", batch_size=8, seed=0)
        labelled = data.make_dataset("mnist", batch_size=8, with_labels=True)
        batches = list(dataset)
        labelled_batch = next(iter(labelled))
    assert len(batches) == 2  # 20 images, remainder of 4 dropped.
    assert batches[0].shape == (8, 28, 28, 1) and batches[0].dtype == tf.float32
    assert batches[0].numpy().min() >= -1.0 and batches[0].numpy().max() <= 1.0
    images, labels = labelled_batch
    assert images.shape == (8, 28, 28, 1)
    assert labels.shape == (8,) and labels.dtype == tf.int32
    assert labels.numpy().min() >= 0 and labels.numpy().max() <= 9
    assert data.image_shape(labelled) == (28, 28, 1)


def test_mock_mnist_load_arrays(mnist_metadata):
    with tfds.testing.mock_data(num_examples=10, data_dir=str(mnist_metadata)):
        images, labels = data.load_arrays("mnist", split="test")
    assert images.shape == (10, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (10,) and labels.dtype == np.int64


def test_mock_mnist_batch_size_larger_than_the_split(mnist_metadata):
    with (
        tfds.testing.mock_data(num_examples=10, data_dir=str(mnist_metadata)),
        pytest.raises(InputError) as error,
    ):
        data.make_dataset("mnist", batch_size=11, split="test")
    assert_one_line_error(error, "(10 images)", "at most 10")


def test_mock_mnist_unknown_split(mnist_metadata):
    with (
        tfds.testing.mock_data(num_examples=10, data_dir=str(mnist_metadata)),
        pytest.raises(InputError) as error,
    ):
        data.make_dataset("mnist", split="validation")
    assert_one_line_error(error, "'validation'", "['test', 'train']")


def test_unprepared_mock_mnist_checks_the_connection_first(monkeypatch):
    # Without metadata, mock_data's builder is unprepared and has no splits.
    hosts = []
    monkeypatch.setattr(
        tfds_source, "_can_reach", lambda host: hosts.append(host) or True
    )
    with tfds.testing.mock_data(num_examples=6):
        dataset = data.make_dataset("mnist", batch_size=3)
        assert [batch.shape for batch in dataset] == [(3, 28, 28, 1)] * 2
    assert hosts == [data.DOWNLOAD_HOST]


def test_unknown_tfds_dataset():
    with pytest.raises(InputError) as error:
        data.make_dataset("no_such_dataset_anywhere")
    assert_one_line_error(error, "'no_such_dataset_anywhere'", "digits", "--data-dir")


@pytest.mark.parametrize(
    "name, fragment",
    [("imdb_reviews", "no image feature"), ("oxford_flowers102", "(None, None, 3)")],
)
def test_tfds_dataset_without_fixed_size_images(name, fragment, monkeypatch):
    # Rejected from the dataset's code, before any download.
    monkeypatch.setattr(tfds_source, "_can_reach", refuse_preflight)
    with tfds.testing.mock_data(num_examples=2), pytest.raises(InputError) as error:
        data.make_dataset(name)
    assert_one_line_error(error, repr(name), fragment)


def test_tfds_dataset_without_labels(monkeypatch):
    monkeypatch.setattr(tfds_source, "_can_reach", refuse_preflight)
    with tfds.testing.mock_data(num_examples=2), pytest.raises(InputError) as error:
        data.make_dataset("celeb_a", with_labels=True)
    assert_one_line_error(error, "with_labels=True", "'celeb_a'")


def test_offline_download_fails_fast(tfds_data_dir, no_proxy_env):
    if tfds_source._can_reach(data.DOWNLOAD_HOST):
        pytest.skip(f"{data.DOWNLOAD_HOST} is reachable: this would download MNIST")
    start = time.monotonic()
    with pytest.raises(InputError) as error:
        data.make_dataset("mnist")
    assert time.monotonic() - start < 10.0
    assert_one_line_error(
        error,
        "cannot download TFDS dataset 'mnist'",
        str(tfds_data_dir),
        'dataset="digits"',
        "--dataset digits",
        "--data-dir",
        FASHION_MNIST,
    )
    assert not any(tfds_data_dir.iterdir())  # Nothing half-downloaded.


class KerasGanTinyImages(tfds.core.GeneratorBasedBuilder):
    """A real TFDS dataset that prepares offline: 12 train, 4 test images."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {
            "train": self._generate_examples(12),
            "test": self._generate_examples(4),
        }

    def _generate_examples(self, num_images):
        rng = np.random.default_rng(num_images)
        for index in range(num_images):
            image = rng.integers(0, 256, (8, 8, 1), dtype=np.uint8)
            yield index, {"image": image, "label": index % 3}


def test_real_tfds_dataset_prepared_on_first_use(tfds_data_dir, monkeypatch):
    monkeypatch.setattr(tfds_source, "_can_reach", lambda host: True)
    dataset = data.make_dataset(
        "keras_gan_tiny_images", batch_size=4, seed=0, with_labels=True
    )
    assert len(list(dataset)) == 3
    monkeypatch.setattr(tfds_source, "_can_reach", refuse_preflight)  # Now prepared.
    images, labels = data.load_arrays("keras_gan_tiny_images", split="train[:50%]")
    assert images.shape == (6, 8, 8, 1) and labels.dtype == np.int64
    with pytest.raises(InputError) as error:
        data.make_dataset("keras_gan_tiny_images", batch_size=5, split="test")
    assert_one_line_error(error, "(4 images)")
    with pytest.raises(InputError) as error:
        data.make_dataset("keras_gan_tiny_images", split="train[:200%]")
    assert_one_line_error(error, "'train[:200%]'", "['test', 'train']")


def test_idx_gzip_that_inflates_past_its_header_costs_no_memory(tmp_path):
    import tracemalloc

    header = np.array([0x803, 10, 4, 4], ">u4").tobytes()
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as file:  # 160 bytes announced, 64 MiB inside
        file.write(header + bytes(160))
        for _ in range(64):
            file.write(bytes(1 << 20))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as error:
            data.load_arrays(data_dir=str(tmp_path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert_one_line_error(error, str(path), "is more bytes", "needs 176")
    assert peak < 4 << 20, peak


def test_idx_header_announcing_more_than_the_memory_is_refused(tmp_path):
    header = np.array([0x803, 1 << 20, 1 << 20, 1 << 10], ">u4").tobytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(header + bytes(100))
    with pytest.raises(InputError) as error:
        data.load_arrays(data_dir=str(tmp_path))
    assert_one_line_error(error, "free memory", "(1048576, 1048576, 1024)")
