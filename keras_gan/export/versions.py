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
from keras_gan.errors import InputError
from keras_gan.export.saved_model import export_generator

_VERSION = re.compile(r"^[0-9]+$")


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
) -> str:
    """Exports `generator` as the next integer version under `base_dir`.

    The SavedModel is written to a temporary folder inside `base_dir` and
    renamed to `base_dir/<version>` only when complete, so TF Serving never
    loads a half-written version; earlier versions are never touched. The
    number is one above every version present and every version ever
    exported here (`.last_version`), picked under a lock: concurrent
    exporters get distinct complete versions and a deleted version's number
    is not reused. Staging folders of exporters that died are removed. A
    generator with non-finite weights is refused.

    Args:
        generator: the generator `keras.Model`.
        base_dir: the model's base path, e.g. `saved_models/<name>`.
        max_images, num_classes, class_names: see `export_generator`.

    Returns:
        The path of the new version folder.
    """
    for variable in generator.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
            raise InputError(
                f"Refusing to export: the generator's weight {variable.path} "
                f"holds NaN or infinite values; expected finite weights."
            )
    files.make_dirs(base_dir)
    _remove_dead_staging(base_dir)
    # A dotted name: TF Serving ignores folders that are not integers.
    staging = tempfile.mkdtemp(prefix=f".export-{os.getpid()}-", dir=base_dir)
    try:
        export_generator(
            generator,
            os.path.join(staging, "model"),
            max_images,
            num_classes,
            class_names,
        )
        with _claiming(base_dir):
            version = max([*versions(base_dir), _high_water(base_dir)]) + 1
            target = os.path.join(base_dir, str(version))
            os.rename(os.path.join(staging, "model"), target)
            files.atomic_write(
                os.path.join(base_dir, HIGH_WATER_FILE),
                lambda path: _write_text(path, f"{version}\n"),
            )
            return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
