"""The pipeline of arrays of images: batches of shuffled indices, gathered
from memory or read from a memory-mapped file.

Every batch has the same shape (the remainder is dropped) so that an XLA
compiled `train_step` is traced once.
"""

import atexit
import os
import time

import numpy as np
import tensorflow as tf

from keras_gan.errors import InputError

# Values this close outside [-1, 1] are float rounding, not another range.
RANGE_TOLERANCE = 1e-6


# Batches prefetched for in-memory data: two fused executions of 32 steps.
IN_MEMORY_PREFETCH = 64


def dataset_from_arrays(
    images,
    labels=None,
    batch_size: int = 64,
    shuffle: bool = True,
    seed: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    in_memory: bool | None = None,
) -> tf.data.Dataset:
    """Builds the training pipeline of arrays of images.

    The images are kept in memory, or, for a memory-mapped array (an
    `np.memmap`, or `np.load(path, mmap_mode="r")`, as `make_dataset` gives
    for image folders and `.npy` files) larger than `IN_MEMORY_MAX_BYTES`,
    read from its file batch by batch (`os.pread`: the file's pages stay in
    the page cache, not in this process's memory). Both give the same
    batches in the same order.

    Args:
        images: uint8 array in [0, 255] or float array in `value_range`, of
            shape `(N, H, W, C)`, or `(N, H, W)` for grayscale.
        labels: optional integer array `(N,)`; elements are then
            `(images, labels)`.
        batch_size: images per batch; at most `N`.
        shuffle: whether to shuffle the whole dataset, anew at each epoch.
        seed: seed of the shuffle, for a reproducible order of epochs.
        value_range: the range of float images: `(-1, 1)` or `(0, 1)`.
        in_memory: `True` to copy a memory-mapped array into memory, `False`
            to stream it from its file, `None` to stream it only when it is
            larger than `IN_MEMORY_MAX_BYTES`.

    Returns:
        A `tf.data.Dataset` of float32 images `(batch_size, H, W, C)` in
        [-1, 1], or of `(images, labels)` with int32 labels `(batch_size,)`.

    Example:

    >>> pixels = np.zeros((10, 8, 8), dtype="uint8")
    >>> dataset = dataset_from_arrays(pixels, batch_size=4)
    >>> [tuple(batch.shape) for batch in dataset]
    [(4, 8, 8, 1), (4, 8, 8, 1)]
    """
    check_batch_size(batch_size)
    images = _as_images(images)
    scale, offset = _scaling(images, value_range)
    num_images = len(images)
    check_batch_fits(batch_size, num_images)
    if labels is not None:
        labels = _checked_labels(labels, num_images)
    path = _backing_file(images)
    if in_memory is None:
        in_memory = path is None or images.nbytes <= IN_MEMORY_MAX_BYTES
    elif not in_memory and path is None:
        raise InputError(
            "in_memory=False needs a memory-mapped array (np.load(path, "
            "mmap_mode='r')); received an array in memory."
        )
    if in_memory:
        images = np.asarray(images)
        if images.dtype != np.uint8 and (scale, offset) != (1.0, 0.0):
            images = images * np.float32(scale) + np.float32(offset)
            scale, offset = 1.0, 0.0
        if images.dtype != np.uint8:
            # float32 images already in range are used as they are: no copy.
            images = images.astype(np.float32, copy=False)
            if images.size and (images.min() < -1.0 or images.max() > 1.0):
                images = np.clip(images, -1.0, 1.0)
    orders, passes = _epoch_orders(num_images, batch_size, shuffle, seed)
    num_batches = num_images // batch_size
    indices = orders.flat_map(tf.data.Dataset.from_tensor_slices)
    # flat_map hides the length; Keras needs it to end an epoch without an
    # extra call (and for its progress bar).
    indices = indices.apply(tf.data.experimental.assert_cardinality(num_batches))
    labels_tensor = None if labels is None else tf.constant(labels)
    if in_memory:
        # The images stay one in-memory tensor (uint8 when given so: 4x less
        # memory); each batch is one gather of shuffled indices. Shuffling
        # indices instead of images keeps tf.data's per-element cost off the
        # step, which matters for small models at hundreds of steps per second.
        images_tensor = tf.constant(images)

        def read(batch_indices):
            return tf.gather(images_tensor, batch_indices)

    else:
        reader = _RowReader(path, images)

        def read(batch_indices):
            batch = tf.numpy_function(
                reader.read, [batch_indices], tf.as_dtype(images.dtype)
            )
            return tf.ensure_shape(batch, (batch_size, *images.shape[1:]))

    def gather(batch_indices):
        batch = read(batch_indices)
        if images.dtype == np.uint8:
            batch = to_model_range(batch)
        else:  # values within RANGE_TOLERANCE outside the range are clipped
            batch = tf.cast(batch, tf.float32) * scale + offset
            batch = tf.clip_by_value(batch, -1.0, 1.0)
        if labels_tensor is None:
            return batch
        return batch, tf.gather(labels_tensor, batch_indices)

    parallel = 2 if in_memory else STREAM_READERS
    dataset = indices.map(gather, num_parallel_calls=parallel)
    dataset = dataset.prefetch(IN_MEMORY_PREFETCH if in_memory else STREAM_PREFETCH)
    # tf.data's autotuner, left on, periodically stalls the consumer for 2.5 to
    # 10 ms per step against a fast XLA step (seen on a 2-core CPU: windows of
    # exactly 5.12 / 10.24 / 20.47 s); a fixed prefetch of one fused execution
    # and more keeps the step fed without it.
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = dataset.with_options(options)
    source = InMemorySource(images, labels, orders, passes, streamed=not in_memory)
    setattr(dataset, _SOURCE_ATTRIBUTE, source)
    return dataset


