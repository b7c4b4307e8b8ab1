import numpy as np
import pytest
from PIL import Image

from keras_gan import images
from keras_gan.errors import InputError


def test_pixel_range_round_trip():
    pixels = np.arange(256, dtype=np.uint8)
    floats = np.asarray(images.to_model_range(pixels))
    assert floats.min() == -1.0 and floats.max() == 1.0
    np.testing.assert_array_equal(images.to_uint8(floats), pixels)
    np.testing.assert_array_equal(images.to_uint8(np.array([-5.0, 5.0])), [0, 255])


def test_image_grid_places_images_row_by_row():
    batch = np.stack([np.full((2, 3, 1), value) for value in (-1.0, 0.0, 1.0, 1.0)])
    grid = images.image_grid(batch, num_rows=2, padding=1)
    assert grid.shape == (5, 7, 1)
    assert grid[0, 0, 0] == 0 and grid[0, 4, 0] == 128  # row 0: images 0, 1
    assert grid[3, 0, 0] == 255 and grid[2, 0, 0] == 255  # padding is white


def test_image_grid_rejects_bad_counts_and_shapes():
    with pytest.raises(InputError, match="divisible by num_rows"):
        images.image_grid(np.zeros((5, 2, 2, 1)), num_rows=2)
    with pytest.raises(InputError, match=r"shape \(N, H, W, C\)"):
        images.image_grid(np.zeros((4, 2, 2)), num_rows=2)


def test_png_and_gif_are_written_grayscale_and_rgb(tmp_path):
    gray = images.image_grid(np.zeros((4, 2, 2, 1)), num_rows=2)
    rgb = images.image_grid(np.zeros((4, 2, 2, 3)), num_rows=2)
    images.save_png(gray, tmp_path / "gray.png")
    images.save_png(rgb, tmp_path / "rgb.png")
    assert Image.open(tmp_path / "gray.png").mode == "L"
    assert Image.open(tmp_path / "rgb.png").mode == "RGB"
    white = images.image_grid(np.ones((4, 2, 2, 1)), num_rows=2)
    images.save_gif([gray, white], tmp_path / "anim.gif")
    assert Image.open(tmp_path / "anim.gif").n_frames == 2


def test_grids_of_small_images_are_upscaled_by_nearest_neighbour():
    assert [images.readable_scale(side, side) for side in (8, 16, 28, 64)] == [
        4,
        2,
        1,
        1,
    ]
    assert images.readable_scale(8, 64) == 4  # the shorter side decides
    batch = np.linspace(-1, 1, 4 * 2 * 2).reshape(4, 2, 2, 1)
    plain = images.image_grid(batch, num_rows=2)
    scaled = images.image_grid(batch, num_rows=2, scale=3)
    assert scaled.shape == (3 * plain.shape[0], 3 * plain.shape[1], 1)
    for dy in range(3):
        for dx in range(3):
            np.testing.assert_array_equal(scaled[dy::3, dx::3], plain)
    with pytest.raises(InputError, match="scale"):
        images.image_grid(batch, num_rows=2, scale=0)
