"""The generator as a TensorFlow SavedModel for TF Serving.

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

import json
import os
import subprocess
import sys
import tempfile

import keras
import tensorflow as tf

from keras_gan import networks
from keras_gan import noise
from keras_gan import provenance
from keras_gan.errors import InputError


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
