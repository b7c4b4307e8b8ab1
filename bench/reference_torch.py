"""The vanilla GAN of arXiv:1406.2661 in PyTorch eager: a reference for bench/speed.py.

Same design as `keras_gan.networks.mlp_generator` / `mlp_discriminator` and
`bench/reference_tf.py`, written the way PyTorch users write a GAN: `nn.Linear`
modules, `torch.optim.Adam`, `binary_cross_entropy_with_logits`, a Python loop
of eager steps. It imports nothing from keras_gan or TensorFlow.

    D: flatten 784 -> Linear 128 -> LeakyReLU(0.2) -> Linear 1 (logit)
    G: z (100) -> Linear 128 ReLU -> Linear 784 tanh -> reshape (28, 28, 1)

Weights start as Keras's do (Glorot uniform, zero bias), so losses are
comparable; Adam(2e-4, betas=(0.5, 0.999), eps=1e-7) as in Keras.

OpenMP threads busy-wait between parallel regions by default, so PyTorch slows
down several-fold when another process holds a core; `OMP_WAIT_POLICY=PASSIVE`
avoids that, and OpenMP reads it once, when torch loads. Run directly, this
file sets it; bench/speed.py sets it (or not) in the environment of the
subprocess that imports this module.

Usage:

    bench/.venv/bin/python bench/reference_torch.py --batch-size 64 --steps 512
"""

import argparse
import math
import os

if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

ADAM = {"lr": 2e-4, "betas": (0.5, 0.999), "eps": 1e-7}


def _dense(fan_in, fan_out):
    layer = nn.Linear(fan_in, fan_out)
    nn.init.xavier_uniform_(layer.weight)  # Keras's glorot_uniform
    nn.init.zeros_(layer.bias)
    return layer


class Generator(nn.Module):
    """z `(batch, latent_dim)` -> images `(batch, H, W, C)` in [-1, 1]."""

    def __init__(self, latent_dim=100, image_shape=(28, 28, 1), hidden_units=128):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.hidden = _dense(latent_dim, hidden_units)
        self.pixels = _dense(hidden_units, math.prod(image_shape))

    def forward(self, z):
        x = F.relu(self.hidden(z))  # (batch, 128)
        x = torch.tanh(self.pixels(x))  # (batch, 784)
        return x.view(-1, *self.image_shape)


class Discriminator(nn.Module):
    """Images `(batch, H, W, C)` -> logits `(batch, 1)`."""

    def __init__(self, image_shape=(28, 28, 1), hidden_units=128):
        super().__init__()
        self.hidden = _dense(math.prod(image_shape), hidden_units)
        self.logit = _dense(hidden_units, 1)

    def forward(self, images):
        x = images.flatten(1)  # (batch, 784)
        x = F.leaky_relu(self.hidden(x), negative_slope=0.2)  # (batch, 128)
        return self.logit(x)


class Trainer:
    """Trains the GAN on in-memory images, `run(num_steps)` steps at a time.

    Each epoch visits the images in a fresh random order; the last partial
    batch is dropped.

    Args:
        images: float32 array `(N, H, W, C)` in [-1, 1].
        batch_size: images per step.
        seed: seed of the weights, the order of the images and the latents.
        latent_dim: size of the latent vector.
        threads: intra-op threads (`torch.set_num_threads`).
    """

    steps_per_call = 1

    def __init__(self, images, batch_size=64, seed=0, latent_dim=100, threads=None):
        if threads:
            torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.batch_size = batch_size
        self.latent_dim = latent_dim
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.generator, self.discriminator = self.build_networks(
            latent_dim, images.shape[1:]
        )
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), **ADAM)
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), **ADAM)
        self.noise = torch.Generator().manual_seed(seed)
        self.order = torch.Generator().manual_seed(seed + 1)
        self.steps_per_epoch = len(images) // batch_size
        self.batch_index = self.steps_per_epoch  # starts an epoch on first use
        self.permutation = None
        self.ones = torch.ones(batch_size, 1)
        self.zeros = torch.zeros(batch_size, 1)

    @staticmethod
    def build_networks(latent_dim, image_shape):
        """`(generator, discriminator)`, weights drawn from torch's global seed."""
        return Generator(latent_dim, image_shape), Discriminator(image_shape)

    def _next_batch(self):
        if self.batch_index == self.steps_per_epoch:
            self.permutation = torch.randperm(len(self.images), generator=self.order)
            self.batch_index = 0
        start = self.batch_index * self.batch_size
        self.batch_index += 1
        return self.images[self.permutation[start : start + self.batch_size]]

    def step(self, real_images):
        """One D update, then one G update; returns the two loss tensors."""
        batch_size, latent_dim = self.batch_size, self.latent_dim

        # Discriminator: real -> 1, G(z1) -> 0; G is not differentiated here.
        z = torch.randn(batch_size, latent_dim, generator=self.noise)
        with torch.no_grad():
            fake_images = self.generator(z)
        d_loss = F.binary_cross_entropy_with_logits(
            self.discriminator(real_images), self.ones
        ) + F.binary_cross_entropy_with_logits(
            self.discriminator(fake_images), self.zeros
        )
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        # Generator: -log D(G(z2)) through the updated D, on fresh latents.
        z = torch.randn(batch_size, latent_dim, generator=self.noise)
        g_loss = F.binary_cross_entropy_with_logits(
            self.discriminator(self.generator(z)), self.ones
        )
        self.g_optimizer.zero_grad(set_to_none=True)
        # Only G's gradients: D's weight gradients would be computed and dropped.
        g_loss.backward(inputs=list(self.generator.parameters()))
        self.g_optimizer.step()
        return d_loss.detach(), g_loss.detach()

    def run(self, num_steps):
        """Trains `num_steps` steps; returns their mean `(d_loss, g_loss)`."""
        d_sum = g_sum = 0.0
        for _ in range(num_steps):
            d_loss, g_loss = self.step(self._next_batch())
            d_sum, g_sum = d_sum + d_loss, g_sum + g_loss
        return float(d_sum) / num_steps, float(g_sum) / num_steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import speed  # the data and timing of speed.py's workers

    trainer = Trainer(speed.synthetic_images(), args.batch_size, threads=args.threads)
    speed.time_reference(
        "PyTorch eager", trainer, args.batch_size, args.steps, warmup=16
    )


if __name__ == "__main__":
    main()
