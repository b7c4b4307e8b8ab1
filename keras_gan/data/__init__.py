"""Training data: float32 images in [-1, 1] with a fixed batch shape.

One dispatch (`open_source`, used by `make_dataset` and the CLI) for every
source:

1. a path (`data_dir`, or `dataset` naming an existing file or folder):
   - a folder of MNIST-format IDX files (raw or gzipped), e.g. Debian's
     `/usr/share/datasets/fashion-mnist` (`keras_gan.data.idx`);
   - a `.npy` / `.npz` file of images (`keras_gan.data.array_file`);
   - any other folder: image files, recursively, class subfolders as labels
     (`keras_gan.data.folder`), decoded once into an on-disk cache;
2. `dataset="digits"`: scikit-learn's 8x8 digits, bundled with scikit-learn;
3. any other name: a TFDS image dataset, downloaded on first use
   (`keras_gan.data.tfds_source`).

`image_size` and `channels` apply to all of them, by the rules of
`keras_gan.data.shapes`. Arrays (folders, array files, IDX, digits) go through
`dataset_from_arrays` (`keras_gan.data.pipeline`): in memory, or streamed from
their memory-mapped file when large; TFDS datasets are streamed by TFDS.
"""

import dataclasses
import hashlib
import os
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_gan.data import array_file
from keras_gan.data import folder as image_folder
from keras_gan.data import idx
from keras_gan.data import pipeline
from keras_gan.data import shapes
from keras_gan.data import tfds_source
from keras_gan.data.idx import IDX_FILES
from keras_gan.data.pipeline import IN_MEMORY_MAX_BYTES
from keras_gan.data.pipeline import InMemorySource
from keras_gan.data.pipeline import dataset_from_arrays
from keras_gan.data.pipeline import image_shape
from keras_gan.data.pipeline import in_memory_source
from keras_gan.data.shapes import parse_image_size
from keras_gan.data.tfds_source import DOWNLOAD_HOST
from keras_gan.data.tfds_source import OFFLINE_SOURCES
from keras_gan.errors import InputError

__all__ = [
    "DOWNLOAD_HOST",
    "IDX_FILES",
    "IN_MEMORY_MAX_BYTES",
    "OFFLINE_SOURCES",
    "DataSource",
    "content_digest",
    "content_key",
    "InMemorySource",
    "dataset_from_arrays",
    "default_cache_dir",
    "image_shape",
    "in_memory_source",
    "load_arrays",
    "make_dataset",
    "num_classes",
    "open_source",
    "parse_image_size",
]

ON_BAD_IMAGE = image_folder.ON_BAD_IMAGE


def default_cache_dir() -> str:
    """Where image folders are decoded to: `$KERAS_GAN_CACHE/images` or
    `~/.cache/keras_gan/images`."""
    root = os.environ.get("KERAS_GAN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_gan"
    )
    return os.path.join(root, "images")


