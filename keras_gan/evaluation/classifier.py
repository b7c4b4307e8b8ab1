"""The domain classifier whose features and class predictions score samples.

ImageNet Inception features fit 28x28 grayscale images poorly and cannot be
downloaded offline, so, as is the field's practice for MNIST-like data, the
Frechet distance and its kin are computed in the penultimate features of a
small CNN trained on the dataset's own real training split
(`keras_gan.evaluation.network`). Fashion-MNIST's and the 8x8 digits' ship
with the package (`keras_gan.evaluation.shipped`) and are used when the data
is exactly what they were trained on; any other labelled data has one trained
the first time it is needed (with a progress bar on stderr) and cached under
`~/.cache/keras_gan/classifiers/` (`KERAS_GAN_CACHE` moves it) as
`<dataset>-<content hash>-<architecture>` (`cache_key`). The SHA-256 of its
weights is reported with every score, since scores are comparable only under
the same classifier.

A dataset without labels falls back to the same CNN with fixed random weights
(seed 0): random convolutional features are a weaker but documented and
reproducible feature space, and class-based numbers are then unavailable.
"""

import contextlib
import dataclasses
import json
import os
import re
import sys

import keras
import numpy as np

from keras_gan import data
from keras_gan import files
from keras_gan import images as pixel_ranges
from keras_gan.errors import InputError
from keras_gan.evaluation import shipped
from keras_gan.evaluation.network import ARCHITECTURE
from keras_gan.evaluation.network import FEATURE_DIM
from keras_gan.evaluation.network import classifier_network
from keras_gan.evaluation.network import weights_hash

__all__ = [
    "ARCHITECTURE",
    "FEATURE_DIM",
    "DomainClassifier",
    "cache_key",
    "classifier_network",
    "default_cache_dir",
    "held_out_split",
    "inception_classifier",
    "load_classifier",
    "random_feature_classifier",
    "train_classifier",
    "weights_hash",
]


def default_cache_dir() -> str:
    """Where classifiers are cached: `$KERAS_GAN_CACHE/classifiers` or
    `~/.cache/keras_gan/classifiers`."""
    root = os.environ.get("KERAS_GAN_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "keras_gan"
    )
    return os.path.join(root, "classifiers")


def cache_key(dataset, data_dir, digest: str) -> str:
    """`<dataset>-<16 hex digits of digest>-<ARCHITECTURE>`: names a classifier.

    The dataset part is for people: the name of the folder or file the data
    came from (`data_dir`, or `dataset` when it is a path), else the dataset's
    name, lowercased, with runs of other characters than letters and digits
    turned into one `-`. The content part (`keras_gan.data.content_digest` of
    the training images and labels) keeps two different datasets of the same
    name apart; the architecture part keeps classifiers of older layers from
    being reused.

    Example:

    >>> cache_key("mnist", "/usr/share/datasets/fashion-mnist/", "b0564c3e" * 8)
    'fashion-mnist-b0564c3eb0564c3e-cnn3'
    """
    name = os.fspath(data_dir if data_dir is not None else dataset)
    if data_dir is not None or os.path.exists(name):
        name = os.path.basename(os.path.normpath(name))
        if os.path.splitext(name)[1].lower() in (".npy", ".npz"):
            name = os.path.splitext(name)[0]
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return f"{slug or 'data'}-{digest[:16]}-{ARCHITECTURE}"


# From this many images on, `DomainClassifier.predict` runs the compiled
# `keras.Model.predict`: twice as fast as eager calls on a 2-core CPU (20,000
# Fashion-MNIST images: 2.8 s against 5.7 s), but its tracing (0.2 s for the
# small CNN, seconds for InceptionV3) costs more than it saves on a few hundred.
COMPILED_PREDICT_MIN_IMAGES = 2000


