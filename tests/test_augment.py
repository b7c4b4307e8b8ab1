import numpy as np
import pytest
import tensorflow as tf

from keras_gan import augment
from keras_gan.errors import InputError

SEED = tf.constant([3, 7], tf.int32)
BATCH = 64  # enough images that every shift and cutout position is likely drawn


def _random_images(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape).astype("float32")


def _augment(images, policy, seed=SEED):
    return augment.diff_augment(tf.constant(images), policy, seed).numpy()


def _shift_with_zeros(image, rows, columns):
    # Moves content down by `rows` and right by `columns`, filling with 0.
    height, width = image.shape[:2]
    shifted = np.zeros_like(image)
    for i in range(height):
        for j in range(width):
            if 0 <= i - rows < height and 0 <= j - columns < width:
                shifted[i, j] = image[i - rows, j - columns]
    return shifted


def _per_image_factor(after, before):
    # Per image, the factor k of after = k * before (least squares); fails
    # unless that one factor fits every pixel of the image.
    axes = tuple(range(1, after.ndim))
    factor = (after * before).sum(axis=axes) / (before * before).sum(axis=axes)
    expanded = factor.reshape(-1, *[1] * len(axes))
    np.testing.assert_allclose(after, expanded * before, atol=1e-5)
    return factor


def test_parse_policy_accepts_strings_sequences_and_nothing():
    assert augment.parse_policy("color,translation,cutout") == augment.POLICIES
    assert augment.parse_policy(" cutout , color ") == ("cutout", "color")
    assert augment.parse_policy(["translation"]) == ("translation",)
    assert augment.parse_policy(None) == ()
    assert augment.parse_policy("") == ()
    assert augment.parse_policy(()) == ()


def test_parse_policy_rejects_unknown_and_repeated_names():
    with pytest.raises(
        InputError,
        match="Unknown augmentation 'flip'.*from: color, translation, cutout",
    ):
        augment.parse_policy("color,flip")
    with pytest.raises(InputError, match="Unknown augmentation ''"):
        augment.parse_policy("color,")
    with pytest.raises(InputError, match="names a transform twice"):
        augment.parse_policy(["cutout", "cutout"])


def test_empty_policy_is_the_identity():
    images = _random_images((2, 8, 8, 1))
    np.testing.assert_array_equal(_augment(images, ""), images)
    np.testing.assert_array_equal(_augment(images, None), images)


@pytest.mark.parametrize("shape", [(4, 28, 28, 1), (4, 32, 32, 3)])
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_shape_and_dtype_are_kept(shape, dtype):
    images = tf.cast(_random_images(shape), dtype)
    augmented = augment.diff_augment(images, "color,translation,cutout", SEED)
    assert augmented.shape == shape and augmented.dtype == images.dtype
    assert np.all(np.isfinite(tf.cast(augmented, "float32").numpy()))


def test_same_seed_same_images_other_seed_other_images():
    images = _random_images((4, 8, 8, 3))
    policy = "color,translation,cutout"
    first = _augment(images, policy, tf.constant([1, 2]))
    np.testing.assert_array_equal(first, _augment(images, policy, [1, 2]))
    # int64 seeds, as `keras.random.SeedGenerator.next()` returns, work too.
    np.testing.assert_array_equal(
        first, _augment(images, policy, tf.constant([1, 2], tf.int64))
    )
    assert not np.allclose(first, _augment(images, policy, tf.constant([1, 3])))


def test_each_image_gets_its_own_transform():
    images = np.repeat(_random_images((1, 8, 8, 3)), 4, axis=0)
    augmented = _augment(images, "color,translation,cutout")
    for other in augmented[1:]:
        assert not np.allclose(augmented[0], other)


def test_translation_moves_a_pixel_by_at_most_an_eighth_with_zero_fill():
    # One pixel of value 1 at the centre of each 32x32 image: it must land on
    # a single pixel at most round(32 / 8) = 4 away, the rest staying 0.
    pixels = np.zeros((BATCH, 32, 32, 1), "float32")
    pixels[:, 16, 16] = 1.0
    moved = _augment(pixels, "translation")
    assert set(np.unique(moved)) == {0.0, 1.0}
    np.testing.assert_array_equal(moved.sum(axis=(1, 2, 3)), np.ones(BATCH))
    _, rows, columns, _ = np.nonzero(moved)
    shifts = np.stack([rows - 16, columns - 16], axis=1)  # (batch, 2)
    assert np.abs(shifts).max() == 4
    assert set(shifts.ravel()) == set(range(-4, 5))
    # The same seed moves any other content alike: here random images, whose
    # uncovered borders fill with 0 (pixel value 0 of the [-1, 1] range).
    images = _random_images((BATCH, 32, 32, 1))
    shifted = _augment(images, "translation")
    for image, result, (down, right) in zip(images, shifted, shifts, strict=True):
        np.testing.assert_array_equal(result, _shift_with_zeros(image, down, right))


