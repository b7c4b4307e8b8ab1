"""A folder of the user's own images, decoded to one uint8 array.

Three steps, each usable alone:

1. `scan(folder)` lists the image files (.png, .jpg, .jpeg, .bmp, .gif,
   .webp, any case), recursively, in sorted order. A folder whose images all
   sit in immediate subfolders is labelled, one class per subfolder, as in
   `keras.utils.image_dataset_from_directory`; any other folder is unlabelled.
2. `read_image(path)` decodes one file with Pillow to a (height, width,
   channels) uint8 array, refusing a file that is empty, truncated, corrupt,
   not an image, or that declares more than `MAX_PIXELS` pixels (checked from
   the header, before anything is decoded).
3. `decode_folder(folder)` decodes every file on a thread pool straight into
   one preallocated (N, height, width, channels) array and, with `cache_dir`,
   keeps it on disk as a memory-mapped `.npy` file that later calls reuse
   without decoding.

NumPy and Pillow only: no TensorFlow or Keras here, so every backend can use
it.
"""

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable

import numpy as np
from PIL import Image
from PIL import UnidentifiedImageError

from keras_gan import files
from keras_gan.data import shapes
from keras_gan.errors import InputError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

# The Pillow plugins a file may be decoded by, whatever its extension says.
# Not all of Pillow's ~40: a file named .png that is really EPS would run
# Ghostscript.
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP")

# Largest width * height decoded: 8192x8192, 192 MiB as RGB. Checked from the
# header before decoding. It is below Pillow's own limit (`MAX_IMAGE_PIXELS`,
# 89.5 M, which only warns up to twice that and then raises), so every image
# that Pillow would merely warn about is refused here, undecoded (Pillow's
# DecompressionBombWarning is still printed for those: filtering it would
# change a process-wide setting), and the limit holds even where a program
# set `Image.MAX_IMAGE_PIXELS = None`.
MAX_PIXELS = 8192 * 8192

# Bump when the cache's layout or decoding changes: old entries stop matching.
CACHE_FORMAT = 1

ON_BAD_IMAGE = ("fail", "skip")

# Modes whose pixels are one grey level; "P" joins them when its palette is
# all greys.
GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")

# JPEGs are decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) when the
# crop still keeps this many times the target size, as `Image.thumbnail`'s
# `reducing_gap` does. A 1024x768 JPEG resized to 64x64 comes out within one
# grey level of a full decode (0.1 on average), six times faster.
JPEG_REDUCING_GAP = 2.0

_EXTENSION_LIST = ", ".join(EXTENSIONS)
_STAGING_PREFIX = ".staging-"


class BadImageError(InputError):
    """An image file that cannot be decoded safely: empty, truncated,
    corrupt, not an image, or declaring more than `MAX_PIXELS` pixels.

    Attributes:
        path: the file.
        reason: what is wrong with it, a few words.
    """

    def __init__(self, path, reason):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(
            f"{self.path} is not a usable image: {reason}; expected a complete "
            "PNG, JPEG, BMP, GIF or WebP image (or on_bad_image='skip', "
            "--on-bad-image skip, to leave such files out)."
        )

    def __reduce__(self):
        return type(self), (self.path, self.reason)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageFiles:
    """The image files of a folder, as found by `scan`.

    Attributes:
        root: the folder, as given.
        paths: the files' paths relative to `root`, "/"-separated, sorted.
        labels: int32 array, the class of each path, or `None` (unlabelled).
        class_names: the class subfolders' names (label `i` is
            `class_names[i]`), or `None`.
    """

    root: str
    paths: list[str]
    labels: np.ndarray | None
    class_names: list[str] | None

    def __len__(self):
        return len(self.paths)


@dataclasses.dataclass(frozen=True, eq=False)
class FolderImages:
    """A decoded folder, as returned by `decode_folder`.

    Attributes:
        images: uint8 array (N, height, width, channels): an `np.memmap`
            opened read-only when it comes from a cache entry.
        labels: int32 array (N,), or `None` for an unlabelled folder.
        class_names: the class subfolders' names, or `None`.
        paths: the N decoded files, relative to the folder.
        skipped: `(relative path, reason)` of each file left out.
        cache_path: the cache entry's folder, or `None` without a cache.
    """

    images: np.ndarray
    labels: np.ndarray | None
    class_names: list[str] | None
    paths: list[str]
    skipped: list[tuple[str, str]]
    cache_path: str | None


