"""Trains the domain classifiers that ship with keras_gan and writes them.

    python -m keras_gan.evaluation.train_shipped                  # both
    python -m keras_gan.evaluation.train_shipped --only digits    # seconds

Fashion-MNIST comes from Debian's IDX files (`apt install
dataset-fashion-mnist`), the 8x8 digits from scikit-learn. Each is trained as
`load_classifier` would train it (`train_classifier`, 12 epochs, seed 0, held
out on the same split: Fashion-MNIST's test split, the digits' last fifth),
its weights are rounded to float16, its held-out accuracy is measured again
with exactly those weights, and `keras_gan.evaluation.shipped.save` writes
`<name>.npz` and `<name>.json` to `keras_gan/evaluation/classifiers/` (or
`--output-dir`). Training on a CPU is not bit-reproducible run to run, so a
rerun writes new hashes: commit the files of one run together.
"""

import argparse
import sys
import time

import keras
import numpy as np

from keras_gan import data
from keras_gan import images as pixel_ranges
from keras_gan.evaluation import shipped
from keras_gan.evaluation.classifier import held_out_split
from keras_gan.evaluation.classifier import train_classifier

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

# name: (dataset, data_dir, where it comes from)
SOURCES = {
    "fashion-mnist": (
        "fashion-mnist",
        FASHION_MNIST,
        "Fashion-MNIST, Debian package dataset-fashion-mnist's IDX files",
    ),
    "digits": ("digits", None, "scikit-learn's load_digits(), 8x8, 0..16 -> 0..255"),
}
EPOCHS = 12
SEED = 0


def held_out_accuracy(model: keras.Model, images, labels) -> float:
    """The share of uint8 `images` whose largest logit is their label."""
    _, logits = model.predict(
        np.asarray(pixel_ranges.to_model_range(images)), batch_size=500, verbose=0
    )
    return float(np.mean(np.argmax(logits, axis=-1) == labels))


def train_shipped(name: str, output_dir: str, epochs: int = EPOCHS) -> dict:
    """Trains the classifier of `SOURCES[name]`, writes it, returns its record."""
    dataset, data_dir, description = SOURCES[name]
    images, labels = data.load_arrays(dataset, data_dir, "train")
    train_images, train_labels, test_images, test_labels = held_out_split(
        dataset, data_dir, images, labels
    )
    start = time.perf_counter()
    model, accuracy_float32 = train_classifier(
        train_images,
        train_labels,
        test_images,
        test_labels,
        epochs=epochs,
        seed=SEED,
        progress=True,
    )
    seconds = time.perf_counter() - start
    record = {
        "name": name,
        "source": description,
        "data_sha256": data.content_digest(images, labels),
        "image_shape": list(images.shape[1:]),
        "num_classes": int(model.outputs[1].shape[-1]),
        "train_images": len(train_images),
        "test_images": len(test_images),
        "held_out": "the test split"
        if len(train_images) == len(images)
        else "the last fifth of a fixed permutation (seed 0)",
        "epochs": epochs,
        "seed": SEED,
        "accuracy_float32": accuracy_float32,
        "train_seconds": round(seconds, 1),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    shipped.round_to_float16(model)
    record["accuracy"] = held_out_accuracy(model, test_images, test_labels)
    return shipped.save(model, name, record, output_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SOURCES), action="append")
    parser.add_argument("--output-dir", default=shipped.SHIPPED_DIR)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)
    for name in args.only or list(SOURCES):
        record = train_shipped(name, args.output_dir, args.epochs)
        print(
            f"{name}: held-out accuracy {record['accuracy']:.2%} (float32 "
            f"{record['accuracy_float32']:.2%}), {record['file_bytes'] / 1e3:.0f} KB, "
            f"file sha256 {record['file_sha256']}, weights sha256 "
            f"{record['weights_sha256']}, trained in {record['train_seconds']} s",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
