"""Small GANs and datasets shared by the tests: 8x8 images, tiny latents."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

import keras_gan

IMAGE_SHAPE = (8, 8, 1)
LATENT_DIM = 4


def tiny_images(count=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, (count, *IMAGE_SHAPE)).astype("float32")


def tiny_dataset(count=16, batch_size=4, seed=0):
    return tf.data.Dataset.from_tensor_slices(tiny_images(count, seed)).batch(
        batch_size, drop_remainder=True
    )


def tiny_gan(seed=0, hidden_units=8):
    generator = keras_gan.networks.mlp_generator(
        LATENT_DIM, IMAGE_SHAPE, hidden_units=hidden_units
    )
    discriminator = keras_gan.networks.mlp_discriminator(
        IMAGE_SHAPE, hidden_units=hidden_units
    )
    return keras_gan.GAN(generator, discriminator, latent_dim=LATENT_DIM, seed=seed)


def copy_weights(source, target):
    target.generator.set_weights(source.generator.get_weights())
    target.discriminator.set_weights(source.discriminator.get_weights())


def two_jax_cpu_devices_env():
    """The environment of a JAX process that sees the CPU as two devices."""
    return dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )


def run_json_script(script, argument, env=None, timeout=300):
    """Runs `python script argument` in a process of its own and returns the
    JSON of its last line of output. This checkout comes first on the
    script's path: it imports this keras_gan whether or not (and wherever)
    it is installed."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ if env is None else env, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, str(script), argument],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
