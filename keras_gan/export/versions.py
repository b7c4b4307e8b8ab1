"""Versioned export folders: `<base>/<version>/` with integer versions.

TF Serving serves the newest version and ignores folders whose names are not
integers, so a version is written under a temporary dotted name and renamed
into place in one atomic step.
"""

import contextlib
import fcntl
import os
import re
import shutil
import tempfile

import keras
import numpy as np

from keras_gan import files
from keras_gan.choices import EXPORT_FORMATS
from keras_gan.errors import InputError
from keras_gan.export.onnx import export_onnx
from keras_gan.export.saved_model import export_generator

_VERSION = re.compile(r"^[0-9]+$")
FORMATS = EXPORT_FORMATS
# ONNX versions' folder inside a model's base folder.
ONNX_FOLDER = "onnx"


def versions(base_dir) -> list[int]:
    """Returns the integer versions present under `base_dir`, ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if _VERSION.match(name))


def export_version(
    generator,
    base_dir,
    max_images: int = 4096,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
    format: str = "saved_model",
) -> str:
    """Exports `generator` as the next integer version under `base_dir`.

    A SavedModel version is `base_dir/<version>/`, where TF Serving finds it;
    an ONNX version is `base_dir/onnx/<version>/` (TF Serving ignores the
    folder `onnx`), numbered on its own. The version is written to a
    temporary folder beside it and renamed into place only when complete, so
    TF Serving never loads a half-written version; earlier versions are never
    touched. The number is one above every version present and every version
    ever exported there (`.last_version`), picked under a lock: concurrent
    exporters get distinct complete versions and a deleted version's number
    is not reused. Staging folders of exporters that died are removed. A
    generator with non-finite weights is refused; a failed export leaves no
    folder behind.

    Args:
        generator: the generator `keras.Model`.
        base_dir: the model's base path, e.g. `saved_models/<name>`.
        max_images, num_classes, class_names: see `export_generator`
            (`max_images` is the SavedModel's only: ONNX cannot check it).
        format: `"saved_model"` (`export_generator`) or `"onnx"`
            (`export_onnx`: `model.onnx` and `generate.onnx`, verified in
            onnxruntime).

    Returns:
        The path of the new version folder.
    """
    if format not in FORMATS:
        raise InputError(
            f"Unknown export format {format!r}; expected one of {', '.join(FORMATS)}."
        )
    for variable in generator.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
            raise InputError(
                f"Refusing to export: the generator's weight {variable.path} "
                f"holds NaN or infinite values; expected finite weights."
            )
    if format == "onnx":
        return write_version(
            files.output_folder(base_dir, ONNX_FOLDER),
            lambda path: export_onnx(generator, path, num_classes, class_names),
        )
    return write_version(
        base_dir,
        lambda path: export_generator(
            generator, path, max_images, num_classes, class_names
        ),
    )


def write_version(base_dir, write) -> str:
    """Calls `write(path)` on a new staging folder's `path` and renames it to
    `base_dir/<the next version>` (see `export_version`).

    Returns:
        The path of the new version folder.
    """
    base_dir = os.fspath(base_dir)
    created = _missing_folders(base_dir)
    files.make_dirs(base_dir)
    _remove_dead_staging(base_dir)
    # A dotted name: TF Serving ignores folders that are not integers.
    staging = tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=base_dir)
    try:
        write(os.path.join(staging, "model"))
        with _claiming(base_dir):
            version = max([*versions(base_dir), _high_water(base_dir)]) + 1
            target = os.path.join(base_dir, str(version))
            os.rename(os.path.join(staging, "model"), target)
            files.atomic_write(
                os.path.join(base_dir, HIGH_WATER_FILE),
                lambda path: _write_text(path, f"{version}\n"),
            )
            return target
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # unless another exporter wrote into it since
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _missing_folders(path) -> list[str]:
    """`path` and those of its parents that do not exist, deepest first."""
    missing = []
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        missing.append(path)
        path = os.path.dirname(path)
    return missing


# The highest version ever exported here: a deleted newest version's number is
# never used again (TF Serving caches by version number).
HIGH_WATER_FILE = ".last_version"


def _high_water(base_dir) -> int:
    try:
        with open(os.path.join(base_dir, HIGH_WATER_FILE)) as file:
            return int(file.read().strip() or 0)
    except FileNotFoundError:
        return 0
    except ValueError:
        raise InputError(
            f"{os.path.join(base_dir, HIGH_WATER_FILE)} is not a version number; "
            f"expected the file keras_gan writes (delete it only with the versions)."
        ) from None


def _write_text(path, text):
    with open(path, "w") as file:
        file.write(text)


@contextlib.contextmanager
def _claiming(base_dir):
    """Holds `base_dir`'s version numbers: one exporter at a time picks the
    next number and renames its complete export into place."""
    handle = os.open(os.path.join(base_dir, ".export.lock"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def _remove_dead_staging(base_dir):
    """Removes the `.export-<pid>-*` folders of processes that have ended."""
    for name in os.listdir(base_dir):
        match = re.match(r"^\.export-(\d+)-", name)
        if match and not files.process_alive(int(match.group(1))):
            shutil.rmtree(os.path.join(base_dir, name), ignore_errors=True)
