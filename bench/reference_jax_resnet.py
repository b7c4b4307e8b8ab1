"""SNGAN's ResNet in JAX: a reference for bench/speed_resnet.py.

keras_gan's `resnet` pair for 28x28x1 images (unconditional, `channels=128`;
Miyato et al. 2018, arXiv:1802.05957, table 4), written as pure functions in
NHWC: parameters are dicts of arrays, convolutions are
`jax.lax.conv_general_dilated` (stride 1, "SAME"), upsampling repeats pixels,
average pooling averages 2x2 windows, and the whole step is one `jax.jit`
function. It imports nothing from keras_gan or TensorFlow.

The layers are drawn in bench/speed_resnet.py's docstring. Written out here:
batch normalisation in training mode (batch statistics; moving averages with
momentum 0.9, epsilon 2e-5, updated on every G forward pass) and spectral
normalisation (one power iteration from a persistent `u` per D forward pass,
the G update's included; u and v constants for the gradient, which flows
through W and sigma). Initial weights as keras_gan's: residual 3x3 kernels
Glorot uniform times sqrt(2), the rest Glorot uniform, zero biases, `u`
standard normal. Adam, the losses, the data order and the loop are
`reference_jax`'s / `reference_jax_dcgan.Trainer`'s; the images stay on the
device and each call gathers its batch. Run it alone with

    bench/.venv/bin/python bench/speed_resnet.py --worker jax_jit --steps 2 \\
        --warmup 0 --repeats 1
"""

import functools
import math

import jax
import jax.numpy as jnp
import reference_jax
import reference_jax_dcgan
from reference_jax_dcgan import NHWC
from reference_jax_dcgan import _conv_kernel
from reference_jax_dcgan import _glorot

LATENT_DIM = 100
CHANNELS = 128
BN_MOMENTUM = 0.9  # Chainer's defaults, as keras_gan's ResNet
BN_EPSILON = 2e-5


def _conv_params(key, size, in_channels, out_channels, gain=1.0):
    kernel = _conv_kernel(key, size, in_channels, out_channels) * gain
    return {"kernel": kernel, "bias": jnp.zeros(out_channels)}


def _residual_conv(key, channels, in_channels=None):
    # 3x3, Glorot uniform with its bound times sqrt(2).
    return _conv_params(key, 3, in_channels or channels, channels, math.sqrt(2.0))


def init_params(key, latent_dim=LATENT_DIM, channels=CHANNELS):
    """Returns `(generator, generator_stats, discriminator, discriminator_u)`:
    the stats are batch normalisation's moving means and variances, the u
    vectors spectral normalisation's, one per D layer."""
    keys = iter(jax.random.split(key, 32))

    def batch_norm():
        return {"gamma": jnp.ones(channels), "beta": jnp.zeros(channels)}

    projected = 7 * 7 * channels
    generator = {
        "project": {
            "kernel": _glorot(
                next(keys), (latent_dim, projected), latent_dim, projected
            ),
            "bias": jnp.zeros(projected),
        },
        "output_bn": batch_norm(),
        "to_image": _conv_params(next(keys), 3, channels, 1),
    }
    for block in ("block1", "block2"):
        generator[block] = {
            "bn1": batch_norm(),
            "conv1": _residual_conv(next(keys), channels),
            "bn2": batch_norm(),
            "conv2": _residual_conv(next(keys), channels),
            "shortcut": _conv_params(next(keys), 1, channels, channels),
        }
    stats = {
        name: {"mean": jnp.zeros(channels), "var": jnp.ones(channels)}
        for name in (
            "block1_bn1",
            "block1_bn2",
            "block2_bn1",
            "block2_bn2",
            "output_bn",
        )
    }

    def down_block(in_channels=channels):
        return {
            "conv1": _residual_conv(next(keys), channels, in_channels),
            "conv2": _residual_conv(next(keys), channels),
        }

    discriminator = {
        "block1": down_block(1),
        "block2": down_block(),
        "block3": down_block(),
        "logit": {
            "kernel": _glorot(next(keys), (channels, 1), channels, 1),
            "bias": jnp.zeros(1),
        },
    }
    discriminator["block1"]["shortcut"] = _conv_params(next(keys), 1, 1, channels)
    # One u per kernel, of its number of units (its last axis).
    discriminator_u = {
        block: {
            name: jax.random.normal(next(keys), layer["kernel"].shape[-1:])
            for name, layer in discriminator[block].items()
        }
        for block in ("block1", "block2", "block3")
    }
    discriminator_u["logit"] = jax.random.normal(next(keys), (1,))
    return generator, stats, discriminator, discriminator_u


def _batch_norm(params, stats, x):
    # Training mode over batch, height and width; returns the new moving stats.
    mean, var = jnp.mean(x, (0, 1, 2)), jnp.var(x, (0, 1, 2))
    scale = params["gamma"] * jax.lax.rsqrt(var + BN_EPSILON)
    moved = jax.tree_util.tree_map(
        lambda old, new: BN_MOMENTUM * old + (1.0 - BN_MOMENTUM) * new,
        stats,
        {"mean": mean, "var": var},
    )
    return (x - mean) * scale + params["beta"], moved


def _unit(vector):
    return vector / (jnp.linalg.norm(vector) + 1e-12)


def _spectral_normalize(kernel, u):
    """`(kernel / sigma, new u)`: one power iteration on the kernel reshaped
    to `(fan_in, units)`, u and v held constant for the gradient."""
    flat = kernel.reshape((-1, kernel.shape[-1]))
    v = jax.lax.stop_gradient(_unit(flat @ u))
    u = jax.lax.stop_gradient(_unit(v @ flat))
    return kernel / (v @ flat @ u), u


