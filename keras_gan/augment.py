"""Differentiable augmentation (DiffAugment) of the images D sees.

Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN
Training", arXiv:2006.10738: real and generated images both pass through the
same kind of random colour, translation and cutout transforms before D, so D
cannot memorise a small training set, and G's gradients flow back through the
transforms to G. Each transform follows the paper's reference code
(DiffAugment_tf.py), rewritten with static shapes for XLA: translation as a
gather with clipped indices, cutout as a mask built by comparisons.

Every random value of a call comes from a few uniforms per image drawn by the
hash of `keras_gan.noise`, and every transform is written in `keras.ops`, so
one seed gives the same augmentations on TensorFlow, JAX and PyTorch, eagerly
and compiled.
"""

from keras import ops

from keras_gan import noise
from keras_gan.choices import AUGMENT_POLICIES
from keras_gan.choices import parse_policy  # noqa: F401 (keras_gan.augment API)
from keras_gan.errors import InputError

# The policy names and their parser live with the other choices (no Keras).
POLICIES = AUGMENT_POLICIES

# Fractions of the image side, as in the reference code.
_TRANSLATION_RATIO = 1 / 8
_CUTOUT_RATIO = 1 / 2

# Columns of the (batch, 7) uniforms in (0, 1): one per random value per image.
(
    _BRIGHTNESS,
    _SATURATION,
    _CONTRAST,
    _SHIFT_ROWS,
    _SHIFT_COLUMNS,
    _CUTOUT_ROW,
    _CUTOUT_COLUMN,
) = range(7)
_NUM_UNIFORMS = 7


def diff_augment(images, policy, seed, first_image=0):
    """Applies the transforms of `policy` to `images`, differently per image.

    Differentiable with respect to `images`, and compiles under XLA (image
    height and width must be static).

    Args:
        images: float tensor `(batch, height, width, channels)` in [-1, 1], of
            any float dtype; half precision is computed in float32.
        policy: names from `POLICIES`, as accepted by `parse_policy`:
            "color": brightness + U(-0.5, 0.5), then saturation (deviation from
                the pixel's channel mean) times U(0, 2), then contrast
                (deviation from the image's mean) times U(0.5, 1.5);
            "translation": shift rows and columns by integers in [-s, s],
                s = side / 8 rounded half up, filling with zeros;
            "cutout": zero a square of half the side (rounded half up), its
                centre uniform over the image (the square may extend past
                the border).
        seed: a `(2,)` integer tensor; the same seed gives the same transforms.
        first_image: index of the first image in the seed's stream: a
            replica's slice of a distributed step takes the transforms that
            its images have in the whole batch.

    Returns:
        The augmented images, with the shape and dtype of `images`.

    Example:

    >>> images = keras.ops.zeros((4, 8, 8, 1))
    >>> augmented = diff_augment(images, "color,translation,cutout", [1, 2])
    >>> tuple(augmented.shape)
    (4, 8, 8, 1)
    """
    names = parse_policy(policy)
    images = ops.convert_to_tensor(images)
    if not names:
        return images
    if len(images.shape) != 4 or None in images.shape[1:]:
        raise InputError(
            f"diff_augment needs images of shape (batch, height, width, "
            f"channels) with static height, width and channels; received shape "
            f"{images.shape}."
        )
    x = images
    if images.dtype in ("float16", "bfloat16"):
        # Image means in half precision would lose the deviations that
        # saturation and contrast scale.
        x = ops.cast(x, "float32")
    batch_size = ops.shape(x)[0]
    draws = noise.uniforms(
        batch_size * _NUM_UNIFORMS, noise.seed_words(seed), first_image * _NUM_UNIFORMS
    )
    draws = ops.cast(ops.reshape(draws, (batch_size, _NUM_UNIFORMS)), x.dtype)
    for name in names:
        x = _TRANSFORMS[name](x, draws)
    return ops.cast(x, images.dtype)


def _per_image(values):
    # (batch,) -> (batch, 1, 1, 1), to broadcast over an image.
    return ops.reshape(values, (-1, 1, 1, 1))


def _random_integers(uniforms, count):
    # Uniform integers in [0, count) from uniforms in (0, 1); the minimum
    # guards against u * count rounding up to count in float32.
    return ops.minimum(ops.cast(ops.floor(uniforms * count), "int32"), count - 1)


def _color(x, uniforms):
    x = x + _per_image(uniforms[:, _BRIGHTNESS] - 0.5)
    mean = ops.mean(x, axis=3, keepdims=True)  # (batch, height, width, 1)
    x = (x - mean) * _per_image(uniforms[:, _SATURATION] * 2.0) + mean
    mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)  # (batch, 1, 1, 1)
    return (x - mean) * _per_image(uniforms[:, _CONTRAST] + 0.5) + mean


def _shift(x, uniforms, axis):
    # Output index i reads input index i + shift, and zero where that falls
    # outside the image: a gather from the image padded by one zero on each
    # side, indices clipped onto the padding, as in the reference code. (A
    # gather ran 2-3x faster than products with one-hot shift matrices, with
    # gradients, under XLA on a 2-core CPU.)
    size = x.shape[axis]
    limit = int(size * _TRANSLATION_RATIO + 0.5)
    shift = _random_integers(uniforms, 2 * limit + 1) - limit  # (batch,)
    source = ops.arange(size, dtype="int32")[None, :] + shift[:, None] + 1
    source = ops.clip(source, 0, size + 1)  # (batch, size)
    padding = [[0, 0]] * 4
    padding[axis] = [1, 1]
    padded = ops.pad(x, padding)
    index_shape = [1, 1, 1, 1]
    index_shape[0], index_shape[axis] = -1, size
    source = ops.reshape(source, index_shape)
    target_shape = list(ops.shape(padded))
    target_shape[axis] = size
    source = ops.broadcast_to(source, target_shape)
    return ops.take_along_axis(padded, source, axis=axis)


def _translation(x, uniforms):
    x = _shift(x, uniforms[:, _SHIFT_ROWS], axis=1)
    return _shift(x, uniforms[:, _SHIFT_COLUMNS], axis=2)


def _cutout_band(uniforms, size):
    # (batch, size) bool: the rows (or columns) the square covers. As in the
    # reference code the centre is uniform in [0, size] for an even square
    # side, [0, size) for an odd one, so the square may extend past the border.
    side = int(size * _CUTOUT_RATIO + 0.5)
    centre = _random_integers(uniforms, size + 1 - side % 2)
    start = (centre - side // 2)[:, None]
    index = ops.arange(size, dtype="int32")[None, :]
    return ops.logical_and(index >= start, index < start + side)


def _cutout(x, uniforms):
    _, height, width, _ = x.shape
    rows = _cutout_band(uniforms[:, _CUTOUT_ROW], height)
    columns = _cutout_band(uniforms[:, _CUTOUT_COLUMN], width)
    inside = ops.logical_and(rows[:, :, None], columns[:, None, :])
    keep = ops.cast(ops.logical_not(inside), x.dtype)  # (batch, height, width)
    return x * keep[..., None]


_TRANSFORMS = {"color": _color, "translation": _translation, "cutout": _cutout}
