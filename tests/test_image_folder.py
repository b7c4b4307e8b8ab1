"""Folders of real images (scikit-learn's digits, Fashion-MNIST where it is
installed) written as PNG, JPEG, BMP, GIF and WebP, then scanned, decoded and
cached by keras_gan.image_folder."""

import gzip
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from PIL import ImageFile

from keras_gan.data import folder as image_folder
from keras_gan.data.folder import BadImageError
from keras_gan.errors import InputError

pytestmark = pytest.mark.backends

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
FASHION_LABELS = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"

# Imports keras_gan.image_folder without keras_gan/__init__.py (which brings
# in TensorFlow): the module must work with NumPy and Pillow alone.
ISOLATED_IMPORT = f"""
import sys, types
package = types.ModuleType("keras_gan")
package.__path__ = [{os.path.join(ROOT, "keras_gan")!r}]
sys.modules["keras_gan"] = package
from keras_gan.data import folder as image_folder
"""


@pytest.fixture(scope="module")
def digits():
    """The first 40 digits, (40, 32, 32) uint8 (8x8 upscaled 4x), and labels."""
    datasets = pytest.importorskip("sklearn.datasets")
    loaded = datasets.load_digits()
    images = np.round(loaded.images[:40] * (255 / 16)).astype(np.uint8)
    return np.kron(images, np.ones((1, 4, 4), np.uint8)), loaded.target[:40]


@pytest.fixture(scope="module")
def fashion():
    """The first 200 Fashion-MNIST training images (200, 28, 28) and labels."""
    if not os.path.exists(FASHION_IMAGES):
        pytest.skip(f"Fashion-MNIST is not installed at {FASHION_IMAGES}")
    with gzip.open(FASHION_IMAGES) as file:
        file.read(16)  # IDX header: magic, count, rows, columns
        images = np.frombuffer(file.read(200 * 28 * 28), np.uint8)
    with gzip.open(FASHION_LABELS) as file:
        file.read(8)
        labels = np.frombuffer(file.read(200), np.uint8)
    return images.reshape(200, 28, 28), labels.astype(np.int32)


def tinted(grey, colour=(255, 160, 40)):
    """(..., H, W) greys -> (..., H, W, 3) RGB in shades of `colour`."""
    return np.round(grey[..., None] * (np.array(colour) / 255)).astype(np.uint8)


def write(path, pixels, mode=None, **options):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(pixels)
    if mode is not None:
        image = image.convert(mode)
    image.save(path, **options)
    return path


