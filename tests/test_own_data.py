"""Own data end to end: folders of real Fashion-MNIST images (PNG, JPEG, class
subfolders), generated RGB images, .npy / .npz files and TFDS resizing, through
`keras_gan.data` and `cli.py train|sample|evaluate`."""

import csv
import gzip
import json
import os
import resource
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from cli_helpers import assert_one_line_error
from cli_helpers import snapshot
from cli_helpers import train
from click.testing import CliRunner
from PIL import Image
from test_image_folder import BAD_FILES

import cli
from keras_gan import data
from keras_gan.data import folder as image_folder
from keras_gan.data import shapes
from keras_gan.errors import InputError

FASHION = "/usr/share/datasets/fashion-mnist"
# Sorted names in label order, so that folder labels equal the IDX labels.
CLASSES = [
    "0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat",
    "5-sandal", "6-shirt", "7-sneaker", "8-bag", "9-boot",
]  # fmt: skip
COUNT = 200


@pytest.fixture(scope="module")
def fashion():
    if not os.path.isdir(FASHION):
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION}")
    images, labels = data.load_arrays(data_dir=FASHION)
    return images[:COUNT], labels[:COUNT]


def write_class_folder(root, images, labels, extension, **options):
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = os.path.join(root, CLASSES[label])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{index:05d}{extension}")
        Image.fromarray(image[..., 0]).save(path, **options)
    return str(root)


@pytest.fixture(scope="module")
def png_folder(fashion, tmp_path_factory):
    return write_class_folder(tmp_path_factory.mktemp("png"), *fashion, ".png")


@pytest.fixture(scope="module")
def jpeg_folder(fashion, tmp_path_factory):
    root = tmp_path_factory.mktemp("jpeg")
    return write_class_folder(root, *fashion, ".jpg", quality=95)


def folder_order(labels):
    """The IDX indices in the order a class folder lists them: by class, then
    by file name."""
    return np.array(sorted(range(len(labels)), key=lambda i: (labels[i], i)))


def write_idx(folder, images, labels):
    os.makedirs(folder, exist_ok=True)
    header = np.array([0x803, len(images), 28, 28], ">u4").tobytes()
    with gzip.open(os.path.join(folder, "train-images-idx3-ubyte.gz"), "wb") as f:
        f.write(header + images.tobytes())
    header = np.array([0x801, len(labels)], ">u4").tobytes()
    with gzip.open(os.path.join(folder, "train-labels-idx1-ubyte.gz"), "wb") as f:
        f.write(header + labels.astype(np.uint8).tobytes())
    return str(folder)


def batches(dataset):
    return [
        tuple(np.asarray(part) for part in element)
        if isinstance(element, tuple)
        else np.asarray(element)
        for element in dataset
    ]


# Sources give the same pixels


def test_a_png_class_folder_gives_the_idx_pixels_labels_and_names(
    fashion, png_folder, tmp_path
):
    images, labels = fashion
    order = folder_order(labels)
    source = data.open_source(png_folder, cache_dir=tmp_path / "cache")
    assert source.kind == "folder"
    assert source.class_names == CLASSES
    np.testing.assert_array_equal(source.images, images[order])
    np.testing.assert_array_equal(source.labels, labels[order])
    assert source.num_classes == 10
    # The same resize and channel rules on the folder and on the IDX files.
    idx_dir = write_idx(tmp_path / "idx", images[order][:, :, :, 0], labels[order])
    resized = data.open_source(
        png_folder, image_size="32x24", channels=3, cache_dir=tmp_path / "cache"
    )
    from_idx = data.open_source(idx_dir, image_size=(32, 24), channels=3)
    assert resized.images.shape == (COUNT, 32, 24, 3)
    np.testing.assert_array_equal(resized.images, from_idx.images)
    # Grey repeated into RGB.
    np.testing.assert_array_equal(resized.images[..., 0], resized.images[..., 2])
    # Equal pixels, equal content key, whatever file they came from.
    assert resized.content_key() == from_idx.content_key()
    assert resized.content_key() != source.content_key()


def test_a_jpeg_folder_is_within_compression_error(fashion, jpeg_folder, tmp_path):
    images, labels = fashion
    source = data.open_source(jpeg_folder, cache_dir=tmp_path)
    order = folder_order(labels)
    difference = np.abs(source.images.astype(int) - images[order].astype(int))
    assert difference.mean() < 3.0
    np.testing.assert_array_equal(source.labels, labels[order])


