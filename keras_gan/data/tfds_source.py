"""TFDS image datasets: prepared (downloaded once) and streamed."""

import socket
import urllib.parse
import urllib.request

import numpy as np
import tensorflow as tf

from keras_gan.data.pipeline import batched
from keras_gan.data.pipeline import check_batch_fits
from keras_gan.data.pipeline import to_model_range
from keras_gan.errors import InputError

# TFDS downloads prepared datasets from its GCS mirror and MNIST from
# storage.googleapis.com/cvdf-datasets: both on this host.
DOWNLOAD_HOST = "storage.googleapis.com"


OFFLINE_SOURCES = (
    'dataset="digits" (--dataset digits), or data_dir= (--data-dir) pointing '
    "at MNIST-format IDX files such as /usr/share/datasets/fashion-mnist"
)


# Streamed TFDS datasets may not fit a whole-dataset buffer.
TFDS_SHUFFLE_BUFFER = 10_000


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


def open_dataset(name, split, with_labels=False):
    """Prepares `name` (downloading it if need be) and checks `split` (and,
    before downloading, that it has labels if `with_labels`).

    Returns:
        `(builder, image_key, label_key)`; `label_key` is `None` without an
        integer label feature.
    """
    return _open_tfds(name, split, with_labels)


def class_names(opened):
    """The label feature's class names, or `None`."""
    builder, _, label_key = opened
    if label_key is None:
        return None
    names = getattr(builder.info.features[label_key], "names", None)
    return list(names) if names else None


def num_classes(opened):
    """The label feature's number of classes, or `None` without labels."""
    builder, _, label_key = opened
    if label_key is None:
        return None
    return int(builder.info.features[label_key].num_classes)


def load_arrays(opened, split):
    """The whole split in memory: uint8 images and int64 labels (or None)."""
    import tensorflow_datasets as tfds

    builder, image_key, label_key = opened
    # batch_size=-1 returns the whole split as one batch of tensors.
    examples = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
    labels = None if label_key is None else examples[label_key].astype(np.int64)
    return examples[image_key], labels


def tfds_dataset(opened, batch_size, split, shuffle, seed, with_labels, convert=None):
    """The streamed pipeline of an opened TFDS split (`open_dataset`);
    `convert` (one uint8 image to another) applies the shape rules, once per
    image (before the cache)."""
    import tensorflow_datasets as tfds

    builder, image_key, label_key = opened
    examples = builder.as_dataset(
        split=split,
        shuffle_files=shuffle,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    # TFDS knows the size of every split, mocked ones included.
    check_batch_fits(batch_size, int(examples.cardinality()))

    def prepare(example):
        image = example[image_key]
        if convert is not None:
            image = convert(image)
        if not with_labels:
            return image
        return image, tf.cast(example[label_key], tf.int32)

    def to_float(*element):
        images = to_model_range(element[0])
        return images if len(element) == 1 else (images, element[1])

    # Converted images are cached as uint8 (4x less memory than floats).
    dataset = examples.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).cache()
    buffer = min(TFDS_SHUFFLE_BUFFER, int(examples.cardinality()))
    dataset = batched(dataset, buffer, batch_size, shuffle, seed)
    return dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
