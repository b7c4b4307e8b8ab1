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
"""

import math
import os
import re
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_gan import files
from keras_gan import images
from keras_gan import noise
from keras_gan.errors import InputError

_VERSION = re.compile(r"^[0-9]+$")


def export_generator(generator, path, max_images: int = 4096) -> str:
    """Writes `generator` as a SavedModel with two serving signatures.

    Args:
        generator: a `keras.Model` from `(batch, latent_dim)` latents to images.
        path: folder to write; it must not exist yet.
        max_images: the largest `num_images` the `generate` signature accepts,
            so one request cannot exhaust the server's memory.

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
    latent_dim = int(generator.input_shape[-1])

    def serve(z):
        return {"images": tf.cast(generator(z, training=False), tf.float32)}

    def generate(seed, num_images):
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
            z = noise.latent_noise(num_images, latent_dim, seed)
        return serve(z)

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(
        "serving_default",
        serve,
        input_signature=[tf.TensorSpec((None, latent_dim), tf.float32, name="z")],
    )
    archive.add_endpoint(
        "generate",
        generate,
        input_signature=[
            tf.TensorSpec((), tf.int64, name="seed"),
            tf.TensorSpec((), tf.int32, name="num_images"),
        ],
    )
    archive.write_out(str(path), verbose=False)
    return str(path)


def versions(base_dir) -> list[int]:
    """Returns the integer versions present under `base_dir`, ascending."""
    if not os.path.isdir(base_dir):
        return []
    return sorted(int(name) for name in os.listdir(base_dir) if _VERSION.match(name))


def export_version(generator, base_dir, max_images: int = 4096) -> str:
    """Exports `generator` as the next integer version under `base_dir`.

    The SavedModel is written to a temporary folder inside `base_dir` and
    renamed to `base_dir/<version>` only when complete, so TF Serving never
    loads a half-written version; earlier versions are never touched. A
    generator with non-finite weights is refused.

    Args:
        generator: the generator `keras.Model`.
        base_dir: the model's base path, e.g. `saved_models/<name>`.
        max_images: see `export_generator`.

    Returns:
        The path of the new version folder.
    """
    for variable in generator.weights:
        if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable))):
            raise InputError(
                f"Refusing to export: the generator's weight {variable.path} "
                f"holds NaN or infinite values; expected finite weights."
            )
    # A dotted name: TF Serving ignores folders that are not integers.
    staging = tempfile.mkdtemp(prefix=".export-", dir=files.make_dirs(base_dir))
    try:
        export_generator(generator, os.path.join(staging, "model"), max_images)
        while True:
            version = (versions(base_dir) or [0])[-1] + 1
            target = os.path.join(base_dir, str(version))
            try:
                # Atomic, and fails if another process took this version.
                os.rename(os.path.join(staging, "model"), target)
                return target
            except OSError:
                if not os.path.exists(target):
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_export(path):
    """Loads an exported generator the way TF Serving does (tag `serve`).

    Args:
        path: a version folder, or a model's base folder (its newest version is
            loaded).

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
    try:
        loaded = tf.saved_model.load(path, tags=["serve"])
    except Exception as error:  # corrupt protobufs raise many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(
            f"Cannot load the SavedModel at {path} ({type(error).__name__}: "
            f"{reason[:200]}); expected an intact export."
        ) from error
    if "generate" not in loaded.signatures:
        raise InputError(
            f"{path} has no 'generate' signature (found: "
            f"{', '.join(loaded.signatures) or 'none'}); expected a generator "
            f"exported by keras_gan."
        )
    return loaded


def _default_rows(num_images: int) -> int:
    # The most square grid: the largest divisor not above the square root.
    return max(d for d in range(1, math.isqrt(num_images) + 1) if num_images % d == 0)


def sample_grid(saved_model_dir, output, num_images=64, seed=0, num_rows=None) -> str:
    """Writes a PNG grid of images from an exported generator.

    Args:
        saved_model_dir: a version folder or a model's base folder.
        output: path of the PNG to write (replaced atomically).
        num_images: how many images.
        seed: seed of the latents, as in `GAN.generate`.
        num_rows: rows of the grid; by default as square as possible.

    Returns:
        `output`.
    """
    if not os.fspath(output).lower().endswith(".png"):
        raise InputError(f"--output must name a .png file; received {output}.")
    if num_images < 1:
        raise InputError(f"num_images must be positive; received {num_images}.")
    num_rows = num_rows or _default_rows(num_images)
    if num_images % num_rows:
        raise InputError(
            f"{num_images} images do not fill {num_rows} rows; expected a "
            f"number of rows that divides the number of images."
        )
    served = load_export(saved_model_dir)
    try:
        generated = served.signatures["generate"](
            seed=tf.constant(seed, tf.int64), num_images=tf.constant(num_images)
        )["images"]
    except tf.errors.InvalidArgumentError as error:
        raise InputError(
            f"The export refused the request: {error.message.splitlines()[0]}."
        ) from error
    grid = images.image_grid(generated, num_rows)
    files.make_dirs(os.path.dirname(os.path.abspath(output)))
    files.atomic_write(output, lambda staging: images.save_png(grid, staging))
    return os.fspath(output)
