import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_gan import resnet
from keras_gan.errors import InputError
from keras_gan.layers import SpectralNormalization

LATENT_DIM = 8
CHANNELS = 16
NUM_CLASSES = 5


def _inputs(model, batch=2, seed=0):
    # Random inputs for a generator or discriminator, with labels if it has them.
    rng = np.random.default_rng(seed)
    shape = model.inputs[0].shape[1:]
    first = rng.normal(size=(batch, *shape)).astype("float32")
    if len(model.inputs) == 1:
        return first
    return [first, rng.integers(0, NUM_CLASSES, batch).astype("int32")]


@pytest.mark.parametrize("num_classes", [None, NUM_CLASSES])
@pytest.mark.parametrize("image_shape", [(32, 32, 3), (64, 64, 3), (28, 28, 1)])
def test_output_shapes(image_shape, num_classes):
    generator = resnet.resnet_generator(
        LATENT_DIM, image_shape, num_classes, channels=CHANNELS
    )
    discriminator = resnet.resnet_discriminator(
        image_shape, num_classes, channels=CHANNELS
    )
    assert generator.output_shape == (None, *image_shape)
    assert discriminator.output_shape == (None, 1)
    names = ["z", "labels"] if num_classes else ["z"]
    assert [tensor.name for tensor in generator.inputs] == names
    names = ["images", "labels"] if num_classes else ["images"]
    assert [tensor.name for tensor in discriminator.inputs] == names


def test_paper_layout_for_32x32():
    generator = resnet.resnet_generator(128, (32, 32, 3), channels=256)
    discriminator = resnet.resnet_discriminator((32, 32, 3), channels=128)
    # G: 4x4 -> three up-blocks -> 32x32; D: 32x32 -> 8x8, four blocks.
    assert generator.get_layer("reshape").output.shape == (None, 4, 4, 256)
    assert generator.get_layer("block3_add").output.shape == (None, 32, 32, 256)
    assert discriminator.get_layer("sum_pool").input.shape == (None, 8, 8, 128)
    assert discriminator.get_layer("block4_add").output.shape == (None, 8, 8, 128)
    # Sizes of the authors' CIFAR-10 models.
    assert generator.count_params() == 4_280_323
    assert discriminator.count_params() == 1_055_106
    # Every convolution and dense layer of D is spectrally normalised.
    kinds = (layers.Conv2D, layers.Dense, layers.Embedding)
    assert not [layer for layer in discriminator.layers if isinstance(layer, kinds)]
    normalized = [
        layer
        for layer in discriminator.layers
        if isinstance(layer, SpectralNormalization)
    ]
    assert len(normalized) == 3 + 3 + 2 + 2 + 1


def test_generator_outputs_are_images_in_range():
    generator = resnet.resnet_generator(
        LATENT_DIM, (32, 32, 3), NUM_CLASSES, channels=CHANNELS
    )
    z, labels = _inputs(generator)
    images = generator([z * 100, labels], training=True)
    assert keras.backend.standardize_dtype(images.dtype) == "float32"
    images = np.asarray(images)
    assert images.min() >= -1.0 and images.max() <= 1.0


@pytest.mark.parametrize("num_classes", [None, NUM_CLASSES])
def test_xla_forward_and_backward_step(num_classes):
    generator = resnet.resnet_generator(
        LATENT_DIM, (32, 32, 3), num_classes, channels=CHANNELS
    )
    discriminator = resnet.resnet_discriminator(
        (32, 32, 3), num_classes, channels=CHANNELS
    )
    models = generator.trainable_weights + discriminator.trainable_weights

    @tf.function(jit_compile=True)
    def step(z, labels):
        with tf.GradientTape() as tape:
            if num_classes is None:
                logits = discriminator(generator(z, training=True), training=True)
            else:
                images = generator([z, labels], training=True)
                logits = discriminator([images, labels], training=True)
            loss = tf.reduce_mean(tf.nn.softplus(-logits))
        return logits, tape.gradient(loss, models)

    z = np.random.default_rng(0).normal(size=(2, LATENT_DIM)).astype("float32")
    logits, gradients = step(z, np.array([0, 4], "int32"))
    assert logits.dtype == tf.float32 and logits.shape == (2, 1)
    assert all(gradient is not None for gradient in gradients)
    # Class-embedding gradients are IndexedSlices: densify them.
    gradients = [np.asarray(tf.convert_to_tensor(gradient)) for gradient in gradients]
    assert all(np.isfinite(gradient).all() for gradient in gradients)


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    generator = resnet.resnet_generator(
        LATENT_DIM, (32, 32, 3), NUM_CLASSES, channels=CHANNELS
    )
    discriminator = resnet.resnet_discriminator(
        (32, 32, 3), NUM_CLASSES, channels=CHANNELS
    )
    for model in (generator, discriminator):
        # A training call moves BN statistics and spectral-norm vectors u.
        model(_inputs(model, seed=1), training=True)
        path = str(tmp_path / f"{model.name}.keras")
        keras.saving.save_model(model, path)
        loaded = keras.saving.load_model(path)
        inputs = _inputs(model, seed=2)
        np.testing.assert_array_equal(
            np.asarray(loaded(inputs)), np.asarray(model(inputs))
        )


def test_projection_term_is_the_embedding_dot_product():
    discriminator = resnet.resnet_discriminator(
        (32, 32, 3), NUM_CLASSES, channels=CHANNELS
    )
    images = _inputs(discriminator)[0]
    first, second = np.array([1, 1], "int32"), np.array([3, 0], "int32")
    difference = np.asarray(discriminator([images, first])) - np.asarray(
        discriminator([images, second])
    )

    features = keras.Model(
        discriminator.inputs[0], discriminator.get_layer("sum_pool").output
    )
    h = np.asarray(features(images))  # (2, channels)
    table = np.asarray(
        discriminator.get_layer("class_embedding").normalized_kernel()
    )  # (classes, channels), divided by its spectral norm
    expected = np.sum((table[first] - table[second]) * h, axis=-1, keepdims=True)
    np.testing.assert_allclose(difference, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(expected).max() > 1e-3


def test_mixed_precision_keeps_images_and_logits_float32():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        generator = resnet.resnet_generator(
            LATENT_DIM, (32, 32, 3), NUM_CLASSES, channels=8
        )
        discriminator = resnet.resnet_discriminator(
            (32, 32, 3), NUM_CLASSES, channels=8
        )
    finally:
        keras.config.set_dtype_policy(policy)
    z, labels = (tf.constant(array) for array in _inputs(generator))
    images = generator([z, labels])
    logits = discriminator([images, labels])
    assert keras.backend.standardize_dtype(images.dtype) == "float32"
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    conv = discriminator.get_layer("block2_conv1")
    assert conv.layer.compute_dtype == "float16" and conv.u.dtype == "float32"


def test_bad_arguments():
    with pytest.raises(InputError, match="even and at least 8.*\\(33, 33, 3\\)"):
        resnet.resnet_generator(LATENT_DIM, (33, 33, 3))
    with pytest.raises(InputError, match="even and at least 8"):
        resnet.resnet_discriminator((6, 6, 1))
    with pytest.raises(InputError, match="image_shape"):
        resnet.resnet_discriminator((32, 32))
    with pytest.raises(InputError, match="latent_dim"):
        resnet.resnet_generator(0, (32, 32, 3))
    with pytest.raises(InputError, match="num_classes"):
        resnet.resnet_discriminator((32, 32, 3), num_classes=1)
    with pytest.raises(InputError, match="channels"):
        resnet.resnet_generator(LATENT_DIM, (32, 32, 3), channels=0)
