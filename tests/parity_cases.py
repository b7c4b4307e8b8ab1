"""Trains small GANs on the active Keras backend and saves what they end with.

`python tests/parity_cases.py OUT_DIR` (with KERAS_BACKEND set) writes
`OUT_DIR/<backend>/<case>.npz` per case of `CASES`; the first backend to run writes the
initial weights to `OUT_DIR/<case>.init.npz` and later backends start from
them, so every backend trains the same networks on the same images.
Each backend also loads the first backend's `.keras` file and trains it one
more epoch (`<case>.continued.npz`). `tests/test_backend_parity.py` compares
the files of the three backends.
"""

import os
import sys

import keras
import numpy as np

import keras_gan

IMAGE_SHAPE = (8, 8, 1)
LATENT_DIM = 4

# name: (architecture, num_classes, ema_decay, compile arguments)
CASES = {
    "mlp": ("mlp", None, None, {}),
    "mlp_penalties": (
        "mlp",
        None,
        0.9,
        {
            "loss": "wasserstein",
            "gradient_penalty": 10.0,
            "r1": 1.0,
            "penalty_interval": 2,
            "d_steps": 2,
        },
    ),
    "mlp_augment": (
        "mlp",
        None,
        None,
        {"augment": "color,translation,cutout", "r2": 0.5},
    ),
    "dcgan_conditional": ("dcgan", 3, 0.5, {"loss": "hinge"}),
    "mlp_relativistic": ("mlp", None, None, {"loss": "relativistic"}),
    "resnet": ("resnet", None, None, {"loss": "least_squares", "r1": 1.0}),
}
# Adam turns any gradient into steps of about the learning rate, so a weight
# whose gradient is zero in exact arithmetic (a convolution's bias before
# batch norm, D's output bias under the relativistic loss) walks by +-lr on
# rounding noise, differently per backend: those cases train with SGD.
SGD_CASES = ("mlp_relativistic", "resnet")


def images_and_labels(count=16):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (count, *IMAGE_SHAPE)).astype("float32")
    return images, (np.arange(count) % 3).astype("int32")


def build(case):
    architecture, num_classes, ema_decay, _ = CASES[case]
    if architecture == "mlp":
        generator = keras_gan.networks.mlp_generator(LATENT_DIM, IMAGE_SHAPE, 8)
        discriminator = keras_gan.networks.mlp_discriminator(IMAGE_SHAPE, 8)
    else:
        generator, discriminator = keras_gan.networks.build(
            architecture, LATENT_DIM, IMAGE_SHAPE, num_classes
        )
    return keras_gan.GAN(
        generator, discriminator, seed=7, num_classes=num_classes, ema_decay=ema_decay
    )


def run(case, out_dir):
    gan = build(case)
    init = os.path.join(out_dir, f"{case}.init.npz")
    networks = (gan.generator, gan.discriminator)
    if os.path.exists(init):
        saved = np.load(init)
        for index, network in enumerate(networks):
            count = len(network.get_weights())
            network.set_weights([saved[f"{index}_{i}"] for i in range(count)])
        if gan.ema_generator is not None:
            gan.ema_generator.set_weights(gan.generator.get_weights())
    else:
        np.savez(
            init,
            **{
                f"{index}_{i}": weight
                for index, network in enumerate(networks)
                for i, weight in enumerate(network.get_weights())
            },
        )
    options = CASES[case][3]

    def optimizer():
        if case in SGD_CASES:
            return keras.optimizers.SGD(0.05, momentum=0.5)
        return keras.optimizers.Adam(1e-2, beta_1=0.5)

    gan.compile(d_optimizer=optimizer(), g_optimizer=optimizer(), **options)
    images, labels = images_and_labels()
    y = labels if gan.conditional else None
    history = gan.fit(
        images, y, batch_size=4, epochs=2, shuffle=False, verbose=0
    ).history
    results = {f"log_{name}": np.array(values) for name, values in history.items()}
    for prefix, model in (("g", gan.generator), ("d", gan.discriminator)):
        for i, weight in enumerate(model.get_weights()):
            results[f"{prefix}_{i}"] = weight
    if gan.ema_generator is not None:
        for i, weight in enumerate(gan.ema_generator.get_weights()):
            results[f"ema_{i}"] = weight
    for prefix, optimizer in (("dopt", gan.d_optimizer), ("gopt", gan.g_optimizer)):
        for i, variable in enumerate(optimizer.variables):
            results[f"{prefix}_{i}"] = keras.ops.convert_to_numpy(variable.value)
    state = keras.ops.convert_to_numpy(gan.seed_generator.state.value)
    results["seed_state"] = state.astype(np.int64) % 2**32
    results["images"] = gan.generate(6, seed=11)
    backend_dir = os.path.join(out_dir, keras.config.backend())
    os.makedirs(backend_dir, exist_ok=True)
    np.savez(os.path.join(backend_dir, f"{case}.npz"), **results)
    gan.save(os.path.join(backend_dir, f"{case}.keras"))
    # The first backend's file, loaded here, trains one more epoch: a file
    # moves between backends with both optimizers' state and the noise state.
    first = os.path.join(out_dir, "first", f"{case}.keras")
    if not os.path.exists(first):
        os.makedirs(os.path.dirname(first), exist_ok=True)
        gan.save(first)
    restored = keras.saving.load_model(first)
    restored.fit(images, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    np.savez(
        os.path.join(backend_dir, f"{case}.continued.npz"),
        *restored.generator.get_weights(),
        *restored.discriminator.get_weights(),
        iterations=keras.ops.convert_to_numpy(restored.d_optimizer.iterations.value),
    )


if __name__ == "__main__":
    for name in CASES:
        run(name, sys.argv[1])