def png_chunk(kind, data):
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(path, width, height):
    """A valid PNG header declaring width x height 8-bit greys, with a tiny
    IDAT: a few hundred bytes on disk."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
        file.write(png_chunk(b"IHDR", header))
        file.write(png_chunk(b"IDAT", zlib.compress(b"\0" * 1000)))
        file.write(png_chunk(b"IEND", b""))
    return path


def overwrite(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode) as file:
        file.write(data)


def read_bytes(path):
    with open(path, "rb") as file:
        return file.read()


def digit_folder(folder, digits, count=4, extension=".png"):
    images, _ = digits
    for index in range(count):
        write(os.path.join(folder, f"d{index:02d}{extension}"), images[index])
    return folder


def run_isolated(code, timeout=60):
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORT + code],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# Scanning


def test_class_subfolders_give_labels_and_class_names(tmp_path, digits):
    images, _ = digits
    write(str(tmp_path / "zero" / "a.png"), images[0])
    write(str(tmp_path / "zero" / "b.JPG"), images[1])
    write(str(tmp_path / "one" / "nested" / "c.png"), images[2])
    write(str(tmp_path / "one" / ".hidden.png"), images[3])
    write(str(tmp_path / ".thumbnails" / "d.png"), images[4])
    os.makedirs(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("not an image")
    found = image_folder.scan(str(tmp_path))
    assert found.class_names == ["one", "zero"]  # "empty" holds no images
    assert found.paths == ["one/nested/c.png", "zero/a.png", "zero/b.JPG"]
    assert found.labels.dtype == np.int32
    assert found.labels.tolist() == [0, 1, 1]


def test_images_at_the_root_make_an_unlabelled_recursive_folder(tmp_path, digits):
    images, _ = digits
    write(str(tmp_path / "b.PNG"), images[0])
    write(str(tmp_path / "sub" / "a.jpeg"), images[1])
    write(str(tmp_path / "sub" / "deeper" / "c.webp"), images[2])
    write(str(tmp_path / "sub" / "c.tiff"), images[3])  # not an extension read
    found = image_folder.scan(tmp_path)
    assert found.paths == ["b.PNG", "sub/a.jpeg", "sub/deeper/c.webp"]
    assert found.labels is None and found.class_names is None


def test_symlinks_are_followed_only_inside_the_folder(tmp_path, digits):
    images, _ = digits
    outside, root = tmp_path / "outside", tmp_path / "root"
    write(str(outside / "secret.png"), images[0])
    write(str(root / "a.png"), images[1])
    try:
        os.symlink(outside / "secret.png", root / "out.png")
        os.symlink(outside, root / "out_folder")
        os.symlink(root / "a.png", root / "in.png")
        os.symlink(root, root / "loop")
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")
    assert image_folder.scan(root).paths == ["a.png", "in.png"]


def test_a_folder_without_images_is_an_input_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    os.makedirs(tmp_path / "class_a")
    with pytest.raises(InputError, match=r"holds no image files \(\.png, \.jpg"):
        image_folder.scan(tmp_path)
    with pytest.raises(InputError, match="is not a folder"):
        image_folder.scan(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="is not a folder"):
        image_folder.decode_folder(tmp_path / "missing")


# Decoding one file

EXACT = 0.0


@pytest.mark.parametrize(
    "extension, options, tolerance",
    [
        (".png", {}, EXACT),
        (".bmp", {}, EXACT),
        (".gif", {}, EXACT),  # a tinted digit has 17 colours: fits a palette
        (".webp", {"lossless": True}, EXACT),
        # Lossy: mean error in grey levels, chroma subsampled at the edges.
        (".jpg", {"quality": 95}, 6.0),
        (".jpeg", {"quality": 95}, 6.0),
        (".webp", {"quality": 90}, 6.0),
    ],
)
def test_every_format_decodes_to_its_pixels(
    tmp_path, digits, extension, options, tolerance
):
    colour = tinted(digits[0][:3])
    for index, pixels in enumerate(colour):
        path = write(str(tmp_path / f"{index}{extension}"), pixels, **options)
        decoded = image_folder.read_image(path, channels=3)
        assert decoded.shape == (32, 32, 3) and decoded.dtype == np.uint8
        error = np.abs(decoded.astype(float) - pixels).mean()
        assert error <= tolerance, (extension, error)


@pytest.mark.parametrize(
    "extension, channels",
    [(".png", 1), (".bmp", 1), (".gif", 1), (".jpg", 1)]
    # WebP has no grey mode: Pillow reads a grey WebP as RGB.
    + [(".webp", 3)],
)
def test_grey_files_keep_one_channel(tmp_path, digits, extension, channels):
    path = write(str(tmp_path / f"grey{extension}"), digits[0][0], quality=95)
    decoded = image_folder.read_image(path)
    assert decoded.shape == (32, 32, channels)
    assert np.abs(decoded[..., 0].astype(float) - digits[0][0]).mean() <= 2.0


def test_grey_and_colour_convert_both_ways(tmp_path, digits):
    grey, colour = digits[0][5], tinted(digits[0][6])
    grey_path = write(str(tmp_path / "grey.png"), grey)
    colour_path = write(str(tmp_path / "colour.png"), colour)
    as_rgb = image_folder.read_image(grey_path, channels=3)
    np.testing.assert_array_equal(as_rgb, np.repeat(grey[..., None], 3, axis=-1))
    # Pillow's "L": ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B.
    expected = np.asarray(Image.fromarray(colour).convert("L"))
    np.testing.assert_array_equal(
        image_folder.read_image(colour_path, channels=1)[..., 0], expected
    )


@pytest.mark.parametrize("mode", ["1", "L", "P", "RGB", "CMYK", "I;16"])
def test_modes_convert_to_grey_and_rgb(tmp_path, digits, mode):
    colour = tinted(digits[0][7])
    extension = ".jpg" if mode == "CMYK" else ".png"
    if mode == "I;16":
        image = Image.fromarray(digits[0][7].astype(np.uint16) * 257)
    else:
        image = Image.fromarray(colour).convert(mode)
    path = str(tmp_path / f"image{extension}")
    image.save(path, quality=95)
    reference = Image.open(path)
    assert reference.mode == mode
    if mode == "I;16":
        expected_rgb = np.repeat(digits[0][7][..., None], 3, axis=-1)
    else:
        expected_rgb = np.asarray(reference.convert("RGB"))
    rgb = image_folder.read_image(path, channels=3)
    grey = image_folder.read_image(path, channels=1)
    native = image_folder.read_image(path)
    assert rgb.shape == (32, 32, 3) and grey.shape == (32, 32, 1)
    assert native.shape[-1] == (1 if mode in ("1", "L", "I;16") else 3)
    np.testing.assert_array_equal(rgb, expected_rgb)
    expected_grey = np.asarray(Image.fromarray(expected_rgb).convert("L"))
    np.testing.assert_allclose(grey[..., 0], expected_grey, atol=1)


def test_sixteen_bit_png_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 128, 129, 257, 1000, 32768, 65278, 65535]], np.uint16)
    path = str(tmp_path / "sixteen.png")
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    decoded = image_folder.read_image(path)
    # round(value / 257): 65535 -> 255, 32768 -> 127.502 -> 128.
    assert decoded[0, :, 0].tolist() == [0, 0, 1, 1, 4, 128, 254, 255]
    rgb = image_folder.read_image(path, channels=3)
    assert rgb[0, :, 2].tolist() == [0, 0, 1, 1, 4, 128, 254, 255]


def test_transparency_is_composited_over_black(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[0, 128, 255], [255, 0, 128]]
    path = write(str(tmp_path / "rgba.png"), rgba)
    decoded = image_folder.read_image(path).astype(int)
    alpha = rgba[..., 3:].astype(int)
    np.testing.assert_allclose(decoded, (200, 100, 50) * alpha / 255, atol=1)
    assert decoded[0, 0].tolist() == [0, 0, 0]  # transparent: black, not orange
    grey = image_folder.read_image(path, channels=1)
    np.testing.assert_allclose(grey[..., 0], 124 * alpha[..., 0] / 255, atol=1)
    # "LA" keeps one channel; a palette's transparent index turns black too.
    la = np.stack([np.full((2, 3), 200, np.uint8), rgba[..., 3]], axis=-1)
    la_path = write(str(tmp_path / "la.png"), la)
    np.testing.assert_allclose(
        image_folder.read_image(la_path)[..., 0], 200 * alpha[..., 0] / 255, atol=1
    )
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    palette.putpalette([10, 200, 30, 250, 250, 250])
    palette.save(str(tmp_path / "p.png"), transparency=0)
    decoded = image_folder.read_image(str(tmp_path / "p.png"))
    assert decoded[:, :, :].tolist() == [
        [[0, 0, 0], [250, 250, 250]],
        [[250, 250, 250], [0, 0, 0]],
    ]


def test_gif_gives_its_first_frame(tmp_path, digits):
    frames = [Image.fromarray(pixels) for pixels in digits[0][:3]]
    path = str(tmp_path / "animated.gif")
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    assert Image.open(path).n_frames == 3
    np.testing.assert_array_equal(image_folder.read_image(path)[..., 0], digits[0][0])


def test_resize_keeps_the_centre_at_the_target_aspect_ratio(tmp_path):
    # 20 high, 40 wide: black edges, a white middle 20 wide.
    wide = np.zeros((20, 40), np.uint8)
    wide[:, 10:30] = 255
    path = write(str(tmp_path / "wide.png"), wide)
    square = image_folder.read_image(path, image_size=10)
    np.testing.assert_array_equal(square, np.full((10, 10, 1), 255))
    # 32 x 32 to (8, 16): Keras keeps int(32 * 8 / 16) = 16 rows from row 8.
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (32, 32, 3), np.uint8)
    path = write(str(tmp_path / "noise.png"), noise)
    expected = Image.fromarray(noise[8:24]).resize((16, 8), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(
        image_folder.read_image(path, image_size=(8, 16)), np.asarray(expected)
    )
    # The same size and aspect ratio: the pixels as they are.
    np.testing.assert_array_equal(image_folder.read_image(path, image_size=32), noise)


def test_large_jpeg_resize_keeps_the_same_region(tmp_path, digits):
    # 512 x 256 JPEG (digit in the middle square) decoded at reduced scale.
    big = np.zeros((256, 512, 3), np.uint8)
    big[:, 128:384] = tinted(np.kron(digits[0][8], np.ones((8, 8), np.uint8)))
    path = write(str(tmp_path / "big.jpg"), big, quality=95)
    small = image_folder.read_image(path, image_size=32)
    expected = Image.fromarray(big[:, 128:384]).resize(
        (32, 32), Image.Resampling.BICUBIC
    )
    assert np.abs(small.astype(float) - np.asarray(expected)).mean() < 4.0


def test_invalid_arguments_are_input_errors(tmp_path, digits):
    path = write(str(tmp_path / "a.png"), digits[0][0])
    for image_size in (0, (8,), "64", True, (8, -1), (8.0, 8)):
        with pytest.raises(InputError, match="image_size must be a positive int"):
            image_folder.read_image(path, image_size=image_size)
    for channels in (0, 2, 4, "rgb", True):
        with pytest.raises(InputError, match="channels must be 1, 3 or None"):
            image_folder.read_image(path, channels=channels)
    with pytest.raises(InputError, match=r"'fail', 'skip'; received 'ignore'"):
        image_folder.decode_folder(tmp_path, on_bad_image="ignore")
    with pytest.raises(InputError, match="num_workers must be a positive int"):
        image_folder.decode_folder(tmp_path, num_workers=0)


# Bad files


def truncated_jpeg(path, digits):
    write(path, digits[0][9], quality=95)
    data = read_bytes(path)
    overwrite(path, data[: len(data) // 2])


def bad_crc_png(path, digits):
    write(path, digits[0][9])
    data = bytearray(read_bytes(path))
    start = data.find(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    data[start + 4 + length] ^= 0xFF  # the IDAT chunk's CRC
    overwrite(path, bytes(data))


def truncated_png(path, digits):
    write(path, digits[0][9])
    data = read_bytes(path)
    overwrite(path, data[: len(data) // 2])


BAD_FILES = {
    "empty.png": (lambda path, digits: overwrite(path, b""), "empty"),
    "truncated.jpg": (truncated_jpeg, "truncated"),
    "bad_crc.png": (bad_crc_png, "checksum"),
    "truncated.png": (truncated_png, "truncated"),
    "text.png": (
        lambda path, digits: overwrite(path, "hello\n"),
        "not a PNG, JPEG, BMP, GIF or WebP image",
    ),
    "bomb.png": (lambda path, digits: bomb_png(path, 9000, 9000), "81,000,000"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize(
    "settings", [{}, {"image_size": 32, "channels": 1}], ids=["native", "resized"]
)
def test_bad_files_fail_or_are_skipped(tmp_path, digits, name, settings):
    folder = digit_folder(str(tmp_path / "images"), digits)
    make, fragment = BAD_FILES[name]
    make(os.path.join(folder, name), digits)
    with pytest.raises(BadImageError) as raised:
        image_folder.decode_folder(folder, **settings)
    message = str(raised.value)
    assert os.path.join(folder, name) in message and fragment in message
    assert "\n" not in message and raised.value.path == os.path.join(folder, name)
    assert fragment in raised.value.reason
    with pytest.raises(BadImageError, match=fragment):
        image_folder.read_image(os.path.join(folder, name))
    lines = []
    decoded = image_folder.decode_folder(
        folder, on_bad_image="skip", log=lines.append, **settings
    )
    good = sorted(n for n in os.listdir(folder) if n != name)
    assert decoded.paths == good and decoded.images.shape == (4, 32, 32, 1)
    np.testing.assert_array_equal(decoded.images[..., 0], digits[0][:4])
    [(skipped, reason)] = decoded.skipped
    assert skipped == name and fragment in reason
    assert f"skipped {name}: {reason}" in lines
    assert lines[-1] == "skipped 1 of 5 files"
    # Into a cache: the bad file's row squeezed out of the file on disk.
    cache = str(tmp_path / "cache")
    cached = image_folder.decode_folder(
        folder, on_bad_image="skip", cache_dir=cache, **settings
    )
    np.testing.assert_array_equal(cached.images, decoded.images)
    assert cached.skipped == decoded.skipped
    with pytest.raises(BadImageError, match=fragment):
        image_folder.decode_folder(folder, cache_dir=cache, **settings)


def test_the_first_bad_file_in_order_is_the_one_reported(tmp_path, digits):
    folder = digit_folder(str(tmp_path), digits, count=30)
    for index in (11, 23):
        overwrite(os.path.join(folder, f"d{index:02d}.png"), "no image")
    for _ in range(3):
        with pytest.raises(BadImageError) as raised:
            image_folder.decode_folder(folder, image_size=16, channels=1, num_workers=4)
        assert raised.value.path.endswith("d11.png")


def test_skipped_files_keep_the_other_labels(tmp_path, digits):
    images, _ = digits
    for index in range(6):
        write(
            str(tmp_path / ["cats", "dogs"][index % 2] / f"{index}.png"), images[index]
        )
    overwrite(tmp_path / "cats" / "2.png", "no image")
    decoded = image_folder.decode_folder(
        tmp_path, on_bad_image="skip", image_size=32, channels=1
    )
    assert decoded.class_names == ["cats", "dogs"]
    assert decoded.paths == [
        "cats/0.png",
        "cats/4.png",
        *(f"dogs/{i}.png" for i in (1, 3, 5)),
    ]
    assert decoded.labels.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(decoded.images[:2, ..., 0], images[[0, 4]])


def test_all_bad_files_is_an_input_error(tmp_path):
    for name in ("a.png", "b.jpg"):
        overwrite(tmp_path / name, "no image")
    lines = []
    with pytest.raises(InputError, match="all 2 image files .* are unreadable"):
        image_folder.decode_folder(tmp_path, on_bad_image="skip", log=lines.append)
    assert lines[-1] == "skipped 2 of 2 files"


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    path = bomb_png(str(tmp_path / "bomb.png"), 9000, 9000)

    def load(self):
        raise AssertionError("decoded a refused image")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    with pytest.raises(BadImageError, match="9000x9000 = 81,000,000 pixels") as raised:
        image_folder.read_image(path)
    assert "refused without decoding" in raised.value.reason


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux")
@pytest.mark.parametrize("pillow_limit", ["default", "off"])
def test_a_huge_bomb_costs_no_memory(tmp_path, pillow_limit):
    # 60000 x 60000 greys would take 3.4 GiB to decode.
    path = bomb_png(str(tmp_path / "bomb.png"), 60000, 60000)
    small = str(tmp_path / "small.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(small)
    result = run_isolated(
        f"""
