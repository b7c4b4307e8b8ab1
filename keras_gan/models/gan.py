"""`GAN`: the trainer of the active Keras backend mixed into `BaseGAN`."""

import keras

from keras_gan.backend import trainer_class
from keras_gan.models.base import BaseGAN


@keras.saving.register_keras_serializable(package="keras_gan")
class GAN(trainer_class(), BaseGAN):
    __doc__ = BaseGAN.__doc__
