"""The generator as ONNX models, for onnxruntime and other ONNX runtimes.

An ONNX export holds the SavedModel's two signatures as two models:

- `model.onnx`: `z` float32 `(N, latent_dim)` (and `labels` int32 `(N,)`) ->
  `images` float32 `(N, H, W, C)` in [-1, 1].
- `generate.onnx`: `seed` int64 scalar, `num_images` int32 scalar (and
  `labels` int32: `num_images` classes, or none to cycle through 0, 1, ...
  like `GAN.generate`) -> `images`. The latents are drawn in the graph by
  `keras_gan.noise`: its hash's integer bits are the same in ONNX, and its
  `erfinv` is written in ordinary ops, so the images are those of
  `GAN.generate(num_images, seed)`.

beside `assets.extra/keras_gan.json` and the signed manifest of
`keras_gan.provenance`, as in a SavedModel export.

tf2onnx converts each from a TensorFlow function at opset 18, the first with
BitwiseAnd and BitwiseXor (at tf2onnx's default opset the hash's ops are
"Unsupported ops" and tf2onnx still writes a model). Nothing is written until
both models pass three checks: the converter logged no error (it logs
unsupported ops and nodes it failed to convert, and carries on),
`onnx.checker` with shape inference accepts them, and onnxruntime's images of
probe latents (and labels) are within `TOLERANCE` of the Keras generator's.

ONNX has no assertion op, so the ONNX models do not check `num_images` as the
SavedModel does; a class outside [0, num_classes) or a number of labels other
than the number of latents fails in onnxruntime.
"""

import contextlib
import logging
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from keras_gan import networks
from keras_gan import noise
from keras_gan import provenance
from keras_gan.errors import InputError
from keras_gan.export import info
from keras_gan.export import tensorflow_process

# The first opset with BitwiseAnd / BitwiseXor, which `noise.hash32` needs.
OPSET = 18
MODEL_FILE = "model.onnx"
GENERATE_FILE = "generate.onnx"
# Largest difference (max abs, images in [-1, 1]) allowed between onnxruntime
# and the Keras generator: their float32 kernels round differently (measured
# under 1e-7 on the MLP and DCGAN); a wrongly converted graph is off by more.
TOLERANCE = 1e-5


def export_onnx(
    generator,
    path,
    num_classes: int | None = None,
    class_names: list[str] | None = None,
) -> str:
    """Writes `generator` as verified ONNX models `model.onnx` and `generate.onnx`.

    Args:
        generator: a `keras.Model` from `(batch, latent_dim)` latents (and
            labels, for a conditional one) to images. A mixed-precision or
            float64 generator is exported computing in float32 (ONNX runtimes
            lack bfloat16 kernels), from a float32 copy with its weights.
        path: folder to write; it must not exist yet.
        num_classes: the number of classes of a conditional generator.
        class_names: the name of each class (`num_classes` of them), kept in
            `assets.extra/keras_gan.json`.

    Returns:
        `path`, as a string.

    Example:

    ```python
    export_onnx(gan.generator, "/tmp/generator")
    session = onnxruntime.InferenceSession("/tmp/generator/generate.onnx")
    (images,) = session.run(
        ["images"], {"seed": np.array(0), "num_images": np.array(4, "int32")})
    ```
    """
    class_names = info.checked_class_names(class_names, num_classes)
    networks.is_conditional(generator, num_classes)
    generator = _float32(generator)
    if os.path.exists(path):
        raise InputError(f"{path} exists; expected a new folder for the ONNX export.")
    if keras.config.backend() != "tensorflow":
        options = {"num_classes": num_classes, "class_names": class_names}
        tensorflow_process.export_in_tensorflow(generator, path, "onnx", options)
        try:
            # Against this backend's generator too: the TensorFlow process
            # checked the models against its own copy of it.
            _verify(_models_in(path), generator, num_classes)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        return os.fspath(path)
    models = {
        name: _convert(function, signature, name)
        for name, (function, signature) in _functions(generator, num_classes).items()
    }
    difference = _verify(models, generator, num_classes)
    try:
        os.makedirs(path)
        for name, model in models.items():
            with open(os.path.join(path, name), "wb") as file:
                file.write(model)
        latent_dim = int(generator.inputs[0].shape[-1])
        image_shape = [int(size) for size in generator.outputs[0].shape[1:]]
        info.write_info(
            path,
            {
                "format": "onnx",
                "opset": OPSET,
                "latent_dim": latent_dim,
                "image_shape": image_shape,
                "num_classes": num_classes,
                "class_names": class_names,
                "models": {name: _signature(model) for name, model in models.items()},
                "max_abs_difference": difference,
            },
        )
        provenance.sign(path)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    return os.fspath(path)


