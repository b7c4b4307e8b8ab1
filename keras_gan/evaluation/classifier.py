"""The domain classifier whose features and class predictions score samples.

ImageNet Inception features fit 28x28 grayscale images poorly and cannot be
downloaded offline, so, as is the field's practice for MNIST-like data, the
Frechet distance and its kin are computed in the penultimate features of a
small CNN trained on the dataset's own real training split. It is trained the
first time it is needed and cached under `~/.cache/keras_gan/classifiers/`
(`KERAS_GAN_CACHE` moves it), keyed by the dataset; the SHA-256 of its weights
is reported with every score, since scores are comparable only under the
same classifier.

A dataset without labels falls back to the same CNN with fixed random weights
(seed 0): random convolutional features are a weaker but documented and
reproducible feature space, and class-based numbers are then unavailable.
"""

import dataclasses
import functools
import hashlib
import json
import os
import sys

import keras
import numpy as np

from keras_gan import data
from keras_gan import files
from keras_gan import images as pixel_ranges
from keras_gan.errors import InputError

FEATURE_DIM = 128


def default_cache_dir() -> str:
    """Where classifiers are cached: `$KERAS_GAN_CACHE/classifiers` or
    `~/.cache/keras_gan/classifiers`."""
    root = os.environ.get("KERAS_GAN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_gan"
    )
    return os.path.join(root, "classifiers")


def classifier_network(image_shape, num_classes: int) -> keras.Model:
    """A small CNN: two conv blocks, a 128-unit feature layer, class logits.

    Args:
        image_shape: `(height, width, channels)`, each side at least 4.
        num_classes: number of classes.

    Returns:
        A `keras.Model` from images in [-1, 1] to `[features (batch, 128),
        logits (batch, num_classes)]`.
    """
    if len(image_shape) != 3 or min(image_shape[:2]) < 4:
        raise InputError(
            f"The domain classifier needs images of at least 4x4 pixels "
            f"(H, W, C); received {tuple(image_shape)}."
        )
    inputs = keras.Input(tuple(image_shape), name="images")
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)  # (H/2, W/2, 32)
    x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)  # (H/4, W/4, 64)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(
        keras.layers.Dropout(0.3)(features)
    )
    return keras.Model(inputs, [features, logits], name="domain_classifier")