# A memory-mapped array larger than this is streamed from its file. Copying
# one into a tf.constant holds two to three times its size for a while (1.2
# GB of uint8 peaked at 5.4 GB, bench/own_data.py), and streaming feeds a
# step at tens of thousands of images per second.
IN_MEMORY_MAX_BYTES = 256 * 1024**2

# Batches read ahead, and read at once, from a streamed file.
STREAM_PREFETCH = 8
STREAM_READERS = 4


class _RowReader:
    """Reads rows of a `.npy` file (or any raw C-order array at an offset)
    with `os.pread`, sorted by position; a `tf.numpy_function`.

    At interpreter exit, readers stop reading (they return zeros at once):
    a tf.data iterator still alive then has threads calling into Python,
    which cannot re-enter it once finalization begins, while the iterator's
    destructor waits for them; filling its buffers before that lets it end.
    """

    exiting = False
    used = False  # whether any reader has read in this process

    def __init__(self, path, images):
        self.path = path
        self.offset = int(images.offset)
        self.row_shape = images.shape[1:]
        self.dtype = images.dtype
        self.row_bytes = int(np.prod(self.row_shape)) * images.dtype.itemsize
        self.handle = None

    def read(self, indices):
        if _RowReader.exiting:
            return np.zeros((len(indices), *self.row_shape), self.dtype)
        if self.handle is None:  # opened lazily: the pipeline may be copied
            _RowReader.used = True
            self.handle = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        batch = np.empty((len(indices), *self.row_shape), self.dtype)
        flat = memoryview(batch.reshape(-1).view(np.uint8))
        for slot in np.argsort(indices, kind="stable"):
            position = self.offset + int(indices[slot]) * self.row_bytes
            view = flat[slot * self.row_bytes : (slot + 1) * self.row_bytes]
            while len(view):  # a short read is legal, if rare on a file
                count = os.preadv(self.handle, [view], position)
                if count == 0:
                    raise OSError(
                        f"{self.path} ended at byte {position:,}; expected "
                        f"{self.row_bytes:,} more bytes of row {indices[slot]}"
                    )
                view, position = view[count:], position + count
        return batch

    def __del__(self):
        if self.handle is not None:
            os.close(self.handle)


@atexit.register
def _stop_readers():
    _RowReader.exiting = True
    if _RowReader.used:
        time.sleep(0.05)  # prefetching threads fill their buffers and wait


