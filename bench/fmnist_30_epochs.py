"""keras_gan against a plain TensorFlow GAN on Fashion-MNIST: time and quality.

Trains, in one process and one after the other, (a) keras_gan through its
public API and (b) `bench/reference_tf.py`, the same design hand-written in
plain TensorFlow, for the same number of epochs; prints one row per run, and
writes the 8x8 sample grids of both (same fixed latents) and `results.json` to
`--out`. The bar: keras_gan matches or beats the reference in quality and wall
time. Figures only; nothing here asserts a timing.

Wall time covers the training loop (compile and first trace included), not
the loading of the IDX files. Quality is a crude, dependency-free proxy: the
Frechet distance between 10,000 generated images and the 10,000 test images,
in the space of the test set's top 64 principal components ("PCA-FD", lower is
better); the row `real (train)` gives the floor, 10,000 real training images.

Usage:

    python bench/fmnist_30_epochs.py --epochs 30 --out bench/results/fmnist
    python bench/fmnist_30_epochs.py --epochs 1 --variants   # smoke test
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import reference_tf  # noqa: E402

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
LATENT_DIM = 100
IMAGE_SHAPE = (28, 28, 1)
PCA_COMPONENTS = 64
QUALITY_SAMPLES = 10_000


def load_images(data_dir, split):
    """uint8 `(N, 28, 28, 1)`: keras_gan's loader when it works, else NumPy's."""
    try:
        import keras_gan

        images, _ = keras_gan.data.load_arrays(data_dir=data_dir, split=split)
        return np.asarray(images), "keras_gan.data.load_arrays"
    except Exception as error:  # the library is being written concurrently
        print(f"keras_gan.data.load_arrays failed ({error!r}); parsing IDX here.")
        return reference_tf.load_idx_images(data_dir, split), "reference_tf"


def run_keras_gan(data_dir, epochs, batch_size, seed, jit_compile, steps_per_execution):
    """Trains keras_gan with its public API; returns (generator_fn, row)."""
    import keras

    import keras_gan

    keras.utils.set_random_seed(seed)  # the networks' initial weights
    dataset = keras_gan.data.make_dataset(
        data_dir=data_dir, batch_size=batch_size, seed=seed
    )
    gan = keras_gan.GAN(
        generator=keras_gan.networks.mlp_generator(LATENT_DIM, IMAGE_SHAPE),
        discriminator=keras_gan.networks.mlp_discriminator(IMAGE_SHAPE),
        latent_dim=LATENT_DIM,
        seed=seed,
    )
    epoch_ends = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epoch_ends.append(time.perf_counter())
    )
    load_before = os.getloadavg()
    start = time.perf_counter()
    gan.compile(jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    history = gan.fit(dataset, epochs=epochs, verbose=0, callbacks=[timer]).history
    seconds = time.perf_counter() - start
    load_after = os.getloadavg()
    steps = epochs * int(dataset.cardinality())
    xla = "XLA" if jit_compile else "no XLA"
    row = _row(
        f"keras_gan ({xla}, steps_per_execution={steps_per_execution})",
        epochs,
        steps,
        seconds,
        history["d_loss"][-1],
        history["g_loss"][-1],
        np.diff([start, *epoch_ends]),
        load_before,
        load_after,
    )
    return (lambda z: gan.generator(z, training=False)), row


def run_reference(images, epochs, batch_size, seed, xla):
    """Trains the plain TensorFlow reference; returns (generator_fn, row)."""
    load_before = os.getloadavg()
    model, seconds = reference_tf.train_reference(
        images, epochs, batch_size=batch_size, seed=seed, xla=xla
    )
    load_after = os.getloadavg()
    last = model.history[-1]
    name = "reference TF (tf.function, XLA)" if xla else "reference TF (tf.function)"
    row = _row(
        name,
        epochs,
        model.steps,
        seconds,
        last["d_loss"],
        last["g_loss"],
        [epoch["seconds"] for epoch in model.history],
        load_before,
        load_after,
    )
    return model, row


def _row(
    name, epochs, steps, seconds, d_loss, g_loss, epoch_seconds, load_before, load_after
):
    # The first epoch holds the trace, the XLA compile and the cache fill; the
    # median of the others is the steady state, robust to a busy machine.
    steady = np.median(epoch_seconds[1:]) if len(epoch_seconds) > 1 else np.nan
    return {
        "implementation": name,
        "epochs": epochs,
        "steps": steps,
        "wall_seconds": round(seconds, 2),
        "steps_per_second": round(steps / seconds, 1),
        "d_loss": round(float(d_loss), 4),
        "g_loss": round(float(g_loss), 4),
        "first_epoch_seconds": round(float(epoch_seconds[0]), 2),
        "median_later_epoch_seconds": round(float(steady), 2),
        "epoch_seconds": [round(float(value), 2) for value in epoch_seconds],
        "load_before": [round(value, 2) for value in load_before],
        "load_after": [round(value, 2) for value in load_after],
    }


class PCAFrechet:
    """Frechet distance of Gaussians fitted in the test set's top PCA space."""

    def __init__(self, real_uint8, num_components=PCA_COMPONENTS):
        real = self._flat(real_uint8)
        self.mean = real.mean(axis=0)
        # Right singular vectors of the centred data are the principal axes.
        _, _, axes = np.linalg.svd(real - self.mean, full_matrices=False)
        self.axes = axes[:num_components].T  # (784, k)
        self.real_stats = self._stats(real)

    @staticmethod
    def _flat(images):
        images = np.asarray(images)
        if images.dtype == np.uint8:
            images = images.astype(np.float64) / 127.5 - 1.0
        return images.reshape(len(images), -1).astype(np.float64)

    def _stats(self, flat):
        features = (flat - self.mean) @ self.axes
        return features.mean(axis=0), np.cov(features, rowvar=False)

    def distance(self, images):
        """Eq. 6 of Heusel et al. 2017, arXiv:1706.08500, on PCA features."""
        mu1, sigma1 = self.real_stats
        mu2, sigma2 = self._stats(self._flat(images))
        # Tr sqrt(S1 S2) from the eigenvalues of S1^1/2 S2 S1^1/2 (symmetric).
        values, vectors = np.linalg.eigh(sigma1)
        root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
        middle = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
        trace_root = np.sqrt(np.clip(middle, 0, None)).sum()
        return float(
            np.sum((mu1 - mu2) ** 2)
            + np.trace(sigma1)
            + np.trace(sigma2)
            - 2.0 * trace_root
        )