def test_mixed_rgb_sizes_are_cropped_and_resized(tmp_path):
    rng = np.random.default_rng(0)
    sizes = [(60, 80), (90, 90), (120, 45), (64, 48)]
    for index, (height, width) in enumerate(sizes):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{index}.png")
    # A grey image, an RGBA one and a 16-bit one join the RGB ones.
    Image.fromarray(np.full((50, 50), 200, np.uint8)).save(tmp_path / "grey.png")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 128
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((30, 30), 65535, np.uint16)).save(tmp_path / "deep.png")
    dataset = data.make_dataset(
        str(tmp_path), batch_size=7, image_size="48x64", cache_dir=False
    )
    (batch,) = batches(dataset)
    assert batch.shape == (7, 48, 64, 3)
    assert batch.min() >= -1.0 and batch.max() <= 1.0
    source = data.open_source(str(tmp_path), image_size="48x64", cache_dir=False)
    by_name = dict(zip(sorted(os.listdir(tmp_path)), source.images, strict=True))
    assert (by_name["deep.png"] == 255).all()  # 65535 -> 255, not clipped
    assert (by_name["grey.png"] == 200).all()
    # Half-transparent red over black: red 128, no green or blue.
    assert abs(int(by_name["rgba.png"][..., 0].mean()) - 128) <= 1
    assert by_name["rgba.png"][..., 1:].max() == 0


