"""Writing outputs safely: folders checked up front, files replaced atomically."""

import hashlib
import os
import tempfile

from keras_gan.errors import InputError
from keras_gan.errors import UnsafeInputError


def make_dirs(directory) -> str:
    """Creates `directory` if needed and checks that it is writable.

    Returns:
        `directory`.
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as error:
        raise InputError(
            f"Cannot create folder {directory}: {error.strerror}; expected a "
            f"writable location."
        ) from error
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"Folder {directory} is not writable; expected write access.")
    return directory


def atomic_write(path, write) -> None:
    """Calls `write(staging_path)`, then renames the result onto `path`.

    The staging file sits beside `path` with the same extension (Keras picks
    the format from it), so the rename is atomic: readers see the old file or
    the new one, never a torn one, and a failed write leaves the old file.
    The new file is fsynced before the rename, the folder after it.
    """
    directory = os.path.dirname(os.path.abspath(path))
    handle, staging = tempfile.mkstemp(
        dir=directory, prefix=".tmp-", suffix=os.path.splitext(path)[1]
    )
    os.close(handle)
    try:
        write(staging)
        fsync(staging)
        os.replace(staging, path)
        fsync(directory)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def output_folder(root, name) -> str:
    """`root/name`, an output folder that keras_gan writes into, checked first.

    Refused (`UnsafeInputError`) if it, or an entry directly in it, is a
    symbolic link, or if it resolves outside `root`: a link planted there
    would make a run write its files somewhere else.
    """
    path = os.path.join(root, name)
    real_root = os.path.realpath(root)
    if os.path.islink(path) or (
        os.path.exists(path)
        and os.path.commonpath([os.path.realpath(path), real_root]) != real_root
    ):
        raise UnsafeInputError(
            f"{path} is a symbolic link to {os.path.realpath(path)}; expected a "
            f"real folder inside {root} (remove the link or choose another --name)."
        )
    if os.path.isdir(path):
        for entry in os.scandir(path):
            if entry.is_symlink():
                raise UnsafeInputError(
                    f"{entry.path} is a symbolic link to "
                    f"{os.path.realpath(entry.path)}; expected only real files and "
                    f"folders in {path}."
                )
    return path


def sha256(path) -> str:
    """The SHA-256 of a file's contents, as hex, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def process_alive(pid) -> bool:
    """Whether process `pid` exists (another user's counts): staging folders
    named after a dead process can be removed."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would send CTRL_C_EVENT there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def fsync(path) -> None:
    """Flushes a file's or a folder's contents to the disk."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