def test_cutout_zeroes_a_square_of_half_the_side_and_keeps_the_rest():
    ones = np.ones((BATCH, 32, 32, 3), "float32")
    masks = _augment(ones, "cutout")
    assert set(np.unique(masks)) == {0.0, 1.0}
    fully_inside = 0
    for mask in masks[..., 0]:
        rows, columns = np.nonzero(mask == 0)
        # The zeros fill their bounding box: a square clipped by the border.
        top, bottom = rows.min(), rows.max() + 1
        left, right = columns.min(), columns.max() + 1
        assert len(rows) == (bottom - top) * (right - left)
        assert bottom - top <= 16 and right - left <= 16
        if top > 0 and left > 0 and bottom < 32 and right < 32:
            assert len(rows) == 16 * 16
            fully_inside += 1
    assert 0 < fully_inside < BATCH  # some squares also cross the border
    # Every channel shares the mask, and pixels outside it are unchanged.
    np.testing.assert_array_equal(masks, np.repeat(masks[..., :1], 3, axis=3))
    images = _random_images((BATCH, 32, 32, 3))
    np.testing.assert_array_equal(_augment(images, "cutout"), images * masks)


def test_color_of_a_constant_image_is_only_a_brightness_shift():
    # No deviation from any mean: saturation and contrast change nothing.
    constant = np.full((BATCH, 8, 8, 3), 0.25, "float32")
    shifted = _augment(constant, "color")
    per_image = shifted.reshape(BATCH, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(192, axis=1))
    brightness = per_image[:, 0] - 0.25
    assert np.all(np.abs(brightness) <= 0.5)
    assert brightness.max() - brightness.min() > 0.8  # spread over the range


def test_color_ranges_of_brightness_saturation_and_contrast():
    images = _random_images((BATCH, 8, 8, 3))
    result = _augment(images, "color")

    def means(x):
        # (batch, 8, 8, 1) per-pixel channel means, (batch, 1, 1, 1) image means
        return x.mean(axis=3, keepdims=True), x.mean(axis=(1, 2, 3), keepdims=True)

    pixel_in, image_in = means(images)
    pixel_out, image_out = means(result)
    # Brightness: the image mean moves by U(-0.5, 0.5) (contrast keeps it).
    assert np.all(np.abs(image_out - image_in) <= 0.5 + 1e-6)
    # Contrast: pixel means scale about the image mean by one U(0.5, 1.5).
    contrast = _per_image_factor(pixel_out - image_out, pixel_in - image_in)
    assert np.all((contrast >= 0.5 - 1e-5) & (contrast <= 1.5 + 1e-5))
    # Saturation then contrast: deviations from the pixel mean scale by
    # U(0, 2) * contrast, one factor per image.
    both = _per_image_factor(result - pixel_out, images - pixel_in)
    saturation = both / contrast
    assert np.all((saturation >= -1e-5) & (saturation <= 2 + 1e-5))
    assert saturation.max() - saturation.min() > 1.5  # spread over the range


def test_color_on_one_channel_only_shifts_and_scales_contrast():
    # Saturation is a no-op: a single channel equals its channel mean. Were it
    # not, deviations would scale by up to 2 * 1.5.
    images = _random_images((BATCH, 28, 28, 1))
    result = _augment(images, "color")
    centred_in = images - images.mean(axis=(1, 2, 3), keepdims=True)
    centred_out = result - result.mean(axis=(1, 2, 3), keepdims=True)
    contrast = _per_image_factor(centred_out, centred_in)
    assert np.all((contrast >= 0.5 - 1e-5) & (contrast <= 1.5 + 1e-5))


@pytest.mark.parametrize("shape", [(4, 28, 28, 1), (4, 32, 32, 3)])
def test_eager_and_xla_agree_and_gradients_flow(shape):
    images = tf.constant(_random_images(shape))
    policy = "color,translation,cutout"

    def augment_with_gradient(images, seed):
        with tf.GradientTape() as tape:
            tape.watch(images)
            augmented = augment.diff_augment(images, policy, seed)
            loss = tf.reduce_sum(tf.square(augmented))
        return augmented, tape.gradient(loss, images)

    eager, eager_gradient = augment_with_gradient(images, SEED)
    graph, _ = tf.function(augment_with_gradient)(images, SEED)
    np.testing.assert_array_equal(graph, eager)
    xla = tf.function(augment_with_gradient, jit_compile=True)
    compiled, compiled_gradient = xla(images, SEED)
    # The same random values (shifts and cutouts would differ by whole pixels
    # otherwise); XLA fuses the arithmetic differently, in the last ulps.
    np.testing.assert_allclose(compiled, eager, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(compiled_gradient, eager_gradient, rtol=1e-5, atol=1e-5)
    gradient = eager_gradient.numpy()
    assert np.all(np.isfinite(gradient))
    for image_gradient in gradient:  # every image passes some gradient back
        assert np.count_nonzero(image_gradient) > image_gradient.size // 2
