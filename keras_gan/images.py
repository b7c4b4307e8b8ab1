"""Pixel ranges and image grids: the one place where pixel ranges are defined.

Models see float32 pixels in [-1, 1] (the range of the generator's tanh); files
and people see uint8 pixels in [0, 255].
"""

import numpy as np
from keras import ops

from keras_gan.errors import InputError


def to_model_range(images):
    """Converts uint8 pixels in [0, 255] to float32 pixels in [-1, 1].

    Args:
        images: uint8 tensor or array of any shape.

    Returns:
        A float32 tensor of the same shape.
    """
    return ops.cast(images, "float32") / 127.5 - 1.0


def to_uint8(images):
    """Converts float pixels in [-1, 1] to a uint8 NumPy array in [0, 255].

    Values outside [-1, 1] are clipped.

    Args:
        images: float tensor or array of any shape.

    Returns:
        A uint8 `np.ndarray` of the same shape.
    """
    images = np.asarray(ops.convert_to_numpy(images), dtype=np.float32)
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


# Sample grids show each image at least this many pixels high and wide.
READABLE_SIDE = 32


def readable_scale(height: int, width: int) -> int:
    """The integer upscaling that shows a `height x width` image at least
    `READABLE_SIDE` pixels on its shorter side (1 for 28x28 and larger; 4 for
    8x8)."""
    return max(1, READABLE_SIDE // max(1, min(int(height), int(width))))


def image_grid(images, num_rows: int, padding: int = 1, scale: int = 1):
    """Tiles a batch of images into one image, row by row.

    Args:
        images: float array `(N, H, W, C)` in [-1, 1], `N` a multiple of
            `num_rows`.
        num_rows: number of rows of the grid.
        padding: pixels of white space between tiles.
        scale: integer nearest-neighbour upscaling of the whole grid, padding
            included (`readable_scale` picks it for sample grids).

    Returns:
        A uint8 array `(scale * (rows * (H + padding) - padding),
        scale * (cols * (W + padding) - padding), C)`.

    Example:

    >>> grid = image_grid(np.zeros((6, 8, 8, 1)), num_rows=2)
    >>> grid.shape
    (17, 26, 1)
    """
    pixels = to_uint8(images)
    if pixels.ndim != 4:
        raise InputError(
            f"image_grid expects images of shape (N, H, W, C); "
            f"received shape {pixels.shape}."
        )
    count, height, width, channels = pixels.shape
    if num_rows < 1 or count % num_rows:
        raise InputError(
            f"image_grid needs a number of images divisible by num_rows; "
            f"received {count} images and num_rows={num_rows}."
        )
    num_columns = count // num_rows
    grid = np.full(
        (
            num_rows * (height + padding) - padding,
            num_columns * (width + padding) - padding,
            channels,
        ),
        255,
        dtype=np.uint8,
    )
    for index, image in enumerate(pixels):
        row, column = divmod(index, num_columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top : top + height, left : left + width] = image
    if int(scale) != 1:
        if int(scale) < 1:
            raise InputError(f"scale must be an integer >= 1; received {scale!r}.")
        grid = np.repeat(np.repeat(grid, int(scale), axis=0), int(scale), axis=1)
    return grid


def save_png(grid, path) -> None:
    """Writes a uint8 `(H, W, C)` array as a PNG (grayscale or RGB)."""
    from PIL import Image

    Image.fromarray(_squeeze_gray(grid)).save(path, format="PNG")


def save_gif(frames, path, milliseconds_per_frame: int = 400) -> None:
    """Writes uint8 `(H, W, C)` or `(H, W)` arrays of one shape as a looping GIF."""
    from PIL import Image

    images = [Image.fromarray(_squeeze_gray(frame)) for frame in frames]
    images[0].save(
        path,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=milliseconds_per_frame,
        loop=0,
    )


def _squeeze_gray(grid):
    # PIL reads (H, W) as grayscale and (H, W, 3) as RGB; it rejects (H, W, 1).
    return grid[..., 0] if grid.ndim == 3 and grid.shape[-1] == 1 else grid