def _backing_file(images):
    """The file a memory-mapped array reads, when it is a whole C-order
    array of that file (then `images.offset` is where its data begin)."""
    if not isinstance(images, np.memmap) or images.filename is None:
        return None
    if not images.flags.c_contiguous or not hasattr(os, "preadv"):
        return None
    try:
        whole = np.load(images.filename, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if (whole.shape, whole.dtype, whole.offset) != (
        images.shape,
        images.dtype,
        images.offset,
    ):
        return None
    return images.filename


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

    def __init__(self, images, labels, orders, passes, streamed=False):
        self.images = images  # (N, H, W, C): uint8 in [0, 255] or float32
        # True when the pipeline reads `images` from their file batch by
        # batch: they are too large to copy to a device.
        self.streamed = streamed
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


def batched(dataset, buffer_size, batch_size, shuffle, seed):
    if shuffle:
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)
    # A fixed batch shape lets XLA compile the train step once.
    dataset = dataset.batch(batch_size, drop_remainder=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def check_batch_size(batch_size):
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


def check_batch_fits(batch_size, num_images):
    if num_images == 0:
        raise InputError("the dataset is empty (0 images); expected at least one.")
    if batch_size > num_images:
        raise InputError(
            f"batch size {batch_size} is larger than the dataset "
            f"({num_images} images); expected at most {num_images}."
        )


def _as_images(images):
    """`images` as a 4-D uint8 or float array, checked without a copy (a
    memory-mapped array stays one)."""
    if not isinstance(images, np.ndarray):
        images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]  # (N, H, W) -> (N, H, W, 1)
    if images.ndim != 4:
        raise InputError(
            f"images must have shape (N, H, W, C) or (N, H, W); received "
            f"shape {images.shape}."
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise InputError(
            f"images must be uint8 in [0, 255] or float in [-1, 1] or [0, 1]; "
            f"received dtype {images.dtype}."
        )
    return images


def chunks(images, nbytes=64 << 20):
    """`images` as in-memory slices of about `nbytes` each: a memory-mapped
    array is scanned without being read whole."""
    rows = max(1, nbytes // max(1, images[0].nbytes))
    for start in range(0, len(images), rows):
        yield np.asarray(images[start : start + rows])


def _scaling(images, value_range):
    """`(scale, offset)` taking float images from `value_range` to [-1, 1],
    after checking (in chunks: a memory-mapped file is not read whole) that
    they are finite and inside it."""
    ranges = {(-1.0, 1.0): (1.0, 0.0), (0.0, 1.0): (2.0, -1.0)}
    try:
        scaling = ranges[tuple(float(v) for v in value_range)]
    except (KeyError, TypeError, ValueError):
        raise InputError(
            f"value_range must be (-1, 1) or (0, 1); received {value_range!r}."
        ) from None
    if images.dtype == np.uint8 or images.size == 0:
        return scaling
    low, high, bad = np.inf, -np.inf, 0
    for chunk in chunks(images):
        finite = np.isfinite(chunk)
        bad += int(chunk.size - np.count_nonzero(finite))
        if bad == 0:
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    first, last = value_range
    if bad:
        raise InputError(
            f"images contain NaN or infinite values ({bad} of them); expected "
            f"finite floats in [{first:g}, {last:g}]."
        )
    if low < first - RANGE_TOLERANCE or high > last + RANGE_TOLERANCE:
        raise InputError(
            f"float images must lie in [{first:g}, {last:g}]; received values in "
            f"[{low:g}, {high:g}]; expected floats scaled to [{first:g}, "
            f"{last:g}] (uint8 images in [0, 255] go through "
            f"keras_gan.data.dataset_from_arrays, which scales them)."
        )
    return scaling


def check_model_range(images) -> None:
    """Raises `InputError` unless float `images` are finite and in [-1, 1]
    (a memory-mapped array is scanned in chunks)."""
    _scaling(images, (-1.0, 1.0))


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


def to_model_range(images):
    # `keras_gan.images.to_model_range` in TensorFlow ops: tf.data maps run
    # as TensorFlow graphs whatever the Keras backend.
    return tf.cast(images, tf.float32) / 127.5 - 1.0
