"""Domain classifiers that ship inside the package, checked before use.

The classifiers of Fashion-MNIST (Debian's IDX files) and of scikit-learn's
8x8 digits are trained once by `python -m keras_gan.evaluation.train_shipped`
and kept in `keras_gan/evaluation/classifiers/`: `<name>.npz`, the weights of
`classifier_network` as float16 arrays (read without pickle), beside
`<name>.json`, their record: the `content_digest` of the images and labels
they were trained on, the architecture, held-out accuracy, the file's SHA-256
and the SHA-256 of the weights once loaded (`weights_hash`).

`find` picks the record trained on exactly the given images; `load` checks
the file's bytes against the record before reading them and the weights after
loading them, and on any difference warns in one line and returns `None`, so
that a damaged or altered file is never used.
"""

import hashlib
import io
import json
import os
import warnings
import zipfile

import keras
import numpy as np

from keras_gan import files
from keras_gan.errors import InputError
from keras_gan.evaluation.network import ARCHITECTURE
from keras_gan.evaluation.network import arrays_hash
from keras_gan.evaluation.network import classifier_network
from keras_gan.evaluation.network import weights_hash

SHIPPED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "classifiers")

# What `find` and `load` read from a record.
RECORD_KEYS = (
    "data_sha256",
    "architecture",
    "image_shape",
    "num_classes",
    "accuracy",
    "weights_file",
    "file_sha256",
    "weights_sha256",
)


def records(directory: str | None = None) -> list[dict]:
    """The records of the shipped classifiers in `directory` (`SHIPPED_DIR`
    if `None`), sorted by name; an unreadable one is left out with a warning."""
    directory = directory or SHIPPED_DIR
    if not os.path.isdir(directory):
        return []
    found = []
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path) as file:
                record = json.load(file)
        except (OSError, ValueError) as error:
            _warn(f"shipped classifier record {path} is unreadable ({error})")
            continue
        if not isinstance(record, dict):
            record = {}
        missing = [key for key in RECORD_KEYS if key not in record]
        if missing:
            _warn(
                f"shipped classifier record {path} lacks {missing}; expected "
                f"the keys {list(RECORD_KEYS)}"
            )
            continue
        found.append(record)
    return found


def find(data_sha256: str, directory: str | None = None) -> dict | None:
    """The record of the shipped classifier trained on the images whose
    `keras_gan.data.content_digest` is `data_sha256`, with this version's
    `ARCHITECTURE`; `None` if there is none."""
    for record in records(directory):
        if (
            record["data_sha256"] == data_sha256
            and record["architecture"] == ARCHITECTURE
        ):
            return record
    return None


def load(record: dict, directory: str | None = None) -> keras.Model | None:
    """The model of a shipped classifier, or `None` (with a one-line warning)
    when its file differs from its record in any way.

    The file is read once into memory; those bytes are hashed and compared
    with `file_sha256` before NumPy parses them (`allow_pickle=False`), and
    the loaded weights are hashed and compared with `weights_sha256`.
    """
    directory = directory or SHIPPED_DIR
    name = record["weights_file"]
    path = os.path.join(directory, str(name))
    if os.path.basename(str(name)) != name:
        return _refuse(f"{path} is not a file name; expected one inside {directory}")
    try:
        with open(path, "rb") as file:
            content = file.read()
    except OSError as error:
        return _refuse(f"{path} cannot be read ({error.strerror})")
    actual = hashlib.sha256(content).hexdigest()
    if actual != record["file_sha256"]:
        return _refuse(
            f"{path} has SHA-256 {actual[:16]}; expected {record['file_sha256'][:16]}"
        )
    model = classifier_network(tuple(record["image_shape"]), record["num_classes"])
    expected = [tuple(weight.shape) for weight in model.weights]
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as arrays:
            weights = [arrays[key] for key in sorted(arrays.files)]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        return _refuse(f"{path} is not a readable .npz file ({error})")
    shapes = [tuple(weight.shape) for weight in weights]
    if shapes != expected:
        return _refuse(
            f"{path} holds arrays of shapes {shapes}; expected {expected} "
            f"({ARCHITECTURE} at {tuple(record['image_shape'])})"
        )
    model.set_weights([weight.astype(np.float32) for weight in weights])
    loaded = weights_hash(model)
    if loaded != record["weights_sha256"]:
        return _refuse(
            f"{path} loads to weights with SHA-256 {loaded[:16]}; expected "
            f"{record['weights_sha256'][:16]}"
        )
    return model


def round_to_float16(model: keras.Model) -> None:
    """Rounds a model's weights to float16 values, in place: the model then
    computes what its shipped file will."""
    model.set_weights(
        [weight.astype(np.float16).astype(np.float32) for weight in model.get_weights()]
    )


def save(model: keras.Model, name: str, record: dict, directory: str) -> dict:
    """Writes `model`'s weights as float16 `<name>.npz` and `record`,
    completed with the architecture and the file's and weights' SHA-256, as
    `<name>.json`.

    Args:
        model: a `classifier_network` whose weights `round_to_float16` has
            rounded (so that its measured accuracy is the shipped file's).
        name: the files' name.
        record: what is known about it: at least `data_sha256`,
            `image_shape`, `num_classes` and `accuracy`.
        directory: where to write.

    Returns:
        The completed record.
    """
    weights = model.get_weights()
    rounded = [weight.astype(np.float16) for weight in weights]
    if not all(map(np.array_equal, rounded, weights)):
        raise InputError(
            f"the weights of {name} are not float16 values; expected a model "
            "passed through round_to_float16 first."
        )
    files.make_dirs(directory)
    weights_path = os.path.join(directory, f"{name}.npz")
    arrays = {f"w{index:02d}": weight for index, weight in enumerate(rounded)}
    files.atomic_write(weights_path, lambda path: np.savez(path, **arrays))
    os.chmod(weights_path, 0o644)  # package data: readable by all (not mkstemp's 0600)
    record = dict(
        record,
        architecture=ARCHITECTURE,
        weights_file=f"{name}.npz",
        weights_dtype="float16",
        file_bytes=os.path.getsize(weights_path),
        file_sha256=files.sha256(weights_path),
        weights_sha256=arrays_hash(weights),
    )
    json_path = os.path.join(directory, f"{name}.json")
    files.atomic_write(json_path, lambda path: _write_json(path, record))
    os.chmod(json_path, 0o644)
    return record


def _refuse(reason: str) -> None:
    _warn(f"shipped classifier not used: {reason}; using a locally trained one instead")
    return None


def _warn(message: str) -> None:
    warnings.warn(message[:1].upper() + message[1:] + ".", stacklevel=3)


def _write_json(path, content):
    with open(path, "w") as file:
        json.dump(content, file, indent=2)
        file.write("\n")