@dataclasses.dataclass(eq=False)
class DataSource:
    """One opened source: what it is, and its arrays (or its TFDS builder).

    Attributes:
        kind: `"folder"`, `"array_file"`, `"idx"`, `"digits"` or `"tfds"`.
        name: the path or the dataset's name.
        split: the split that was opened.
        images: uint8 `(N, H, W, C)` or float images (`None` for TFDS, whose
            images are streamed; `arrays()` loads them).
        labels: int64 labels `(N,)`, or `None`.
        value_range: the range of float images (`(0, 255)` for uint8).
        class_names: class names (folders' subfolders, TFDS label names), or
            `None`.
        skipped: `(path, reason)` of the files an image folder left out.
        cache_path: the decoded folder's cache entry, or `None`.
    """

    kind: str
    name: str
    split: str
    images: np.ndarray | None
    labels: np.ndarray | None
    value_range: tuple = (0, 255)
    class_names: list[str] | None = None
    skipped: list = dataclasses.field(default_factory=list)
    cache_path: str | None = None
    # TFDS: ((builder, image key, label key), image_size, channels).
    _tfds: tuple | None = None

    @property
    def num_images(self) -> int | None:
        return None if self.images is None else len(self.images)

    @property
    def num_classes(self) -> int | None:
        """The number of classes, or `None` for unlabelled data."""
        if self.class_names is not None:
            return len(self.class_names)
        if self.kind == "tfds":
            return tfds_source.num_classes(self._tfds[0])
        if self.labels is None:
            return None
        return int(self.labels.max()) + 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray | None]:
        """`(images, labels)` as uint8 `(N, H, W, C)` in memory (TFDS: the
        whole split) and int64 labels or `None`: what evaluation uses."""
        if self.kind == "tfds":
            images, labels = tfds_source.load_arrays(self._tfds[0], self.split)
            images = shapes.convert_arrays(images, *self._tfds[1:])
            return images, labels
        images = self.images
        if images.dtype != np.uint8:
            scale, offset = (2.0, -1.0) if self.value_range == (0.0, 1.0) else (1, 0)
            floats = np.clip(np.asarray(images) * scale + offset, -1.0, 1.0)
            images = np.round((floats + 1.0) * 127.5).astype(np.uint8)
        return np.asarray(images), self.labels

    def content_key(self) -> str:
        """`content_key` of this source's `arrays()`."""
        return content_key(*self.arrays())

    def pipeline(
        self,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int | None = None,
        with_labels: bool = False,
        in_memory: bool | None = None,
    ) -> tf.data.Dataset:
        """The training pipeline: see `make_dataset`."""
        if with_labels and self.num_classes is None:
            raise InputError(
                f"with_labels=True (--conditional) but {self.name} has no labels; "
                f"expected {_labelled(self.kind, self.split)}."
            )
        if self.kind == "tfds":
            opened, image_size, channels = self._tfds
            return tfds_source.tfds_dataset(
                opened,
                batch_size,
                self.split,
                shuffle,
                seed,
                with_labels,
                convert=_converter(image_size, channels),
            )
        value_range = (-1.0, 1.0) if self.value_range == (0, 255) else self.value_range
        return dataset_from_arrays(
            self.images,
            self.labels if with_labels else None,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            value_range=value_range,
            in_memory=in_memory,
        )


_LABELLED = (
    "a folder with one subfolder per class, an .npz file with labels, IDX files "
    "with a labels file, or a labelled TFDS dataset"
)


def _labelled(kind, split="train"):
    """What a labelled source of `kind` looks like."""
    if kind == "idx":
        return f"a labels file {idx._idx_candidates(IDX_FILES[split][1])}"
    if kind == "folder":
        return "one subfolder per class, with no images directly in the folder"
    if kind == "array_file":
        return f"an .npz file with labels under one of {array_file.LABEL_KEYS[split]}"
    return _LABELLED


def content_digest(images: np.ndarray, labels: np.ndarray | None = None) -> str:
    """The SHA-256 (hex) of images' shape, dtype and pixels, and of their
    labels: the same pixels give the same digest whatever file they came from,
    and two different datasets never share one."""
    digest = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    for chunk in pipeline.chunks(images):
        digest.update(np.ascontiguousarray(chunk).data)
    if labels is not None:
        digest.update(np.ascontiguousarray(labels, np.int64).data)
    return digest.hexdigest()


def content_key(images: np.ndarray, labels: np.ndarray | None = None) -> str:
    """`data-` and the first 16 hex digits of `content_digest`: a short key
    for caching something derived from a dataset."""
    return f"data-{content_digest(images, labels)[:16]}"


