"""tf.data pipelines: float32 images in [-1, 1] with a fixed batch shape.

Three sources, in order of precedence:

1. `data_dir`: a folder of MNIST-format IDX files (raw or gzipped), read
   offline with NumPy, e.g. Debian's `/usr/share/datasets/fashion-mnist`.
2. `dataset="digits"`: scikit-learn's 8x8 digits, bundled with scikit-learn.
3. any other name: a TFDS image dataset, downloaded on first use.

Every batch has the same shape (the remainder is dropped) so that an XLA
compiled `train_step` is traced once.
"""

import gzip
import math
import os
import socket
import urllib.parse
import urllib.request
import zlib

import numpy as np
import tensorflow as tf

from keras_gan.errors import InputError

# TFDS downloads prepared datasets from its GCS mirror and MNIST from
# storage.googleapis.com/cvdf-datasets: both on this host.
DOWNLOAD_HOST = "storage.googleapis.com"

OFFLINE_SOURCES = (
    'dataset="digits" (--dataset digits), or data_dir= (--data-dir) pointing '
    "at MNIST-format IDX files such as /usr/share/datasets/fashion-mnist"
)

# split -> (images file, labels file), each raw or with a ".gz" suffix.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Magic numbers of the IDX format: 0x08 is unsigned byte, then the rank.
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801

# Streamed TFDS datasets may not fit a whole-dataset buffer.
TFDS_SHUFFLE_BUFFER = 10_000

# Values this close outside [-1, 1] are float rounding, not another range.
RANGE_TOLERANCE = 1e-6