def test_array_files_in_every_range_give_the_same_batches(fashion, tmp_path):
    images, labels = fashion
    np.save(tmp_path / "grey.npy", images[..., 0])  # (N, H, W) uint8
    np.savez(tmp_path / "labelled.npz", images=images, labels=labels)
    np.save(tmp_path / "unit.npy", images.astype(np.float32) / 255.0)
    np.save(tmp_path / "signed.npy", images.astype(np.float32) / 127.5 - 1.0)
    reference = batches(
        data.dataset_from_arrays(images, labels, batch_size=50, shuffle=False)
    )
    for name in ("grey.npy", "unit.npy", "signed.npy"):
        got = batches(
            data.make_dataset(str(tmp_path / name), batch_size=50, shuffle=False)
        )
        for mine, theirs in zip(got, reference, strict=True):
            np.testing.assert_allclose(mine, theirs[0], atol=1e-6)
    labelled = batches(
        data.make_dataset(
            data_dir=str(tmp_path / "labelled.npz"),
            batch_size=50,
            shuffle=False,
            with_labels=True,
        )
    )
    for (mine, mine_labels), (theirs, theirs_labels) in zip(
        labelled, reference, strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(mine_labels, theirs_labels)
    assert data.open_source(str(tmp_path / "grey.npy")).kind == "array_file"
    # Float files are resized by the same rules; Pillow's 8-bit filter rounds
    # between its two passes, the float one does not (a few levels at edges).
    unit = data.open_source(str(tmp_path / "unit.npy"), image_size=14)
    grey = data.open_source(str(tmp_path / "grey.npy"), image_size=14)
    assert unit.arrays()[0].shape == grey.images.shape == (COUNT, 14, 14, 1)
    difference = np.abs(unit.arrays()[0].astype(int) - grey.images.astype(int))
    assert difference.mean() < 0.5 and difference.max() <= 16


def test_bad_array_files_get_one_line_errors(tmp_path):
    objects = np.empty(3, dtype=object)
    objects[:] = [np.zeros((2, 2)), "x", None]
    np.savez(tmp_path / "pickled.npz", images=objects)
    np.save(tmp_path / "good.npy", np.zeros((10, 8, 8), np.uint8))
    data_bytes = (tmp_path / "good.npy").read_bytes()
    (tmp_path / "truncated.npy").write_bytes(data_bytes[: len(data_bytes) // 2])
    np.save(tmp_path / "nan.npy", np.full((4, 8, 8), np.nan, np.float32))
    np.save(tmp_path / "flat.npy", np.zeros((4, 64), np.uint8))
    np.save(tmp_path / "wide.npy", np.full((4, 8, 8), 2.0, np.float32))
    np.savez(tmp_path / "unnamed.npz", a=np.zeros((4, 8, 8)), b=np.zeros((4, 8, 8)))
    (tmp_path / "text.npz").write_text("not a zip\n")
    cases = {
        "pickled.npz": "never unpickled",
        "truncated.npy": "corrupt or truncated",
        "nan.npy": "NaN",
        "flat.npy": "(4, 64)",
        "wide.npy": "[-1, 1]",
        "unnamed.npz": "['a', 'b']",
        "text.npz": "cannot be read",
    }
    for name, fragment in cases.items():
        with pytest.raises(InputError) as error:
            data.make_dataset(data_dir=str(tmp_path / name), batch_size=2)
        message = str(error.value)
        assert "\n" not in message and fragment in message, (name, message)
        assert name in message


def test_a_memory_mapped_file_streams_the_same_batches(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "big.npy", rng.integers(0, 256, (103, 6, 5, 3), np.uint8))
    labels = rng.integers(0, 4, 103)
    mapped = np.load(tmp_path / "big.npy", mmap_mode="r")
    streamed = data.dataset_from_arrays(mapped, labels, 10, seed=3, in_memory=False)
    in_memory = data.dataset_from_arrays(mapped, labels, 10, seed=3, in_memory=True)
    assert data.in_memory_source(streamed).streamed
    assert not data.in_memory_source(in_memory).streamed
    for _ in range(2):  # two epochs, each in its own order
        for (a, a_labels), (b, b_labels) in zip(
            batches(streamed), batches(in_memory), strict=True
        ):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a_labels, b_labels)
    # Memory-mapped arrays above IN_MEMORY_MAX_BYTES stream by default.
    from keras_gan.data import pipeline

    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", mapped.nbytes - 1)
    assert data.in_memory_source(data.dataset_from_arrays(mapped, None, 10)).streamed
    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", mapped.nbytes)
    assert not data.in_memory_source(data.dataset_from_arrays(mapped)).streamed
    with pytest.raises(InputError, match="memory-mapped"):
        data.dataset_from_arrays(np.asarray(mapped), batch_size=10, in_memory=False)


def test_streaming_keeps_the_file_out_of_memory(tmp_path):
    # 398 MiB of images on disk; reading 200 batches of them costs this
    # process far less than the file (its pages stay in the page cache).
    path = tmp_path / "large.npy"
    rows = np.lib.format.open_memmap(path, "w+", np.uint8, (34_000, 64, 64, 3))
    rows[::1000] = 7
    del rows
    script = f"""
import json, resource, sys
import numpy as np
from keras_gan import data
mapped = np.load({str(path)!r}, mmap_mode="r")
dataset = data.dataset_from_arrays(mapped, batch_size=64, seed=0, in_memory=False)
assert data.in_memory_source(dataset).streamed
iterator = iter(dataset)
next(iterator)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for _ in range(200):
    next(iterator)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"grew_kib": after - before, "nbytes": mapped.nbytes}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["nbytes"] > 390 * 2**20
    assert result["grew_kib"] < 100 * 1024, result  # KiB, against 398 MiB


def test_tfds_datasets_are_resized_too(monkeypatch):
    import tensorflow_datasets as tfds

    from keras_gan.data import tfds_source

    # Without metadata, mock_data's builder is unprepared: no download happens.
    monkeypatch.setattr(tfds_source, "_can_reach", lambda host: True)
    with tfds.testing.mock_data(num_examples=8):
        dataset = data.make_dataset(
            "mnist", batch_size=4, image_size=16, channels=3, with_labels=True
        )
        images, labels = next(iter(dataset))
    assert images.shape == (4, 16, 16, 3) and labels.shape == (4,)
    np.testing.assert_array_equal(images[..., 0], images[..., 1])
    assert -1.0 <= float(tf.reduce_min(images)) <= float(tf.reduce_max(images)) <= 1


def test_image_size_and_channels_are_checked():
    for size, fragment in (("0", "positive"), ("64x", "HEIGHTxWIDTH"), ("a", "int")):
        with pytest.raises(InputError, match=fragment):
            shapes.parse_image_size(size)
    assert shapes.parse_image_size("64x48") == (64, 48)
    assert shapes.parse_image_size(" 28 ") == (28, 28)
    with pytest.raises(InputError, match="channels"):
        data.make_dataset("digits", channels=2)


# The command line


def test_a_path_given_to_dataset_gets_a_hint(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((10, 8, 8), np.uint8))
    result = train(tmp_path, "--dataset", str(tmp_path / "images.npy"))
    assert result.exit_code == 2
    assert_one_line_error(result, "is a path", "--data-dir")
    assert not (tmp_path / "runs").exists()


def test_cli_trains_on_an_array_file(fashion, tmp_path):
    np.savez(tmp_path / "fashion.npz", images=fashion[0], labels=fashion[1])
    result = train(
        tmp_path, "--data", str(tmp_path / "fashion.npz"), "--name", "fashion",
        "--conditional",
        "--architecture", "dcgan", "--image-size", "16", "--epochs", "1",
        "--batch-size", "50", "--latent-dim", "8",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "runs" / "fashion" / "config.json").read_text())
    assert config["image_size"] == [16, 16] and config["conditional"]
    info = tmp_path / "saved_models" / "fashion" / "1" / "assets.extra"
    assert json.loads((info / "keras_gan.json").read_text())["image_shape"] == [
        16,
        16,
        1,
    ]


@pytest.fixture(scope="module")
def conditional_folder_run(png_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("folder-run")
    result = train(
        root, "--data-dir", png_folder, "--name", "clothes", "--conditional",
        "--architecture", "dcgan", "--epochs", "1", "--batch-size", "40",
        "--latent-dim", "8", "--cache-dir", str(root / "cache"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root, result.output


@pytest.mark.backends
def test_cli_trains_a_conditional_dcgan_on_class_subfolders(conditional_folder_run):
    root, output = conditional_folder_run
    assert f"decoding {COUNT} image files" in output
    run = root / "runs" / "clothes"
    assert json.loads((run / "class_names.json").read_text()) == CLASSES
    export = root / "saved_models" / "clothes" / "1"
    info = json.loads((export / "assets.extra" / "keras_gan.json").read_text())
    assert info["class_names"] == CLASSES and info["num_classes"] == 10
    grid = root / "grid.png"
    result = CliRunner().invoke(
        cli.cli,
        ["sample", str(export), "--labels", "1-trouser,8-bag", "--num-images", "6",
         "--output", str(grid)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size[1] < Image.open(grid).size[0]  # 2 rows of 3
    result = CliRunner().invoke(
        cli.cli, ["sample", str(export), "--labels", "hat", "--output", str(grid)]
    )
    assert_one_line_error(result, "unknown class 'hat'", "1-trouser")


@pytest.mark.backends
def test_a_resumed_folder_run_decodes_nothing(png_folder, tmp_path, monkeypatch):
    decoded = []
    original = image_folder._decode
    monkeypatch.setattr(
        image_folder,
        "_decode",
        lambda *args: decoded.append(args[0]) or original(*args),
    )
    flags = ["--data-dir", png_folder, "--name", "r", "--batch-size", "50",
             "--cache-dir", str(tmp_path / "cache"), "--image-size", "14"]  # fmt: skip
    result = train(tmp_path, *flags, "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert len(decoded) == COUNT  # once, for both epochs
    decoded.clear()
    result = train(tmp_path, *flags, "--epochs", "3", "--resume")
    assert result.exit_code == 0, result.output
    assert decoded == []
    assert f"loaded {COUNT} images from cache" in result.output
    assert "decoding" not in result.output


@pytest.mark.backends
def test_a_folder_too_large_for_memory_trains_streamed(
    png_folder, tmp_path, monkeypatch
):
    from keras_gan.backend import feed
    from keras_gan.data import pipeline

    monkeypatch.setattr(pipeline, "IN_MEMORY_MAX_BYTES", 0)  # every cache streams
    monkeypatch.setattr(feed, "DEVICE_DATA_MAX_BYTES", 0)  # through tf.data
    streamed = []
    original = pipeline._RowReader.read
    monkeypatch.setattr(
        pipeline._RowReader,
        "read",
        lambda self, indices: streamed.append(len(indices)) or original(self, indices),
    )
    cache = str(tmp_path / "cache")
    result = train(tmp_path, "--data-dir", png_folder, "--name", "s", "--epochs",
                   "2", "--batch-size", "50", "--cache-dir", cache)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(streamed) >= 8 and set(streamed) == {50}  # 4 batches per epoch
    with open(tmp_path / "runs" / "s" / "log.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 2
    assert all(np.isfinite(float(row["d_loss"])) for row in rows)


@pytest.fixture
def small_folder(fashion, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(20):
        Image.fromarray(fashion[0][index, :, :, 0]).save(folder / f"{index:02d}.png")
    return folder


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_file_stops_the_run_before_anything_is_written(
    fashion, small_folder, tmp_path, name
):
    make, reason = BAD_FILES[name]
    make(str(small_folder / name), (fashion[0][:10, :, :, 0],))
    before = snapshot(small_folder)
    result = train(tmp_path, "--data-dir", str(small_folder), "--cache-dir",
                   str(tmp_path / "cache"), "--batch-size", "5")  # fmt: skip
    assert_one_line_error(result, name, reason)
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "saved_models").exists()
    assert snapshot(small_folder) == before


def test_skip_leaves_bad_files_out_and_counts_them(fashion, small_folder, tmp_path):
    for name, (make, _) in BAD_FILES.items():
        make(str(small_folder / name), (fashion[0][:10, :, :, 0],))
    result = train(tmp_path, "--data-dir", str(small_folder), "--on-bad-image",
                   "skip", "--cache-dir", str(tmp_path / "cache"), "--batch-size",
                   "5", "--epochs", "1")  # fmt: skip
    assert result.exit_code == 0, result.output
    total = 20 + len(BAD_FILES)
    assert f"skipped {len(BAD_FILES)} of {total} files" in result.output
    for name, (_, reason) in BAD_FILES.items():
        assert any(
            line.startswith(f"skipped {name}: ") and reason in line
            for line in result.output.splitlines()
        ), name
    config = json.loads((tmp_path / "runs" / "images" / "config.json").read_text())
    assert config["on_bad_image"] == "skip"


def test_a_bomb_is_refused_from_its_header_without_a_memory_spike(
    small_folder, tmp_path
):
    from test_image_folder import bomb_png

    bomb_png(str(small_folder / "bomb.png"), 60000, 60000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = train(tmp_path, "--data-dir", str(small_folder), "--cache-dir",
                   str(tmp_path / "cache"), "--batch-size", "5")  # fmt: skip
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert_one_line_error(result, "bomb.png", "refused without decoding")
    assert grew < 100 * 1024  # KiB; decoding would take 3.4 GiB


def test_empty_and_too_small_folders_fail_before_anything_is_written(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = train(tmp_path, "--data-dir", str(empty))
    assert_one_line_error(result, "holds no image files")
    few = tmp_path / "few"
    few.mkdir()
    for index in range(3):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(few / f"{index}.png")
    result = train(tmp_path, "--data-dir", str(few), "--batch-size", "4",
                   "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert_one_line_error(result, "batch size 4", "3 images")
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "saved_models").exists()


def test_conditional_on_an_unlabelled_folder_is_refused(small_folder, tmp_path):
    result = train(tmp_path, "--data-dir", str(small_folder), "--conditional",
                   "--cache-dir", str(tmp_path / "cache"))  # fmt: skip
    assert_one_line_error(result, "has no labels", "subfolder per class")
    assert not (tmp_path / "runs").exists()


def test_evaluate_on_own_folders(conditional_folder_run, png_folder, monkeypatch):
    root, _ = conditional_folder_run
    monkeypatch.setenv("KERAS_GAN_CACHE", str(root / "keras-gan-cache"))
    export = root / "saved_models" / "clothes" / "1"
    result = CliRunner().invoke(
        cli.cli,
        ["evaluate", str(export), "--data-dir", png_folder, "--num-samples", "50",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Epoch 12/12" in result.stderr  # Keras's progress bar, on stderr
    scores = json.loads(result.stdout)  # stdout: the JSON line alone
    folder_name = os.path.basename(os.path.normpath(png_folder))
    assert scores["classifier"]["dataset"].startswith(f"{folder_name}-")
    assert scores["inception_score"] is not None  # a labelled folder's classifier
    assert np.isfinite(scores["frechet_distance"])
    # An unlabelled folder (the same images, flat) uses the fixed features.
    flat = root / "flat"
    flat.mkdir(exist_ok=True)
    for class_name in CLASSES:
        for name in os.listdir(os.path.join(png_folder, class_name)):
            os.link(os.path.join(png_folder, class_name, name), flat / name)
    result = CliRunner().invoke(
        cli.cli,
        ["evaluate", str(export), "--data-dir", str(flat), "--num-samples", "50",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    flat_scores = json.loads(result.output.strip().splitlines()[-1])
    assert flat_scores["inception_score"] is None
    assert flat_scores["classifier"]["dataset"] != scores["classifier"]["dataset"]