def open_source(
    dataset: str | os.PathLike = "mnist",
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    *,
    image_size: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    on_bad_image: str = "fail",
    cache_dir: str | os.PathLike | bool | None = None,
    log: Callable[[str], None] | None = None,
    with_labels: bool = False,
) -> DataSource:
    """Opens a source of images; see the module's list.

    Args:
        dataset: a TFDS image dataset name, `"digits"`, or the path of an
            existing folder or `.npy` / `.npz` file. Ignored when `data_dir`
            is given.
        data_dir: a path: a folder of IDX files, a folder of image files, or
            an array file.
        split: `"train"` or `"test"` (IDX files, `.npz` with test arrays),
            any TFDS split (`"test"`, `"train[:10%]"`); folders, `.npy` files
            and digits have `"train"` only.
        image_size: `None` (keep), an int (a square), `(height, width)` or a
            string `"64"` / `"64x48"`: centre crop to the aspect ratio, then
            bicubic resize (`keras_gan.data.shapes`).
        channels: 1, 3 or `None` (grey stays 1, colour 3).
        on_bad_image: for image folders: `"fail"` stops at the first
            unreadable file, `"skip"` leaves such files out and logs them.
        cache_dir: where image folders are decoded to (`None`:
            `default_cache_dir()`; `False`: into memory, decoded again by
            every call).
        log: callable taking one line, for decoding progress and skipped
            files; `None` for silence.
        with_labels: refuse a source without labels (a TFDS dataset before
            it is downloaded).

    Returns:
        A `DataSource`.
    """
    if isinstance(image_size, str):
        image_size = parse_image_size(image_size)
    image_size = shapes.checked_image_size(image_size)
    channels = shapes.checked_channels(channels)
    image_folder.checked_on_bad_image(on_bad_image)
    path = data_dir
    if path is None and (
        isinstance(dataset, os.PathLike) or os.path.exists(os.fspath(dataset))
    ):
        path = dataset
    if path is None:
        if dataset == "digits":
            if split != "train":
                raise InputError(
                    f"unknown split {split!r} for the digits dataset; expected "
                    "'train' (digits has a single split of 1797 images)."
                )
            images, labels = _load_digits()
            images = shapes.convert_arrays(images, image_size, channels)
            return DataSource("digits", "digits", split, images, labels)
        opened = tfds_source.open_dataset(dataset, split, with_labels)
        return DataSource(
            "tfds",
            dataset,
            split,
            None,
            None,
            class_names=tfds_source.class_names(opened),
            _tfds=(opened, image_size, channels),
        )
    path = os.fspath(path)
    if array_file.is_array_file(path):
        images, labels, value_range = array_file.load(path, split)
        converted = _convert(images, value_range, image_size, channels)
        if converted is not images:
            images, value_range = (
                converted,
                ((0, 255) if converted.dtype == np.uint8 else (-1.0, 1.0)),
            )
        return DataSource("array_file", path, split, images, labels, value_range)
    if not os.path.isdir(path):
        raise InputError(
            f"data path {path} does not exist or is neither a folder nor a .npy / "
            ".npz file; expected a folder of images (one subfolder per class for "
            "labels), a folder of MNIST-format IDX files, or a .npy / .npz file."
        )
    if idx.is_idx_folder(path):
        images, labels = idx.load_idx(path, split)
        images = shapes.convert_arrays(images, image_size, channels)
        return DataSource("idx", path, split, images, labels)
    if split != "train":
        raise InputError(
            f"unknown split {split!r} for the image folder {path}; expected "
            "'train' (a folder of images has one split; a folder of IDX files "
            "has 'train' and 'test')."
        )
    if cache_dir is None:
        cache_dir = default_cache_dir()
    decoded = image_folder.decode_folder(
        path,
        image_size=image_size,
        channels=channels,
        on_bad_image=on_bad_image,
        cache_dir=cache_dir or None,
        log=log,
    )
    labels = None if decoded.labels is None else decoded.labels.astype(np.int64)
    return DataSource(
        "folder",
        path,
        split,
        decoded.images,
        labels,
        class_names=decoded.class_names,
        skipped=decoded.skipped,
        cache_path=decoded.cache_path,
    )


def _convert(images, value_range, image_size, channels):
    """Array-file images converted by the shape rules (floats to [-1, 1])."""
    if image_size is None and channels is None and images.shape[-1] in (1, 3):
        return images
    if images.dtype != np.uint8:
        scale, offset = (2.0, -1.0) if value_range == (0.0, 1.0) else (1.0, 0.0)
        images = (np.asarray(images, np.float32) * scale + offset).astype(np.float32)
        images = np.clip(images, -1.0, 1.0)
    return shapes.convert_arrays(np.asarray(images), image_size, channels)


def _converter(image_size, channels):
    """A TensorFlow function applying the shape rules to one uint8 image, or
    `None` when there is nothing to do."""
    if image_size is None and channels is None:
        return None

    def convert(image):
        def apply(array):
            return shapes.convert_arrays(array[np.newaxis], image_size, channels)[0]

        out = tf.numpy_function(apply, [image], tf.uint8)
        height, width = image_size or (image.shape[0], image.shape[1])
        depth = channels or (1 if image.shape[-1] <= 2 else 3)
        return tf.ensure_shape(out, (height, width, depth))

    return convert