def scan(folder: str | os.PathLike) -> ImageFiles:
    """Lists the image files of a folder, recursively.

    Files are recognised by extension (.png, .jpg, .jpeg, .bmp, .gif, .webp,
    any case); names starting with "." are ignored, files and folders alike.
    If no image sits directly in `folder` but its immediate subfolders hold
    some, each such subfolder is a class: sorted names are labels 0..K-1,
    each with the images found anywhere under it (subfolders without images
    are no class). Otherwise the folder is unlabelled.

    Symbolic links are followed only when they resolve inside `folder`; links
    leading outside it are skipped, and so is a link back to a folder already
    being listed (no loops).

    Args:
        folder: the folder's path.

    Returns:
        An `ImageFiles`.

    Raises:
        InputError: `folder` is not a folder, or holds no image files.

    Example:

    >>> files = scan("my_pngs/")  # my_pngs/cats/*.png, my_pngs/dogs/*.png
    >>> files.class_names
    ['cats', 'dogs']
    """
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise InputError(
            f"{root} is not a folder; expected a folder of image files "
            f"({_EXTENSION_LIST})."
        )
    real_root = os.path.realpath(root)
    seen = {real_root}
    top_images, subfolders = [], []
    for name, path, is_folder in _entries(root, real_root):
        if is_folder:
            subfolders.append((name, path))
        elif _is_image_name(name):
            top_images.append(name)
    class_names = None
    if top_images:
        paths = top_images
        for name, path in subfolders:
            paths += _walk(path, name, real_root, seen)
    else:
        paths, class_names = [], []
        for name, path in sorted(subfolders):
            found = _walk(path, name, real_root, seen)
            if found:
                class_names.append(name)
                paths += found
    if not paths:
        raise InputError(
            f"{root} holds no image files ({_EXTENSION_LIST}); expected such "
            "files directly in it, or in one subfolder per class."
        )
    paths.sort()
    labels = None
    if class_names is not None:
        index = {name: label for label, name in enumerate(class_names)}
        labels = np.array([index[p.split("/", 1)[0]] for p in paths], np.int32)
    return ImageFiles(root, paths, labels, class_names)


def read_image(
    path: str | os.PathLike,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
) -> np.ndarray:
    """Decodes one image file with Pillow.

    Refused before decoding: an empty file, a file that is not PNG, JPEG, BMP,
    GIF or WebP (whatever its extension), and one whose header declares more
    than `MAX_PIXELS` (8192x8192) pixels. Refused while decoding: truncated
    data (Pillow's `LOAD_TRUNCATED_IMAGES` is left False) and, for PNG, any
    chunk whose CRC does not match.

    Pixels: a GIF's (or animated WebP's, PNG's) first frame. 16-bit images
    are scaled to 8 bits (`round(value / 257)`: 65535 -> 255). Transparency
    is composited over black (colour * alpha / 255), so transparent pixels
    are black whatever colour they store. `channels=3` converts to RGB
    (greys repeated), `channels=1` to Pillow's "L" (ITU-R 601 luma:
    0.299 R + 0.587 G + 0.114 B), and `channels=None` keeps 1 channel for
    grey modes ("1", "L", "LA", 16-bit, "P" with an all-grey palette) and 3
    for the others. EXIF orientation is not applied (as in Keras).

    Resizing (`image_size` given): the largest centred region with the
    target's aspect ratio is kept (Keras's `crop_to_aspect_ratio=True`
    arithmetic), then resized with Pillow's BICUBIC filter, which
    antialiases when it shrinks. JPEGs much larger than the target are
    decoded at a reduced DCT scale first (see `JPEG_REDUCING_GAP`).

    Args:
        path: the file.
        image_size: `None` for the native size, an int for a square, or
            `(height, width)`.
        channels: 1, 3, or `None` (from the image's mode).

    Returns:
        uint8 array (height, width, channels).

    Raises:
        BadImageError: the file cannot be decoded safely; `.reason` says why.
        InputError: `image_size` or `channels` is not valid.

    Example:

    >>> read_image("cat.png", image_size=64, channels=3).shape
    (64, 64, 3)
    """
    return _decode(
        path, shapes.checked_image_size(image_size), shapes.checked_channels(channels)
    )