def load_arrays(
    dataset: str = "mnist", data_dir: str | None = None, split: str = "train"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loads a whole split into memory as uint8 images and int64 labels.

    Args:
        dataset: `"digits"` for scikit-learn's 8x8 digits, or the name of a
            TFDS image dataset (`"mnist"`, `"fashion_mnist"`, `"cifar10"`,
            ...). Ignored when `data_dir` is given.
        data_dir: folder of MNIST-format IDX files (`train-images-idx3-ubyte`,
            `t10k-labels-idx1-ubyte`, ..., raw or `.gz`). Takes precedence
            over `dataset`.
        split: `"train"` or `"test"` for IDX files, `"train"` for digits, any
            TFDS split (`"test"`, `"train[:10%]"`) for TFDS.

    Returns:
        A tuple `(images, labels)`: uint8 images `(N, H, W, C)` in [0, 255]
        and int64 labels `(N,)`, or `None` for a source without labels.

    Example:

    >>> images, labels = load_arrays("digits")
    >>> images.shape, images.dtype, labels.shape
    ((1797, 8, 8, 1), dtype('uint8'), (1797,))
    """
    if data_dir is not None:
        return _load_idx(data_dir, split)
    if dataset == "digits":
        return _load_digits(split)
    import tensorflow_datasets as tfds

    builder, image_key, label_key = _open_tfds(dataset, split)
    # batch_size=-1 returns the whole split as one batch of tensors.
    examples = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    labels = None if label_key is None else examples[label_key].astype(np.int64)
    return examples[image_key], labels


def make_dataset(
    dataset: str = "mnist",
    data_dir: str | None = None,
    batch_size: int = 64,
    split: str = "train",
    shuffle: bool = True,
    seed: int | None = None,
    with_labels: bool = False,
) -> tf.data.Dataset:
    """Builds the training pipeline of a dataset: batches in [-1, 1].

    IDX files and digits are loaded into memory and shuffled as a whole; TFDS
    datasets are streamed and shuffled through a buffer of 10,000 images.

    A TFDS dataset that is not prepared yet is downloaded, after a quick
    check that the download host is reachable: offline, this fails at once
    with an `InputError` naming the offline sources, instead of retrying for
    minutes.

    Args:
        dataset: `"digits"` or a TFDS image dataset name. Ignored when
            `data_dir` is given.
        data_dir: folder of MNIST-format IDX files; takes precedence over
            `dataset`.
        batch_size: images per batch; at most the number of images.
        split: which split to read (see `load_arrays`).
        shuffle: whether to shuffle, anew at each epoch.
        seed: seed of the shuffle, for a reproducible order of epochs.
        with_labels: whether elements are `(images, labels)` rather than
            `images`.

    Returns:
        A `tf.data.Dataset` of float32 images `(batch_size, H, W, C)` in
        [-1, 1], or of `(images, labels)` with int32 labels `(batch_size,)`.

    Example:

    >>> dataset = make_dataset("digits", batch_size=32, seed=0)
    >>> image_shape(dataset)
    (8, 8, 1)
    """
    _check_batch_size(batch_size)
    if data_dir is None and dataset != "digits":
        return _tfds_dataset(dataset, batch_size, split, shuffle, seed, with_labels)
    images, labels = load_arrays(dataset, data_dir, split)
    if with_labels and labels is None:
        raise InputError(
            f"with_labels=True but {data_dir} has no labels file for split "
            f"{split!r}; expected {_idx_candidates(IDX_FILES[split][1])}."
        )
    return dataset_from_arrays(
        images,
        labels if with_labels else None,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
    )


# Batches prefetched for in-memory data: two fused executions of 32 steps.
IN_MEMORY_PREFETCH = 64


def dataset_from_arrays(
    images,
    labels=None,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Builds the training pipeline of in-memory images.

    Args:
        images: uint8 array in [0, 255] or float array in [-1, 1], of shape
            `(N, H, W, C)`, or `(N, H, W)` for grayscale.
        labels: optional integer array `(N,)`; elements are then
            `(images, labels)`.
        batch_size: images per batch; at most `N`.
        shuffle: whether to shuffle the whole dataset, anew at each epoch.
        seed: seed of the shuffle, for a reproducible order of epochs.

    Returns:
        A `tf.data.Dataset` of float32 images `(batch_size, H, W, C)` in
        [-1, 1], or of `(images, labels)` with int32 labels `(batch_size,)`.

    Example:

    >>> pixels = np.zeros((10, 8, 8), dtype="uint8")
    >>> dataset = dataset_from_arrays(pixels, batch_size=4)
    >>> [tuple(batch.shape) for batch in dataset]
    [(4, 8, 8, 1), (4, 8, 8, 1)]
    """
    _check_batch_size(batch_size)
    images = _checked_images(images)
    num_images = len(images)
    _check_batch_fits(batch_size, num_images)

    # The images stay one in-memory tensor (uint8 when given so: 4x less
    # memory); each batch is one gather of shuffled indices. Shuffling
    # indices instead of images keeps tf.data's per-element cost off the
    # step, which matters for small models at hundreds of steps per second.
    if labels is not None:
        labels = _checked_labels(labels, num_images).astype(np.int32)
    columns = [tf.constant(images)]
    if labels is not None:
        columns.append(tf.constant(labels))
    orders, passes = _epoch_orders(num_images, batch_size, shuffle, seed)
    num_batches = num_images // batch_size
    indices = orders.flat_map(tf.data.Dataset.from_tensor_slices)
    # flat_map hides the length; Keras needs it to end an epoch without an
    # extra call (and for its progress bar).
    indices = indices.apply(tf.data.experimental.assert_cardinality(num_batches))

    def gather(batch_indices):
        batch = [tf.gather(column, batch_indices) for column in columns]
        batch[0] = _to_model_range(batch[0]) if images.dtype == np.uint8 else batch[0]
        return batch[0] if len(batch) == 1 else tuple(batch)

    dataset = indices.map(gather, num_parallel_calls=2).prefetch(IN_MEMORY_PREFETCH)
    # tf.data's autotuner, left on, periodically stalls the consumer for 2.5 to
    # 10 ms per step against a fast XLA step (seen on a 2-core CPU: windows of
    # exactly 5.12 / 10.24 / 20.47 s); a fixed prefetch of one fused execution
    # and more keeps the step fed without it.
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.with_options(options)
    setattr(dataset, _SOURCE_ATTRIBUTE, InMemorySource(images, labels, orders, passes))
    return dataset


_SOURCE_ATTRIBUTE = "_keras_gan_in_memory_source"


class InMemorySource:
    """What a `dataset_from_arrays` pipeline is made of, for trainers that
    keep the images on their device and gather each batch there (the JAX and
    PyTorch trainers do; see `keras_gan.backend.feed`).

    `next_order()` draws the indices of the pipeline's next pass over the
    data from the pipeline's own random state, so a trainer reading the
    source sees the batches, in the order, that iterating the dataset would
    have given.
    """

    def __init__(self, images, labels, orders, passes):
        self.images = images  # (N, H, W, C): uint8 in [0, 255] or float32
        self.labels = labels  # (N,) int32, or None
        self._orders = orders
        self._passes = passes
        self.num_batches, self.batch_size = (int(n) for n in orders.element_spec.shape)

    def next_order(self) -> np.ndarray:
        """The next pass's `(num_batches, batch_size)` int32 image indices."""
        return next(iter(self._orders)).numpy().astype(np.int32)

    @property
    def passes(self) -> int:
        """Passes drawn so far (by iterating the pipeline or `next_order`)."""
        return int(self._passes.numpy())

    def seek(self, pass_index: int) -> None:
        """Makes the next pass the pipeline's `pass_index`-th (from 0): a run
        resumed at epoch `e` seeks `e` and gets the order it would have had."""
        self._passes.assign(int(pass_index))


def in_memory_source(dataset) -> InMemorySource | None:
    """The arrays behind `dataset` if `dataset_from_arrays` (or `make_dataset`
    on in-memory data) returned it unchanged, else None."""
    return getattr(dataset, _SOURCE_ATTRIBUTE, None)


def _epoch_orders(num_images, batch_size, shuffle, seed):
    """One element per pass over the data: that pass's `(num_batches,
    batch_size)` image indices, the last partial batch dropped (a fixed batch
    shape lets XLA compile the train step once), and the pass counter.

    Shuffling draws one permutation per pass, a single op, rather than passing
    every index through `Dataset.shuffle`, whose per-element cost (~0.9 us)
    competed with a fast XLA step for the CPU. Pass `p` (every epoch, and
    every `repeat()`, is a pass) is shuffled by the stateless seed `(seed, p)`,
    and the counter `p` is a variable: a resumed run sets it to its epoch and
    sees the order the interrupted run would have seen (`InMemorySource.seek`).
    """
    num_batches = num_images // batch_size
    used = num_batches * batch_size
    passes = tf.Variable(0, dtype=tf.int64, trainable=False, name="passes")
    if not shuffle:
        order = tf.reshape(tf.range(used, dtype=tf.int64), (num_batches, batch_size))

        def fixed(_):
            with tf.control_dependencies([passes.assign_add(1)]):
                return tf.identity(order)

        return tf.data.Dataset.from_tensors(0).map(fixed), passes
    if seed is None:  # an order of its own, still addressable by pass
        seed = int(np.random.SeedSequence().generate_state(1, np.uint32)[0])
    base = tf.constant(int(seed) % 2**63, dtype=tf.int64)

    def permutation(_):
        pass_index = passes.assign_add(1) - 1
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_images, dtype=tf.int64), seed=tf.stack([base, pass_index])
        )
        return tf.reshape(order[:used], (num_batches, batch_size))

    return tf.data.Dataset.from_tensors(0).map(permutation), passes