def load_arrays(
    dataset: str = "mnist",
    data_dir: str | None = None,
    split: str = "train",
    **options,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loads a whole split into memory as uint8 images and int64 labels.

    Args:
        dataset, data_dir, split: the source, as in `open_source`.
        **options: `image_size`, `channels`, `on_bad_image`, `cache_dir`,
            `log`, as in `open_source`.

    Returns:
        A tuple `(images, labels)`: uint8 images `(N, H, W, C)` in [0, 255]
        and int64 labels `(N,)`, or `None` for a source without labels.

    Example:

    >>> images, labels = load_arrays("digits")
    >>> images.shape, images.dtype, labels.shape
    ((1797, 8, 8, 1), dtype('uint8'), (1797,))
    """
    return open_source(dataset, data_dir, split, **options).arrays()


def make_dataset(
    dataset: str | os.PathLike = "mnist",
    data_dir: str | os.PathLike | None = None,
    batch_size: int = 64,
    split: str = "train",
    shuffle: bool = True,
    seed: int | None = None,
    with_labels: bool = False,
    *,
    image_size: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    on_bad_image: str = "fail",
    cache_dir: str | os.PathLike | bool | None = None,
    log: Callable[[str], None] | None = None,
    in_memory: bool | None = None,
) -> tf.data.Dataset:
    """Builds the training pipeline of a source: batches in [-1, 1].

    Arrays (image folders, array files, IDX files, digits) are shuffled as a
    whole, anew at each epoch, and kept in memory or (memory-mapped ones
    above `IN_MEMORY_MAX_BYTES`) read from their file batch by batch. TFDS
    datasets are streamed and shuffled through a buffer of 10,000 images.

    A TFDS dataset that is not prepared yet is downloaded, after a quick
    check that the download host is reachable: offline, this fails at once
    with an `InputError` naming the offline sources, instead of retrying for
    minutes.

    Args:
        dataset: a TFDS image dataset name, `"digits"`, or the path of an
            existing image folder, IDX folder or `.npy` / `.npz` file.
        data_dir: a path, as `dataset`'s; takes precedence over it.
        batch_size: images per batch; at most the number of images.
        split: which split to read (see `open_source`).
        shuffle: whether to shuffle, anew at each epoch.
        seed: seed of the shuffle, for a reproducible order of epochs.
        with_labels: whether elements are `(images, labels)` rather than
            `images`.
        image_size, channels, on_bad_image, cache_dir, log: see
            `open_source`.
        in_memory: see `dataset_from_arrays`.

    Returns:
        A `tf.data.Dataset` of float32 images `(batch_size, H, W, C)` in
        [-1, 1], or of `(images, labels)` with int32 labels `(batch_size,)`.

    Example:

    >>> dataset = make_dataset("digits", batch_size=32, seed=0, image_size=16)
    >>> image_shape(dataset)
    (16, 16, 1)
    """
    pipeline.check_batch_size(batch_size)
    source = open_source(
        dataset,
        data_dir,
        split,
        image_size=image_size,
        channels=channels,
        on_bad_image=on_bad_image,
        cache_dir=cache_dir,
        log=log,
        with_labels=with_labels,
    )
    return source.pipeline(batch_size, shuffle, seed, with_labels, in_memory)


def num_classes(dataset: str = "mnist", data_dir: str | None = None, **options) -> int:
    """Returns the number of classes of a labelled dataset's training split.

    For arrays, one more than the largest label (a folder: its class
    subfolders); for TFDS, the label feature's `num_classes`.
    """
    source = open_source(dataset, data_dir, "train", **options)
    if source.num_classes is None:
        raise InputError(
            f"{source.name} has no labels; a conditional model needs "
            f"{_labelled(source.kind)}."
        )
    return source.num_classes


def _load_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    # (1797, 8, 8) in 0..16 -> (1797, 8, 8, 1) in 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images[..., np.newaxis], digits.target.astype(np.int64)