def decode_folder(
    folder: str | os.PathLike,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    on_bad_image: str = "fail",
    cache_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
    num_workers: int | None = None,
) -> FolderImages:
    """Decodes a folder of images (see `scan`) to one uint8 array.

    Files are decoded by `read_image` on a thread pool (Pillow releases the
    GIL while it decodes and resizes), each written straight into its row
    of one preallocated array (in memory, or in the cache's file): besides
    that array, memory holds one decoded image per thread. Rows keep
    `scan`'s sorted order.

    With `cache_dir`, that array is a `.npy` file in a cache entry,
    `cache_dir/<key[:16]>/` (`images.npy`, `labels.npy` if labelled,
    `meta.json`), where the key is the SHA-256 of the files' relative paths,
    sizes and modification times, `image_size`, `channels` and
    `CACHE_FORMAT`. A later call on the same folder content maps that file
    read-only instead of decoding; a file added, removed or modified gives a
    new key. An entry is built in `cache_dir/.staging-<pid>-*` and renamed
    into place once fsynced, so a process killed mid-build leaves no entry
    that looks complete; staging folders of dead processes are removed. An
    entry that fails validation is rebuilt, with a log line.

    Args:
        folder: the folder of images.
        image_size: `None` (every image must have the same size), an int for
            a square, or `(height, width)`: see `read_image`.
        channels: 1, 3, or `None`: 1 if every image is grey (see
            `read_image`), else 3.
        on_bad_image: `"fail"` raises `BadImageError` for the first bad file
            in sorted order (headers are all checked before any pixels, when
            `image_size` or `channels` is `None`); `"skip"` leaves bad files
            out, logs
            "skipped <path>: <reason>" for each and then
            "skipped 5 of 1,030 files".
        cache_dir: folder of cache entries, or `None` to decode into memory.
        log: callable taking one line of text, or `None` for silence.
        num_workers: decoding threads; `None` for one per CPU (at most 16).

    Returns:
        A `FolderImages`.

    Raises:
        BadImageError: a bad file, with `on_bad_image="fail"`.
        InputError: the folder holds no images, all of them are bad, sizes
            differ with `image_size=None`, an argument is not valid, or the
            images would not fit in memory without `cache_dir`.

    Example:

    >>> data = decode_folder("my_pngs/", image_size=64, channels=3,
    ...                      on_bad_image="skip", cache_dir="~/.cache/kg",
    ...                      log=print)
    >>> data.images.shape, data.class_names
    ((1025, 64, 64, 3), ['cats', 'dogs'])
    """
    image_size = shapes.checked_image_size(image_size)
    channels = shapes.checked_channels(channels)
    checked_on_bad_image(on_bad_image)
    if num_workers is None:
        num_workers = min(16, os.cpu_count() or 1)
    if (
        isinstance(num_workers, bool)
        or not isinstance(num_workers, int)
        or num_workers < 1
    ):
        raise InputError(
            f"num_workers must be a positive int; received {num_workers!r}."
        )
    log = log or (lambda line: None)
    decoder = _FolderDecoder(
        scan(folder), image_size, channels, on_bad_image, log, num_workers
    )
    if cache_dir is None:
        return decoder.into_memory()
    return decoder.into_cache(os.path.expanduser(os.fspath(cache_dir)))


def checked_on_bad_image(on_bad_image):
    """`on_bad_image` if it is one of `ON_BAD_IMAGE`, else a one-line error."""
    if on_bad_image not in ON_BAD_IMAGE:
        raise InputError(
            f"on_bad_image must be one of {', '.join(map(repr, ON_BAD_IMAGE))}; "
            f"received {on_bad_image!r}."
        )
    return on_bad_image


def estimated_bytes(
    num_images: int, image_size: int | tuple[int, int], channels: int
) -> int:
    """Bytes of `num_images` decoded images of `image_size` (an int or
    `(height, width)`) with `channels` (1 or 3): what `decode_folder`
    allocates for them, in memory or in its cache."""
    if image_size is None or channels is None:
        raise InputError(
            f"estimated_bytes needs an image_size and channels; received "
            f"image_size={image_size!r}, channels={channels!r}."
        )
    height, width = shapes.checked_image_size(image_size)
    return num_images * height * width * shapes.checked_channels(channels)


