"""`fit` on in-memory data kept on the device: one copy, a gather per step.

A `dataset_from_arrays` pipeline, passed to `fit` as it was returned, is made
of arrays and an order per pass (`keras_gan.data.InMemorySource`). A trainer
that mixes in `DeviceFeed` puts those arrays on its device once and gathers
each batch there (the JAX trainer inside the compiled step, as a lean
hand-written JAX loop does), instead of pulling every batch through tf.data
and copying it to the device. `fit` iterates index batches instead, so steps,
epochs, callbacks and the order of batches are the pipeline's: the results
are the same to the bit (tests/test_device_feed.py).
"""

import inspect
import weakref

import keras
import numpy as np
from keras import ops

from keras_gan.data import in_memory_source

# In-memory datasets up to this size are copied to the device once and
# gathered there; larger ones stream through tf.data.
DEVICE_DATA_MAX_BYTES = 2 * 1024**3

# uint8 -> [-1, 1] as a table, the pipeline's values to the bit (XLA on CPU
# computes `x / 127.5 - 1` through a reciprocal, one ulp off for most x).
MODEL_RANGE = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1)


class DeviceFeed:
    """`fit` fed from the device (mixed into a backend trainer).

    The trainer provides `_feed_applies()` (whether its loop can take index
    batches now) and, while `self._feed` is set (during such a `fit` only),
    turns each index batch into data with `gather(self._feed.arrays, ...)`.
    """

    _feed = None  # the `IndexBatches` of the `fit` running now, if any

    def fit(self, *args, **kwargs):
        """Keras's `fit`; a `dataset_from_arrays` pipeline is read from the
        device instead (see `keras_gan.backend.feed`)."""
        # Keras's own signature: the overrides between here and Keras take
        # (x=None, *args, **kwargs).
        bound = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs)
        arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
        feed = self._device_feed(arguments)
        if feed is None:
            return super().fit(*args, **kwargs)
        self._feed = feed
        try:
            return super().fit(**{**arguments, "x": feed, "shuffle": False})
        finally:
            self._feed = None

    def _device_feed(self, arguments):
        """Index batches for `fit` when its data can live on the device."""
        source = in_memory_source(arguments.get("x"))
        if (
            source is None
            # A streamed file goes to the device as it is only when uint8
            # (float files may still need scaling from [0, 1]).
            or (source.streamed and source.images.dtype != np.uint8)
            or arguments.get("y") is not None
            or arguments.get("validation_split")
            or not self._feed_applies()
            or source.images.nbytes > DEVICE_DATA_MAX_BYTES
        ):
            return None
        return IndexBatches(source, self._device_arrays(source))

    def _device_arrays(self, source):
        if source not in _ON_DEVICE:
            labels = () if source.labels is None else (source.labels,)
            arrays = (source.images, *labels)
            _ON_DEVICE[source] = tuple(ops.convert_to_tensor(a) for a in arrays)
        return _ON_DEVICE[source]


class IndexBatches(keras.utils.PyDataset):
    """Passes over an `InMemorySource` as `(batch_size,)` index batches;
    `arrays` holds its data on the device.

    Each pass draws its order when its first batch is read, as each new
    iterator over the tf.data pipeline does; Keras's epoch loop, shared by
    both, decides when a pass starts (every epoch, or when one runs out
    under `steps_per_epoch`).
    """

    def __init__(self, source, arrays):
        super().__init__()
        self._source = source
        self._order = None
        self.arrays = arrays

    @property
    def num_batches(self):
        return self._source.num_batches

    def __len__(self):
        return self._source.num_batches

    def __getitem__(self, index):
        if index == 0:
            self._order = self._source.next_order()
        return self._order[index]


# source -> its arrays on the device, for as long as the source lives: a
# dataset trained on in several `fit` calls is copied once.
_ON_DEVICE = weakref.WeakKeyDictionary()


def gather(arrays, indices):
    """What the tf.data pipeline computes from `indices`: a batch in [-1, 1]
    (and its labels), from `arrays` on the device; traceable by `jax.jit`."""
    images, *labels = (ops.take(array, indices, axis=0) for array in arrays)
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        images = ops.take(MODEL_RANGE, ops.cast(images, "int32"))
    return images if not labels else (images, *labels)
