"""SNGAN's ResNet generator and discriminator.

Miyato et al. 2018, "Spectral Normalization for Generative Adversarial
Networks", arXiv:1802.05957, appendix B.4, table 4 (the CIFAR-10 ResNet), and
its class-conditional form of Miyato & Koyama 2018, "cGANs with Projection
Discriminator", arXiv:1802.05637: conditional batch normalisation in the
generator, a projection discriminator. Layer order and initialisers follow the
authors' Chainer code (pfnet-research/sngan_projection).

The number of blocks comes from the image size: the generator starts from the
image's height and width halved `k` times, while both stay integers of at
least 4 (32x32 -> 4x4 and 64x64 -> 4x4 with k = 3 and 4, 48x48 -> 6x6 and
28x28 -> 7x7 with k = 3 and 2), and doubles them in `k` up-blocks. The
discriminator halves the image `max(k - 1, 1)` times (32x32 -> 8x8, as in the
paper) and adds two blocks that keep the size.
"""

import keras
from keras import layers

from keras_gan import layers as gan_layers
from keras_gan import networks
from keras_gan import precision
from keras_gan.errors import InputError
from keras_gan.layers import ConditionalBatchNormalization
from keras_gan.layers import GlobalSumPooling2D
from keras_gan.layers import SpectralNormalization

# Batch normalisation of the authors' code (Chainer's defaults).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 2e-5


def _residual_initializer():
    # Chainer's GlorotUniform(sqrt(2)): Glorot's bound times sqrt(2).
    return keras.initializers.VarianceScaling(2.0, "fan_avg", "uniform")


def _check_arguments(image_shape, latent_dim, num_classes, channels):
    image_shape = networks.check_shapes(image_shape, latent_dim)
    image_shape = tuple(int(size) for size in image_shape)
    if networks.halvings(image_shape)[0] < 1:
        raise InputError(
            f"ResNet networks need an image height and width that are even and "
            f"at least 8; received image_shape {image_shape}."
        )
    networks.check_classes(num_classes)
    if int(channels) < 1:
        raise InputError(f"channels must be a positive integer; received {channels}.")
    return image_shape


def _batch_normalization(x, labels, num_classes, name):
    if labels is None:
        return layers.BatchNormalization(
            momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
        )(x)
    return ConditionalBatchNormalization(
        num_classes, momentum=_BN_MOMENTUM, epsilon=_BN_EPSILON, name=name
    )([x, labels])


def _up_block(x, labels, num_classes, channels, name):
    # BN, ReLU, upsample, conv3x3, BN, ReLU, conv3x3 + conv1x1(upsample(x)).
    h = _batch_normalization(x, labels, num_classes, f"{name}_bn1")
    h = layers.ReLU(name=f"{name}_relu1")(h)
    h = layers.UpSampling2D(2, name=f"{name}_upsample")(h)
    h = gan_layers.Conv2D(
        channels,
        3,
        padding="same",
        kernel_initializer=_residual_initializer(),
        name=f"{name}_conv1",
    )(h)
    h = _batch_normalization(h, labels, num_classes, f"{name}_bn2")
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = gan_layers.Conv2D(
        channels,
        3,
        padding="same",
        kernel_initializer=_residual_initializer(),
        name=f"{name}_conv2",
    )(h)
    shortcut = layers.UpSampling2D(2, name=f"{name}_shortcut_upsample")(x)
    shortcut = gan_layers.Conv2D(channels, 1, name=f"{name}_shortcut_conv")(shortcut)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def _sn_conv(channels, kernel_size, name):
    initializer = _residual_initializer() if kernel_size == 3 else "glorot_uniform"
    conv = gan_layers.Conv2D(
        channels,
        kernel_size,
        padding="same",
        kernel_initializer=initializer,
        name=name,
    )
    return SpectralNormalization(conv, name=name)


def _optimized_block(x, channels, name):
    # The first block sees images: no ReLU before its first convolution, and
    # its shortcut pools before the 1x1 convolution (cheaper, same result).
    h = _sn_conv(channels, 3, f"{name}_conv1")(x)
    h = layers.ReLU(name=f"{name}_relu")(h)
    h = _sn_conv(channels, 3, f"{name}_conv2")(h)
    h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
    shortcut = layers.AveragePooling2D(2, name=f"{name}_shortcut_pool")(x)
    shortcut = _sn_conv(channels, 1, f"{name}_shortcut_conv")(shortcut)
    return layers.Add(name=f"{name}_add")([h, shortcut])


def _down_block(x, channels, downsample, name):
    # ReLU, conv3x3, ReLU, conv3x3, [avg-pool] + [avg-pool(conv1x1(x))].
    h = layers.ReLU(name=f"{name}_relu1")(x)
    h = _sn_conv(channels, 3, f"{name}_conv1")(h)
    h = layers.ReLU(name=f"{name}_relu2")(h)
    h = _sn_conv(channels, 3, f"{name}_conv2")(h)
    shortcut = x
    if downsample or x.shape[-1] != channels:
        shortcut = _sn_conv(channels, 1, f"{name}_shortcut_conv")(shortcut)
    if downsample:
        h = layers.AveragePooling2D(2, name=f"{name}_pool")(h)
        shortcut = layers.AveragePooling2D(2, name=f"{name}_shortcut_pool")(shortcut)
    return layers.Add(name=f"{name}_add")([h, shortcut])


