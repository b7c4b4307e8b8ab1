"""Every architecture of `networks.build` at the image sizes users train on: 28x28
grayscale (odd after two halvings, 28 -> 14 -> 7) up to 128x128 colour,
non-square 64x48 included, unconditional and class-conditional, through real
`GAN.fit` steps.

The MLP and DCGAN steps run as compiled functions without XLA (TensorFlow's
choice for convolutional networks on a CPU). The ResNet steps run eagerly:
tracing its train step takes ~10 s of CPU per model on TensorFlow (and XLA
longer on JAX), while an eager step at 28x28 takes ~1 s; `test_architectures`
covers its compiled and XLA steps at 8x8.

TensorFlow only (no `backends` mark): the file passes on JAX and PyTorch too,
but takes ~8 minutes on JAX (eager JAX compiles every op for every new shape,
and XLA takes ~15-60 s per ResNet step) and ~3 on PyTorch on a 2-core CPU.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_gan
from keras_gan import networks
from keras_gan.errors import InputError

LATENT_DIM = 8
NUM_CLASSES = 3
BATCH_SIZE = 2
SHAPES = [(28, 28, 1), (32, 32, 3), (64, 48, 3), (64, 64, 3), (128, 128, 3)]
CONDITIONAL_SHAPES = [(64, 48, 3), (128, 128, 3)]
# ~10 s of CPU per eager ResNet step at 128x128 and batch 2: one step there.
STEPS = {("resnet", (128, 128, 3)): 1}


def _cases():
    for name, (_, _, supports_classes) in networks.ARCHITECTURES.items():
        for shape in SHAPES:
            size = "x".join(map(str, shape))
            yield pytest.param(name, shape, None, id=f"{name}-{size}")
        if supports_classes:
            for shape in CONDITIONAL_SHAPES:
                size = "x".join(map(str, shape))
                yield pytest.param(
                    name, shape, NUM_CLASSES, id=f"{name}-conditional-{size}"
                )


def _dataset(image_shape, num_classes, steps):
    # `steps` batches of uniform [-1, 1] images (and int32 labels).
    count = steps * BATCH_SIZE
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (count, *image_shape)).astype("float32")
    if num_classes is None:
        dataset = tf.data.Dataset.from_tensor_slices(real)
    else:
        labels = (np.arange(count) % num_classes).astype("int32")
        dataset = tf.data.Dataset.from_tensor_slices((real, labels))
    return dataset.batch(BATCH_SIZE, drop_remainder=True)


def _values(model):
    return [keras.ops.convert_to_numpy(weight) for weight in model.trainable_weights]


@pytest.mark.parametrize(("architecture", "image_shape", "num_classes"), _cases())
def test_pair_builds_and_trains(architecture, image_shape, num_classes):
    keras.utils.set_random_seed(0)
    generator, discriminator = networks.build(
        architecture, LATENT_DIM, image_shape, num_classes=num_classes
    )
    assert generator.output_shape == (None, *image_shape)
    assert discriminator.output_shape == (None, 1)
    if num_classes is None:
        assert len(generator.inputs) == len(discriminator.inputs) == 1
    else:
        # [z, labels] and [images, labels], labels int `(batch,)`.
        assert [tuple(x.shape) for x in generator.inputs] == [
            (None, LATENT_DIM),
            (None,),
        ]
        assert tuple(discriminator.inputs[1].shape) == (None,)

    gan = keras_gan.GAN(generator, discriminator, seed=0, num_classes=num_classes)
    assert tuple(gan.image_shape) == image_shape
    eager = architecture == "resnet"
    gan.compile(
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        jit_compile=False,
        run_eagerly=eager,
    )
    before = {"generator": _values(generator), "discriminator": _values(discriminator)}
    steps = STEPS.get((architecture, image_shape), 2)
    history = gan.fit(
        _dataset(image_shape, num_classes, steps), epochs=1, verbose=0
    ).history

    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert np.all(np.isfinite(history[name])), history
    assert int(gan.d_optimizer.iterations) == int(gan.g_optimizer.iterations) == steps
    # Every trainable weight of both players moved, and stayed finite.
    for name, model in (("generator", generator), ("discriminator", discriminator)):
        for weight, old, new in zip(
            model.trainable_weights, before[name], _values(model), strict=True
        ):
            assert np.all(np.isfinite(new)), weight.path
            assert not np.array_equal(old, new), f"{weight.path} did not change"

    images = keras.ops.convert_to_numpy(gan.generate(3, seed=1))
    assert images.shape == (3, *image_shape)
    assert np.all(np.abs(images) <= 1)


@pytest.mark.parametrize("image_shape", [(27, 27, 1), (64, 63, 3), (100, 75, 3)])
@pytest.mark.parametrize("num_classes", [None, NUM_CLASSES])
def test_resnet_refuses_odd_sides_in_one_line(image_shape, num_classes):
    # Its blocks double and halve the height and width: they must be even.
    # The DCGAN and the MLP take these shapes.
    with pytest.raises(InputError) as raised:
        networks.build("resnet", LATENT_DIM, image_shape, num_classes=num_classes)
    message = str(raised.value)
    assert "\n" not in message
    assert str(image_shape) in message and "even and at least 8" in message
    for architecture in ("dcgan", "mlp"):
        generator, discriminator = networks.build(architecture, LATENT_DIM, image_shape)
        assert generator.output_shape == (None, *image_shape)
        assert discriminator.output_shape == (None, 1)