def weights_hash(model: keras.Model) -> str:
    """SHA-256 of a model's weights, in order: names one exact classifier."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


@dataclasses.dataclass
class DomainClassifier:
    """A trained (or random-feature) classifier and what is known about it.

    Attributes:
        model: the `keras.Model` of `classifier_network`.
        dataset_key: which dataset it was trained on.
        accuracy: held-out accuracy, or `None` for random features.
        weights_sha256: `weights_hash(model)`.
        num_classes: number of classes (`None` for random features).
    """

    model: keras.Model
    dataset_key: str
    accuracy: float | None
    weights_sha256: str
    num_classes: int | None

    def predict(self, images, batch_size: int = 500):
        """Returns `(features (n, 128), probabilities (n, classes) or None)`.

        Args:
            images: float array `(n, H, W, C)` in [-1, 1].
            batch_size: images per forward pass.
        """
        features, logits = [], []
        for start in range(0, len(images), batch_size):
            feature, logit = self.model(images[start : start + batch_size])
            features.append(keras.ops.convert_to_numpy(feature))
            logits.append(keras.ops.convert_to_numpy(logit))
        features = np.concatenate(features).astype(np.float32)
        if self.num_classes is None:
            return features, None
        logits = np.concatenate(logits).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return features, probabilities / probabilities.sum(axis=1, keepdims=True)


def _held_out(dataset, data_dir, images, labels, data_options):
    # The dataset's test split when it has one, else the last fifth of a fixed
    # permutation of the training images (digits and folders have one split).
    try:
        test_images, test_labels = data.load_arrays(
            dataset, data_dir, "test", **data_options
        )
    except InputError:
        test_images, test_labels = None, None
    if test_labels is not None:
        return images, labels, test_images, test_labels
    order = np.random.default_rng(0).permutation(len(images))
    cut = len(images) * 4 // 5
    train, test = order[:cut], order[cut:]
    return images[train], labels[train], images[test], labels[test]


def train_classifier(
    images, labels, test_images, test_labels, epochs: int = 8, seed: int = 0, log=None
):
    """Trains `classifier_network` and returns `(model, held-out accuracy)`.

    Args:
        images, labels: uint8 training images `(n, H, W, C)`, int labels.
        test_images, test_labels: held-out images and labels.
        epochs: passes over the training images.
        seed: seed of the initial weights, dropout and order.
        log: callable taking one line, called after each epoch with its
            loss and accuracy; `None` for silence.
    """
    keras.utils.set_random_seed(seed)
    num_classes = int(max(labels.max(), test_labels.max())) + 1
    model = classifier_network(images.shape[1:], num_classes)
    # Train on the logits output only; the features output rides along.
    trainer = keras.Model(model.input, model.outputs[1])
    trainer.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    to_float = lambda x: np.asarray(pixel_ranges.to_model_range(x))  # noqa: E731
    progress = []
    if log is not None:
        progress.append(
            keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: log(
                    f"classifier epoch {epoch + 1}/{epochs}: loss "
                    f"{logs['loss']:.4f}, accuracy {logs['accuracy']:.4f}"
                )
            )
        )
    trainer.fit(
        to_float(images),
        labels,
        batch_size=128,
        epochs=epochs,
        verbose=0,
        shuffle=True,
        callbacks=progress,
    )
    _, accuracy = trainer.evaluate(
        to_float(test_images), test_labels, batch_size=500, verbose=0
    )
    return model, float(accuracy)


def load_classifier(
    dataset: str = "mnist",
    data_dir: str | None = None,
    cache_dir: str | None = None,
    epochs: int = 12,
    verbose: bool = True,
    train_split=None,
    **data_options,
) -> DomainClassifier:
    """Returns the dataset's domain classifier, training and caching it if needed.

    A cached classifier whose weights no longer match their recorded hash is
    retrained, never trusted.

    Args:
        dataset, data_dir: the source, as in `keras_gan.data.open_source`.
        cache_dir: where classifiers are kept; `default_cache_dir()` if `None`.
        epochs: training epochs when it must be trained.
        verbose: print a line to stderr when training, and one per epoch.
        train_split: the training split's `(images, labels)` if the caller
            has loaded it already; loaded here otherwise.
        **data_options: `image_size`, `channels`, ... as in `open_source`.

    The cache key is derived from the training images' content
    (`keras_gan.data.content_key`): two different datasets never share a
    classifier.

    Returns:
        A `DomainClassifier`.

    Example:

    ```python
    classifier = load_classifier(data_dir="/usr/share/datasets/fashion-mnist")
    print(classifier.accuracy)  # held-out accuracy, e.g. 0.91
    ```
    """
    if train_split is None:
        train_split = data.load_arrays(dataset, data_dir, "train", **data_options)
    key = data.content_key(*train_split)
    cache_dir = files.make_dirs(cache_dir or default_cache_dir())
    model_path = os.path.join(cache_dir, f"{key}.keras")
    info_path = os.path.join(cache_dir, f"{key}.json")
    if os.path.exists(model_path) and os.path.exists(info_path):
        try:
            with open(info_path) as file:
                info = json.load(file)
            model = keras.saving.load_model(model_path, safe_mode=True)
            if weights_hash(model) == info["weights_sha256"]:
                return DomainClassifier(
                    model,
                    key,
                    info["accuracy"],
                    info["weights_sha256"],
                    info["num_classes"],
                )
        except (OSError, ValueError, KeyError):
            pass  # unreadable or tampered with: train again below
    images, labels = train_split
    if labels is None:
        return random_feature_classifier(images.shape[1:], key)
    images, labels, test_images, test_labels = _held_out(
        dataset, data_dir, images, labels, data_options
    )
    log = functools.partial(print, file=sys.stderr, flush=True) if verbose else None
    if log:
        log(
            f"Training the domain classifier of {key} on {len(images)} images "
            f"(once; cached in {cache_dir})..."
        )
    model, accuracy = train_classifier(
        images,
        labels,
        test_images,
        test_labels,
        epochs=epochs,
        log=log,
    )
    digest = weights_hash(model)
    files.atomic_write(model_path, model.save)
    info = {
        "dataset_key": key,
        "accuracy": accuracy,
        "weights_sha256": digest,
        "num_classes": int(model.outputs[1].shape[-1]),
        "image_shape": list(images.shape[1:]),
        "train_images": len(images),
        "test_images": len(test_images),
        "epochs": epochs,
    }
    files.atomic_write(info_path, lambda path: _write_json(path, info))
    return DomainClassifier(model, key, accuracy, digest, info["num_classes"])


def random_feature_classifier(image_shape, key: str = "random") -> DomainClassifier:
    """The fallback for unlabelled data: the CNN with fixed random weights."""
    keras.utils.set_random_seed(0)
    model = classifier_network(image_shape, num_classes=1)
    return DomainClassifier(
        model, f"{key}-random-features", None, weights_hash(model), None
    )


INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"


def inception_classifier(
    image_shape, weights="imagenet", image_size: int = 299
) -> DomainClassifier:
    """Standard FID features: InceptionV3's 2048-d pool features at 299x299.

    Offered so that scores can be compared with published FID numbers. The
    ImageNet weights are never downloaded here: they must already be in
    Keras's cache (`~/.keras/models/`, or `$KERAS_HOME/models/`).

    Args:
        image_shape: `(H, W, C)` of the images scored, C 1 or 3.
        weights: `"imagenet"` for the cached ImageNet weights, a path to such
            an `.h5` file, or `None` for random weights (tests of shapes only).
        image_size: side images are resized to (299 for standard FID; at
            least 75).

    Returns:
        A `DomainClassifier` with 2048-d features and no class predictions.
    """
    if len(image_shape) != 3 or image_shape[-1] not in (1, 3):
        raise InputError(
            f"Inception features need (H, W, 1) or (H, W, 3) images; received "
            f"{tuple(image_shape)}."
        )
    if weights == "imagenet":
        cache = os.environ.get("KERAS_HOME") or os.path.join(
            os.path.expanduser("~"), ".keras"
        )
        weights = os.path.join(cache, "models", INCEPTION_WEIGHTS)
        if not os.path.exists(weights):
            raise InputError(
                f"ImageNet Inception weights not found at {weights}; expected "
                f"{INCEPTION_WEIGHTS} in Keras's cache (run keras.applications."
                f"InceptionV3(include_top=False, weights='imagenet') once online)."
            )
    inception = keras.applications.InceptionV3(
        include_top=False,
        weights=weights,
        input_shape=(image_size, image_size, 3),
        pooling="avg",
    )
    inputs = keras.Input(tuple(image_shape), name="images")
    # Pixels are already in [-1, 1], InceptionV3's own input range.
    x = keras.layers.Resizing(image_size, image_size)(inputs)
    if image_shape[-1] == 1:
        x = keras.layers.Concatenate()([x, x, x])  # gray -> RGB
    features = inception(x)
    # A constant second output keeps predict()'s two-output contract.
    model = keras.Model(inputs, [features, features[:, :1]], name="inception_fid")
    return DomainClassifier(
        model,
        "inception_v3_imagenet" if weights else "inception_v3_random",
        None,
        weights_hash(inception),
        None,
    )


def _write_json(path, content):
    with open(path, "w") as file:
        json.dump(content, file, indent=2)
