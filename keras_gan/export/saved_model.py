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

import keras
import tensorflow as tf

from keras_gan import networks
from keras_gan import noise
from keras_gan import provenance
from keras_gan.export import info
from keras_gan.export import tensorflow_process


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
    class_names = info.checked_class_names(class_names, num_classes)
    if keras.config.backend() != "tensorflow":
        options = {"max_images": max_images, "num_classes": num_classes}
        return tensorflow_process.export_in_tensorflow(
            generator, path, "saved_model", {**options, "class_names": class_names}
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
    info.write_info(
        path,
        {
            "latent_dim": latent_dim,
            "image_shape": image_shape,
            "num_classes": num_classes,
            "class_names": class_names,
        },
    )
    provenance.sign(path)
    return str(path)
