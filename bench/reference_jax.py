"""The vanilla GAN of arXiv:1406.2661 in JAX: a reference for bench/speed.py.

Same design as `keras_gan.networks.mlp_generator` / `mlp_discriminator` and
`bench/reference_tf.py`, written as pure functions: parameters are dicts of
arrays, the train step is one `jax.jit` function, and Adam is hand-written
(Keras's formula, as in reference_tf.py) so that no optimizer library is
needed. It imports nothing from keras_gan or TensorFlow.

    D: flatten 784 -> Dense 128 -> LeakyReLU(0.2) -> Dense 1 (logit)
    G: z (100) -> Dense 128 ReLU -> Dense 784 tanh -> reshape (28, 28, 1)

Two ways to drive the step:

- `Trainer(..., steps_per_call=1)`: one jitted call per step, the usual loop.
- `Trainer(..., steps_per_call=32)`: `jax.lax.scan` runs 32 steps inside one
  jitted call, as keras_gan's fused `steps_per_execution` does under XLA.

The images live on the device once; each call receives only the batch indices
and gathers the batches inside the compiled function.

Usage:

    bench/.venv/bin/python bench/reference_jax.py --batch-size 64 --steps 512
"""

import argparse
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

LEARNING_RATE = 2e-4
BETA_1 = 0.5
BETA_2 = 0.999
EPSILON = 1e-7  # Keras's


def _dense(key, fan_in, fan_out):
    # Keras's defaults: glorot_uniform kernel, zero bias.
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    kernel = jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)
    return {"kernel": kernel, "bias": jnp.zeros((fan_out,), jnp.float32)}


def init_params(key, latent_dim=100, num_pixels=784, hidden_units=128):
    """Returns `(generator_params, discriminator_params)`."""
    keys = jax.random.split(key, 4)
    generator = {
        "hidden": _dense(keys[0], latent_dim, hidden_units),
        "pixels": _dense(keys[1], hidden_units, num_pixels),
    }
    discriminator = {
        "hidden": _dense(keys[2], num_pixels, hidden_units),
        "logit": _dense(keys[3], hidden_units, 1),
    }
    return generator, discriminator


def _apply_dense(params, x):
    return x @ params["kernel"] + params["bias"]


def generate(params, z, image_shape):
    """z `(batch, latent_dim)` -> images `(batch, H, W, C)` in [-1, 1]."""
    x = jax.nn.relu(_apply_dense(params["hidden"], z))  # (batch, 128)
    x = jnp.tanh(_apply_dense(params["pixels"], x))  # (batch, 784)
    return x.reshape((-1, *image_shape))


def discriminate(params, images):
    """Images `(batch, H, W, C)` -> logits `(batch, 1)`."""
    x = images.reshape((images.shape[0], -1))  # (batch, 784)
    x = jax.nn.leaky_relu(_apply_dense(params["hidden"], x), 0.2)  # (batch, 128)
    return _apply_dense(params["logit"], x)


def adam_init(params):
    # Two separate trees: donated buffers must not alias.
    return {
        "step": jnp.zeros((), jnp.float32),
        "m": jax.tree_util.tree_map(jnp.zeros_like, params),
        "v": jax.tree_util.tree_map(jnp.zeros_like, params),
    }


def init_state(generator, discriminator, key, **others):
    """The train step's state: both players' parameters, fresh Adam states,
    the PRNG key of the noise, and `others` (e.g. batch-norm statistics)."""
    return {
        "generator": generator,
        "discriminator": discriminator,
        "d_adam": adam_init(discriminator),
        "g_adam": adam_init(generator),
        "key": key,
        **others,
    }


def adam_update(params, gradients, state):
    """Adam as Keras 3 writes it (Kingma & Ba 2014, arXiv:1412.6980, alg. 1)."""
    step = state["step"] + 1.0
    # Bias corrections folded into the step size.
    alpha = LEARNING_RATE * jnp.sqrt(1.0 - BETA_2**step) / (1.0 - BETA_1**step)
    m = jax.tree_util.tree_map(
        lambda m, g: m + (g - m) * (1.0 - BETA_1), state["m"], gradients
    )
    v = jax.tree_util.tree_map(
        lambda v, g: v + (g * g - v) * (1.0 - BETA_2), state["v"], gradients
    )
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - alpha * m / (jnp.sqrt(v) + EPSILON), params, m, v
    )
    return params, {"step": step, "m": m, "v": v}


def discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))), on logits: softplus(-l) = -log sigmoid(l)."""
    return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(
        jax.nn.softplus(fake_logits)
    )


def generator_loss(fake_logits):
    """The non-saturating -log D(G(z)), on logits."""
    return jnp.mean(jax.nn.softplus(-fake_logits))


def train_step(state, real_images, image_shape):
    """One D update on real images and G(z1), then one G update on G(z2).

    `state` holds both players' parameters and Adam states and the PRNG key;
    returns the new state and `(d_loss, g_loss)`.
    """
    batch_size = real_images.shape[0]
    key, d_key, g_key = jax.random.split(state["key"], 3)
    generator, discriminator = state["generator"], state["discriminator"]
    latent_dim = generator["hidden"]["kernel"].shape[0]

    # Discriminator: -log D(x) - log(1 - D(G(z1))); G is held fixed.
    z = jax.random.normal(d_key, (batch_size, latent_dim))
    fake_images = generate(generator, z, image_shape)

    def d_loss_fn(discriminator):
        return discriminator_loss(
            discriminate(discriminator, real_images),
            discriminate(discriminator, fake_images),
        )

    d_loss, d_gradients = jax.value_and_grad(d_loss_fn)(discriminator)
    discriminator, d_adam = adam_update(discriminator, d_gradients, state["d_adam"])

    # Generator: -log D(G(z2)) through the updated D, on fresh latents.
    z = jax.random.normal(g_key, (batch_size, latent_dim))

    def g_loss_fn(generator):
        images = generate(generator, z, image_shape)
        return generator_loss(discriminate(discriminator, images))

    g_loss, g_gradients = jax.value_and_grad(g_loss_fn)(generator)
    generator, g_adam = adam_update(generator, g_gradients, state["g_adam"])
    state = {
        "generator": generator,
        "discriminator": discriminator,
        "d_adam": d_adam,
        "g_adam": g_adam,
        "key": key,
    }
    return state, jnp.stack([d_loss, g_loss])


@functools.partial(jax.jit, static_argnames="image_shape", donate_argnums=0)
def _one_step(state, images, indices, image_shape):
    # indices: (batch,) rows of `images`, which stay on the device.
    state, losses = train_step(state, images[indices], image_shape)
    return state, losses


@functools.partial(jax.jit, static_argnames="image_shape", donate_argnums=0)
def _scanned_steps(state, images, indices, image_shape):
    # indices: (steps, batch); one compiled call runs all the steps.
    def body(state, batch_indices):
        return train_step(state, images[batch_indices], image_shape)

    state, losses = jax.lax.scan(body, state, indices)  # losses: (steps, 2)
    return state, jnp.sum(losses, axis=0)


class Trainer:
    """Trains the GAN on in-memory images, `run(num_steps)` steps at a time.

    Each epoch visits the images in a fresh random order (drawn with NumPy on
    the host); the last partial batch is dropped.

    Args:
        images: float32 array `(N, H, W, C)` in [-1, 1].
        batch_size: images per step.
        seed: seed of the weights, the order of the images and the latents.
        steps_per_call: 1 for one jitted call per step; more to run that many
            steps in one call with `jax.lax.scan`.
        latent_dim: size of the latent vector.
    """

    def __init__(self, images, batch_size=64, seed=0, steps_per_call=1, latent_dim=100):
        self.batch_size = batch_size
        self.steps_per_call = steps_per_call
        self.image_shape = tuple(images.shape[1:])
        self.images = jax.device_put(np.ascontiguousarray(images))
        weights_key, noise_key = jax.random.split(jax.random.key(seed))
        self.state = self.init_state(weights_key, noise_key, latent_dim)
        self.order = np.random.default_rng(seed)
        self.steps_per_epoch = len(images) // batch_size
        self.batch_index = self.steps_per_epoch  # starts an epoch on first use
        self.permutation = None

    def init_state(self, weights_key, noise_key, latent_dim):
        """The first state of the train step, weights drawn with `weights_key`."""
        generator, discriminator = init_params(
            weights_key, latent_dim, math.prod(self.image_shape)
        )
        return init_state(generator, discriminator, noise_key)

    def _next_indices(self, num_steps):
        # (num_steps, batch) int32 row indices, crossing epochs as needed.
        rows = []
        for _ in range(num_steps):
            if self.batch_index == self.steps_per_epoch:
                self.permutation = self.order.permutation(len(self.images))
                self.permutation = self.permutation.astype(np.int32)
                self.batch_index = 0
            start = self.batch_index * self.batch_size
            rows.append(self.permutation[start : start + self.batch_size])
            self.batch_index += 1
        return np.stack(rows)

    def run(self, num_steps):
        """Trains `num_steps` steps and waits for them; returns their mean
        `(d_loss, g_loss)`. `num_steps` must be a multiple of `steps_per_call`.
        """
        if num_steps % self.steps_per_call:
            raise ValueError(
                f"num_steps must be a multiple of steps_per_call="
                f"{self.steps_per_call}; received {num_steps}."
            )
        total = jnp.zeros((2,), jnp.float32)
        for _ in range(num_steps // self.steps_per_call):
            indices = self._next_indices(self.steps_per_call)
            self.state, losses = self._call(indices)
            total = total + losses
        d_loss, g_loss = np.asarray(total) / num_steps  # waits for the steps
        return float(d_loss), float(g_loss)

    def _call(self, indices):
        """One jitted call on `indices` `(steps_per_call, batch)`; returns the
        new state and the summed `(d_loss, g_loss)` of its steps."""
        if self.steps_per_call == 1:
            return _one_step(self.state, self.images, indices[0], self.image_shape)
        return _scanned_steps(self.state, self.images, indices, self.image_shape)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--steps-per-call", type=int, default=1)
    args = parser.parse_args()
    import speed  # the data and timing of speed.py's workers

    steps_per_call = args.steps_per_call
    images = speed.synthetic_images()
    trainer = Trainer(images, args.batch_size, steps_per_call=steps_per_call)
    speed.time_reference(
        f"JAX jit ({steps_per_call} steps per call)",
        trainer,
        args.batch_size,
        args.steps,
        warmup=steps_per_call * 2,  # compile and warm up
    )


if __name__ == "__main__":
    main()