def generate_many(generator_fn, seed, num_images=QUALITY_SAMPLES, batch_size=1000):
    latents = reference_tf.fixed_latents(num_images, LATENT_DIM, seed)
    return np.concatenate(
        [
            np.asarray(generator_fn(latents[start : start + batch_size]))
            for start in range(0, num_images, batch_size)
        ]
    )


def save_grid(generator_fn, latents, path):
    """keras_gan's grid and PNG writer when they work, else the reference's."""
    try:
        import keras_gan

        grid = keras_gan.images.image_grid(np.asarray(generator_fn(latents)), 8)
        keras_gan.images.save_png(grid, path)
    except Exception as error:
        print(f"keras_gan.images failed ({error!r}); using reference_tf's grid.")
        reference_tf.save_grid(reference_tf.sample_grid(generator_fn, latents), path)


def print_table(rows, real_floor):
    # "epoch 1": seconds of the first epoch; "later": median of the others.
    header = (
        f"{'implementation':<46} {'epochs':>6} {'steps':>6} {'wall s':>8} "
        f"{'steps/s':>8} {'epoch 1':>7} {'later':>6} "
        f"{'d_loss':>7} {'g_loss':>7} {'PCA-FD':>7} "
        f"{'load 1m before->after':>22}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        load = f"{row['load_before'][0]:.2f} -> {row['load_after'][0]:.2f}"
        print(
            f"{row['implementation']:<46} {row['epochs']:>6} {row['steps']:>6} "
            f"{row['wall_seconds']:>8.1f} {row['steps_per_second']:>8.1f} "
            f"{row['first_epoch_seconds']:>7.1f} "
            f"{row['median_later_epoch_seconds']:>6.2f} "
            f"{row['d_loss']:>7.3f} {row['g_loss']:>7.3f} "
            f"{row['pca_fd']:>7.2f} {load:>22}"
        )
    print(f"{'real (train) vs test: PCA-FD floor':<46} {real_floor:>72.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--out", default="bench/results/fmnist")
    parser.add_argument("--data-dir", default=FASHION_MNIST)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-per-execution", type=int, default=32)
    parser.add_argument(
        "--variants",
        action="store_true",
        help="also keras_gan with steps_per_execution=1 and the reference with XLA",
    )
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    images, loader = load_images(args.data_dir, "train")
    test_images, _ = load_images(args.data_dir, "test")
    print(f"train images {images.shape} {images.dtype} via {loader}")
    quality = PCAFrechet(test_images)
    floor_sample = np.random.default_rng(args.seed).choice(
        len(images), QUALITY_SAMPLES, replace=False
    )
    real_floor = quality.distance(images[floor_sample])

    runs = [
        (
            "keras_gan",
            {"jit_compile": True, "steps_per_execution": args.steps_per_execution},
        ),
        ("reference", {"xla": False}),
    ]
    if args.variants:
        runs += [
            ("keras_gan_spe1", {"jit_compile": True, "steps_per_execution": 1}),
            ("reference_xla", {"xla": True}),
        ]

    grid_latents = reference_tf.fixed_latents(64, LATENT_DIM, args.seed)
    rows = []
    for key, options in runs:
        print(f"training {key} for {args.epochs} epochs ...", flush=True)
        try:
            if key.startswith("keras_gan"):
                generator_fn, row = run_keras_gan(
                    args.data_dir, args.epochs, args.batch_size, args.seed, **options
                )
            else:
                generator_fn, row = run_reference(
                    images, args.epochs, args.batch_size, args.seed, **options
                )
        except Exception as error:  # report keras_gan API failures, keep going
            print(f"{key} failed: {type(error).__name__}: {error}", flush=True)
            rows.append({"implementation": key, "error": f"{error!r}"})
            continue
        # Quality latents differ from training noise: seed + 1.
        row["pca_fd"] = round(
            quality.distance(generate_many(generator_fn, args.seed + 1)), 3
        )
        row["grid"] = os.path.join(args.out, f"{key}_grid.png")
        save_grid(generator_fn, grid_latents, row["grid"])
        print(json.dumps(row), flush=True)
        rows.append(row)

    print()
    nproc = len(os.sched_getaffinity(0))
    python = platform.python_version()
    print(f"nproc {nproc}, TensorFlow {tf.__version__}, Python {python}")
    print_table([row for row in rows if "error" not in row], real_floor)
    results = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "nproc": nproc,
        "tensorflow": tf.__version__,
        "python": python,
        "loader": loader,
        "pca_fd_real_train_vs_test": round(real_floor, 3),
        "rows": rows,
    }
    path = os.path.join(args.out, "results.json")
    with open(path, "w") as file:
        json.dump(results, file, indent=2)
    print(f"results: {path}")


if __name__ == "__main__":
    main()
