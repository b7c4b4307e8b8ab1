"""Builders of generator and discriminator networks.

Generators map latents `(batch, latent_dim)` to images `(batch, H, W, C)` in
[-1, 1]; discriminators map images to one logit per image, `(batch, 1)`.

Class-conditional networks (`num_classes` given) take a second input, integer
`labels` of shape `(batch,)`: the generator is called on `[z, labels]`, the
discriminator on `[images, labels]`.

Every weight's path starts with its network's role, `generator/` or
`discriminator/` (`generator/hidden/kernel`): the builders build their layers
under `keras.name_scope(role)`, and `GAN.from_config` rebuilds loaded networks
under the same scopes. TensorBoard tags weight histograms by path, and PyTorch
names parameters by it, so the two networks' same-named layers stay apart.
"""

import functools
import math
from collections.abc import Callable

import keras
from keras import layers

from keras_gan import layers as gan_layers
from keras_gan import precision
from keras_gan.errors import InputError


def check_shapes(image_shape, latent_dim=None):
    """Returns `image_shape` as a tuple, or raises a one-line `InputError`."""
    image_shape = tuple(image_shape)
    if len(image_shape) != 3 or any(int(size) < 1 for size in image_shape):
        raise InputError(
            f"image_shape must be (height, width, channels) of positive sizes; "
            f"received {image_shape}."
        )
    if latent_dim is not None and int(latent_dim) < 1:
        raise InputError(
            f"latent_dim must be a positive integer; received {latent_dim}."
        )
    return image_shape


def built_as(role: str) -> Callable[[Callable], Callable]:
    """Decorates a network builder to build its layers under
    `keras.name_scope(role)`, so that its weight paths start with `role/`.

    Args:
        role: the first part of the weight paths, e.g. `"generator"`.

    Example:

    ```python
    @built_as("generator")
    def my_generator(latent_dim, image_shape): ...
    ```
    """
    if not isinstance(role, str) or not role or "/" in role:
        raise InputError(
            f"role must be a name without '/', e.g. 'generator'; received {role!r}."
        )

    def decorate(builder):
        @functools.wraps(builder)
        def build_under_role(*args, **kwargs):
            with keras.name_scope(role):
                return builder(*args, **kwargs)

        return build_under_role

    return decorate


@built_as("generator")
def mlp_generator(
    latent_dim: int, image_shape, hidden_units: int = 128, name: str = "generator"
) -> keras.Model:
    """The generator of the original GAN: z -> Dense ReLU -> Dense tanh.

    Goodfellow et al. 2014, arXiv:1406.2661, with one hidden layer.

    Args:
        latent_dim: size of the latent vector `z`.
        image_shape: `(height, width, channels)` of the images it makes.
        hidden_units: width of the hidden layer.
        name: name of the model.

    Returns:
        A `keras.Model` from `z: (batch, latent_dim)` to images
        `(batch, *image_shape)` in [-1, 1].

    Example:

    >>> generator = mlp_generator(latent_dim=100, image_shape=(28, 28, 1))
    >>> generator.output_shape
    (None, 28, 28, 1)
    """
    image_shape = check_shapes(image_shape, latent_dim)
    z = keras.Input((latent_dim,), name="z")
    x = layers.Dense(hidden_units, activation="relu", name="hidden")(z)
    x = layers.Dense(math.prod(image_shape), activation="tanh", name="pixels")(x)
    images = layers.Reshape(image_shape, name="images")(x)
    return keras.Model(z, images, name=name)


@built_as("discriminator")
def mlp_discriminator(
    image_shape, hidden_units: int = 128, name: str = "discriminator"
) -> keras.Model:
    """The discriminator of the original GAN: flatten -> Dense LeakyReLU -> Dense 1.

    It returns a logit; the design's sigmoid is applied inside the loss, where
    it is numerically stable, and in the `d_real` / `d_fake` metrics.

    Args:
        image_shape: `(height, width, channels)` of the images it judges.
        hidden_units: width of the hidden layer.
        name: name of the model.

    Returns:
        A `keras.Model` from images `(batch, *image_shape)` to logits
        `(batch, 1)`.

    Example:

    >>> discriminator = mlp_discriminator(image_shape=(28, 28, 1))
    >>> discriminator.output_shape
    (None, 1)
    """
    image_shape = check_shapes(image_shape)
    images = keras.Input(image_shape, name="images")
    x = layers.Flatten(name="flatten")(images)
    x = layers.Dense(hidden_units, name="hidden")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name="leaky_relu")(x)
    logits = layers.Dense(1, dtype=precision.full_dtype(), name="logit")(x)
    return keras.Model(images, logits, name=name)


def halvings(image_shape, smallest=4, most=None):
    """How many stride-2 stages a convolutional network gets, and the smallest
    size: halve while both sides stay integers of at least `smallest` (28 ->
    14 -> 7, 32 -> 4), at most `most` times."""
    height, width = image_shape[:2]
    count = 0
    while (
        (most is None or count < most)
        and height % 2 == 0
        and width % 2 == 0
        and min(height, width) // 2 >= smallest
    ):
        height, width, count = height // 2, width // 2, count + 1
    return count, (height, width)


