"""The DCGAN in PyTorch eager: a reference for bench/speed_dcgan.py.

The architecture of `keras_gan.networks.dcgan_generator` /
`dcgan_discriminator` for 28x28x1 images with `filters=64`, written the way
PyTorch users write it: `nn.Module`s in NCHW, `torch.optim.Adam`,
`binary_cross_entropy_with_logits`, a Python loop of eager steps. It imports
nothing from keras_gan or TensorFlow.

    G: z (100) -> Linear 7*7*128 (no bias) BN ReLU -> view (128, 7, 7)
       -> ConvTranspose 64, 4x4, stride 2, padding 1 (no bias) BN ReLU  # (64, 14, 14)
       -> ConvTranspose 1, 4x4, stride 2, padding 1, tanh              # (1, 28, 28)
    D: Conv 64, 4x4, stride 2, padding 1, LeakyReLU(0.2)               # (64, 14, 14)
       -> Conv 128, 4x4, stride 2, padding 1, LeakyReLU(0.2)           # (128, 7, 7)
       -> flatten -> Linear 1 (logit)

Padding 1 is TensorFlow's "same" for a 4x4 kernel at stride 2 (one row and
column on each side). Weights start as Keras's do (Glorot uniform, zero
bias); batch normalisation uses Keras's epsilon (1e-3) and momentum (0.99,
PyTorch's 0.01). The step, the optimizers, the data order and the thread
settings are `reference_torch.Trainer`'s (see there for OMP_WAIT_POLICY).

Usage:

    bench/.venv/bin/python bench/reference_torch_dcgan.py --batch-size 128 --steps 64
"""

import argparse
import os

if __name__ == "__main__":
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import reference_torch  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

LATENT_DIM = 100
FILTERS = 64
BATCH_NORM = {"eps": 1e-3, "momentum": 0.01}  # Keras's epsilon and momentum


def _glorot(layer, bias=True):
    nn.init.xavier_uniform_(layer.weight)  # Keras's glorot_uniform
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


class Generator(nn.Module):
    """z `(batch, latent_dim)` -> images `(batch, 1, 28, 28)` in [-1, 1]."""

    def __init__(self, latent_dim=LATENT_DIM, filters=FILTERS):
        super().__init__()
        self.channels = 2 * filters
        self.project = _glorot(
            nn.Linear(latent_dim, 7 * 7 * 2 * filters, bias=False), bias=False
        )
        self.project_bn = nn.BatchNorm1d(7 * 7 * 2 * filters, **BATCH_NORM)
        self.up1 = _glorot(
            nn.ConvTranspose2d(2 * filters, filters, 4, 2, padding=1, bias=False),
            bias=False,
        )
        self.up1_bn = nn.BatchNorm2d(filters, **BATCH_NORM)
        self.up2 = _glorot(nn.ConvTranspose2d(filters, 1, 4, 2, padding=1))

    def forward(self, z):
        x = F.relu(self.project_bn(self.project(z)))  # (batch, 6272)
        x = x.view(-1, self.channels, 7, 7)  # (batch, 128, 7, 7)
        x = F.relu(self.up1_bn(self.up1(x)))  # (batch, 64, 14, 14)
        return torch.tanh(self.up2(x))  # (batch, 1, 28, 28)


class Discriminator(nn.Module):
    """Images `(batch, 1, 28, 28)` -> logits `(batch, 1)`."""

    def __init__(self, filters=FILTERS):
        super().__init__()
        self.down1 = _glorot(nn.Conv2d(1, filters, 4, 2, padding=1))
        self.down2 = _glorot(nn.Conv2d(filters, 2 * filters, 4, 2, padding=1))
        self.logit = _glorot(nn.Linear(7 * 7 * 2 * filters, 1))

    def forward(self, images):
        x = F.leaky_relu(self.down1(images), 0.2)  # (batch, 64, 14, 14)
        x = F.leaky_relu(self.down2(x), 0.2)  # (batch, 128, 7, 7)
        return self.logit(x.flatten(1))


class Trainer(reference_torch.Trainer):
    """Trains the DCGAN on in-memory images, `run(num_steps)` steps at a time.

    Args:
        images: float32 array `(N, 28, 28, 1)` in [-1, 1]; kept as NCHW.
        batch_size: images per step.
        seed: seed of the weights, the order of the images and the latents.
        latent_dim: size of the latent vector.
        threads: intra-op threads (`torch.set_num_threads`).
    """

    def __init__(self, images, batch_size=128, seed=0, latent_dim=100, threads=None):
        # (N, 28, 28, 1) -> (N, 1, 28, 28), once: PyTorch's layout.
        images = images.transpose(0, 3, 1, 2)
        super().__init__(images, batch_size, seed, latent_dim, threads)

    @staticmethod
    def build_networks(latent_dim, image_shape):
        return Generator(latent_dim), Discriminator()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    import speed  # the data and timing of speed.py's workers

    trainer = Trainer(speed.synthetic_images(), args.batch_size, threads=args.threads)
    speed.time_reference(
        "PyTorch eager DCGAN",
        trainer,
        args.batch_size,
        args.steps,
        warmup=4,
        rate_digits=1,
    )


if __name__ == "__main__":
    main()
