"""`assets.extra/keras_gan.json`: what an export holds, in every format.

TF Serving ignores `assets.extra/`; keras_gan reads the latent size, image
shape, classes and class names from it (`sample --labels cats`, `evaluate`),
for a SavedModel version and an ONNX version alike.
"""

import json
import os

from keras_gan.errors import InputError

INFO_FILE = os.path.join("assets.extra", "keras_gan.json")


def export_info(path) -> dict:
    """Reads `assets.extra/keras_gan.json` of an export (`{}` if absent)."""
    try:
        with open(os.path.join(os.fspath(path), INFO_FILE)) as file:
            return json.load(file)
    except (OSError, ValueError):
        return {}


def write_info(path, info: dict) -> None:
    """Writes `info` as the export's `assets.extra/keras_gan.json`."""
    target = os.path.join(os.fspath(path), INFO_FILE)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "w") as file:
        json.dump(info, file)


def checked_class_names(class_names, num_classes) -> list[str] | None:
    """`class_names` as strings, one per class, or `None`."""
    if class_names is None:
        return None
    class_names = [str(name) for name in class_names]
    if num_classes is None or len(class_names) != num_classes:
        raise InputError(
            f"{len(class_names)} class names for a generator of "
            f"{num_classes} classes; expected one name per class."
        )
    return class_names