class _FolderDecoder:
    """One `decode_folder` call: the shape, the thread pool and the cache."""

    def __init__(self, found, image_size, channels, on_bad_image, log, num_workers):
        self.found = found
        self.image_size = image_size
        self.channels = channels
        self.on_bad_image = on_bad_image
        self.log = log
        self.num_workers = num_workers

    def path(self, index):
        return os.path.join(self.found.root, *self.found.paths[index].split("/"))

    def into_memory(self):
        shape, bad = self._shape()
        needed = estimated_bytes(len(self.found), shape[:2], shape[2])
        memory = _physical_memory_bytes()
        # Half: a pipeline built on it (tf.data's from_tensor_slices) copies it.
        if memory is not None and needed > memory // 2:
            raise InputError(
                f"decoding {len(self.found):,} images of shape {shape} from "
                f"{self.found.root} needs {needed / 2**30:.1f} GiB, more than half "
                f"of this machine's {memory / 2**30:.1f} GiB of memory; expected a "
                "smaller folder or image_size, or cache_dir (--cache-dir) to keep "
                "them in a memory-mapped file."
            )
        self.log(f"decoding {len(self.found):,} image files from {self.found.root}")
        images = np.empty((len(self.found), *shape), np.uint8)
        bad.update(self._decode_into(images, bad))
        keep = self._kept(bad)
        for row, index in enumerate(keep):
            if row != index:
                images[row] = images[index]
        self._report_skipped(self._skipped(bad))
        return self._result(images[: len(keep)], keep, bad, None)

    def into_cache(self, cache_dir):
        key = self._cache_key()
        entry = os.path.join(cache_dir, key[:16])
        if os.path.isdir(entry):
            loaded = self._load(entry, key)
            if isinstance(loaded, FolderImages):
                return loaded
            self.log(f"cache entry {entry} is damaged ({loaded}); rebuilding it")
        files.make_dirs(cache_dir)
        _remove_dead_staging(cache_dir, self.log)
        shape, bad = self._shape()
        staging = tempfile.mkdtemp(
            prefix=f"{_STAGING_PREFIX}{os.getpid()}-", dir=cache_dir
        )
        try:
            self.log(
                f"decoding {len(self.found):,} image files from {self.found.root} "
                f"into cache {entry}"
            )
            images_path = os.path.join(staging, "images.npy")
            with _NpyRows(images_path, (len(self.found), *shape)) as images:
                bad.update(self._decode_into(images, bad))
                keep = self._kept(bad)
                if len(keep) < len(self.found):
                    kept_path = os.path.join(staging, "kept.npy")
                    with _NpyRows(kept_path, (len(keep), *shape)) as kept:
                        for row, index in enumerate(keep):
                            kept[row] = images.read(index)
            if len(keep) < len(self.found):
                os.replace(kept_path, images_path)
            _write_entry(staging, key, shape, self._result(None, keep, bad, entry))
            _install(staging, entry, cache_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self._report_skipped(self._skipped(bad))
        loaded = self._load(entry, key, report=False)
        if not isinstance(loaded, FolderImages):
            raise InputError(
                f"cache entry {entry} is unreadable right after it was written "
                f"({loaded}); expected a cache_dir on a working disk."
            )
        return loaded

    def _load(self, entry, key, report=True):
        """The entry's `FolderImages`, or the reason it cannot be trusted. Its
        skipped files are reported (or, with on_bad_image="fail", the first
        one raised) as if they had just been decoded."""
        loaded = _load_entry(entry, key, self.found, self.image_size, self.channels)
        if not isinstance(loaded, FolderImages) or not report:
            return loaded
        if loaded.skipped and self.on_bad_image == "fail":
            path, reason = loaded.skipped[0]
            raise BadImageError(os.path.join(self.found.root, path), reason)
        self.log(f"loaded {len(loaded.paths):,} images from cache {entry}")
        self._report_skipped(loaded.skipped)
        return loaded

    def _shape(self):
        """The output's (height, width, channels), and the files whose
        headers already failed (index -> BadImageError)."""
        if self.image_size is not None and self.channels is not None:
            return (*self.image_size, self.channels), {}
        headers = [None] * len(self.found)

        def probe(index):
            headers[index] = _header(self.path(index))

        bad = self._run(probe, len(self.found), {})
        good = [i for i in range(len(self.found)) if i not in bad]
        if not good:
            self._all_bad(bad)
        channels = self.channels
        if channels is None:
            channels = 1 if all(headers[i][1] for i in good) else 3
        if self.image_size is not None:
            return (*self.image_size, channels), bad
        first = good[0]
        for index in good:
            if headers[index][0] != headers[first][0]:
                (w1, h1), (w2, h2) = headers[first][0], headers[index][0]
                raise InputError(
                    f"images in {self.found.root} differ in size: "
                    f"{self.found.paths[first]} is {h1}x{w1} and "
                    f"{self.found.paths[index]} is {h2}x{w2} (height x width); "
                    "expected one size, or image_size (--image-size) to crop and "
                    "resize them all to one."
                )
        width, height = headers[first][0]
        return (height, width, channels), bad

    def _decode_into(self, images, bad):
        shape = images.shape[1:]
        size = shape[:2] if self.image_size is not None else None

        def decode(index):
            array = _decode(self.path(index), size, shape[2])
            if array.shape != shape:
                raise BadImageError(
                    self.path(index),
                    f"decoded to shape {array.shape}, not the {shape} its header "
                    "declared",
                )
            images[index] = array

        todo = [i for i in range(len(self.found)) if i not in bad]
        return self._run(lambda n: decode(todo[n]), len(todo), bad, todo)

    def _run(self, task, count, bad, indices=None):
        """Runs `task(n)` for n in range(count) on the thread pool, at most
        two tasks per thread pending (bounded memory), and returns the
        BadImageErrors by file index. With on_bad_image="fail", raises the
        first bad file's error in sorted order: submission stops at the first
        error and every earlier file has finished when it is raised."""
        errors = {}
        stop = self.on_bad_image == "fail"
        with concurrent.futures.ThreadPoolExecutor(self.num_workers) as pool:
            pending, submitted = {}, 0
            while pending or (submitted < count and not (stop and errors)):
                while submitted < count and len(pending) < 2 * self.num_workers:
                    if stop and errors:
                        break
                    pending[pool.submit(task, submitted)] = submitted
                    submitted += 1
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    n = pending.pop(future)
                    try:
                        future.result()
                    except BadImageError as error:
                        errors[n if indices is None else indices[n]] = error
        if stop:
            self._fail_on({**bad, **errors})
        return errors

    def _fail_on(self, bad):
        if self.on_bad_image == "fail" and bad:
            raise bad[min(bad)]

    def _all_bad(self, bad):
        first = bad[min(bad)]
        self._report_skipped(self._skipped(bad))
        raise InputError(
            f"all {len(self.found):,} image files in {self.found.root} are "
            f"unreadable (first: {self.found.paths[min(bad)]}: {first.reason}); "
            "expected at least one readable image."
        )

    def _kept(self, bad):
        if len(bad) == len(self.found):
            self._all_bad(bad)
        return [i for i in range(len(self.found)) if i not in bad]

    def _skipped(self, bad):
        return [(self.found.paths[i], bad[i].reason) for i in sorted(bad)]

    def _report_skipped(self, skipped):
        for path, reason in skipped:
            self.log(f"skipped {path}: {reason}")
        if skipped:
            self.log(f"skipped {len(skipped):,} of {len(self.found):,} files")

    def _result(self, images, keep, bad, cache_path):
        labels = None
        if self.found.labels is not None:
            labels = self.found.labels[keep]
        return FolderImages(
            images,
            labels,
            self.found.class_names,
            [self.found.paths[i] for i in keep],
            self._skipped(bad),
            cache_path,
        )

    def _cache_key(self):
        digest = hashlib.sha256()
        settings = [CACHE_FORMAT, self.image_size, self.channels]
        digest.update(json.dumps(settings).encode() + b"\n")
        for index, relative in enumerate(self.found.paths):
            try:
                stat = os.stat(self.path(index))
                signature = [relative, stat.st_size, stat.st_mtime_ns]
            except OSError:
                signature = [relative, -1, -1]  # gone: decoding will skip it
            digest.update(json.dumps(signature).encode() + b"\n")
        return digest.hexdigest()


def _entries(directory, real_root):
    """(name, path, is_folder) of the non-hidden files and folders directly
    in `directory`, following links only to places inside `real_root`."""
    try:
        with os.scandir(directory) as scanned:
            entries = sorted(scanned, key=lambda entry: entry.name)
    except OSError as error:
        raise InputError(
            f"cannot list folder {directory}: {error.strerror}; expected a "
            "readable folder."
        ) from error
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() and not _inside(entry.path, real_root):
            continue  # leads outside the folder being read
        try:
            if entry.is_dir():
                yield entry.name, entry.path, True
            elif entry.is_file():
                yield entry.name, entry.path, False
        except OSError:
            continue  # vanished or a dangling link


def _walk(directory, relative, real_root, seen):
    """Relative "/"-paths of the image files under `directory`, recursively;
    `seen` holds the real paths of folders listed already (link loops)."""
    real = os.path.realpath(directory)
    if real in seen:
        return []
    seen.add(real)
    paths = []
    for name, path, is_folder in _entries(directory, real_root):
        if is_folder:
            paths += _walk(path, f"{relative}/{name}", real_root, seen)
        elif _is_image_name(name):
            paths.append(f"{relative}/{name}")
    return paths


def _inside(path, real_root):
    target = os.path.realpath(path)
    try:
        return os.path.commonpath([target, real_root]) == real_root
    except ValueError:  # another drive (Windows)
        return False


def _is_image_name(name):
    return os.path.splitext(name)[1].lower() in EXTENSIONS


@functools.cache
def _pillow_formats():
    # Pillow registers WEBP only when it was built with libwebp.
    Image.init()
    return tuple(name for name in PILLOW_FORMATS if name in Image.OPEN)


def _open(path):
    """Opens `path` lazily (header only) after the checks that need no
    decoding: not empty, a known format, at most MAX_PIXELS pixels."""
    try:
        if os.path.getsize(path) == 0:
            raise BadImageError(path, "the file is empty (0 bytes)")
        image = Image.open(path, formats=_pillow_formats())
    except BadImageError:
        raise
    except Image.DecompressionBombError as error:
        # Pillow's own limit, checked before ours can look: the same refusal.
        match = re.search(r"\((\d+) pixels\)", str(error))
        count = int(match.group(1)) if match else None
        raise BadImageError(path, _too_many_pixels(count)) from error
    except UnidentifiedImageError as error:
        raise BadImageError(
            path, "not a PNG, JPEG, BMP, GIF or WebP image (Pillow cannot identify it)"
        ) from error
    except OSError as error:
        reason = f"cannot be read ({error.strerror or error})"
        raise BadImageError(path, reason) from error
    except MemoryError:
        raise
    except Exception as error:  # a malformed header some plugin trips on
        raise BadImageError(path, _reason(error)) from error
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise BadImageError(path, _too_many_pixels(width * height, image.size))
    return image


def _too_many_pixels(count, size=None):
    if count is None:
        declared = "too many"
    elif size is None:
        declared = f"{count:,}"
    else:
        declared = f"{size[0]}x{size[1]} = {count:,}"
    return (
        f"its header declares {declared} pixels, more than the {MAX_PIXELS:,} "
        "(8192x8192) decoded at most; refused without decoding"
    )


def _header(path):
    """((width, height), is_grey) from the header alone."""
    with _open(path) as image:
        return image.size, _is_grey(image)


def _is_grey(image):
    if image.mode in GRAYSCALE_MODES:
        return True
    if image.mode not in ("P", "PA") or image.palette is None:
        return False
    if image.palette.mode not in ("RGB", "RGBA"):
        return False
    # The palette as read from the header (getpalette() would decode).
    depth = len(image.palette.mode)
    colours = np.frombuffer(image.palette.palette, np.uint8)
    colours = colours[: len(colours) // depth * depth].reshape(-1, depth)[:, :3]
    return bool((colours == colours[:, :1]).all())


def _decode(path, image_size, channels):
    with _open(path) as image:
        try:
            if image.format == "PNG":
                _verify_png(path)
            if channels is None:
                channels = 1 if _is_grey(image) else 3
            box = None
            if image_size is not None:
                box = shapes.crop_box(image.size, image_size)
                if image.format in ("JPEG", "MPO"):
                    box = _draft(image, box, image_size)
            image.load()
            image = shapes.converted(image, "L" if channels == 1 else "RGB")
            if image_size is not None:
                image = shapes.resized(image, box, image_size)
            array = np.asarray(image, np.uint8)
        except MemoryError:
            raise
        except Exception as error:
            # Pillow's plugins raise OSError, SyntaxError, ValueError,
            # struct.error, EOFError, ... on malformed files.
            raise BadImageError(path, _reason(error)) from error
    return array[..., np.newaxis] if array.ndim == 2 else array


def _verify_png(path):
    # Loading a PNG skips the CRCs of its image data; verify() checks every
    # chunk's. It needs an image object of its own (it leaves it unusable).
    with Image.open(path, formats=("PNG",)) as image:
        image.verify()


def _reason(error):
    text = " ".join(str(error).split()) or type(error).__name__
    if "truncated" in text.lower():
        return f"truncated image data ({text})"
    if isinstance(error, SyntaxError):
        return f"corrupt data ({text})"
    return f"cannot be decoded ({type(error).__name__}: {text})"


def _draft(image, box, image_size):
    """Lets libjpeg decode at a reduced scale; returns `box` in the reduced
    image's coordinates."""
    width, height = image.size
    target_height, target_width = image_size
    requested = (
        int(np.ceil(target_width * JPEG_REDUCING_GAP * width / (box[2] - box[0]))),
        int(np.ceil(target_height * JPEG_REDUCING_GAP * height / (box[3] - box[1]))),
    )
    if requested[0] >= width or requested[1] >= height:
        return box
    image.draft(None, requested)
    scale_x, scale_y = image.size[0] / width, image.size[1] / height
    left, top = round(box[0] * scale_x), round(box[1] * scale_y)
    right = min(image.size[0], max(left + 1, round(box[2] * scale_x)))
    bottom = min(image.size[1], max(top + 1, round(box[3] * scale_y)))
    return (left, top, right, bottom)


class _NpyRows:
    """A new uint8 `.npy` file of `shape`, written row by row with pwrite.

    Not through a writable memmap: its pages would count in this process's
    resident memory until the whole array had been written, where pwrite
    leaves them in the page cache. Threads write distinct rows at once.
    """

    def __init__(self, path, shape):
        # open_memmap writes the header and sizes the (sparse) file.
        header = np.lib.format.open_memmap(path, "w+", np.uint8, shape)
        self.offset, self.shape = header.offset, tuple(shape)
        del header
        self.row_bytes = int(np.prod(shape[1:]))
        self.handle = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        self.lock = threading.Lock()  # for the seek + write without pwrite

    def __setitem__(self, index, row):
        data = memoryview(np.ascontiguousarray(row, np.uint8)).cast("B")
        position = self.offset + index * self.row_bytes
        if hasattr(os, "pwrite"):
            while data:  # a short write is legal, if rare on a file
                written = os.pwrite(self.handle, data, position)
                data, position = data[written:], position + written
        else:
            with self.lock:
                os.lseek(self.handle, position, os.SEEK_SET)
                while data:
                    data = data[os.write(self.handle, data) :]

    def read(self, index):
        with self.lock:
            os.lseek(self.handle, self.offset + index * self.row_bytes, os.SEEK_SET)
            data = b""
            while len(data) < self.row_bytes:
                chunk = os.read(self.handle, self.row_bytes - len(data))
                if not chunk:
                    raise OSError(f"unexpected end of file in row {index}")
                data += chunk
        return np.frombuffer(data, np.uint8).reshape(self.shape[1:])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        os.close(self.handle)


def _physical_memory_bytes():
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _write_entry(staging, key, shape, result):
    if result.labels is not None:
        np.save(os.path.join(staging, "labels.npy"), result.labels, allow_pickle=False)
    meta = {
        "format": CACHE_FORMAT,
        "key": key,
        "count": len(result.paths),
        "shape": [len(result.paths), *shape],
        "paths": result.paths,
        "class_names": result.class_names,
        "skipped": [list(pair) for pair in result.skipped],
    }
    with open(os.path.join(staging, "meta.json"), "w") as file:
        json.dump(meta, file)
    for name in os.listdir(staging):
        files.fsync(os.path.join(staging, name))
    files.fsync(staging)


def _install(staging, entry, cache_dir):
    """Renames the finished `staging` folder to `entry`, replacing a damaged
    entry (moved aside first: a folder cannot be renamed over a full one)."""
    if os.path.exists(entry):
        aside = staging + "-old"  # the staging prefix: removed if we die here
        with contextlib.suppress(FileNotFoundError):  # another process moved it
            os.rename(entry, aside)
        shutil.rmtree(aside, ignore_errors=True)
    try:
        os.rename(staging, entry)
    except OSError:
        if not os.path.isdir(entry):
            raise
        # Another process installed the same entry meanwhile: use theirs.
    files.fsync(cache_dir)


def _load_entry(entry, key, found, image_size, channels):
    """The entry's `FolderImages`, or the reason it cannot be trusted."""
    try:
        with open(os.path.join(entry, "meta.json")) as file:
            meta = json.load(file)
        reason = _meta_problem(meta, key, found, image_size, channels)
        if reason:
            return reason
        images_path = os.path.join(entry, "images.npy")
        images = np.load(images_path, mmap_mode="r", allow_pickle=False)
        if images.dtype != np.uint8 or list(images.shape) != meta["shape"]:
            return (
                f"images.npy holds {images.dtype} {images.shape}; expected uint8 "
                f"{tuple(meta['shape'])}"
            )
        expected_size = images.offset + images.nbytes
        actual_size = os.path.getsize(images_path)
        if actual_size != expected_size:
            return f"images.npy has {actual_size:,} bytes; expected {expected_size:,}"
        labels = None
        if found.class_names is not None:
            labels_path = os.path.join(entry, "labels.npy")
            labels = np.load(labels_path, allow_pickle=False)
            if labels.dtype != np.int32 or labels.shape != (meta["count"],):
                return (
                    f"labels.npy holds {labels.dtype} {labels.shape}; expected "
                    f"int32 ({meta['count']},)"
                )
            if labels.min() < 0 or labels.max() >= len(found.class_names):
                return "labels.npy holds labels outside the classes"
    except (OSError, ValueError, EOFError) as error:
        return " ".join(str(error).split()) or type(error).__name__
    skipped = [tuple(pair) for pair in meta["skipped"]]
    return FolderImages(
        images, labels, meta["class_names"], meta["paths"], skipped, entry
    )


def _meta_problem(meta, key, found, image_size, channels):
    if not isinstance(meta, dict):
        return "meta.json is not an object"
    if meta.get("format") != CACHE_FORMAT or meta.get("key") != key:
        return "meta.json is for another format or folder content"
    count, shape = meta.get("count"), meta.get("shape")
    paths, skipped = meta.get("paths"), meta.get("skipped")
    if not isinstance(count, int) or count < 1:
        return f"meta.json has count {count!r}; expected a positive int"
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or shape[0] != count
        or not all(isinstance(n, int) and n > 0 for n in shape)
        or (image_size is not None and tuple(shape[1:3]) != image_size)
        or (channels is not None and shape[3] != channels)
    ):
        return (
            f"meta.json has shape {shape!r}; expected ({count}, height, width, "
            "channels) matching image_size and channels"
        )
    if not isinstance(paths, list) or len(paths) != count:
        return "meta.json's paths do not match its count"
    if not isinstance(skipped, list) or not all(
        isinstance(pair, list) and len(pair) == 2 for pair in skipped
    ):
        return "meta.json's skipped list is malformed"
    if count + len(skipped) != len(found):
        return "meta.json's counts do not add up to the folder's files"
    if meta.get("class_names") != found.class_names:
        return "meta.json's class names differ from the folder's"
    return None


def _remove_dead_staging(cache_dir, log):
    """Removes staging folders whose building process is gone."""
    for name in os.listdir(cache_dir):
        if not name.startswith(_STAGING_PREFIX):
            continue
        try:
            pid = int(name[len(_STAGING_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not files.process_alive(pid):
            shutil.rmtree(os.path.join(cache_dir, name), ignore_errors=True)
            log(f"removed {os.path.join(cache_dir, name)}, left by dead process {pid}")
