"""keras_gan: generative adversarial networks for Keras 3, trained with `fit`."""

from keras_gan import callbacks
from keras_gan import data
from keras_gan import evaluation
from keras_gan import export
from keras_gan import images
from keras_gan import losses
from keras_gan import networks
from keras_gan import noise
from keras_gan.errors import InputError
from keras_gan.models import GAN
from keras_gan.version import __version__

__all__ = [
    "GAN",
    "InputError",
    "__version__",
    "callbacks",
    "data",
    "evaluation",
    "export",
    "images",
    "losses",
    "networks",
    "noise",
]