def image_shape(dataset: tf.data.Dataset) -> tuple[int, int, int]:
    """Returns the `(H, W, C)` of the images of a batched dataset.

    Args:
        dataset: a dataset from `make_dataset` or `dataset_from_arrays`,
            whose elements are `images` or `(images, labels)`.

    Returns:
        The tuple `(height, width, channels)`.

    Example:

    >>> pixels = np.zeros((4, 8, 8, 1), dtype="uint8")
    >>> image_shape(dataset_from_arrays(pixels, batch_size=2))
    (8, 8, 1)
    """
    spec = dataset.element_spec
    if isinstance(spec, tuple):
        spec = spec[0]
    shape = tuple(spec.shape)
    if len(shape) != 4 or None in shape[1:]:
        raise InputError(
            f"image_shape needs batches of images (batch, H, W, C) of fixed "
            f"size; received element shape {shape}."
        )
    return tuple(int(size) for size in shape[1:])


def _batched(dataset, buffer_size, batch_size, shuffle, seed):
    if shuffle:
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    # A fixed batch shape lets XLA compile the train step once.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise InputError(
            f"batch size must be an integer; received {batch_size!r} "
            f"({type(batch_size).__name__})."
        )
    if batch_size <= 0:
        raise InputError(
            f"batch size must be positive; received {batch_size}; "
            "expected an integer >= 1."
        )


