"""`.npy` and `.npz` files of images, read with `allow_pickle=False` always.

A `.npy` file is memory-mapped (a large one is streamed by the pipeline, not
loaded); an `.npz` archive's arrays are read into memory. Images are uint8
in [0, 255], uint16 in [0, 65535] (scaled to 8 bits as 16-bit image files
are), or floats in [0, 1] or [-1, 1]: floats with a negative value are taken
as [-1, 1], others as [0, 1].
"""

import os
import zipfile

import numpy as np

from keras_gan.data.pipeline import RANGE_TOLERANCE
from keras_gan.data.pipeline import chunks
from keras_gan.errors import InputError

EXTENSIONS = (".npy", ".npz")

# Keys an .npz archive's arrays are looked up by, per split, in this order.
IMAGE_KEYS = {
    "train": ("images", "x", "x_train", "train_images", "arr_0"),
    "test": ("test_images", "x_test"),
}
LABEL_KEYS = {
    "train": ("labels", "y", "y_train", "train_labels", "arr_1"),
    "test": ("test_labels", "y_test"),
}


def is_array_file(path) -> bool:
    return os.path.splitext(os.fspath(path))[1].lower() in EXTENSIONS


def load(path, split: str = "train"):
    """Reads the images (and labels) of `split` from a `.npy` / `.npz` file.

    Args:
        path: the file.
        split: `"train"`, or `"test"` for an `.npz` with test arrays.

    Returns:
        `(images, labels, value_range)`: images `(N, H, W, C)` (a read-only
        `np.memmap` for `.npy`), int labels `(N,)` or `None`, and the float
        images' range, `(-1, 1)` or `(0, 1)` (`(0, 255)` for uint8).

    Raises:
        InputError: the file is missing, corrupt, holds objects (pickles are
            never loaded) or arrays of another shape or dtype.
    """
    path = os.fspath(path)
    if split not in IMAGE_KEYS:
        raise InputError(
            f"unknown split {split!r} for {path}; expected one of {sorted(IMAGE_KEYS)}."
        )
    expected = "expected a NumPy .npy or .npz file of images saved with np.save"
    if not os.path.isfile(path):
        raise InputError(f"{path} does not exist or is not a file; {expected}.")
    _check_magic(path, expected)
    if path.lower().endswith(".npy"):
        if split != "train":
            raise InputError(
                f"{path} is one .npy array, with no {split!r} split; expected "
                "an .npz file with test_images for a test split."
            )
        images = _read(path, expected, lambda: np.load(path, mmap_mode="r"))
        labels = None
    else:
        images, labels = _read(path, expected, lambda: _from_npz(path, split))
    images = _checked(path, images)
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or not np.issubdtype(
            labels.dtype, np.integer
        ):
            raise InputError(
                f"{path}'s labels are {labels.dtype} {labels.shape}; expected "
                f"integers of shape ({len(images)},), one per image."
            )
        if len(labels) and labels.min() < 0:
            raise InputError(
                f"{path}'s labels include {labels.min()}; expected class "
                "indices 0, 1, 2, ..."
            )
        labels = labels.astype(np.int64)
    return images, labels, _value_range(path, images)


# The first bytes of each format; np.load takes anything else for a pickle.
MAGIC = {".npy": (b"\x93NUMPY",), ".npz": (b"PK\x03\x04", b"PK\x05\x06")}


def _check_magic(path, expected):
    magics = MAGIC[os.path.splitext(path)[1].lower()]
    try:
        with open(path, "rb") as file:
            head = file.read(8)
    except OSError as error:
        raise InputError(
            f"{path} cannot be read ({error.strerror}); {expected}."
        ) from None
    if not any(head.startswith(magic) for magic in magics):
        what = "empty" if not head else f"starts with {head[:6]!r}"
        raise InputError(
            f"{path} cannot be read as {os.path.splitext(path)[1]} (it is {what}); "
            f"{expected}."
        )


def _read(path, expected, read):
    try:
        return read()
    except InputError:
        raise
    except ValueError as error:
        text = " ".join(str(error).split())
        if "pickle" in text.lower() or "object" in text.lower():
            raise InputError(
                f"{path} holds Python objects, which are never unpickled "
                f"(allow_pickle=False); {expected} from a numeric array."
            ) from None
        raise InputError(
            f"{path} is corrupt or truncated ({text}); {expected}."
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        text = " ".join(str(error).split()) or type(error).__name__
        raise InputError(f"{path} cannot be read ({text}); {expected}.") from None


def _from_npz(path, split):
    with np.load(path, allow_pickle=False) as archive:
        keys = list(archive.files)
        image_key = _pick(keys, IMAGE_KEYS[split])
        if image_key is None:
            arrays = [k for k in keys if archive[k].ndim in (3, 4)]
            if split == "train" and len(arrays) == 1:
                image_key = arrays[0]
            else:
                raise InputError(
                    f"{path} holds arrays {keys}; expected the {split} images "
                    f"under one of {list(IMAGE_KEYS[split])}."
                )
        label_key = _pick(keys, LABEL_KEYS[split])
        images = archive[image_key]
        labels = None if label_key is None else archive[label_key]
    return images, labels


def _pick(keys, candidates):
    return next((key for key in candidates if key in keys), None)


def _checked(path, images):
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4):
        raise InputError(
            f"{path} holds an array of shape {images.shape}; expected images "
            "(N, H, W) or (N, H, W, C) with C = 1, 2, 3 or 4."
        )
    if len(images) == 0:
        raise InputError(f"{path} holds no images (0 rows); expected at least one.")
    if images.dtype == np.uint16:
        # As 16-bit image files: 65535 -> 255.
        return np.round(np.asarray(images) / 257.0).astype(np.uint8)
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise InputError(
            f"{path} holds {images.dtype} images; expected uint8 in [0, 255], "
            "uint16, or floats in [0, 1] or [-1, 1]."
        )
    return images


def _value_range(path, images):
    if images.dtype == np.uint8:
        return (0, 255)
    low, high = np.inf, -np.inf
    for chunk in chunks(images):
        if not np.isfinite(chunk).all():
            raise InputError(
                f"{path} holds NaN or infinite values; expected finite floats "
                "in [0, 1] or [-1, 1]."
            )
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
    if low < -1.0 - RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise InputError(
            f"{path} holds floats in [{low:g}, {high:g}]; expected floats in "
            "[0, 1] or [-1, 1], or uint8 in [0, 255]."
        )
    return (-1.0, 1.0) if low < 0 else (0.0, 1.0)
