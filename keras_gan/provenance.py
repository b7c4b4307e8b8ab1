"""Which SavedModels keras_gan wrote: a signed manifest in every export.

A SavedModel is a TensorFlow graph, and a graph can hold any op (read or write
files, start processes): loading one and calling its signature runs whatever
its author put in it. `sample` and `evaluate` therefore load only exports that
keras_gan wrote, unless the user says `--trust`.

At export time keras_gan lists every file of the export with its size and
SHA-256 in `assets.extra/keras_gan_manifest.json` and authenticates the list
with an HMAC-SHA256 under a key of this user (`~/.keras_gan/export.key`,
created on first use, readable only by its owner; `KERAS_GAN_HOME` moves it).
A checksum alone would be forgeable by whoever wrote the foreign export; the
key makes the manifest say "written by keras_gan, for this user". An export
copied to another machine verifies there once the key file is copied along
(or is loaded with `--trust`). TF Serving ignores the manifest.
"""

import contextlib
import hashlib
import hmac
import json
import os
import tempfile

from keras_gan import files
from keras_gan.errors import UnsafeInputError

MANIFEST = os.path.join("assets.extra", "keras_gan_manifest.json")
_FORMAT = 1
_KEY_BYTES = 32


def key_path() -> str:
    """The file of this user's export key (`$KERAS_GAN_HOME/export.key`)."""
    home = os.environ.get("KERAS_GAN_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras_gan"
    )
    return os.path.join(home, "export.key")


def sign(export_dir) -> None:
    """Writes the signed manifest of the export in `export_dir` (its last file)."""
    export_dir = os.fspath(export_dir)
    listed = _files_of(export_dir)
    manifest = {"format": _FORMAT, "files": listed, "hmac": _mac(_key(), listed)}
    path = os.path.join(export_dir, MANIFEST)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        json.dump(manifest, file, indent=1, sort_keys=True)


def verify(export_dir) -> None:
    """Checks that keras_gan wrote the export in `export_dir`, unchanged.

    Raises:
        UnsafeInputError: no manifest, a manifest of another key, or a file
            added, removed or changed since the export was written.
    """
    export_dir = os.fspath(export_dir)
    try:
        with open(os.path.join(export_dir, MANIFEST)) as file:
            manifest = json.load(file)
        listed, mac = manifest["files"], manifest["hmac"]
        if manifest.get("format") != _FORMAT or not isinstance(listed, dict):
            raise ValueError
    except FileNotFoundError:
        _refuse(export_dir, f"it has no {MANIFEST}")
    except (OSError, ValueError, KeyError, TypeError):
        _refuse(export_dir, f"its {MANIFEST} is unreadable")
    key = _key(create=False)
    if key is None or not hmac.compare_digest(str(mac), _mac(key, listed)):
        _refuse(
            export_dir,
            f"its manifest is not signed with this user's key {key_path()}",
        )
    found = _files_of(export_dir)
    for name in sorted(set(listed) | set(found)):
        if name not in found:
            _refuse(export_dir, f"{name} is missing")
        if name not in listed:
            _refuse(export_dir, f"{name} was added after the export")
        if found[name] != listed[name]:
            _refuse(export_dir, f"{name} changed since the export (SHA-256 differs)")


def _refuse(export_dir, reason):
    raise UnsafeInputError(
        f"Refusing to load {export_dir}: {reason}; expected an unchanged export "
        f"that keras_gan wrote (load a SavedModel from elsewhere only if you trust "
        f"its author, with --trust)."
    )


def _files_of(export_dir) -> dict:
    """`{relative path: {"size", "sha256"}}` of every file but the manifest."""
    listed = {}
    for folder, subfolders, names in os.walk(export_dir):
        subfolders.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, export_dir)
            if relative == MANIFEST:
                continue
            listed[relative] = {
                "size": os.path.getsize(path),
                "sha256": files.sha256(path),
            }
    return listed


def _mac(key: bytes, listed: dict) -> str:
    canonical = json.dumps(listed, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _key(create: bool = True) -> bytes | None:
    """This user's key; created (0600, atomically) on first use if `create`."""
    path = key_path()
    try:
        with open(path, "rb") as file:
            key = file.read()
        if len(key) == _KEY_BYTES:
            return key
        if not create:
            return None
        raise UnsafeInputError(
            f"{path} holds {len(key)} bytes; expected a {_KEY_BYTES}-byte key "
            f"written by keras_gan (delete it to make a new one; exports signed "
            f"with it will then need --trust)."
        )
    except FileNotFoundError:
        if not create:
            return None
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".key-")
    try:
        os.write(handle, os.urandom(_KEY_BYTES))
        os.fsync(handle)
        os.close(handle)
        # link() fails if another process made the key first: theirs wins.
        with contextlib.suppress(FileExistsError):
            os.link(staging, path)
    finally:
        os.remove(staging)
    return _key(create=False)
