"""Trains small GANs on the active Keras backend and saves what they end with.

`python tests/parity_cases.py OUT_DIR` (with KERAS_BACKEND set) writes, per
case of `CASES`, `OUT_DIR/<backend>/<case>.step.npz` (the state after one
step) and `<case>.npz` (after eight); the first backend to run writes the
initial weights to `OUT_DIR/<case>.init.npz` and later backends start from
them, so every backend trains the same networks on the same images. Each
backend also loads the first backend's `.keras` file and trains it one more
epoch (`<case>.continued.npz`). `tests/test_backend_parity.py` compares the
files of the three backends.

Everything runs in float64 (`keras.config.set_floatx`). In float32 the
backends' kernels round differently, and differently on different CPUs, and
a GAN amplifies rounding differences step by step: measured after eight steps,
5e-4 of the weights' scale on one machine and 2e-2 on another. In float64 the
backends agree to ~1e-5 of the scale; Keras still computes some ops in float32
on JAX and PyTorch (its `result_type` maps float64 to float32 there, as JAX
does without x64: PyTorch's dense layers, JAX's tanh), which is most of what
is left.
"""

import os
import sys

import keras
import numpy as np

import keras_gan

IMAGE_SHAPE = (8, 8, 1)
# PyTorch's float64 CPU convolution cannot take the gradient of a 3x3 kernel
# with one output channel in the channels-last layout Keras gives it
# ("slow_conv2d: grad_weight must be contiguous", torch 2.13), which the ResNet
# generator's last convolution is for grayscale images: RGB there.
IMAGE_SHAPES = {"resnet": (8, 8, 3)}
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
# rounding noise, differently per backend: those cases train with SGD. (Keras
# computes some float64 ops in float32 on JAX and PyTorch, the losses among
# them, so that noise is not always below Adam's epsilon.)
SGD_CASES = ("mlp_relativistic", "resnet")


def images_and_labels(case, count=16):
    rng = np.random.default_rng(0)
    shape = IMAGE_SHAPES.get(case, IMAGE_SHAPE)
    images = rng.uniform(-1, 1, (count, *shape)).astype("float64")
    return images, (np.arange(count) % 3).astype("int32")


def build(case):
    architecture, num_classes, ema_decay, _ = CASES[case]
    shape = IMAGE_SHAPES.get(case, IMAGE_SHAPE)
    if architecture == "mlp":
        generator = keras_gan.networks.mlp_generator(LATENT_DIM, shape, 8)
        discriminator = keras_gan.networks.mlp_discriminator(shape, 8)
    else:
        generator, discriminator = keras_gan.networks.build(
            architecture, LATENT_DIM, shape, num_classes
        )
    return keras_gan.GAN(
        generator, discriminator, seed=7, num_classes=num_classes, ema_decay=ema_decay
    )


def compiled(case, out_dir):
    """The case's GAN, with the first backend's initial weights, compiled."""
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

    def optimizer():
        if case in SGD_CASES:
            return keras.optimizers.SGD(0.05, momentum=0.5)
        # beta_2 exact in float32: Keras's TensorFlow Adam casts the Python
        # float beta_2 to float64 through a float32 (`tf.cast`), which moves
        # 0.999 by 1.3e-8 and float64 Adam steps by ~1e-6 of their size.
        return keras.optimizers.Adam(1e-2, beta_1=0.5, beta_2=1 - 2**-10)

    gan.compile(d_optimizer=optimizer(), g_optimizer=optimizer(), **CASES[case][3])
    return gan


def state(gan, history):
    """Everything a training step changes, as NumPy arrays."""
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
    seed_state = keras.ops.convert_to_numpy(gan.seed_generator.state.value)
    results["seed_state"] = seed_state.astype(np.int64) % 2**32
    results["images"] = gan.generate(6, seed=11)
    return results


def run(case, out_dir):
    backend_dir = os.path.join(out_dir, keras.config.backend())
    os.makedirs(backend_dir, exist_ok=True)
    images, labels = images_and_labels(case)
    y = labels if CASES[case][1] else None
    # One step: rounding differences only, not yet amplified by training.
    gan = compiled(case, out_dir)
    history = gan.fit(
        images[:4], None if y is None else y[:4], batch_size=4, shuffle=False, verbose=0
    ).history
    np.savez(os.path.join(backend_dir, f"{case}.step.npz"), **state(gan, history))
    # Eight steps (two epochs): every branch of d_steps and penalty_interval.
    gan = compiled(case, out_dir)
    history = gan.fit(
        images, y, batch_size=4, epochs=2, shuffle=False, verbose=0
    ).history
    np.savez(os.path.join(backend_dir, f"{case}.npz"), **state(gan, history))
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
    # JAX makes float64 arrays only with JAX_ENABLE_X64=1 set before it starts.
    if keras.config.backend() == "jax" and os.environ.get("JAX_ENABLE_X64") != "1":
        sys.exit("parity_cases.py on JAX needs JAX_ENABLE_X64=1")
    keras.config.set_floatx("float64")
    # Seeded initial weights (the first backend's, which the others load): some
    # initialisations sit where a GAN amplifies rounding a hundredfold more.
    keras.utils.set_random_seed(0)
    for name in CASES:
        run(name, sys.argv[1])
