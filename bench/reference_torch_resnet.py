"""SNGAN's ResNet in PyTorch eager: a reference for bench/speed_resnet.py.

keras_gan's `resnet` pair for 28x28x1 images (unconditional, `channels=128`;
Miyato et al. 2018, arXiv:1802.05957, table 4), written the way PyTorch users
write it: `nn.Module`s in NCHW, `torch.nn.utils.parametrizations.spectral_norm`
on every layer of D, `F.interpolate` (nearest) and `F.avg_pool2d`. It imports
nothing from keras_gan or TensorFlow.

The layers are drawn in bench/speed_resnet.py's docstring (here NCHW: G's
Linear output is viewed as (128, 7, 7)). Convolutions have padding 1 (3x3) or
0 (1x1), stride 1 and a bias. Weights start as keras_gan's do: the residual
3x3 convolutions Glorot uniform with gain sqrt(2), the rest Glorot uniform,
zero biases; batch normalisation has Chainer's epsilon (2e-5) and momentum
(0.9 in Keras's convention, 0.1 in PyTorch's).

PyTorch's spectral norm runs one power iteration on every training-mode
forward pass (D is always in training mode here, so also in the G update) and
keeps u and v as buffers; gradients flow through W and sigma, u and v held
constant, as in keras_gan. It differs from keras_gan's in bookkeeping only: it
persists v as well as u, and each iteration starts from v (keras_gan's from
u). Its 15 power iterations at construction are undone (v is drawn again), so
that the first step starts from a random vector as keras_gan's does. The step,
the optimizers (Adam(2e-4, betas=(0.5, 0.999), eps=1e-7)), the data order and
the thread settings are `reference_torch.Trainer`'s, the NCHW copy of the
images `reference_torch_dcgan.Trainer`'s. Run it alone with

    bench/.venv/bin/python bench/speed_resnet.py --worker torch --steps 2 \\
        --warmup 0 --repeats 1
"""

import math

import reference_torch_dcgan
import torch
import torch.nn.functional as F
from reference_torch_dcgan import _glorot
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm
from torch.nn.utils.parametrizations import spectral_norm

LATENT_DIM = 100
CHANNELS = 128
BATCH_NORM = {"eps": 2e-5, "momentum": 0.1}  # Keras's momentum 0.9


def _conv3x3(in_channels, out_channels):
    # Glorot uniform times sqrt(2): Chainer's GlorotUniform(sqrt(2)).
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    nn.init.xavier_uniform_(conv.weight, gain=math.sqrt(2.0))
    nn.init.zeros_(conv.bias)
    return conv


def _upsample(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


class UpBlock(nn.Module):
    """BN ReLU upsample conv3x3 BN ReLU conv3x3, plus conv1x1(upsample(x))."""

    def __init__(self, channels):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(channels, **BATCH_NORM)
        self.conv1 = _conv3x3(channels, channels)
        self.bn2 = nn.BatchNorm2d(channels, **BATCH_NORM)
        self.conv2 = _conv3x3(channels, channels)
        self.shortcut = _glorot(nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        h = self.conv1(_upsample(F.relu(self.bn1(x))))
        h = self.conv2(F.relu(self.bn2(h)))
        return h + self.shortcut(_upsample(x))


class Generator(nn.Module):
    """z `(batch, latent_dim)` -> images `(batch, 1, 28, 28)` in [-1, 1]."""

    def __init__(self, latent_dim=LATENT_DIM, channels=CHANNELS):
        super().__init__()
        self.channels = channels
        self.project = _glorot(nn.Linear(latent_dim, 7 * 7 * channels))
        self.blocks = nn.Sequential(UpBlock(channels), UpBlock(channels))
        self.output_bn = nn.BatchNorm2d(channels, **BATCH_NORM)
        self.to_image = _glorot(nn.Conv2d(channels, 1, 3, padding=1))

    def forward(self, z):
        x = self.project(z).view(-1, self.channels, 7, 7)
        x = self.blocks(x)  # (batch, 128, 28, 28)
        return torch.tanh(self.to_image(F.relu(self.output_bn(x))))


class DownBlock(nn.Module):
    """ReLU SNconv3x3 ReLU SNconv3x3, plus x (the size and channels kept)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = spectral_norm(_conv3x3(channels, channels))
        self.conv2 = spectral_norm(_conv3x3(channels, channels))

    def forward(self, x):
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class Discriminator(nn.Module):
    """Images `(batch, 1, 28, 28)` -> logits `(batch, 1)`."""

    def __init__(self, channels=CHANNELS):
        super().__init__()
        self.conv1 = spectral_norm(_conv3x3(1, channels))
        self.conv2 = spectral_norm(_conv3x3(channels, channels))
        self.shortcut = spectral_norm(_glorot(nn.Conv2d(1, channels, 1)))
        self.blocks = nn.Sequential(DownBlock(channels), DownBlock(channels))
        self.logit = spectral_norm(_glorot(nn.Linear(channels, 1)))
        # spectral_norm runs 15 power iterations when it wraps a layer;
        # keras_gan's first step starts from a random vector: so do these.
        for module in self.modules():
            if isinstance(module, _SpectralNorm):
                module._v.normal_()

    def forward(self, images):
        # Optimised first block: no ReLU on the images; the shortcut pools first.
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(images))), 2)
        x = h + self.shortcut(F.avg_pool2d(images, 2))  # (batch, 128, 14, 14)
        x = F.relu(self.blocks(x))
        return self.logit(x.sum((2, 3)))  # (batch, 128) -> (batch, 1)


class Trainer(reference_torch_dcgan.Trainer):
    """reference_torch_dcgan.py's trainer (NCHW images, `reference_torch`'s
    step and loop) on the ResNet pair."""

    @staticmethod
    def build_networks(latent_dim, image_shape):
        return Generator(latent_dim), Discriminator()