def _conv(params, x, u=None):
    """A stride-1 "SAME" convolution plus bias; spectrally normalised with
    `u` given, then returns `(y, new u)`."""
    kernel = params["kernel"]
    if u is not None:
        kernel, u = _spectral_normalize(kernel, u)
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=NHWC)
    y = y + params["bias"]
    return y if u is None else (y, u)


def _upsample(x):
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _average_pool(x):
    batch, height, width, channels = x.shape
    windows = x.reshape((batch, height // 2, 2, width // 2, 2, channels))
    return windows.mean(axis=(2, 4))


def generate(params, stats, z):
    """z `(batch, latent_dim)` -> `(images (batch, 28, 28, 1), new stats)`."""
    new = {}
    channels = params["output_bn"]["gamma"].shape[0]
    x = z @ params["project"]["kernel"] + params["project"]["bias"]
    x = x.reshape((-1, 7, 7, channels))
    for block in ("block1", "block2"):  # 7 -> 14 -> 28
        layer = params[block]
        h, new[f"{block}_bn1"] = _batch_norm(layer["bn1"], stats[f"{block}_bn1"], x)
        h = _conv(layer["conv1"], _upsample(jax.nn.relu(h)))
        h, new[f"{block}_bn2"] = _batch_norm(layer["bn2"], stats[f"{block}_bn2"], h)
        h = _conv(layer["conv2"], jax.nn.relu(h))
        x = h + _conv(layer["shortcut"], _upsample(x))
    x, new["output_bn"] = _batch_norm(params["output_bn"], stats["output_bn"], x)
    return jnp.tanh(_conv(params["to_image"], jax.nn.relu(x))), new


def discriminate(params, u, images):
    """Images `(batch, 28, 28, 1)` -> `(logits (batch, 1), new u)`."""
    new = {block: {} for block in u}
    block, new_u = params["block1"], new["block1"]
    # Optimised first block: no ReLU on the images; the shortcut pools first.
    h, new_u["conv1"] = _conv(block["conv1"], images, u["block1"]["conv1"])
    h, new_u["conv2"] = _conv(block["conv2"], jax.nn.relu(h), u["block1"]["conv2"])
    shortcut, new_u["shortcut"] = _conv(
        block["shortcut"], _average_pool(images), u["block1"]["shortcut"]
    )
    x = _average_pool(h) + shortcut  # (batch, 14, 14, 128)
    for name in ("block2", "block3"):
        block, new_u = params[name], new[name]
        h, new_u["conv1"] = _conv(block["conv1"], jax.nn.relu(x), u[name]["conv1"])
        h, new_u["conv2"] = _conv(block["conv2"], jax.nn.relu(h), u[name]["conv2"])
        x = x + h
    features = jnp.sum(jax.nn.relu(x), axis=(1, 2))  # (batch, 128)
    kernel, new["logit"] = _spectral_normalize(params["logit"]["kernel"], u["logit"])
    return features @ kernel + params["logit"]["bias"], new


def train_step(state, real_images):
    """One D update on real images and G(z1), then one G update on G(z2).

    Both players' parameters and Adam states, G's batch-norm statistics, D's
    u vectors and the PRNG key are in `state`; returns the new state and
    `(d_loss, g_loss)`. The u vectors pass through every D call in order.
    """
    key, d_key, g_key = jax.random.split(state["key"], 3)
    generator, discriminator = state["generator"], state["discriminator"]
    noise_shape = (real_images.shape[0], generator["project"]["kernel"].shape[0])
    fake_images, stats = generate(
        generator, state["generator_stats"], jax.random.normal(d_key, noise_shape)
    )

    def d_loss_fn(discriminator, u):
        real_logits, u = discriminate(discriminator, u, real_images)
        fake_logits, u = discriminate(discriminator, u, fake_images)
        return reference_jax.discriminator_loss(real_logits, fake_logits), u

    def g_loss_fn(generator, discriminator, u, stats):
        images, stats = generate(
            generator, stats, jax.random.normal(g_key, noise_shape)
        )
        logits, u = discriminate(discriminator, u, images)
        return reference_jax.generator_loss(logits), (u, stats)

    (d_loss, u), gradients = jax.value_and_grad(d_loss_fn, has_aux=True)(
        discriminator, state["discriminator_u"]
    )
    discriminator, d_adam = reference_jax.adam_update(
        discriminator, gradients, state["d_adam"]
    )
    # G's gradients (argument 0 only) through the updated D.
    (g_loss, (u, stats)), gradients = jax.value_and_grad(g_loss_fn, has_aux=True)(
        generator, discriminator, u, stats
    )
    generator, g_adam = reference_jax.adam_update(generator, gradients, state["g_adam"])
    new_state = dict(state, key=key, generator_stats=stats, discriminator_u=u)
    new_state.update(generator=generator, g_adam=g_adam)
    new_state.update(discriminator=discriminator, d_adam=d_adam)
    return new_state, jnp.stack([d_loss, g_loss])


@functools.partial(jax.jit, donate_argnums=0)
def _one_step(state, images, indices):
    # indices: (batch,) rows of `images`, which stay on the device.
    return train_step(state, images[indices])


class Trainer(reference_jax_dcgan.Trainer):
    """reference_jax_dcgan.py's trainer (one jitted call per step, the same
    data order and loop) on the ResNet pair."""

    def init_state(self, weights_key, noise_key, latent_dim):
        generator, stats, discriminator, u = init_params(weights_key, latent_dim)
        return reference_jax.init_state(
            generator,
            discriminator,
            noise_key,
            generator_stats=stats,
            discriminator_u=u,
        )

    def _call(self, indices):
        return _one_step(self.state, self.images, indices[0])


def count_params(tree):
    """The number of numbers in a tree of arrays."""
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(tree))
