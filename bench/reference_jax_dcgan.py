"""The DCGAN in JAX: a reference for bench/speed_dcgan.py.

The architecture of `keras_gan.networks.dcgan_generator` /
`dcgan_discriminator` for 28x28x1 images with `filters=64`, written as pure
functions in NHWC: parameters are dicts of arrays, convolutions are
`jax.lax.conv_general_dilated` and `jax.lax.conv_transpose` with "SAME"
padding, batch normalisation is written out (Keras's epsilon 1e-3 and
momentum 0.99, moving statistics updated on every training-mode call), and
the whole step is one `jax.jit` function. Adam, the losses and the data order
are `reference_jax`'s (a hand-written Adam with Keras's formula; optax is not
installed). It imports nothing from keras_gan or TensorFlow.

    G: z (100) -> Dense 7*7*128 (no bias) BN ReLU -> reshape (7, 7, 128)
       -> ConvTranspose 64, 4x4, stride 2 (no bias) BN ReLU  # (14, 14, 64)
       -> ConvTranspose 1, 4x4, stride 2, tanh              # (28, 28, 1)
    D: Conv 64, 4x4, stride 2, LeakyReLU(0.2)               # (14, 14, 64)
       -> Conv 128, 4x4, stride 2, LeakyReLU(0.2)           # (7, 7, 128)
       -> flatten -> Dense 1 (logit)

The images live on the device once; each call receives only the batch
indices and gathers the batch inside the compiled function.

Usage:

    bench/.venv/bin/python bench/reference_jax_dcgan.py --batch-size 128 --steps 64
"""

import argparse
import functools
import math

import jax
import jax.numpy as jnp
import reference_jax

LATENT_DIM = 100
FILTERS = 64
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
NHWC = ("NHWC", "HWIO", "NHWC")


def _glorot(key, shape, fan_in, fan_out):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, shape, jnp.float32, -limit, limit)


def _conv_kernel(key, size, in_channels, out_channels):
    # Keras's glorot_uniform for a (size, size, in, out) kernel.
    area = size * size
    shape = (size, size, in_channels, out_channels)
    return _glorot(key, shape, area * in_channels, area * out_channels)


def init_params(key, latent_dim=LATENT_DIM, filters=FILTERS):
    """Returns `(generator_params, generator_stats, discriminator_params)`;
    the stats are batch normalisation's moving means and variances."""
    keys = jax.random.split(key, 6)
    projected = 7 * 7 * 2 * filters
    generator = {
        "project": _glorot(keys[0], (latent_dim, projected), latent_dim, projected),
        "project_bn": {"gamma": jnp.ones(projected), "beta": jnp.zeros(projected)},
        "up1": _conv_kernel(keys[1], 4, 2 * filters, filters),
        "up1_bn": {"gamma": jnp.ones(filters), "beta": jnp.zeros(filters)},
        "up2": {"kernel": _conv_kernel(keys[2], 4, filters, 1), "bias": jnp.zeros(1)},
    }
    stats = {
        "project_bn": {"mean": jnp.zeros(projected), "var": jnp.ones(projected)},
        "up1_bn": {"mean": jnp.zeros(filters), "var": jnp.ones(filters)},
    }
    discriminator = {
        "down1": {
            "kernel": _conv_kernel(keys[3], 4, 1, filters),
            "bias": jnp.zeros(filters),
        },
        "down2": {
            "kernel": _conv_kernel(keys[4], 4, filters, 2 * filters),
            "bias": jnp.zeros(2 * filters),
        },
        "logit": {
            "kernel": _glorot(keys[5], (projected, 1), projected, 1),
            "bias": jnp.zeros(1),
        },
    }
    return generator, stats, discriminator


def _batch_norm(params, stats, x, axes):
    # Training mode: normalise with the batch's statistics, update the moving ones.
    mean, var = jnp.mean(x, axes), jnp.var(x, axes)
    y = (x - mean) * jax.lax.rsqrt(var + BN_EPSILON) * params["gamma"] + params["beta"]
    stats = {
        "mean": stats["mean"] * BN_MOMENTUM + mean * (1.0 - BN_MOMENTUM),
        "var": stats["var"] * BN_MOMENTUM + var * (1.0 - BN_MOMENTUM),
    }
    return y, stats


def _conv_transpose(x, kernel):
    return jax.lax.conv_transpose(x, kernel, (2, 2), "SAME", dimension_numbers=NHWC)


def _conv(x, kernel):
    return jax.lax.conv_general_dilated(
        x, kernel, (2, 2), "SAME", dimension_numbers=NHWC
    )


