"""The generator as a TensorFlow SavedModel for TF Serving.

Layout: `<base>/<version>/` with integer versions; TF Serving serves the newest
and ignores folders whose names are not integers, so a version is written under
a temporary dotted name and renamed into place in one atomic step.

Signatures (tag `serve`):

- `serving_default`: `z` float32 `(None, latent_dim)` -> `images` float32
  `(None, H, W, C)` in [-1, 1].
- `generate`: `seed` int64 scalar, `num_images` int32 scalar -> `images`; the
  latents are drawn in the graph exactly as `GAN.generate(num_images, seed)`
  draws them.

A class-conditional generator's signatures take `labels` too: int32
`(None,)`, one class per image; for `generate`, either `num_images` labels or
none (an empty vector), which cycles through the classes 0, 1, ... like
`GAN.generate(..., labels=None)`. `assets.extra/keras_gan.json` records the
latent size, image shape and number of classes (TF Serving ignores it).
"""

import contextlib
import fcntl
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_gan import files
from keras_gan import images
from keras_gan import networks
from keras_gan import noise
from keras_gan import provenance
from keras_gan.errors import InputError

_VERSION = re.compile(r"^[0-9]+$")


def export_generator(
    generator,
    path,
    max_images: int = 4096,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
) -> str:
    """Writes `generator` as a SavedModel with two serving signatures.

    Args:
        generator: a `keras.Model` from `(batch, latent_dim)` latents (and
            labels, for a conditional one) to images.
        path: folder to write; it must not exist yet.
        max_images: the largest `num_images` the `generate` signature accepts,
            so one request cannot exhaust the server's memory.
        num_classes: the number of classes of a conditional generator.
        class_names: the name of each class (`num_classes` of them), kept in
            `assets.extra/keras_gan.json`; `sample --labels` accepts them.

    Returns:
        `path`, as a string.

    Example:

    ```python
    export_generator(gan.generator, "/tmp/generator")
    served = tf.saved_model.load("/tmp/generator")
    images = served.signatures["generate"](
        seed=tf.constant(0, tf.int64), num_images=tf.constant(4))["images"]
    ```
    """
    if class_names is not None:
        class_names = [str(name) for name in class_names]
        if num_classes is None or len(class_names) != num_classes:
            raise InputError(
                f"{len(class_names)} class names for a generator of "
                f"{num_classes} classes; expected one name per class."
            )
    if keras.config.backend() != "tensorflow":
        return _export_with_tensorflow(
            generator, path, max_images, num_classes, class_names
        )
    conditional = networks.is_conditional(generator, num_classes)
    latent_dim = int(generator.inputs[0].shape[-1])
    image_shape = [int(size) for size in generator.outputs[0].shape[1:]]

    def checked_labels(labels, z):
        checks = [
            # Without it, one label would broadcast over a batch of latents.
            tf.debugging.assert_equal(
                tf.size(labels),
                tf.shape(z)[0],
                message="labels must hold one class per row of z",
            ),
            tf.debugging.assert_non_negative(labels, message="labels must be >= 0"),
            tf.debugging.assert_less(
                labels,
                tf.constant(num_classes, tf.int32),
                message=f"labels must be below {num_classes}",
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(labels)

    def images_of(z, labels=None):
        inputs = z if labels is None else [z, checked_labels(labels, z)]
        return {"images": tf.cast(generator(inputs, training=False), tf.float32)}

    def latents(seed, num_images):
        checks = [
            tf.debugging.assert_positive(
                num_images, message="num_images must be positive"
            ),
            tf.debugging.assert_less_equal(
                num_images,
                tf.constant(max_images, tf.int32),
                message=f"num_images must be at most {max_images}",
            ),
        ]
        with tf.control_dependencies(checks):
            return noise.latent_noise(num_images, latent_dim, seed)

    z_spec = tf.TensorSpec((None, latent_dim), tf.float32, name="z")
    seed_spec = tf.TensorSpec((), tf.int64, name="seed")
    count_spec = tf.TensorSpec((), tf.int32, name="num_images")
    labels_spec = tf.TensorSpec((None,), tf.int32, name="labels")
    archive = keras.export.ExportArchive()
    archive.track(generator)
    if conditional:

        def generate(seed, num_images, labels):
            z = latents(seed, num_images)
            given = tf.size(labels) > 0
            check = tf.debugging.Assert(
                tf.logical_or(tf.logical_not(given), tf.size(labels) == num_images),
                ["labels must be empty or hold num_images values"],
            )
            with tf.control_dependencies([check]):
                labels = tf.cond(
                    given,
                    lambda: labels,
                    lambda: networks.default_labels(num_images, num_classes),
                )
            return images_of(z, labels)

        archive.add_endpoint(
            "serving_default", images_of, input_signature=[z_spec, labels_spec]
        )
        archive.add_endpoint(
            "generate", generate, input_signature=[seed_spec, count_spec, labels_spec]
        )
    else:
        archive.add_endpoint("serving_default", images_of, input_signature=[z_spec])
        archive.add_endpoint(
            "generate",
            lambda seed, num_images: images_of(latents(seed, num_images)),
            input_signature=[seed_spec, count_spec],
        )
    archive.write_out(str(path), verbose=False)
    extra = os.path.join(str(path), "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "keras_gan.json"), "w") as file:
        json.dump(
            {
                "latent_dim": latent_dim,
                "image_shape": image_shape,
                "num_classes": num_classes,
                "class_names": class_names,
            },
            file,
        )
    provenance.sign(path)
    return str(path)


def _export_with_tensorflow(generator, path, max_images, num_classes, class_names):
    # A SavedModel is a TensorFlow graph: on the JAX and PyTorch backends the
    # generator's architecture and weights go through a `.keras` file to a
    # TensorFlow-backend process that writes the same export the TensorFlow
    # backend writes (the same graph, the same signatures, no jax2tf custom
    # calls for TF Serving to support).
    path = os.fspath(path)
    with tempfile.TemporaryDirectory(prefix=".keras-gan-export-") as scratch:
        model_file = os.path.join(scratch, "generator.keras")
        generator.save(model_file)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-m", "keras_gan.export", model_file, path]
        command += [str(max_images), "" if num_classes is None else str(num_classes)]
        command += [json.dumps(class_names)]
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or ["no output"]
        raise InputError(
            f"Exporting through TensorFlow failed: {lines[-1][:300]}; expected "
            f"a generator that TensorFlow can load."
        )
    return path


def export_info(path) -> dict:
    """Reads `assets.extra/keras_gan.json` of an export (`{}` if absent)."""
    try:
        with open(os.path.join(os.fspath(path), "assets.extra", "keras_gan.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


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


def load_export(path, trust: bool = False):
    """Loads an exported generator the way TF Serving does (tag `serve`).

    A SavedModel's graph can hold any op, so only exports that keras_gan
    wrote, unchanged, are loaded (see `keras_gan.provenance`) unless `trust`.

    Args:
        path: a version folder, or a model's base folder (its newest version is
            loaded).
        trust: load a SavedModel that keras_gan did not write (or that changed
            since): only for exports whose author you trust.

    Returns:
        The loaded SavedModel; call `.signatures["generate"]` or
        `.signatures["serving_default"]`.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(f"{path} is not a folder; expected an exported SavedModel.")
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        found = versions(path)
        if not found:
            raise InputError(
                f"{path} holds no saved_model.pb and no integer version folders; "
                f"expected saved_models/<name>/<version> or saved_models/<name>."
            )
        path = os.path.join(path, str(found[-1]))
    if not trust:
        provenance.verify(path)
    try:
        loaded = tf.saved_model.load(path, tags=["serve"])
    except Exception as error:  # corrupt protobufs raise many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(
            f"Cannot load the SavedModel at {path} ({type(error).__name__}: "
            f"{reason[:200]}); expected an intact export."
        ) from error
    loaded.keras_gan_path = path
    if "generate" not in loaded.signatures:
        raise InputError(
            f"{path} has no 'generate' signature (found: "
            f"{', '.join(loaded.signatures) or 'none'}); expected a generator "
            f"exported by keras_gan."
        )
    return loaded


def _class_index(label, names):
    """A class given by index (int or digits) or, when the export has class
    names, by name."""
    if isinstance(label, str) and not label.strip().lstrip("-").isdigit():
        if names and label.strip() in names:
            return names.index(label.strip())
        known = f"one of {names}" if names else "integers (this export has no names)"
        raise InputError(f"unknown class {label!r}; expected {known}.")
    return int(label)


def _default_rows(num_images: int) -> int:
    # The most square grid: the largest divisor not above the square root.
    return max(d for d in range(1, math.isqrt(num_images) + 1) if num_images % d == 0)


def sample_grid(
    saved_model_dir,
    output,
    num_images=None,
    seed=0,
    num_rows=None,
    labels=None,
    trust: bool = False,
) -> str:
    """Writes a PNG grid of images from an exported generator.

    Args:
        saved_model_dir: a version folder or a model's base folder.
        output: path of the PNG to write (replaced atomically).
        num_images: how many images; by default 64, or 8 per class for a
            conditional export.
        seed: seed of the latents, as in `GAN.generate`.
        num_rows: rows of the grid; by default as square as possible, or one
            row per class for a conditional export.
        labels: conditional exports only: the classes to show, one row each
            (default: every class), as indices or, for an export that has
            class names, names.
        trust: see `load_export`.

    Returns:
        `output`.
    """
    if not os.fspath(output).lower().endswith(".png"):
        raise InputError(f"--output must name a .png file; received {output}.")
    served = load_export(saved_model_dir, trust)
    num_classes = export_info(served.keras_gan_path).get("num_classes")
    conditional = (
        "labels" in served.signatures["generate"].structured_input_signature[1]
    )
    if conditional and not num_classes:
        raise InputError(
            f"{served.keras_gan_path} is a conditional export without "
            f"assets.extra/keras_gan.json; expected an export written by keras_gan."
        )
    request = {"seed": tf.constant(seed, tf.int64)}
    if conditional:
        names = export_info(served.keras_gan_path).get("class_names")
        labels = list(range(num_classes)) if labels is None else list(labels)
        labels = [_class_index(label, names) for label in labels]
        if not labels or min(labels) < 0 or max(labels) >= num_classes:
            raise InputError(
                f"labels must be classes in [0, {num_classes - 1}]; received {labels}."
            )
        per_class = (num_images or 8 * len(labels)) // len(labels)
        if per_class < 1 or (num_images and num_images % len(labels)):
            raise InputError(
                f"{num_images} images do not split evenly into {len(labels)} "
                f"class rows; expected a multiple of {len(labels)}."
            )
        num_images, num_rows = per_class * len(labels), len(labels)
        request["labels"] = tf.constant(np.repeat(labels, per_class), tf.int32)
    elif labels is not None:
        raise InputError(
            "--labels is for conditional exports; this generator is unconditional."
        )
    num_images = num_images or 64
    if num_images < 1:
        raise InputError(f"num_images must be positive; received {num_images}.")
    num_rows = num_rows or _default_rows(num_images)
    if num_images % num_rows:
        raise InputError(
            f"{num_images} images do not fill {num_rows} rows; expected a "
            f"number of rows that divides the number of images."
        )
    request["num_images"] = tf.constant(num_images)
    try:
        generated = served.signatures["generate"](**request)["images"]
    except tf.errors.InvalidArgumentError as error:
        # The message's first line is "Graph execution error:"; the reason is
        # the first bracketed part of its "assertion failed: [...]" line.
        reason = re.search(r"assertion failed: \[([^\]]*)\]", error.message)
        reason = reason.group(1) if reason else error.message.strip().splitlines()[0]
        raise InputError(f"The export refused the request: {reason}.") from error
    grid = images.image_grid(
        generated, num_rows, scale=images.readable_scale(*generated.shape[1:3])
    )
    files.make_dirs(os.path.dirname(os.path.abspath(output)))
    files.atomic_write(output, lambda staging: images.save_png(grid, staging))
    return os.fspath(output)


if __name__ == "__main__":
    # `python -m keras_gan.export GENERATOR.keras PATH MAX_IMAGES NUM_CLASSES
    # CLASS_NAMES_JSON`, run by `export_generator` on the JAX and PyTorch
    # backends.
    model_file, target, max_images, num_classes, class_names = sys.argv[1:6]
    export_generator(
        keras.saving.load_model(model_file, compile=False),
        target,
        int(max_images),
        int(num_classes) if num_classes else None,
        json.loads(class_names),
    )