def has_convolutions(model) -> bool:
    """Whether `model` has a convolution layer (wrapped ones included)."""
    return any(
        "Conv" in type(layer).__name__
        or "Conv" in type(getattr(layer, "layer", None)).__name__
        for layer in model._flatten_layers()
    )


def check_classes(num_classes):
    """Raises a one-line `InputError` unless `num_classes` is None or >= 2."""
    if num_classes is not None and int(num_classes) < 2:
        raise InputError(
            f"num_classes must be an integer of at least 2 (or None for an "
            f"unconditional network); received {num_classes}."
        )


def _labels_input():
    return keras.Input((), dtype="int32", name="labels")


def is_conditional(generator, num_classes) -> bool:
    """Whether `generator` takes `[z, labels]`; raises a one-line `InputError`
    unless `num_classes` is given exactly for such a generator."""
    conditional = len(generator.inputs) == 2
    if conditional != (num_classes is not None):
        raise InputError(
            f"The generator takes {len(generator.inputs)} input(s) but "
            f"num_classes={num_classes}; expected num_classes for a "
            f"conditional generator (inputs [z, labels]) and None otherwise."
        )
    return conditional


def default_labels(num_images, num_classes):
    """The labels a conditional generator gets when none are asked for:
    0, 1, ..., num_classes - 1, 0, 1, ... (every class equally often).

    Returns an int32 tensor `(num_images,)`; `num_images` may be a tensor.
    """
    return keras.ops.mod(keras.ops.arange(num_images, dtype="int32"), num_classes)


def projection_logit(features, labels, num_classes, wrap=None, name="logit"):
    """The output of a projection discriminator: psi(h) + embed(y) . h.

    Miyato & Koyama 2018, "cGANs with Projection Discriminator",
    arXiv:1802.05637, eq. 3. Without labels it is the plain linear output.

    Args:
        features: `(batch, features)` tensor h of the discriminator.
        labels: `(batch,)` int labels, or `None` for an unconditional output.
        num_classes: number of classes of the label embedding.
        wrap: optional function applied to each new layer (spectral
            normalisation).
        name: prefix of the new layers' names.

    Returns:
        Float32 logits `(batch, 1)`.
    """
    wrap = wrap or (lambda layer: layer)
    logits = wrap(layers.Dense(1, dtype=precision.full_dtype(), name=name))(features)
    if labels is None:
        return logits
    embedding = wrap(
        layers.Embedding(
            int(num_classes), features.shape[-1], name=f"{name}_class_embedding"
        )
    )(labels)
    projection = layers.Dot(
        axes=-1, dtype=precision.full_dtype(), name=f"{name}_projection"
    )([embedding, features])
    return layers.Add(dtype=precision.full_dtype(), name=f"{name}_sum")(
        [logits, projection]
    )