import json, resource
from PIL import Image
if {pillow_limit == "off"}:
    Image.MAX_IMAGE_PIXELS = None  # only our own limit left
image_folder.read_image({small!r})  # Pillow's plugins loaded
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    image_folder.read_image({path!r})
    reason = None
except image_folder.BadImageError as error:
    reason = error.reason
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"reason": reason, "kib": after - before}}))
"""
    )
    assert "3,600,000,000 pixels" in result["reason"]
    assert result["kib"] < 20 * 1024


def test_decoding_needs_neither_tensorflow_nor_keras():
    # The decoding modules import NumPy, Pillow and the standard library only,
    # so that every backend can use them; importing them leaves Pillow's
    # truncated-image switch off.
    import ast

    from keras_gan.data import shapes

    allowed = {"numpy", "PIL", "keras_gan"}
    for module in (image_folder, shapes):
        with open(module.__file__) as file:
            tree = ast.parse(file.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in allowed or top in sys.stdlib_module_names, name
                if top == "keras_gan":
                    assert name in ("keras_gan", "keras_gan.errors", "keras_gan.data")
    result = run_isolated(
        """
import json
from PIL import ImageFile
print(json.dumps({"load_truncated": ImageFile.LOAD_TRUNCATED_IMAGES}))
"""
    )
    assert result == {"load_truncated": False}


# Decoding a folder


def test_sizes_must_agree_without_image_size(tmp_path, digits):
    write(str(tmp_path / "a.png"), digits[0][0])
    write(str(tmp_path / "b.png"), digits[0][1][:16])  # 16 high, 32 wide
    with pytest.raises(InputError) as raised:
        image_folder.decode_folder(tmp_path)
    message = str(raised.value)
    assert "a.png is 32x32 and b.png is 16x32 (height x width)" in message
    assert "--image-size" in message
    decoded = image_folder.decode_folder(tmp_path, image_size=16)
    assert decoded.images.shape == (2, 16, 16, 1)


def test_channels_follow_the_folder(tmp_path, digits):
    write(str(tmp_path / "a.png"), digits[0][0])
    write(str(tmp_path / "b.gif"), digits[0][1])
    assert image_folder.decode_folder(tmp_path).images.shape == (2, 32, 32, 1)
    write(str(tmp_path / "c.png"), tinted(digits[0][2]))
    decoded = image_folder.decode_folder(tmp_path)
    assert decoded.images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(decoded.images[0, ..., 1], digits[0][0])


def test_a_folder_too_big_for_memory_asks_for_a_cache(tmp_path, digits, monkeypatch):
    folder = digit_folder(str(tmp_path / "images"), digits)
    monkeypatch.setattr(image_folder, "_physical_memory_bytes", lambda: 4 * 1024)
    with pytest.raises(InputError, match=r"needs .* GiB.*cache_dir \(--cache-dir\)"):
        image_folder.decode_folder(folder)
    decoded = image_folder.decode_folder(folder, cache_dir=str(tmp_path / "cache"))
    assert decoded.images.shape == (4, 32, 32, 1)
    assert image_folder.estimated_bytes(4, 32, 1) == 4 * 32 * 32


def test_fashion_mnist_classes_decode_exactly(tmp_path, fashion):
    images, labels = fashion
    for index, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        write(str(tmp_path / f"class_{label}" / f"{index:03d}.png"), pixels)
    decoded = image_folder.decode_folder(tmp_path, num_workers=2)
    assert decoded.class_names == [f"class_{label}" for label in range(10)]
    order = np.lexsort((np.arange(200), labels))  # paths sort by class, then index
    np.testing.assert_array_equal(decoded.images[..., 0], images[order])
    np.testing.assert_array_equal(decoded.labels, labels[order])
    resized = image_folder.decode_folder(tmp_path, image_size=(14, 20), channels=3)
    # 28 x 28 to (14, 20): int(28 * 14 / 20) = 19 rows kept, from row 4.
    expected = Image.fromarray(images[order[0]][4:23]).resize(
        (20, 14), Image.Resampling.BICUBIC
    )
    np.testing.assert_array_equal(resized.images[0, ..., 0], np.asarray(expected))


# The cache


def forbid_decoding(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("decoded although the cache holds the folder")

    for name in ("read_image", "_decode", "_header"):
        monkeypatch.setattr(image_folder, name, refuse)
    monkeypatch.setattr(Image, "open", refuse)


def test_the_cache_is_reused_without_decoding(tmp_path, digits, monkeypatch):
    folder = digit_folder(str(tmp_path / "images"), digits, count=6)
    cache = str(tmp_path / "cache")
    in_memory = image_folder.decode_folder(folder)
    lines = []
    built = image_folder.decode_folder(folder, cache_dir=cache, log=lines.append)
    assert isinstance(built.images, np.memmap) and not built.images.flags.writeable
    np.testing.assert_array_equal(built.images, in_memory.images)
    assert os.path.dirname(built.cache_path) == cache
    assert sorted(os.listdir(built.cache_path)) == ["images.npy", "meta.json"]
    assert any("into cache" in line for line in lines)
    forbid_decoding(monkeypatch)
    lines.clear()
    again = image_folder.decode_folder(folder, cache_dir=cache, log=lines.append)
    assert again.cache_path == built.cache_path and again.paths == built.paths
    np.testing.assert_array_equal(again.images, in_memory.images)
    assert lines == [f"loaded 6 images from cache {built.cache_path}"]


def test_the_cache_remembers_skipped_files(tmp_path, digits, monkeypatch):
    images, _ = digits
    for index in range(4):
        write(
            str(tmp_path / "images" / f"c{index % 2}" / f"{index}.png"), images[index]
        )
    overwrite(tmp_path / "images" / "c1" / "bad.png", "no image")
    cache = str(tmp_path / "cache")
    built = image_folder.decode_folder(
        tmp_path / "images", image_size=16, on_bad_image="skip", cache_dir=cache
    )
    assert sorted(os.listdir(built.cache_path)) == [
        "images.npy",
        "labels.npy",
        "meta.json",
    ]
    forbid_decoding(monkeypatch)
    lines = []
    again = image_folder.decode_folder(
        tmp_path / "images",
        image_size=16,
        on_bad_image="skip",
        cache_dir=cache,
        log=lines.append,
    )
    np.testing.assert_array_equal(again.images, built.images)
    assert again.labels.tolist() == built.labels.tolist() == [0, 0, 1, 1]
    assert again.skipped == built.skipped == [("c1/bad.png", again.skipped[0][1])]
    assert lines[-1] == "skipped 1 of 5 files"
    with pytest.raises(BadImageError, match="bad.png is not a usable image"):
        image_folder.decode_folder(tmp_path / "images", image_size=16, cache_dir=cache)


def test_a_changed_folder_gets_a_new_cache_entry(tmp_path, digits):
    folder = digit_folder(str(tmp_path / "images"), digits)
    cache = str(tmp_path / "cache")
    first = image_folder.decode_folder(folder, cache_dir=cache).cache_path
    resized = image_folder.decode_folder(folder, image_size=16, cache_dir=cache)
    assert resized.cache_path != first
    write(os.path.join(folder, "d99.png"), digits[0][10])
    added = image_folder.decode_folder(folder, cache_dir=cache)
    assert added.cache_path != first and len(added.images) == 5
    path = os.path.join(folder, "d00.png")
    write(path, digits[0][11])
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    modified = image_folder.decode_folder(folder, cache_dir=cache)
    assert modified.cache_path not in (first, added.cache_path)
    np.testing.assert_array_equal(modified.images[0, ..., 0], digits[0][11])


def damage_truncated(entry):
    path = os.path.join(entry, "images.npy")
    os.truncate(path, os.path.getsize(path) - 100)


def damage_pickled(entry):
    np.save(os.path.join(entry, "images.npy"), np.array([{}]), allow_pickle=True)


def damage_dtype(entry):
    images = np.load(os.path.join(entry, "images.npy"))
    np.save(os.path.join(entry, "images.npy"), images.astype(np.float32))


def damage_meta(entry):
    with open(os.path.join(entry, "meta.json"), "w") as file:
        file.write('{"format": 1, "key": ')


def damage_shape(entry):
    path = os.path.join(entry, "meta.json")
    with open(path) as file:
        meta = json.load(file)
    meta["shape"][1] = 31
    with open(path, "w") as file:
        json.dump(meta, file)


def damage_labels(entry):
    np.save(os.path.join(entry, "labels.npy"), np.array([0, 1, 7], np.int64))


def damage_missing(entry):
    os.remove(os.path.join(entry, "images.npy"))


@pytest.mark.parametrize(
    "damage",
    [
        damage_truncated,
        damage_pickled,
        damage_dtype,
        damage_meta,
        damage_shape,
        damage_labels,
        damage_missing,
    ],
)
def test_a_damaged_cache_entry_is_rebuilt(tmp_path, digits, damage):
    images, _ = digits
    for index in range(4):
        write(
            str(tmp_path / "images" / f"c{index % 2}" / f"{index}.png"), images[index]
        )
    cache = str(tmp_path / "cache")
    built = image_folder.decode_folder(tmp_path / "images", cache_dir=cache)
    expected = np.array(built.images)
    del built
    entry = os.path.join(cache, os.listdir(cache)[0])
    damage(entry)
    lines = []
    rebuilt = image_folder.decode_folder(
        tmp_path / "images", cache_dir=cache, log=lines.append
    )
    assert lines[0].startswith(f"cache entry {entry} is damaged (")
    assert lines[0].endswith("); rebuilding it")
    np.testing.assert_array_equal(rebuilt.images, expected)
    assert rebuilt.labels.tolist() == [0, 0, 1, 1]
    assert sorted(os.listdir(cache)) == [os.path.basename(entry)]


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_staging_left_by_a_dead_process_is_removed(tmp_path, digits):
    folder = digit_folder(str(tmp_path / "images"), digits)
    cache = tmp_path / "cache"
    dead = cache / f".staging-{dead_pid()}-abc123"
    mine = cache / f".staging-{os.getpid()}-xyz789"  # a build of this process
    for staging in (dead, mine):
        os.makedirs(staging)
        (staging / "images.npy").write_bytes(b"partial")
    lines = []
    decoded = image_folder.decode_folder(folder, cache_dir=str(cache), log=lines.append)
    assert not dead.exists() and mine.exists()
    assert any(line.startswith(f"removed {dead}") for line in lines)
    assert sorted(os.listdir(cache)) == sorted(
        [os.path.basename(decoded.cache_path), mine.name]
    )


def test_a_build_killed_midway_leaves_no_entry(tmp_path, digits):
    folder = digit_folder(str(tmp_path / "images"), digits, count=40)
    cache = str(tmp_path / "cache")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ISOLATED_IMPORT
            + f"""
import time
decode = image_folder._decode
def slow(*args):
    time.sleep(0.1)
    return decode(*args)
image_folder._decode = slow
image_folder.decode_folder({folder!r}, cache_dir={cache!r}, num_workers=1)
""",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            staged = os.listdir(cache) if os.path.isdir(cache) else []
            if staged and os.path.exists(os.path.join(cache, staged[0], "images.npy")):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the child never started its cache entry")
        time.sleep(0.3)  # a few images in
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    [staging] = os.listdir(cache)
    assert staging.startswith(f".staging-{child.pid}-")
    lines = []
    decoded = image_folder.decode_folder(folder, cache_dir=cache, log=lines.append)
    assert os.listdir(cache) == [os.path.basename(decoded.cache_path)]
    assert (
        lines[0]
        == f"removed {os.path.join(cache, staging)}, left by dead process {child.pid}"
    )
    np.testing.assert_array_equal(decoded.images[..., 0], digits[0][:40])
