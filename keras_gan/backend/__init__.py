"""One GAN trainer per Keras backend, picked once by `keras.config.backend()`.

As `keras.Model` picks `TensorFlowTrainer`, `JAXTrainer` or `TorchTrainer`,
`keras_gan.GAN` is `Trainer + BaseGAN` with the trainer of the backend Keras
runs on. Each trainer holds only gradient mechanics and its fast path.
"""

import keras

from keras_gan.choices import BACKENDS as SUPPORTED_BACKENDS
from keras_gan.errors import InputError


def trainer_class():
    """The GAN trainer mixin of the active Keras backend."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        from keras_gan.backend.tensorflow.trainer import TensorFlowGANTrainer

        return TensorFlowGANTrainer
    if backend == "jax":
        from keras_gan.backend.jax.trainer import JAXGANTrainer

        return JAXGANTrainer
    if backend == "torch":
        from keras_gan.backend.torch.trainer import TorchGANTrainer

        return TorchGANTrainer
    raise InputError(
        f"keras_gan runs on the Keras backends {', '.join(SUPPORTED_BACKENDS)}; "
        f"KERAS_BACKEND is {backend!r}."
    )
