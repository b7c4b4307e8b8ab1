"""MNIST-format IDX files (raw or gzipped), read offline with NumPy, e.g.
Debian's `/usr/share/datasets/fashion-mnist`."""

import gzip
import math
import os
import zlib

import numpy as np

from keras_gan.errors import InputError

# split -> (images file, labels file), each raw or with a ".gz" suffix.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


# Magic numbers of the IDX format: 0x08 is unsigned byte, then the rank.
IDX_IMAGES_MAGIC = 0x00000803


IDX_LABELS_MAGIC = 0x00000801


def is_idx_folder(data_dir) -> bool:
    """Whether `data_dir` holds an IDX images file of some split."""
    return any(_find_idx(data_dir, images) for images, _ in IDX_FILES.values())


def load_idx(data_dir, split):
    """`(images (N, H, W, 1) uint8, labels (N,) int64 or None)` of a split."""
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