@built_as("generator")
def dcgan_generator(
    latent_dim: int,
    image_shape,
    num_classes: int | None = None,
    filters: int = 64,
    name: str = "generator",
) -> keras.Model:
    """A DCGAN generator: Dense, then stride-2 transposed convolutions.

    Radford et al. 2015, arXiv:1511.06434, sec. 3: batch normalisation and
    ReLU in every hidden layer, tanh at the output, no pooling. The latent is
    projected to the image's size halved `k` times (28x28 -> 7x7 with k = 2,
    32x32 -> 4x4 and 64x64 -> 4x4 with k = 3 and 4) with `filters * 2**(k-1)`
    channels; each 4x4 transposed convolution doubles the size and halves the
    channels, the last one making the image's channels. The default width
    (64) trains on a CPU: ~15 MFLOP per 28x28 image, 4x less than the
    TensorFlow tutorial's generator.

    Args:
        latent_dim: size of the latent vector `z`.
        image_shape: `(height, width, channels)`; any size, sides halved while
            they stay even and at least 4.
        num_classes: with a number of classes, the generator is conditional:
            a learned label embedding (of `latent_dim` values) is concatenated
            to `z` (Mirza & Osindero 2014, arXiv:1411.1784).
        filters: channels of the last hidden layer.
        name: name of the model.

    Returns:
        A `keras.Model` from `z` (and `labels`) to images in [-1, 1].

    Example:

    >>> dcgan_generator(100, (28, 28, 1)).output_shape
    (None, 28, 28, 1)
    """
    image_shape = check_shapes(image_shape, latent_dim)
    check_classes(num_classes)
    stages, (height, width) = halvings(image_shape, most=4)
    channels = int(filters) * 2 ** max(stages - 1, 0)
    z = keras.Input((latent_dim,), name="z")
    inputs, x = [z], z
    if num_classes is not None:
        labels = _labels_input()
        embedded = layers.Embedding(
            int(num_classes), latent_dim, name="label_embedding"
        )(labels)
        inputs.append(labels)
        x = layers.Concatenate(name="z_and_label")([z, embedded])
    x = layers.Dense(height * width * channels, use_bias=False, name="project")(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU(name="project_relu")(x)
    x = layers.Reshape((height, width, channels), name="reshape")(x)
    for stage in range(1, stages):
        channels //= 2
        x = gan_layers.Conv2DTranspose(
            channels, 4, strides=2, padding="same", use_bias=False, name=f"up{stage}"
        )(x)
        x = layers.BatchNormalization(name=f"up{stage}_bn")(x)
        x = layers.ReLU(name=f"up{stage}_relu")(x)
    if stages:
        x = gan_layers.Conv2DTranspose(
            image_shape[-1], 4, strides=2, padding="same", name=f"up{stages}"
        )(x)
    else:
        x = gan_layers.Conv2D(image_shape[-1], 3, padding="same", name="to_image")(x)
    images = layers.Activation("tanh", dtype=precision.full_dtype(), name="images")(x)
    return keras.Model(inputs if num_classes is not None else z, images, name=name)


@built_as("discriminator")
def dcgan_discriminator(
    image_shape,
    num_classes: int | None = None,
    filters: int = 64,
    name: str = "discriminator",
) -> keras.Model:
    """A DCGAN discriminator: stride-2 convolutions with LeakyReLU, then a logit.

    Radford et al. 2015, arXiv:1511.06434, sec. 3, without batch
    normalisation, which couples the images of a batch and breaks gradient
    penalties (Gulrajani et al. 2017, arXiv:1704.00028, sec. 4). Each 4x4
    convolution halves the size and doubles the channels, mirroring
    `dcgan_generator`.

    Args:
        image_shape: `(height, width, channels)`.
        num_classes: with a number of classes, a projection discriminator
            (see `projection_logit`).
        filters: channels of the first convolution.
        name: name of the model.

    Returns:
        A `keras.Model` from images (and `labels`) to float32 logits `(batch, 1)`.

    Example:

    >>> dcgan_discriminator((28, 28, 1)).output_shape
    (None, 1)
    """
    image_shape = check_shapes(image_shape)
    check_classes(num_classes)
    stages, _ = halvings(image_shape, most=4)
    images = keras.Input(image_shape, name="images")
    x, channels = images, int(filters)
    for stage in range(1, max(stages, 1) + 1):
        x = gan_layers.Conv2D(
            channels, 4, strides=2 if stages else 1, padding="same", name=f"down{stage}"
        )(x)
        x = layers.LeakyReLU(negative_slope=0.2, name=f"down{stage}_leaky_relu")(x)
        channels *= 2
    features = layers.Flatten(name="flatten")(x)
    if num_classes is None:
        return keras.Model(images, projection_logit(features, None, None), name=name)
    labels = _labels_input()
    logits = projection_logit(features, labels, num_classes)
    return keras.Model([images, labels], logits, name=name)


def _resnet_generator(latent_dim, image_shape, num_classes=None, name="generator"):
    from keras_gan import resnet

    return resnet.resnet_generator(latent_dim, image_shape, num_classes, name=name)


def _resnet_discriminator(image_shape, num_classes=None, name="discriminator"):
    from keras_gan import resnet

    return resnet.resnet_discriminator(image_shape, num_classes, name=name)


# name -> (generator builder, discriminator builder, supports num_classes)
ARCHITECTURES = {
    "mlp": (mlp_generator, mlp_discriminator, False),
    "dcgan": (dcgan_generator, dcgan_discriminator, True),
    "resnet": (_resnet_generator, _resnet_discriminator, True),
}


def build(architecture: str, latent_dim: int, image_shape, num_classes=None):
    """Builds the `(generator, discriminator)` pair of a named architecture.

    Args:
        architecture: one of `ARCHITECTURES`: `"mlp"` (the original GAN),
            `"dcgan"` (any image size; `dcgan_generator`), `"resnet"` (SNGAN
            ResNet with spectral normalisation, 8x8 and up, even sides;
            `keras_gan.resnet`).
        latent_dim: size of the latent vector.
        image_shape: `(height, width, channels)`.
        num_classes: for a class-conditional pair (dcgan and resnet).

    Returns:
        A tuple `(generator, discriminator)` of `keras.Model`s.
    """
    if architecture not in ARCHITECTURES:
        raise InputError(
            f"Unknown architecture {architecture!r}; expected one of: "
            f"{', '.join(ARCHITECTURES)}."
        )
    make_generator, make_discriminator, conditional = ARCHITECTURES[architecture]
    if num_classes is None:
        return make_generator(latent_dim, image_shape), make_discriminator(image_shape)
    if not conditional:
        supported = [name for name, entry in ARCHITECTURES.items() if entry[2]]
        raise InputError(
            f"Architecture {architecture!r} has no conditional version; expected "
            f"one of: {', '.join(supported)}."
        )
    return (
        make_generator(latent_dim, image_shape, num_classes),
        make_discriminator(image_shape, num_classes),
    )