def _check_batch_fits(batch_size, num_images):
    if num_images == 0:
        raise InputError("the dataset is empty (0 images); expected at least one.")
    if batch_size > num_images:
        raise InputError(
            f"batch size {batch_size} is larger than the dataset "
            f"({num_images} images); expected at most {num_images}."
        )


def _checked_images(images):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4:
        raise InputError(
            f"images must have shape (N, H, W, C) or (N, H, W); received "
            f"shape {images.shape}."
        )
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(
            f"images must be uint8 in [0, 255] or float in [-1, 1]; received "
            f"dtype {images.dtype}."
        )
    if images.size == 0:
        return images.astype(np.float32)
    if not np.isfinite(images).all():
        raise InputError(
            f"images contain NaN or infinite values ({np.sum(~np.isfinite(images))}"
            " of them); expected finite floats in [-1, 1]."
        )
    low, high = float(images.min()), float(images.max())
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise InputError(
            f"float images must lie in [-1, 1]; received values in "
            f"[{low:g}, {high:g}]; expected uint8 in [0, 255] or floats "
            "scaled to [-1, 1]."
        )
    # float32 images already in range are used as they are: no 4-byte-per-
    # pixel copy of the whole dataset.
    images = images.astype(np.float32, copy=False)
    if low < -1.0 or high > 1.0:
        images = np.clip(images, -1.0, 1.0)
    return images


