"""The GAN model: a backend-free `BaseGAN` and `GAN` with this backend's trainer."""

from keras_gan.models.base import TRAINING_DEFAULTS
from keras_gan.models.base import BaseGAN
from keras_gan.models.gan import GAN

__all__ = ["GAN", "TRAINING_DEFAULTS", "BaseGAN"]