@dataclasses.dataclass
class DomainClassifier:
    """A trained (or random-feature) classifier and what is known about it.

    Attributes:
        model: the `keras.Model` of `classifier_network`.
        dataset_key: which dataset it was trained on.
        accuracy: held-out accuracy, or `None` for random features.
        weights_sha256: `weights_hash(model)`.
        num_classes: number of classes (`None` for random features).
        origin: `"shipped"` (with the package), `"cached"`, `"trained"`
            (just now), `"random"` (random features) or `"inception"`.
    """

    model: keras.Model
    dataset_key: str
    accuracy: float | None
    weights_sha256: str
    num_classes: int | None
    origin: str = "trained"

    def predict(self, images, batch_size: int = 500):
        """Returns `(features (n, 128), probabilities (n, classes) or None)`.

        Args:
            images: float array `(n, H, W, C)` in [-1, 1].
            batch_size: images per forward pass.
        """
        if len(images) >= COMPILED_PREDICT_MIN_IMAGES:
            features, logits = self.model.predict(
                images, batch_size=batch_size, verbose=0
            )
        else:
            features, logits = [], []
            for start in range(0, len(images), batch_size):
                feature, logit = self.model(images[start : start + batch_size])
                features.append(keras.ops.convert_to_numpy(feature))
                logits.append(keras.ops.convert_to_numpy(logit))
            features, logits = np.concatenate(features), np.concatenate(logits)
        features = np.asarray(features, np.float32)
        if self.num_classes is None:
            return features, None
        logits = np.asarray(logits, np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        probabilities = np.exp(logits)
        return features, probabilities / probabilities.sum(axis=1, keepdims=True)


def held_out_split(dataset, data_dir, images, labels, data_options=None):
    """Splits labelled training data into what a classifier is trained and
    tested on: `(images, labels, test_images, test_labels)`.

    The dataset's test split when it has one, else the last fifth of a fixed
    permutation (seed 0) of the training images (digits and folders have one
    split).
    """
    try:
        test_images, test_labels = data.load_arrays(
            dataset, data_dir, "test", **(data_options or {})
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
    images,
    labels,
    test_images,
    test_labels,
    epochs: int = 12,
    seed: int = 0,
    progress: bool = False,
):
    """Trains `classifier_network` and returns `(model, held-out accuracy)`.

    Args:
        images, labels: uint8 training images `(n, H, W, C)`, int labels.
        test_images, test_labels: held-out images and labels.
        epochs: passes over the training images.
        seed: seed of the initial weights, dropout and order.
        progress: show Keras's progress bar, on stderr (stdout stays free
            for results such as `evaluate --json`).
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
    # Keras writes its progress bar to sys.stdout, which is for results.
    to_stderr = contextlib.redirect_stdout(sys.stderr)
    with to_stderr if progress else contextlib.nullcontext():
        trainer.fit(
            to_float(images),
            labels,
            batch_size=128,
            epochs=epochs,
            verbose=1 if progress else 0,
            shuffle=True,
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
    """Returns the dataset's domain classifier: shipped, cached, or trained now.

    1. A classifier shipped with the package (Fashion-MNIST, the 8x8 digits)
       when these are exactly the images and labels it was trained on and its
       file and weights match their recorded SHA-256 (else a one-line warning,
       and on to 2).
    2. One cached by an earlier call, if its weights still match their
       recorded hash (else it is trained again, never trusted).
    3. Otherwise one is trained, with Keras's progress bar on stderr, and
       cached under `cache_key(dataset, data_dir, content digest)`.

    Args:
        dataset, data_dir: the source, as in `keras_gan.data.open_source`.
        cache_dir: where classifiers are kept; `default_cache_dir()` if `None`.
        epochs: training epochs when it must be trained.
        verbose: print a line to stderr and show the progress bar when
            training.
        train_split: the training split's `(images, labels)` if the caller
            has loaded it already; loaded here otherwise.
        **data_options: `image_size`, `channels`, ... as in `open_source`.

    Returns:
        A `DomainClassifier`.

    Example:

    ```python
    classifier = load_classifier(data_dir="/usr/share/datasets/fashion-mnist")
    print(classifier.origin, classifier.accuracy)  # shipped 0.9223
    ```
    """
    if train_split is None:
        train_split = data.load_arrays(dataset, data_dir, "train", **data_options)
    images, labels = train_split
    digest = data.content_digest(images, labels)
    key = cache_key(dataset, data_dir, digest)
    if labels is None:
        return random_feature_classifier(images.shape[1:], key)
    record = shipped.find(digest)
    model = None if record is None else shipped.load(record)
    if model is not None:
        return DomainClassifier(
            model,
            key,
            record["accuracy"],
            record["weights_sha256"],
            record["num_classes"],
            origin="shipped",
        )
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
                    origin="cached",
                )
        except (OSError, ValueError, KeyError):
            pass  # unreadable or tampered with: train again below
    images, labels, test_images, test_labels = held_out_split(
        dataset, data_dir, images, labels, data_options
    )
    if verbose:
        print(
            f"Training the domain classifier {key} on {len(images)} images, "
            f"{epochs} epoch{'s' if epochs != 1 else ''} (once; cached in "
            f"{cache_dir})...",
            file=sys.stderr,
            flush=True,
        )
    model, accuracy = train_classifier(
        images, labels, test_images, test_labels, epochs=epochs, progress=verbose
    )
    weights_sha256 = weights_hash(model)
    files.atomic_write(model_path, model.save)
    info = {
        "dataset_key": key,
        "data_sha256": digest,
        "architecture": ARCHITECTURE,
        "accuracy": accuracy,
        "weights_sha256": weights_sha256,
        "num_classes": int(model.outputs[1].shape[-1]),
        "image_shape": list(images.shape[1:]),
        "train_images": len(images),
        "test_images": len(test_images),
        "epochs": epochs,
    }
    files.atomic_write(info_path, lambda path: _write_json(path, info))
    return DomainClassifier(model, key, accuracy, weights_sha256, info["num_classes"])


def random_feature_classifier(image_shape, key: str = "random") -> DomainClassifier:
    """The fallback for unlabelled data: the CNN with fixed random weights."""
    keras.utils.set_random_seed(0)
    model = classifier_network(image_shape, num_classes=1)
    return DomainClassifier(
        model, f"{key}-random-features", None, weights_hash(model), None, "random"
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
        "inception",
    )


def _write_json(path, content):
    with open(path, "w") as file:
        json.dump(content, file, indent=2)
