"""Every architecture of `networks.build`, unconditional and conditional, through
`GAN`: eager and XLA steps, `.keras` round trips, SavedModel exports."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import LATENT_DIM
from PIL import Image

import keras_gan
from keras_gan import export
from keras_gan import images
from keras_gan import networks
from keras_gan.errors import InputError
from keras_gan.evaluation import from_saved_model

NUM_CLASSES = 3
BATCH_SIZE = 4
# Image shapes per architecture (8x8x1 by default, the smallest the ResNet
# builds): the first for the unconditional pair, the last for the conditional
# one. 16x16x3 gives the DCGAN two stride-2 stages and colour.
SHAPES = {"dcgan": [(8, 8, 1), (16, 16, 3)]}


def _cases():
    # (architecture, image_shape, num_classes) and its test id.
    for name, (_, _, supports_classes) in networks.ARCHITECTURES.items():
        shapes = SHAPES.get(name, [(8, 8, 1)])
        yield (name, shapes[0], None), name
        if supports_classes:
            yield (name, shapes[-1], NUM_CLASSES), f"{name}-conditional"


CASES, IDS = zip(*_cases(), strict=True)
# XLA takes ~12 s to compile a ResNet train step on a 2-core CPU.
STEP_CASES = [
    pytest.param(*case, id=id_, marks=[pytest.mark.slow] * (case[0] == "resnet"))
    for case, id_ in zip(CASES, IDS, strict=True)
]


def _batch(image_shape, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    real = rng.uniform(-1, 1, (BATCH_SIZE, *image_shape)).astype("float32")
    if num_classes is None:
        return tf.data.Dataset.from_tensors(real)
    labels = (np.arange(BATCH_SIZE) % num_classes).astype("int32")
    return tf.data.Dataset.from_tensors((real, labels))


def _gan(architecture, image_shape, num_classes, ema_decay=None, seed=0):
    keras.utils.set_random_seed(seed)
    generator, discriminator = networks.build(
        architecture, LATENT_DIM, image_shape, num_classes=num_classes
    )
    return keras_gan.GAN(
        generator,
        discriminator,
        seed=seed,
        num_classes=num_classes,
        ema_decay=ema_decay,
    )


def _assert_finite_losses(history):
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert np.all(np.isfinite(history.history[name])), history.history


@pytest.fixture(scope="module", params=CASES, ids=IDS)
def trained(request):
    """A GAN with an EMA generator after one eager step, and its batch."""
    architecture, image_shape, num_classes = request.param
    gan = _gan(architecture, image_shape, num_classes, ema_decay=0.9)
    dataset = _batch(image_shape, num_classes)
    gan.compile(run_eagerly=True)
    gan.fit(dataset, epochs=1, verbose=0)
    return gan, dataset


@pytest.mark.parametrize(("architecture", "image_shape", "num_classes"), STEP_CASES)
def test_one_eager_and_one_xla_step_give_finite_losses(
    architecture, image_shape, num_classes
):
    gan = _gan(architecture, image_shape, num_classes)
    dataset = _batch(image_shape, num_classes)
    assert gan.generator.output_shape == (None, *image_shape)
    for options in ({"run_eagerly": True}, {"jit_compile": True}):
        gan.compile(**options)
        _assert_finite_losses(gan.fit(dataset, epochs=1, verbose=0))
    assert gan.jit_compile
    assert int(gan.d_optimizer.iterations) == 1  # compile() makes new optimizers


def test_keras_round_trip_is_exact_and_continues_training(trained, tmp_path):
    gan, dataset = trained
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_gan.GAN)
    assert (loaded.num_classes, loaded.ema_decay) == (gan.num_classes, 0.9)
    np.testing.assert_array_equal(loaded.generate(5, seed=3), gan.generate(5, seed=3))
    for name in ("generator", "ema_generator", "discriminator"):
        saved, restored = getattr(gan, name).weights, getattr(loaded, name).weights
        for expected, actual in zip(saved, restored, strict=True):
            np.testing.assert_array_equal(actual, expected, err_msg=expected.path)
    # After a step the average differs from the generator: both were saved.
    assert not all(
        np.array_equal(average, weight)
        for average, weight in zip(
            gan.ema_generator.trainable_weights,
            gan.generator.trainable_weights,
            strict=True,
        )
    )

    # Both copies take the same next step: optimizers and noise were restored.
    assert int(loaded.d_optimizer.iterations) == int(gan.d_optimizer.iterations) == 1
    expected = gan.fit(dataset, epochs=1, verbose=0).history
    continued = loaded.fit(dataset, epochs=1, verbose=0).history
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(continued[name], expected[name], rtol=1e-5)
    np.testing.assert_allclose(
        loaded.generate(3, seed=4), gan.generate(3, seed=4), rtol=1e-5, atol=1e-6
    )


def _export(gan, path):
    return export.export_generator(
        gan.inference_generator, path, max_images=32, num_classes=gan.num_classes
    )


def test_saved_model_as_tf_serving_loads_it(trained, tmp_path):
    gan, _ = trained
    served = tf.saved_model.load(_export(gan, tmp_path / "1"), tags=["serve"])
    assert set(served.signatures) == {"serving_default", "generate"}
    serve = served.signatures["serving_default"]
    generate = served.signatures["generate"]
    image_spec = tf.TensorSpec((None, *gan.image_shape), tf.float32, name="images")
    assert serve.structured_outputs == {"images": image_spec}
    assert generate.structured_outputs == {"images": image_spec}
    serve_inputs = {"z": tf.TensorSpec((None, LATENT_DIM), tf.float32, name="z")}
    generate_inputs = {
        "seed": tf.TensorSpec((), tf.int64, name="seed"),
        "num_images": tf.TensorSpec((), tf.int32, name="num_images"),
    }
    if gan.conditional:
        labels_spec = tf.TensorSpec((None,), tf.int32, name="labels")
        serve_inputs["labels"] = generate_inputs["labels"] = labels_spec
    assert serve.structured_input_signature == ((), serve_inputs)
    assert generate.structured_input_signature == ((), generate_inputs)
    assert export.export_info(tmp_path / "1") == {
        "latent_dim": LATENT_DIM,
        "image_shape": list(gan.image_shape),
        "num_classes": gan.num_classes,
        "class_names": None,
    }

    z = np.random.default_rng(2).normal(size=(5, LATENT_DIM)).astype("float32")
    request = {"seed": tf.constant(7, tf.int64), "num_images": tf.constant(5)}
    if gan.conditional:
        labels = np.array([2, 2, 0, 1, 0], "int32")
        served_images = serve(z=tf.constant(z), labels=tf.constant(labels))
        np.testing.assert_allclose(
            served_images["images"], gan(z, labels=labels), atol=1e-5
        )
        # Given labels, or none: the classes cycle as in GAN.generate.
        for given, expected in ((labels, labels), ([], None)):
            served_images = generate(**request, labels=tf.constant(given, tf.int32))
            np.testing.assert_allclose(
                served_images["images"],
                gan.generate(5, seed=7, labels=expected),
                atol=1e-5,
            )
    else:
        served_images = serve(z=tf.constant(z))["images"]
        np.testing.assert_allclose(served_images, gan(z), atol=1e-5)
        np.testing.assert_allclose(
            generate(**request)["images"], gan.generate(5, seed=7), atol=1e-5
        )

    # Evaluation reads exports too; a batch size of 2 splits the class cycle.
    generate_images = from_saved_model(export.load_export(tmp_path), batch_size=2)
    np.testing.assert_allclose(
        generate_images(5, seed=9), gan.generate(5, seed=9), atol=1e-5
    )


def test_sample_grid_and_the_labels_an_export_takes(trained, tmp_path):
    gan, _ = trained
    path = _export(gan, tmp_path / "1")
    height, width, _ = gan.image_shape
    k = images.readable_scale(height, width)  # grids show small images larger
    output = tmp_path / "grid.png"
    if not gan.conditional:
        with pytest.raises(InputError, match="for conditional exports"):
            export.sample_grid(path, output, num_images=6, labels=[0])
        export.sample_grid(path, output, num_images=6)
        assert Image.open(output).size == (
            k * (3 * (width + 1) - 1),
            k * (2 * (height + 1) - 1),
        )
        return

    # Row r shows class labels[r], drawn as GAN.generate draws them.
    export.sample_grid(path, output, num_images=6, seed=5, labels=[2, 0])
    grid = np.asarray(Image.open(output))
    assert grid.shape[:2] == (k * (2 * (height + 1) - 1), k * (3 * (width + 1) - 1))
    expected = gan.generate(6, seed=5, labels=[2, 2, 2, 0, 0, 0])
    expected = images.image_grid(expected, 2, scale=k).reshape(grid.shape)
    assert np.abs(grid.astype(int) - expected.astype(int)).max() <= 1
    export.sample_grid(path, output, seed=5)  # every class, 8 images each
    assert Image.open(output).size == (
        k * (8 * (width + 1) - 1),
        k * (NUM_CLASSES * (height + 1) - 1),
    )

    before = output.read_bytes()
    with pytest.raises(InputError, match=r"labels must be classes in \[0, 2\]"):
        export.sample_grid(path, output, labels=[0, NUM_CLASSES])
    with pytest.raises(InputError, match="labels must be classes"):
        export.sample_grid(path, output, labels=[-1])
    with pytest.raises(InputError, match="do not split evenly"):
        export.sample_grid(path, output, num_images=5, labels=[0, 1])
    with pytest.raises(InputError, match="refused the request: num_images must be"):
        export.sample_grid(path, output, num_images=34, labels=[0, 1])
    assert output.read_bytes() == before

    # The raw signatures refuse what TF Serving clients could send.
    served = tf.saved_model.load(path, tags=["serve"])
    seed, three = tf.constant(0, tf.int64), tf.constant(3)
    for labels in ([0, 1, NUM_CLASSES], [0, -1, 1], [0, 1], [0, 1, 2, 0], [1]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="labels must"):
            served.signatures["generate"](
                seed=seed, num_images=three, labels=tf.constant(labels)
            )
    z = tf.zeros((2, LATENT_DIM))
    for labels in ([0, NUM_CLASSES], [-1, 0], [1], [0, 1, 2]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="labels must"):
            served.signatures["serving_default"](z=z, labels=tf.constant(labels))


def test_conditional_dcgan_images_depend_on_the_label():
    keras.utils.set_random_seed(0)
    generator, _ = networks.build("dcgan", LATENT_DIM, (8, 8, 1), num_classes=4)
    z = np.repeat(np.random.default_rng(0).normal(size=(1, LATENT_DIM)), 4, axis=0)
    generated = keras.ops.convert_to_numpy(generator([z, np.arange(4)]))
    for first in range(4):
        for second in range(first + 1, 4):
            assert np.abs(generated[first] - generated[second]).max() > 1e-4


def test_conditional_setups_that_cannot_work_are_refused():
    with pytest.raises(InputError, match="'mlp' has no conditional version"):
        networks.build("mlp", LATENT_DIM, (8, 8, 1), num_classes=10)
    generator, discriminator = networks.build(
        "dcgan", LATENT_DIM, (8, 8, 1), num_classes=NUM_CLASSES
    )
    with pytest.raises(InputError, match="num_classes"):
        keras_gan.GAN(generator, discriminator)
    plain_generator, plain_discriminator = networks.build(
        "dcgan", LATENT_DIM, (8, 8, 1)
    )
    with pytest.raises(InputError, match="discriminator with inputs"):
        keras_gan.GAN(generator, plain_discriminator, num_classes=NUM_CLASSES)
    with pytest.raises(InputError, match="num_classes"):
        keras_gan.GAN(plain_generator, plain_discriminator, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("run_eagerly", [True, False])
def test_conditional_gan_needs_labelled_batches(run_eagerly):
    gan = _gan("dcgan", (8, 8, 1), NUM_CLASSES)
    gan.compile(run_eagerly=run_eagerly)
    with pytest.raises(InputError, match=r"\(images, labels\) batches"):
        gan.fit(_batch((8, 8, 1), None), epochs=1, verbose=0)