def generate(params, stats, z):
    """z `(batch, latent_dim)` -> `(images (batch, 28, 28, 1), new stats)`."""
    new_stats = {}
    x = z @ params["project"]  # (batch, 6272)
    x, new_stats["project_bn"] = _batch_norm(
        params["project_bn"], stats["project_bn"], x, 0
    )
    channels = params["up1"].shape[2]
    x = jax.nn.relu(x).reshape((-1, 7, 7, channels))  # (batch, 7, 7, 128)
    x = _conv_transpose(x, params["up1"])  # (batch, 14, 14, 64)
    x, new_stats["up1_bn"] = _batch_norm(
        params["up1_bn"], stats["up1_bn"], x, (0, 1, 2)
    )
    x = _conv_transpose(jax.nn.relu(x), params["up2"]["kernel"])  # (batch, 28, 28, 1)
    return jnp.tanh(x + params["up2"]["bias"]), new_stats


def discriminate(params, images):
    """Images `(batch, 28, 28, 1)` -> logits `(batch, 1)`."""
    x = _conv(images, params["down1"]["kernel"]) + params["down1"]["bias"]
    x = jax.nn.leaky_relu(x, 0.2)  # (batch, 14, 14, 64)
    x = _conv(x, params["down2"]["kernel"]) + params["down2"]["bias"]
    x = jax.nn.leaky_relu(x, 0.2)  # (batch, 7, 7, 128)
    x = x.reshape((x.shape[0], -1))  # (batch, 6272)
    return x @ params["logit"]["kernel"] + params["logit"]["bias"]


def train_step(state, real_images):
    """One D update on real images and G(z1), then one G update on G(z2).

    `state` holds both players' parameters and Adam states, G's batch
    normalisation statistics and the PRNG key; returns the new state and
    `(d_loss, g_loss)`.
    """
    batch_size = real_images.shape[0]
    key, d_key, g_key = jax.random.split(state["key"], 3)
    generator, discriminator = state["generator"], state["discriminator"]
    latent_dim = generator["project"].shape[0]

    # Discriminator: -log D(x) - log(1 - D(G(z1))); G is held fixed.
    z = jax.random.normal(d_key, (batch_size, latent_dim))
    fake_images, stats = generate(generator, state["generator_stats"], z)

    def d_loss_fn(discriminator):
        return reference_jax.discriminator_loss(
            discriminate(discriminator, real_images),
            discriminate(discriminator, fake_images),
        )

    d_loss, d_gradients = jax.value_and_grad(d_loss_fn)(discriminator)
    discriminator, d_adam = reference_jax.adam_update(
        discriminator, d_gradients, state["d_adam"]
    )

    # Generator: -log D(G(z2)) through the updated D, on fresh latents.
    z = jax.random.normal(g_key, (batch_size, latent_dim))

    def g_loss_fn(generator):
        images, new_stats = generate(generator, stats, z)
        logits = discriminate(discriminator, images)
        return reference_jax.generator_loss(logits), new_stats

    (g_loss, stats), g_gradients = jax.value_and_grad(g_loss_fn, has_aux=True)(
        generator
    )
    generator, g_adam = reference_jax.adam_update(
        generator, g_gradients, state["g_adam"]
    )
    state = {
        "generator": generator,
        "generator_stats": stats,
        "discriminator": discriminator,
        "d_adam": d_adam,
        "g_adam": g_adam,
        "key": key,
    }
    return state, jnp.stack([d_loss, g_loss])


@functools.partial(jax.jit, donate_argnums=0)
def _one_step(state, images, indices):
    # indices: (batch,) rows of `images`, which stay on the device.
    return train_step(state, images[indices])


class Trainer(reference_jax.Trainer):
    """Trains the DCGAN on in-memory images, one jitted call per step.

    The data order and the loop are `reference_jax.Trainer`'s.

    Args:
        images: float32 array `(N, 28, 28, 1)` in [-1, 1].
        batch_size: images per step.
        seed: seed of the weights, the order of the images and the latents.
        latent_dim: size of the latent vector.
    """

    def __init__(self, images, batch_size=128, seed=0, latent_dim=LATENT_DIM):
        super().__init__(
            images, batch_size, seed, steps_per_call=1, latent_dim=latent_dim
        )

    def init_state(self, weights_key, noise_key, latent_dim):
        generator, stats, discriminator = init_params(weights_key, latent_dim)
        return reference_jax.init_state(
            generator, discriminator, noise_key, generator_stats=stats
        )

    def _call(self, indices):
        return _one_step(self.state, self.images, indices[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()
    import speed  # the data and timing of speed.py's workers

    trainer = Trainer(speed.synthetic_images(), args.batch_size)
    speed.time_reference(
        "JAX jit DCGAN",
        trainer,
        args.batch_size,
        args.steps,
        warmup=2,  # compile and warm up
        rate_digits=1,
    )


if __name__ == "__main__":
    main()