def _checked_labels(labels, num_images):
    labels = np.asarray(labels)
    if labels.shape != (num_images,):
        raise InputError(
            f"labels must have shape ({num_images},), one per image; received "
            f"shape {labels.shape}."
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels must be integers; received dtype {labels.dtype}.")
    return labels.astype(np.int32)


def _load_digits(split):
    from sklearn.datasets import load_digits

    if split != "train":
        raise InputError(
            f"unknown split {split!r} for the digits dataset; expected 'train' "
            "(digits has a single split of 1797 images)."
        )
    digits = load_digits()
    # (1797, 8, 8) in 0..16 -> (1797, 8, 8, 1) in 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    return images[..., np.newaxis], digits.target.astype(np.int64)


def _load_idx(data_dir, split):
    if split not in IDX_FILES:
        raise InputError(
            f"unknown split {split!r} for IDX files; expected one of "
            f"{sorted(IDX_FILES)}."
        )
    if not os.path.isdir(data_dir):
        raise InputError(
            f"data directory {data_dir} does not exist or is not a folder; "
            "expected a folder of MNIST-format IDX files."
        )
    images_name, labels_name = IDX_FILES[split]
    images_path = _find_idx(data_dir, images_name)
    if images_path is None:
        raise InputError(
            f"no images file for split {split!r} in {data_dir}; expected "
            f"{_idx_candidates(images_name)}."
        )
    images = _read_idx(images_path, IDX_IMAGES_MAGIC)[..., np.newaxis]
    labels_path = _find_idx(data_dir, labels_name)
    if labels_path is None:
        return images, None
    labels = _read_idx(labels_path, IDX_LABELS_MAGIC).astype(np.int64)
    if len(labels) != len(images):
        raise InputError(
            f"{labels_path} has {len(labels)} labels but {images_path} has "
            f"{len(images)} images; expected one label per image."
        )
    return images, labels


def _idx_candidates(name):
    return f"{name} or {name}.gz"


def _find_idx(data_dir, name):
    # Raw first: it skips decompression and is what `gunzip` leaves behind.
    for candidate in (name, name + ".gz"):
        path = os.path.join(data_dir, candidate)
        if os.path.isfile(path):
            return path
    return None


def _read_idx(path, magic):
    """Parses an IDX file of unsigned bytes into an array of its shape.

    Format (big endian): magic `0x0000 08 <rank>`, `rank` uint32 sizes, then
    the bytes of the array; http://yann.lecun.com/exdb/mnist/. The header is
    read first and at most the bytes it announces (plus one, to notice
    trailing data) after it: a gzip stream that inflates to more than its
    header says costs no more memory than the array, and a header that
    announces more than the free memory is refused before reading on.
    """
    expected = f"expected an MNIST-format IDX file with magic number 0x{magic:08x}"
    rank = magic & 0xFF
    header_size = 4 + 4 * rank
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            head = file.read(header_size)
            if len(head) < header_size:
                raise InputError(
                    f"{path} is {len(head)} bytes, shorter than the IDX header "
                    f"({header_size} bytes); {expected}."
                )
            header = np.frombuffer(head, dtype=">u4", count=1 + rank)
            if int(header[0]) != magic:
                raise InputError(
                    f"{path} has magic number 0x{int(header[0]):08x}; {expected}."
                )
            shape = tuple(int(size) for size in header[1:])
            if min(shape) <= 0:
                raise InputError(
                    f"{path} has sizes {shape}; expected sizes above zero."
                )
            # math.prod: exact for any header, where np.prod could overflow int64.
            length = math.prod(shape)
            if length > _free_memory():
                raise InputError(
                    f"{path}'s header announces {shape}, {length} bytes, more than "
                    f"the {_free_memory()} bytes of free memory; expected a dataset "
                    f"that fits in memory."
                )
            body = file.read(length + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise InputError(
            f"{path} is a corrupt or truncated gzip file ({error}); "
            f"{expected}, gzipped."
        ) from None
    except OSError as error:
        raise InputError(
            f"cannot read {path} ({error.strerror}); {expected}."
        ) from None
    if len(body) != length:
        found = "more" if len(body) > length else f"{header_size + len(body)}"
        raise InputError(
            f"{path} is {found} bytes but its header {shape} needs "
            f"{header_size + length}; expected a complete, untruncated IDX file."
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def _free_memory() -> int:
    """Bytes of memory free now (Linux and macOS), for refusing huge inputs."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):  # not reported here: no limit
        return 2**63


def _can_reach(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """Returns whether a TCP connection to `host` (or its proxy) opens.

    Offline, TFDS retries its downloads for minutes before failing; this
    check takes milliseconds when DNS fails and at most `timeout` seconds
    when packets are dropped.
    """
    # Behind an HTTPS proxy only the proxy is reachable, and it is what the
    # downloader will connect to.
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parsed = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = parsed.hostname, parsed.port or 80
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def num_classes(dataset: str = "mnist", data_dir: str | None = None) -> int:
    """Returns the number of classes of a labelled dataset's training split.

    For IDX files and digits, one more than the largest label; for TFDS, the
    label feature's `num_classes`.
    """
    if data_dir is None and dataset != "digits":
        builder, _, label_key = _open_tfds(dataset, "train", with_labels=True)
        return int(builder.info.features[label_key].num_classes)
    _, labels = load_arrays(dataset, data_dir, "train")
    if labels is None:
        raise InputError(
            f"{data_dir} has no labels file for the training split; a "
            f"conditional model needs {_idx_candidates(IDX_FILES['train'][1])}."
        )
    return int(labels.max()) + 1


def _open_tfds(name, split, with_labels=False):
    """Returns a prepared TFDS builder and its image and label feature names.

    The features are checked before anything is downloaded: they are known
    from the dataset's code.
    """
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name)
    except tfds.core.DatasetNotFoundError:
        raise InputError(
            f"unknown dataset {name!r}: TFDS has no dataset of that name; "
            f"expected a TFDS image dataset such as 'mnist', or {OFFLINE_SOURCES}."
        ) from None
    image_key, label_key = _feature_keys(builder.info, name)
    if with_labels and label_key is None:
        raise InputError(
            f"with_labels=True but TFDS dataset {name!r} has no integer label "
            "feature; expected a labelled dataset such as 'mnist'."
        )
    _prepare(builder, name)
    _check_split(builder, name, split)
    return builder, image_key, label_key


def _prepare(builder, name):
    if not builder.is_prepared():
        if not _can_reach(DOWNLOAD_HOST):
            raise InputError(
                f"cannot download TFDS dataset {name!r}: it is not prepared in "
                f"{builder.data_dir} and {DOWNLOAD_HOST} is unreachable "
                f"(offline?); expected an offline source: {OFFLINE_SOURCES}."
            )
        builder.download_and_prepare()


def _feature_keys(info, name):
    """Returns the image and label feature names (label `None` if absent)."""
    import tensorflow_datasets as tfds

    features = info.features
    keys = info.supervised_keys
    if (
        isinstance(keys, tuple)
        and len(keys) == 2
        and all(isinstance(key, str) for key in keys)
    ):
        image_key, label_key = keys
    else:
        image_key, label_key = "image", "label"
    # FeaturesDict has `in` and `[]` but no `.get`.
    if image_key not in features or not isinstance(
        features[image_key], tfds.features.Image
    ):
        raise InputError(
            f"TFDS dataset {name!r} has no image feature {image_key!r}; "
            "expected an image dataset such as 'mnist' or 'cifar10'."
        )
    image = features[image_key]
    shape = tuple(image.shape)
    if len(shape) != 3 or None in shape or tf.as_dtype(image.tf_dtype) != tf.uint8:
        raise InputError(
            f"TFDS dataset {name!r} has images of shape {shape} and dtype "
            f"{tf.as_dtype(image.tf_dtype).name}; expected a fixed shape "
            "(H, W, C) of uint8."
        )
    if label_key not in features:
        return image_key, None
    label = features[label_key]
    if tuple(label.shape) != () or not tf.as_dtype(label.tf_dtype).is_integer:
        return image_key, None
    return image_key, label_key


def _check_split(builder, name, split):
    splits = builder.info.splits
    if not splits:
        # Only metadata that was never generated has no splits, as under
        # tfds.testing.mock_data; `as_dataset` then accepts any split.
        return
    try:
        splits[split]  # Also parses slices such as "train[:10%]".
    except (KeyError, ValueError):
        raise InputError(
            f"unknown split {split!r} for TFDS dataset {name!r}; expected one "
            f"of {sorted(splits)} or a slice such as 'train[:10%]'."
        ) from None


def _tfds_dataset(name, batch_size, split, shuffle, seed, with_labels):
    import tensorflow_datasets as tfds

    builder, image_key, label_key = _open_tfds(name, split, with_labels)
    examples = builder.as_dataset(
        split=split,
        shuffle_files=shuffle,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    # TFDS knows the size of every split, mocked ones included.
    _check_batch_fits(batch_size, int(examples.cardinality()))

    def convert(example):
        images = _to_model_range(example[image_key])
        if not with_labels:
            return images
        return images, tf.cast(example[label_key], tf.int32)

    dataset = examples.map(convert, num_parallel_calls=tf.data.AUTOTUNE).cache()
    buffer = min(TFDS_SHUFFLE_BUFFER, int(examples.cardinality()))
    return _batched(dataset, buffer, batch_size, shuffle, seed)


def _to_model_range(images):
    # `keras_gan.images.to_model_range` in TensorFlow ops: tf.data maps run
    # as TensorFlow graphs whatever the Keras backend.
    return tf.cast(images, tf.float32) / 127.5 - 1.0
