"""Image shapes: the `image_size` and `channels` rules every source follows.

One rule for folders, array files, IDX files and TFDS datasets alike, so that
the same pixels give the same training data whatever file they come in:

- **Crop, then resize.** The largest centred region with the target's aspect
  ratio is kept (Keras's `crop_to_aspect_ratio=True` arithmetic), then it is
  resized with Pillow's BICUBIC filter, which antialiases when it shrinks.
- **Channels.** `channels=3` repeats a grey channel; `channels=1` takes
  Pillow's "L" (ITU-R 601 luma, 0.299 R + 0.587 G + 0.114 B); transparency
  is composited over black; 16-bit images are scaled to 8 bits
  (`round(value / 257)`).

NumPy and Pillow only: every backend can use it.
"""

import re

import numpy as np
from PIL import Image

from keras_gan.errors import InputError

SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def checked_image_size(image_size):
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    try:
        height, width = image_size
    except (TypeError, ValueError):
        height = width = None
    for value in (height, width):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            break
        if value < 1:
            break
    else:
        return int(height), int(width)
    raise InputError(
        "image_size must be a positive int or a (height, width) pair of "
        f"positive ints; received {image_size!r}."
    )


def checked_channels(channels):
    if channels is None or (channels in (1, 3) and not isinstance(channels, bool)):
        return channels
    raise InputError(f"channels must be 1, 3 or None; received {channels!r}.")


def crop_box(size, image_size):
    """(left, top, right, bottom) of the largest centred region with the
    target's aspect ratio: keras.ops.image.resize(crop_to_aspect_ratio=True)."""
    width, height = size
    target_height, target_width = image_size
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    top = int(float(height - crop_height) / 2)
    left = int(float(width - crop_width) / 2)
    return (left, top, left + crop_width, top + crop_height)


def has_alpha(image):
    # Image.has_transparency_data, which Pillow 10.0 lacks.
    return (
        image.mode in ("LA", "La", "PA", "RGBA", "RGBa")
        or "transparency" in image.info
        or (image.mode == "P" and image.palette.mode.endswith("A"))
    )


def converted(image, mode):
    """`image` in `mode` ("L" or "RGB"), 8 bits, alpha composited over black."""
    if image.mode in SIXTEEN_BIT_MODES:
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling.
        values = np.clip(np.asarray(image), 0, 65535)
        image = Image.fromarray(np.round(values / 257.0).astype(np.uint8))
    if has_alpha(image):
        rgba = image.convert("RGBA")
        over_black = Image.new("RGB", image.size)
        over_black.paste(rgba, mask=rgba.getchannel("A"))
        image = over_black
    return image if image.mode == mode else image.convert(mode)


def resized(image, box, image_size):
    """Crops `box`, then resizes to `image_size`. Cropping first, as Keras
    does: resize(box=...) would also blend in pixels just outside the box."""
    if box != (0, 0, *image.size):
        image = image.crop(box)
    target = (image_size[1], image_size[0])  # Pillow sizes are (width, height)
    if image.size == target:
        return image
    return image.resize(target, Image.Resampling.BICUBIC)


# "64", "64x48" (height x width) as given to --image-size.
_SIZE_TEXT = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$")


def parse_image_size(text: str) -> tuple[int, int]:
    """Parses `"64"` (a square) or `"64x48"` (height x width).

    Example:

    >>> parse_image_size("64x48")
    (64, 48)
    """
    match = _SIZE_TEXT.match(str(text))
    if not match:
        raise InputError(
            f"image size {text!r} is not a size; expected an int such as 64 "
            "(a square) or HEIGHTxWIDTH such as 64x48."
        )
    height = int(match.group(1))
    width = int(match.group(2) or height)
    return checked_image_size((height, width))


def convert_arrays(images: np.ndarray, image_size=None, channels=None) -> np.ndarray:
    """Applies `image_size` and `channels` to in-memory images, by the rules
    above (the pixels a folder of the same images as PNG files decodes to).

    Args:
        images: `(N, H, W, C)`: uint8 with C = 1 (grey), 2 (grey + alpha),
            3 (RGB) or 4 (RGBA), or float32 in [-1, 1] with C = 1 or 3.
        image_size: `None`, an int for a square, or `(height, width)`.
        channels: 1, 3, or `None` to keep grey (1) or colour (3; alpha
            channels are composited over black and dropped).

    Returns:
        The converted images, of the input's dtype; `images` itself when
        nothing changes.
    """
    image_size = checked_image_size(image_size)
    channels = checked_channels(channels)
    count, height, width, depth = images.shape
    floats = images.dtype != np.uint8
    allowed = (1, 3) if floats else (1, 2, 3, 4)
    if depth not in allowed:
        raise InputError(
            f"images have {depth} channels; expected "
            + ("1 or 3 for floats" if floats else "1, 2 (grey + alpha), 3 or 4 (RGBA)")
            + " to convert them to image_size and channels."
        )
    if channels is None:
        channels = 1 if depth <= 2 else 3
    target = image_size or (height, width)
    if depth == channels and target == (height, width):
        return images
    box = crop_box((width, height), target)
    out = np.empty((count, *target, channels), images.dtype)
    for index in range(count):
        out[index] = _convert_one(images[index], box, target, channels, floats)
    return out


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

# ITU-R 601 luma, the weights of Pillow's convert("L").
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _convert_one(image, box, target, channels, floats):
    if not floats:
        picture = Image.fromarray(
            image[..., 0] if image.shape[-1] == 1 else image, _MODES[image.shape[-1]]
        )
        picture = resized(
            converted(picture, "L" if channels == 1 else "RGB"), box, target
        )
        array = np.asarray(picture, np.uint8)
        return array[..., np.newaxis] if array.ndim == 2 else array
    if image.shape[-1] == 3 and channels == 1:
        image = (image @ _LUMA)[..., np.newaxis]
    planes = [
        np.asarray(resized(Image.fromarray(image[..., k], "F"), box, target))
        for k in range(image.shape[-1])
    ]
    array = np.clip(np.stack(planes, axis=-1), -1.0, 1.0)  # bicubic overshoots
    return np.repeat(array, channels, axis=-1) if array.shape[-1] < channels else array
