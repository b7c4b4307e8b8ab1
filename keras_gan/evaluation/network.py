"""The domain classifier's network and what names one exact classifier.

`ARCHITECTURE` tags the layers `classifier_network` builds. It is part of
every cached classifier's key and of every shipped classifier's record, so a
classifier saved with other layers is never reused after they change.
`weights_hash` names one set of weights: scores compare only under the same.
"""

import hashlib

import keras
import numpy as np

from keras_gan.errors import InputError

FEATURE_DIM = 128

# Three conv/pool stages of 32, 64, 64 filters, a 128-unit feature layer, class
# logits: 188k parameters at 28x28, 92.23% held out on Fashion-MNIST. The
# earlier "cnn2" (two stages, then a 3136 x 128 feature layer) had 421k and
# reached 91.47%.
ARCHITECTURE = "cnn3"
FILTERS = (32, 64, 64)


def classifier_network(image_shape, num_classes: int) -> keras.Model:
    """A small CNN: three conv blocks, a 128-unit feature layer, class logits.

    Args:
        image_shape: `(height, width, channels)`, each side at least 4.
        num_classes: number of classes.

    Returns:
        A `keras.Model` from images in [-1, 1] to `[features (batch, 128),
        logits (batch, num_classes)]`.

    Example:

    >>> model = classifier_network((28, 28, 1), 10)
    >>> model.count_params()
    188234
    """
    if len(image_shape) != 3 or min(image_shape[:2]) < 4:
        raise InputError(
            f"The domain classifier needs images of at least 4x4 pixels "
            f"(H, W, C); received {tuple(image_shape)}."
        )
    inputs = keras.Input(tuple(image_shape), name="images")
    x = inputs
    for filters in FILTERS:
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        # "same" pooling rounds up and keeps the last row and column:
        # 28 -> 14 -> 7 -> 4, 8 -> 4 -> 2 -> 1, 4 -> 2 -> 1 -> 1.
        x = keras.layers.MaxPooling2D(padding="same")(x)
    x = keras.layers.Flatten()(x)  # (batch, ceil(H / 8) * ceil(W / 8) * 64)
    features = keras.layers.Dense(FEATURE_DIM, activation="relu", name="features")(x)
    logits = keras.layers.Dense(num_classes, name="logits")(
        keras.layers.Dropout(0.3)(features)
    )
    return keras.Model(inputs, [features, logits], name="domain_classifier")


def weights_hash(model: keras.Model) -> str:
    """SHA-256 of a model's weights, in order: names one exact classifier."""
    return arrays_hash(model.get_weights())


def arrays_hash(weights) -> str:
    """SHA-256 of weight arrays' bytes, in order (`weights_hash` of a model
    holding them)."""
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()