@networks.built_as("generator")
def resnet_generator(
    latent_dim: int,
    image_shape,
    num_classes: int | None = None,
    channels: int = 128,
    name: str = "generator",
) -> keras.Model:
    """SNGAN's ResNet generator: Dense, up-sampling residual blocks, conv, tanh.

    Miyato et al. 2018, arXiv:1802.05957, table 4(a): `z` -> Dense to
    `(H / 2^k, W / 2^k, channels)` -> `k` up-blocks (BN, ReLU, nearest
    upsampling, conv3x3, BN, ReLU, conv3x3, plus a 1x1 convolution of the
    upsampled input) -> BN, ReLU, conv3x3, tanh. The paper's CIFAR-10 model is
    `resnet_generator(128, (32, 32, 3), channels=256)`.

    Args:
        latent_dim: size of the latent vector `z`.
        image_shape: `(height, width, channels)`; height and width even and at
            least 8 (see the module docstring for the number of blocks).
        num_classes: with a number of classes the generator is conditional:
            its blocks use `ConditionalBatchNormalization` (Miyato & Koyama
            2018, arXiv:1802.05637).
        channels: channels of every block.
        name: name of the model.

    Returns:
        A `keras.Model` from `z: (batch, latent_dim)` (and int `labels:
        (batch,)`) to float32 images `(batch, *image_shape)` in [-1, 1].

    Example:

    >>> resnet_generator(128, (32, 32, 3), num_classes=10).output_shape
    (None, 32, 32, 3)
    """
    image_shape = _check_arguments(image_shape, latent_dim, num_classes, channels)
    blocks, (height, width) = networks.halvings(image_shape)
    channels = int(channels)
    z = keras.Input((int(latent_dim),), name="z")
    labels = None
    if num_classes is not None:
        labels = keras.Input((), dtype="int32", name="labels")
        num_classes = int(num_classes)
    x = layers.Dense(height * width * channels, name="project")(z)
    x = layers.Reshape((height, width, channels), name="reshape")(x)
    for index in range(1, blocks + 1):
        x = _up_block(x, labels, num_classes, channels, f"block{index}")
    # (batch, H, W, channels)
    x = _batch_normalization(x, None, None, "output_bn")
    x = layers.ReLU(name="output_relu")(x)
    x = gan_layers.Conv2D(image_shape[-1], 3, padding="same", name="to_image")(x)
    images = layers.Activation("tanh", dtype=precision.full_dtype(), name="images")(x)
    inputs = z if labels is None else [z, labels]
    return keras.Model(inputs, images, name=name)


@networks.built_as("discriminator")
def resnet_discriminator(
    image_shape,
    num_classes: int | None = None,
    channels: int = 128,
    name: str = "discriminator",
) -> keras.Model:
    """SNGAN's ResNet discriminator, spectrally normalised, with projection.

    Miyato et al. 2018, arXiv:1802.05957, table 4(b): an optimised first
    down-block, down-blocks (ReLU, conv3x3, ReLU, conv3x3, average pooling,
    plus an average-pooled 1x1 convolution of the input) until the image is
    halved `max(k - 1, 1)` times, two blocks that keep the size, ReLU, global
    sum pooling and Dense(1). Every convolution, the Dense and the class
    embedding are wrapped in `SpectralNormalization`.

    With `num_classes` it is a projection discriminator (Miyato & Koyama 2018,
    arXiv:1802.05637, eq. 3): logit = Dense(1)(h) + <embed(label), h>, with h
    the pooled features.

    Args:
        image_shape: `(height, width, channels)`; height and width even and at
            least 8.
        num_classes: number of classes for a projection discriminator, or
            `None`.
        channels: channels of every block.
        name: name of the model.

    Returns:
        A `keras.Model` from images `(batch, *image_shape)` (and int `labels:
        (batch,)`) to float32 logits `(batch, 1)`.

    Example:

    >>> resnet_discriminator((32, 32, 3), num_classes=10).output_shape
    (None, 1)
    """
    image_shape = _check_arguments(image_shape, None, num_classes, channels)
    halvings, _ = networks.halvings(image_shape)
    channels = int(channels)
    images = keras.Input(image_shape, name="images")
    x = _optimized_block(images, channels, "block1")
    downsampling_blocks = max(halvings - 1, 1)
    for index in range(2, downsampling_blocks + 3):
        downsample = index <= downsampling_blocks
        x = _down_block(x, channels, downsample, f"block{index}")
    # (batch, H / 2^(k-1), W / 2^(k-1), channels)
    x = layers.ReLU(name="relu")(x)
    features = GlobalSumPooling2D(name="sum_pool")(x)  # (batch, channels)
    logits = SpectralNormalization(
        layers.Dense(1, dtype=precision.full_dtype(), name="logit"), name="logit"
    )(features)
    if num_classes is None:
        return keras.Model(images, logits, name=name)

    labels = keras.Input((), dtype="int32", name="labels")
    embedding = layers.Embedding(
        int(num_classes),
        channels,
        embeddings_initializer="glorot_uniform",
        dtype=precision.full_dtype(),
        name="class_embedding",
    )
    embedded = SpectralNormalization(embedding, name="class_embedding")(labels)
    projection = layers.Dot(axes=-1, dtype=precision.full_dtype(), name="projection")(
        [embedded, features]
    )
    logits = layers.Add(dtype=precision.full_dtype(), name="logit_and_projection")(
        [logits, projection]
    )
    return keras.Model([images, labels], logits, name=name)
