"""Builders of generator and discriminator networks.

Generators map latents `(batch, latent_dim)` to images `(batch, H, W, C)` in
[-1, 1]; discriminators map images to one logit per image, `(batch, 1)`.
"""

import math

import keras
from keras import layers

from keras_gan.errors import InputError


def _check_shapes(image_shape, latent_dim=None):
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
    image_shape = _check_shapes(image_shape, latent_dim)
    z = keras.Input((latent_dim,), name="z")
    x = layers.Dense(hidden_units, activation="relu", name="hidden")(z)
    x = layers.Dense(math.prod(image_shape), activation="tanh", name="pixels")(x)
    images = layers.Reshape(image_shape, name="images")(x)
    return keras.Model(z, images, name=name)


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
    image_shape = _check_shapes(image_shape)
    images = keras.Input(image_shape, name="images")
    x = layers.Flatten(name="flatten")(images)
    x = layers.Dense(hidden_units, name="hidden")(x)
    x = layers.LeakyReLU(negative_slope=0.2, name="leaky_relu")(x)
    logits = layers.Dense(1, name="logit")(x)
    return keras.Model(images, logits, name=name)


ARCHITECTURES = {"mlp": (mlp_generator, mlp_discriminator)}


def build(architecture: str, latent_dim: int, image_shape):
    """Builds the `(generator, discriminator)` pair of a named architecture.

    Args:
        architecture: one of `ARCHITECTURES` (`"mlp"`).
        latent_dim: size of the latent vector.
        image_shape: `(height, width, channels)`.

    Returns:
        A tuple `(generator, discriminator)` of `keras.Model`s.
    """
    if architecture not in ARCHITECTURES:
        raise InputError(
            f"Unknown architecture {architecture!r}; expected one of: "
            f"{', '.join(ARCHITECTURES)}."
        )
    make_generator, make_discriminator = ARCHITECTURES[architecture]
    return make_generator(latent_dim, image_shape), make_discriminator(image_shape)
