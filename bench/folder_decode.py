"""What decoding a folder of images costs: `python bench/folder_decode.py`.

Writes `--images` 64x64 RGB JPEGs into a temporary folder, made from real
images (Fashion-MNIST's training set where it is installed, else
scikit-learn's digits), upscaled with Pillow's bicubic filter and each tinted
with its own colour. Then times `keras_gan.image_folder.decode_folder` three
ways: into memory (no cache), cold (decoding into a new cache entry) and warm
(the entry reused, nothing decoded), and prints images per second and the
process's peak resident memory after each (cumulative, so the in-memory run
comes last), beside the decoded array's size. The memory before decoding
includes TensorFlow, which `import keras_gan` brings in.
"""

import argparse
import gzip
import os
import resource
import sys
import tempfile
import time

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FASHION_IMAGES = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
SIZE = 64


def source_images(count):
    """(count, height, width) uint8 greys and where they come from."""
    if os.path.exists(FASHION_IMAGES):
        with gzip.open(FASHION_IMAGES) as file:
            file.read(16)  # IDX header: magic, count, rows, columns
            pixels = np.frombuffer(file.read(min(count, 60000) * 28 * 28), np.uint8)
        images, name = pixels.reshape(-1, 28, 28), "Fashion-MNIST"
    else:
        from sklearn.datasets import load_digits

        digits = load_digits().images[:count]
        images, name = np.round(digits * (255 / 16)).astype(np.uint8), "digits"
    # Fewer sources than images: reuse them (the tint still differs).
    return images[np.arange(count) % len(images)], name


def write_folder(folder, count, seed=0):
    from PIL import Image

    greys, name = source_images(count)
    colours = np.random.default_rng(seed).uniform(0.3, 1.0, (count, 3))
    for index, (grey, colour) in enumerate(zip(greys, colours, strict=True)):
        image = Image.fromarray(grey).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
        rgb = np.round(np.asarray(image)[..., None] * colour).astype(np.uint8)
        Image.fromarray(rgb).save(os.path.join(folder, f"{index:06d}.jpg"), quality=90)
    return name


def peak_rss_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes / KiB


def timed(label, count, call):
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    print(f"{label:<22} {seconds:8.3f} {count / seconds:10,.0f} {peak_rss_mib():13.0f}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    sys.path.insert(0, REPO_DIR)
    from keras_gan.data import folder as image_folder

    with tempfile.TemporaryDirectory() as workspace:
        folder = os.path.join(workspace, "images")
        os.makedirs(folder)
        source = write_folder(folder, args.images)
        cache = os.path.join(workspace, "cache")
        settings = {"image_size": SIZE, "channels": 3, "num_workers": args.workers}
        decoded_mib = args.images * SIZE * SIZE * 3 / 2**20
        print(
            f"load average {os.getloadavg()[0]:.2f}; {args.images:,} {SIZE}x{SIZE} "
            f"RGB JPEGs from {source}, {decoded_mib:.1f} MiB decoded; "
            f"{args.workers or min(16, os.cpu_count() or 1)} threads; "
            f"peak RSS {peak_rss_mib():.0f} MiB before decoding"
        )
        print(
            f"{'decode_folder':<22} {'seconds':>8} {'images/s':>10} "
            f"{'peak RSS MiB':>13}"
        )
        timed(
            "cold (builds cache)",
            args.images,
            lambda: image_folder.decode_folder(folder, cache_dir=cache, **settings),
        )
        warm = timed(
            "warm (cache hit)",
            args.images,
            lambda: image_folder.decode_folder(folder, cache_dir=cache, **settings),
        )
        # Reading every pixel of the warm entry: the pages the training reads.
        timed("warm, every pixel read", args.images, lambda: int(warm.images.sum()))
        # Last: its whole array in memory would hide the cache's own peak.
        timed(
            "in memory (no cache)",
            args.images,
            lambda: image_folder.decode_folder(folder, **settings),
        )


if __name__ == "__main__":
    main()