def _modules():
    try:
        import onnx
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise InputError(
            f"ONNX export needs onnx, onnxruntime and tf2onnx ({error}); expected "
            f"them installed: pip install keras-gan[onnx]."
        ) from None
    return onnx, onnxruntime, tf2onnx


def _float32(generator):
    """`generator`, or a float32 copy of it if any layer computes in another
    dtype."""
    if all(layer.compute_dtype == "float32" for layer in _layers(generator)):
        return generator

    def float32_layer(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    # Layers that build sublayers take the global policy for them.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = keras.models.clone_model(
            generator, clone_function=float32_layer, recursive=True
        )
    finally:
        keras.config.set_dtype_policy(policy)
    copy.set_weights(generator.get_weights())
    return copy


def _layers(model):
    """The layers of `model` and of the models in it, inputs left out."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


def _functions(generator, num_classes):
    """`{file name: (tf.function, input signature)}` of the two models."""
    latent_dim = int(generator.inputs[0].shape[-1])

    def checked(labels, z):
        # ONNX has no assertion op. Reshaped to z's rows, a wrong number of
        # labels fails instead of broadcasting one label over the batch; moved
        # past the last class, a negative class fails in the embedding's
        # Gather as one >= num_classes does (Gather counts negative indices
        # from the end).
        labels = tf.reshape(labels, tf.shape(z)[:1])
        return tf.where(labels < 0, tf.constant(num_classes, tf.int32), labels)

    def images_of(z, labels=None):
        inputs = z if labels is None else [z, checked(labels, z)]
        return {"images": tf.cast(generator(inputs, training=False), tf.float32)}

    z_spec = tf.TensorSpec((None, latent_dim), tf.float32, name="z")
    seed_spec = tf.TensorSpec((), tf.int64, name="seed")
    count_spec = tf.TensorSpec((), tf.int32, name="num_images")
    labels_spec = tf.TensorSpec((None,), tf.int32, name="labels")
    if num_classes is None:

        def generate(seed, num_images):
            return images_of(noise.latent_noise(num_images, latent_dim, seed))

        return {
            MODEL_FILE: (tf.function(images_of), [z_spec]),
            GENERATE_FILE: (tf.function(generate), [seed_spec, count_spec]),
        }

    def generate_with_labels(seed, num_images, labels):
        labels = tf.cond(
            tf.size(labels) > 0,
            lambda: labels,
            lambda: networks.default_labels(num_images, num_classes),
        )
        return images_of(noise.latent_noise(num_images, latent_dim, seed), labels)

    return {
        MODEL_FILE: (tf.function(images_of), [z_spec, labels_spec]),
        GENERATE_FILE: (
            tf.function(generate_with_labels),
            [seed_spec, count_spec, labels_spec],
        ),
    }


def _convert(function, input_signature, name) -> bytes:
    """The serialized ONNX model of `function`, refused if tf2onnx logged an
    error or `onnx.checker` rejects it."""
    onnx, _, tf2onnx = _modules()
    with _converter_errors() as errors:
        try:
            model, _ = tf2onnx.convert.from_function(
                function, input_signature, opset=OPSET
            )
        except Exception as error:  # the converter raises many types
            errors.append(f"{type(error).__name__}: {error}")
    if errors:
        # Its summary names every unsupported op type at once.
        summary = [error for error in errors if error.startswith("Unsupported ops")]
        reason = " ".join((summary or errors)[0].split())[:300]
        more = f" (and {len(errors) - 1} more messages)" if len(errors) > 1 else ""
        raise InputError(
            f"tf2onnx flagged the conversion of {name}: {reason}{more}; expected a "
            f"generator of ops that ONNX opset {OPSET} has. Nothing was exported."
        )
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as error:  # ValidationError, InferenceError
        reason = " ".join(str(error).split())[:300]
        raise InputError(
            f"onnx.checker rejected the converted {name}: {reason}; expected a "
            f"valid opset {OPSET} model. Nothing was exported."
        ) from None
    return model.SerializeToString()


@contextlib.contextmanager
def _converter_errors():
    """Collects the messages tf2onnx logs at ERROR or above, instead of
    printing them."""
    errors = []

    class Collect(logging.Handler):
        def emit(self, record):
            errors.append(record.getMessage())

    logger = logging.getLogger("tf2onnx")
    handler = Collect(logging.ERROR)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    # Its warnings and progress are noise to a user of keras_gan.
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    try:
        yield errors
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _models_in(path) -> dict:
    return {name: os.path.join(path, name) for name in (MODEL_FILE, GENERATE_FILE)}


def _verify(models: dict, generator, num_classes) -> float:
    """Runs both models in onnxruntime on probe inputs and returns the largest
    difference from the Keras generator; refuses one above `TOLERANCE`.

    Args:
        models: `{file name: serialized model or path}`.
    """
    _, onnxruntime, _ = _modules()
    latent_dim = int(generator.inputs[0].shape[-1])
    sessions = {
        name: onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        for name, model in models.items()
    }
    worst = 0.0
    for name, feed, inputs in _probes(latent_dim, num_classes):
        expected = keras.ops.convert_to_numpy(generator(inputs, training=False))
        (images,) = sessions[name].run(["images"], feed)
        difference = float(np.max(np.abs(images - expected.astype(np.float32))))
        if not difference <= TOLERANCE:  # NaN fails too
            raise InputError(
                f"onnxruntime's images from {name} differ from the Keras "
                f"generator's by {difference:.3g} (max abs, {len(images)} probe "
                f"image(s)); expected at most {TOLERANCE:g}. Nothing was exported."
            )
        worst = max(worst, difference)
    return worst


def _probes(latent_dim, num_classes):
    """`(file name, onnxruntime feed, Keras generator inputs)` of the probe
    requests: one image and seven (the batch dimension is dynamic); the first
    request to `generate.onnx` leaves the labels to the model (0, 1, ...)."""
    # The second seed is above 2**32: the int64 seed's high word is dropped
    # in the graph as `GAN.generate` drops it.
    for count, seed in ((1, 0), (7, 2**33 + 12345)):
        z = np.random.default_rng(count).standard_normal((count, latent_dim))
        z = z.astype(np.float32)
        request = {
            "seed": np.array(seed, np.int64),
            "num_images": np.array(count, np.int32),
        }
        drawn = keras.ops.convert_to_numpy(noise.latent_noise(count, latent_dim, seed))
        if num_classes is None:
            yield MODEL_FILE, {"z": z}, z
            yield GENERATE_FILE, request, drawn
            continue
        # Not 0, 1, ...: the labels given must be the ones used.
        labels = (np.arange(count, dtype=np.int32) * 5 + 2) % num_classes
        yield MODEL_FILE, {"z": z, "labels": labels}, [z, labels]
        if count == 1:
            default = keras.ops.convert_to_numpy(
                networks.default_labels(count, num_classes)
            )
            none = np.zeros(0, np.int32)
            yield GENERATE_FILE, {**request, "labels": none}, [drawn, default]
        else:
            yield GENERATE_FILE, {**request, "labels": labels}, [drawn, labels]


def _signature(serialized: bytes) -> dict:
    """`{"inputs": {name: {"dtype", "shape"}}, "outputs": {...}}` of a model,
    read from the model itself; `None` for a dynamic dimension."""
    onnx, _, _ = _modules()
    graph = onnx.load_from_string(serialized).graph

    def described(values):
        return {
            value.name: {
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(
                    value.type.tensor_type.elem_type
                ).name,
                "shape": [
                    dim.dim_value if dim.HasField("dim_value") else None
                    for dim in value.type.tensor_type.shape.dim
                ],
            }
            for value in values
        }

    return {"inputs": described(graph.input), "outputs": described(graph.output)}
