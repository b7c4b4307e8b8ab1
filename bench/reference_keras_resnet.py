"""SNGAN's ResNet built by hand in Keras: references for bench/speed_resnet.py.

The networks are keras_gan's `resnet` pair for 28x28x1 images (unconditional,
`channels=128`; Miyato et al. 2018, arXiv:1802.05957, table 4), rebuilt here
with the Keras functional API from plain Keras layers, plus a spectral
normalisation of its own (`SNConv2D`, `SNDense`). It imports nothing from
keras_gan, so it is an independent check.

The layers are drawn in bench/speed_resnet.py's docstring. Every convolution
is "same" and stride 1, and has a bias. Initialisers as in keras_gan (the
authors' Chainer code): the residual 3x3 convolutions draw Glorot uniform
times sqrt(2) (`VarianceScaling(2, "fan_avg", "uniform")`), the others Keras's
default Glorot uniform; biases start at zero. Batch normalisation: momentum
0.9, epsilon 2e-5 (Chainer's defaults).

Spectral normalisation (the paper's algorithm 1): the kernel, reshaped to
`(-1, units)`, is divided by sigma = v^T W u, estimated by one power iteration
from a persistent `u` (a non-trainable weight, RandomNormal(1) at first) on
every call; u and v are constants for the gradient, which flows through W and
sigma; `u` keeps its new value on calls with `training=True`. D is called with
`training=True` everywhere, so each D forward pass, the G update's included,
runs one power iteration and stores `u`.

The trainers are reference_keras_dcgan.py's `TFFunctionTrainer` (a
`@tf.function` step, no XLA, over a tf.data iterator) and `FitTrainer`
(`keras.Model.fit` of its `MinimalGAN` train_step, no XLA), given these
networks. Run one alone with

    bench/.venv/bin/python bench/speed_resnet.py --worker tf_function --steps 2 \\
        --warmup 0 --repeats 1
"""

import keras
import reference_keras_dcgan
import tensorflow as tf
from keras import layers

LATENT_DIM = 100
CHANNELS = 128
BATCH_NORM = {"momentum": 0.9, "epsilon": 2e-5}  # Chainer's


def _residual_initializer():
    # Glorot uniform with its bound times sqrt(2) (Chainer's GlorotUniform(sqrt(2))).
    return keras.initializers.VarianceScaling(2.0, "fan_avg", "uniform")


def _unit(vector):
    return vector / (tf.norm(vector) + 1e-12)


class _SpectralNorm:
    """Mixin for Keras layers with a `kernel` whose last axis is the units:
    adds the persistent vector `u` and `sn_kernel(training)`, W / sigma(W)."""

    def build(self, input_shape):
        super().build(input_shape)
        self.u = self.add_weight(
            shape=(self.kernel.shape[-1],),
            initializer=keras.initializers.RandomNormal(stddev=1.0),
            trainable=False,
            name="u",
        )

    def sn_kernel(self, training):
        kernel = tf.convert_to_tensor(self.kernel)
        flat = tf.reshape(kernel, (-1, kernel.shape[-1]))  # (fan_in, units)
        # One power iteration from the stored u; then both are constants.
        v = tf.stop_gradient(_unit(tf.linalg.matvec(flat, self.u.value)))
        u = tf.stop_gradient(_unit(tf.linalg.matvec(flat, v, transpose_a=True)))
        if training:
            self.u.assign(u)
        sigma = tf.tensordot(v, tf.linalg.matvec(flat, u), axes=1)
        return kernel / sigma


class SNConv2D(_SpectralNorm, layers.Conv2D):
    """A stride-1, "same", NHWC `Conv2D` run with its spectrally normalised kernel."""

    def call(self, inputs, training=None):
        # `+ bias`, as Keras's Conv2D adds it: tf.nn.bias_add before the
        # residual Add and ReLU makes grappler's remapper fail on the step
        # (TF 2.21: "remapper failed: ... Mutation::Apply error"), which then
        # skips its fusions.
        outputs = tf.nn.conv2d(inputs, self.sn_kernel(training), 1, "SAME")
        return outputs + self.bias


class SNDense(_SpectralNorm, layers.Dense):
    """A linear `Dense` run with its spectrally normalised kernel."""

    def call(self, inputs, training=None):
        return tf.matmul(inputs, self.sn_kernel(training)) + self.bias


def _conv3x3(channels, spectral=False):
    conv = SNConv2D if spectral else layers.Conv2D
    return conv(channels, 3, padding="same", kernel_initializer=_residual_initializer())


def _up_block(x, channels):
    h = layers.ReLU()(layers.BatchNormalization(**BATCH_NORM)(x))
    h = _conv3x3(channels)(layers.UpSampling2D(2)(h))
    h = layers.ReLU()(layers.BatchNormalization(**BATCH_NORM)(h))
    h = _conv3x3(channels)(h)
    shortcut = layers.Conv2D(channels, 1)(layers.UpSampling2D(2)(x))
    return layers.Add()([h, shortcut])


def make_generator(latent_dim=LATENT_DIM, channels=CHANNELS):
    """z `(batch, latent_dim)` -> images `(batch, 28, 28, 1)` in [-1, 1]."""
    z = keras.Input((latent_dim,))
    x = layers.Dense(7 * 7 * channels)(z)
    x = layers.Reshape((7, 7, channels))(x)
    x = _up_block(_up_block(x, channels), channels)  # (batch, 28, 28, 128)
    x = layers.ReLU()(layers.BatchNormalization(**BATCH_NORM)(x))
    x = layers.Conv2D(1, 3, padding="same", activation="tanh")(x)
    return keras.Model(z, x, name="generator")


def make_discriminator(channels=CHANNELS):
    """Images `(batch, 28, 28, 1)` -> logits `(batch, 1)`."""
    images = keras.Input((28, 28, 1))
    # Optimised first block: no ReLU on the images; the shortcut pools first.
    h = layers.ReLU()(_conv3x3(channels, spectral=True)(images))
    h = layers.AveragePooling2D(2)(_conv3x3(channels, spectral=True)(h))
    shortcut = SNConv2D(channels, 1)(layers.AveragePooling2D(2)(images))
    x = layers.Add()([h, shortcut])  # (batch, 14, 14, 128)
    for _ in range(2):  # blocks that keep the size, identity shortcut
        h = _conv3x3(channels, spectral=True)(layers.ReLU()(x))
        h = _conv3x3(channels, spectral=True)(layers.ReLU()(h))
        x = layers.Add()([h, x])
    features = keras.ops.sum(layers.ReLU()(x), axis=(1, 2))  # (batch, 128)
    return keras.Model(images, SNDense(1)(features), name="discriminator")


def make_networks(latent_dim=LATENT_DIM):
    """`(generator, discriminator)`, weights drawn from Keras's global seed."""
    return make_generator(latent_dim), make_discriminator()


class TFFunctionTrainer(reference_keras_dcgan.TFFunctionTrainer):
    """reference_keras_dcgan.py's `@tf.function` trainer on the ResNet pair."""

    make_networks = staticmethod(make_networks)


class FitTrainer(reference_keras_dcgan.FitTrainer):
    """reference_keras_dcgan.py's `MinimalGAN.fit` trainer on the ResNet pair."""

    make_networks = staticmethod(make_networks)


TRAINERS = {"tf_function": TFFunctionTrainer, "keras_fit": FitTrainer}
