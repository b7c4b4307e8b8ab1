"""A conditional DCGAN trained through the CLI on a class-subfolder PNG copy of
Fashion-MNIST against the same run on the IDX files.

Writes the 60,000 training images as `<work>/png/<k>-<name>/<index>.png`, then
runs `cli.py train` on the IDX folder (seeds 0 and 1: the second gives the
seed-to-seed noise) and on the PNG folder (seed 0), each with the same flags,
and scores every export with `cli.py evaluate` against the IDX images (one
evaluator and classifier for all). The two seed-0 runs see the same pixels and
labels in another order (a folder lists its images by class), so they differ
as two seeds do.

    python bench/folder_vs_idx.py [--epochs 3] [--mixed-precision mixed_bfloat16]
                                  [--work /tmp/keras-gan-folder-vs-idx]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from PIL import Image

FASHION = "/usr/share/datasets/fashion-mnist"
CLASSES = [
    "0-tshirt", "1-trouser", "2-pullover", "3-dress", "4-coat",
    "5-sandal", "6-shirt", "7-sneaker", "8-bag", "9-boot",
]  # fmt: skip
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_png_folder(folder):
    from keras_gan import data

    images, labels = data.load_arrays(data_dir=FASHION)
    if os.path.isdir(folder) and sum(len(f) for _, _, f in os.walk(folder)) == len(
        images
    ):
        return len(images)
    start = time.perf_counter()
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        path = os.path.join(folder, CLASSES[label], f"{index:05d}.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(image[..., 0]).save(path)
    print(f"wrote {len(images):,} PNG files in {time.perf_counter() - start:.0f} s")
    return len(images)


def cli(*arguments):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "cli.py"), *arguments],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"cli.py {' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
    return done.stdout, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--work", default="/tmp/keras-gan-folder-vs-idx")
    parser.add_argument(
        "--mixed-precision", default=None, help="e.g. mixed_bfloat16 (default: float32)"
    )
    arguments = parser.parse_args()
    work = arguments.work
    png = os.path.join(work, "png")
    write_png_folder(png)
    flags = [
        "--architecture", "dcgan", "--conditional", "--batch-size", "128",
        "--epochs", str(arguments.epochs),
        "--runs-dir", os.path.join(work, "runs"),
        "--export-dir", os.path.join(work, "saved_models"),
        "--cache-dir", os.path.join(work, "cache"),
    ]  # fmt: skip
    if arguments.mixed_precision:
        flags += ["--mixed-precision", arguments.mixed_precision]
    runs = [("idx-seed0", FASHION, 0), ("png-seed0", png, 0), ("idx-seed1", FASHION, 1)]
    rows = []
    for name, source, seed in runs:
        export = os.path.join(work, "saved_models", name)
        if not os.path.isdir(export):
            _, seconds = cli(
                "train", "--data-dir", source, "--seed", str(seed), "--name", name,
                *flags,
            )  # fmt: skip
            print(f"{name}: trained in {seconds:.0f} s", flush=True)
        output, _ = cli("evaluate", export, "--data-dir", FASHION, "--json")
        scores = json.loads(output.strip().splitlines()[-1])
        rows.append((name, scores))
        print(
            f"{name}: FD {scores['frechet_distance']:.2f}, KID {scores['kid']:.3f}, "
            f"IS {scores['inception_score']:.3f}, recall {scores['recall']:.3f}, "
            f"label agreement {scores['label_agreement']:.3f}",
            flush=True,
        )
    fd = {name: scores["frechet_distance"] for name, scores in rows}
    print(
        f"PNG folder vs IDX (seed 0): FD {fd['png-seed0']:.2f} vs "
        f"{fd['idx-seed0']:.2f} "
        f"(difference {abs(fd['png-seed0'] - fd['idx-seed0']):.2f}); seed noise on IDX "
        f"(seed 0 vs 1): {abs(fd['idx-seed1'] - fd['idx-seed0']):.2f}; load "
        f"{os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
