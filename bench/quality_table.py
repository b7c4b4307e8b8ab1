"""Sample quality on the real Fashion-MNIST, scored by keras_gan.evaluation.

Prints the Markdown table README carries: the real-vs-real floor, uniform
noise, and the seed MLP GAN after 1, 10 and 30 epochs (keras_gan's public API,
the CLI's defaults), beside the plain-TensorFlow reference of
`bench/reference_tf.py` after 30 epochs, all scored by the same evaluator
(n = 10,000 per set, the domain classifier of `keras_gan.evaluation`).

Usage:

    python bench/quality_table.py --out bench/results/quality --seeds 0 1
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import reference_tf  # noqa: E402

import keras_gan  # noqa: E402
from keras_gan.evaluation import Evaluator  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
COLUMNS = (
    "frechet_distance",
    "kid",
    "inception_score",
    "precision",
    "recall",
    "coverage",
    "classes_covered",
)


def keras_gan_rows(evaluator, seed, checkpoints):
    dataset = keras_gan.data.make_dataset(data_dir=FASHION_MNIST, seed=seed)
    gan = keras_gan.GAN(
        keras_gan.networks.mlp_generator(100, (28, 28, 1)),
        keras_gan.networks.mlp_discriminator((28, 28, 1)),
        latent_dim=100,
        seed=seed,
    )
    gan.compile(jit_compile=True, steps_per_execution=32)
    rows, done, seconds = [], 0, 0.0
    for epochs in checkpoints:
        start = time.perf_counter()
        gan.fit(dataset, epochs=epochs, initial_epoch=done, verbose=0)
        seconds += time.perf_counter() - start
        done = epochs
        result = evaluator.evaluate_generator(gan.generate)
        rows.append(_row(f"keras_gan MLP, seed {seed}", epochs, seconds, result))
    return rows


def reference_rows(evaluator, images, seed, epochs):
    model, seconds = reference_tf.train_reference(images, epochs, seed=seed)

    def generate(num_images, seed=0):
        z = keras_gan.noise.latent_noise(num_images, 100, seed)
        return np.concatenate(
            [np.asarray(model(z[i : i + 500])) for i in range(0, num_images, 500)]
        )

    result = evaluator.evaluate_generator(generate)
    return [_row(f"plain TF reference, seed {seed}", epochs, seconds, result)]


def _row(name, epochs, seconds, result):
    row = {"model": name, "epochs": epochs, "train_seconds": seconds}
    row.update({key: result[key] for key in COLUMNS})
    row.update(
        eval_seconds=result["seconds"],
        missing_classes=result["missing_classes"],
        num_samples=result["num_samples"],
    )
    return row


def markdown(rows):
    header = (
        "| images | epochs | train s | FD | KID | IS | precision | recall "
        "| coverage | classes | eval s |"
    )
    lines = [header, "|" + " --- |" * 11]
    for row in rows:
        cells = [
            row["model"],
            row["epochs"],
            _cell(row["train_seconds"], ".0f"),
            *(_cell(row[key], ".4g") for key in COLUMNS),
            _cell(row["eval_seconds"], ".1f"),
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _cell(value, spec):
    return "" if value is None else format(value, spec)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/quality")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[1, 10, 30])
    parser.add_argument("--num-samples", type=int, default=10_000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    start = time.perf_counter()
    evaluator = Evaluator.for_dataset(
        data_dir=FASHION_MNIST, num_samples=args.num_samples
    )
    setup = time.perf_counter() - start
    classifier = evaluator.classifier
    print(
        f"evaluator ready in {setup:.1f} s: classifier {classifier.dataset_key}, "
        f"held-out accuracy {classifier.accuracy:.4f}, "
        f"weights {classifier.weights_sha256[:12]}, n = {evaluator.num_samples}",
        flush=True,
    )
    floor = dict(evaluator.floor, seconds=0.0, missing_classes=[])
    rows = [_row("real (disjoint real set: the floor)", "", None, floor)]
    noise = np.random.default_rng(0).uniform(-1, 1, (evaluator.num_samples, 28, 28, 1))
    rows.append(_row("uniform noise", "", None, evaluator.evaluate_images(noise)))
    print(markdown(rows), flush=True)

    images, _ = keras_gan.data.load_arrays(data_dir=FASHION_MNIST)
    for seed in args.seeds:
        keras.utils.set_random_seed(seed)
        rows += keras_gan_rows(evaluator, seed, args.checkpoints)
        rows += reference_rows(evaluator, images, seed, args.checkpoints[-1])
        print(markdown(rows[-len(args.checkpoints) - 1 :]), flush=True)

    print()
    print(markdown(rows))
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump(
            {
                "classifier": {
                    "dataset": classifier.dataset_key,
                    "accuracy": classifier.accuracy,
                    "weights_sha256": classifier.weights_sha256,
                },
                "evaluator_setup_seconds": setup,
                "rows": rows,
            },
            file,
            indent=2,
        )


if __name__ == "__main__":
    main()
