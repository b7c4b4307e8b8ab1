"""PNG grids of images from an exported generator (the CLI's `sample`)."""

import math
import os
import re

import numpy as np
import tensorflow as tf

from keras_gan import files
from keras_gan import images
from keras_gan.errors import InputError
from keras_gan.export.info import export_info
from keras_gan.export.loading import load_export


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
