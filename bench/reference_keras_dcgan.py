"""A DCGAN written by hand in Keras and TensorFlow: references for bench/speed_dcgan.py.

The networks are `keras_gan.networks.dcgan_generator` / `dcgan_discriminator`
for 28x28x1 images with `filters=64`, rebuilt here with `keras.Sequential` the
way a Keras tutorial writes them (Radford et al. 2015, arXiv:1511.06434). It
imports nothing from keras_gan, so it is an independent check.

    G: z (100) -> Dense 7*7*128 (no bias) BN ReLU -> reshape (7, 7, 128)
       -> ConvTranspose 64, 4x4, stride 2, same (no bias) BN ReLU  # (14, 14, 64)
       -> ConvTranspose 1, 4x4, stride 2, same, tanh                # (28, 28, 1)
    D: Conv 64, 4x4, stride 2, same, LeakyReLU(0.2)                 # (14, 14, 64)
       -> Conv 128, 4x4, stride 2, same, LeakyReLU(0.2)             # (7, 7, 128)
       -> flatten -> Dense 1 (logit)

Two ways to train them, both with Keras's Adam(2e-4, beta_1=0.5) for each
player and the non-saturating loss on logits, one D and one G update a step:

- `TFFunctionTrainer`: a `@tf.function` step with two tapes and a Python loop
  over a tf.data iterator, as in TensorFlow's DCGAN tutorial.
- `FitTrainer`: `keras.Model.fit` of `MinimalGAN`, the shortest custom
  `train_step` that does the same, as in Keras's "GAN overriding train_step"
  example, without XLA.

Both read `reference_tf.endless_pipeline`'s batches and use its `bce`;
`TFFunctionTrainer` runs `reference_tf.Trainer`'s loop.

Usage:

    python bench/reference_keras_dcgan.py --trainer tf_function --steps 64
"""

import argparse

import keras
import reference_tf
import tensorflow as tf
from keras import layers
from reference_tf import bce

LATENT_DIM = 100
FILTERS = 64


def make_generator(latent_dim=LATENT_DIM, filters=FILTERS):
    """z `(batch, latent_dim)` -> images `(batch, 28, 28, 1)` in [-1, 1]."""
    return keras.Sequential(
        [
            keras.Input((latent_dim,)),
            layers.Dense(7 * 7 * 2 * filters, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Reshape((7, 7, 2 * filters)),
            layers.Conv2DTranspose(
                filters, 4, strides=2, padding="same", use_bias=False
            ),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2DTranspose(1, 4, strides=2, padding="same"),
            layers.Activation("tanh", dtype="float32"),
        ],
        name="generator",
    )


def make_discriminator(filters=FILTERS):
    """Images `(batch, 28, 28, 1)` -> logits `(batch, 1)`."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(filters, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Conv2D(2 * filters, 4, strides=2, padding="same"),
            layers.LeakyReLU(negative_slope=0.2),
            layers.Flatten(),
            layers.Dense(1, dtype="float32"),
        ],
        name="discriminator",
    )


def make_networks(latent_dim=LATENT_DIM):
    """`(generator, discriminator)`: the pair the trainers below train
    (reference_keras_resnet.py's subclasses train the ResNet pair)."""
    return make_generator(latent_dim), make_discriminator()


def make_optimizer():
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


class TFFunctionTrainer(reference_tf.Trainer):
    """A `@tf.function` step (no XLA) on the Keras networks, `run(num_steps)`
    steps at a time; returns the mean `(d_loss, g_loss)` of those steps."""

    make_networks = staticmethod(make_networks)

    def __init__(self, images, batch_size=128, seed=0, latent_dim=LATENT_DIM):
        keras.utils.set_random_seed(seed)  # the initial weights
        generator, discriminator = self.make_networks(latent_dim)
        d_optimizer, g_optimizer = make_optimizer(), make_optimizer()
        d_optimizer.build(discriminator.trainable_variables)
        g_optimizer.build(generator.trainable_variables)
        noise = tf.random.Generator.from_seed(seed, alg="philox")
        self.loss_sums = tf.Variable(tf.zeros((2,)), trainable=False)

        @tf.function
        def train_step(real_images):
            # Discriminator: real -> 1, G(z1) -> 0; G is not differentiated.
            z = noise.normal((batch_size, latent_dim))
            fake_images = generator(z, training=True)
            with tf.GradientTape() as tape:
                d_loss = bce(discriminator(real_images, training=True), 1.0) + bce(
                    discriminator(fake_images, training=True), 0.0
                )
            variables = discriminator.trainable_variables
            d_optimizer.apply(tape.gradient(d_loss, variables), variables)

            # Generator: -log D(G(z2)) through the updated D, on fresh latents.
            z = noise.normal((batch_size, latent_dim))
            with tf.GradientTape() as tape:
                logits = discriminator(generator(z, training=True), training=True)
                g_loss = bce(logits, 1.0)
            variables = generator.trainable_variables
            g_optimizer.apply(tape.gradient(g_loss, variables), variables)
            self.loss_sums.assign_add(tf.stack([d_loss, g_loss]))

        self.train_step = train_step
        self.iterator = iter(reference_tf.endless_pipeline(images, batch_size, seed))


class MinimalGAN(keras.Model):
    """The shortest `train_step` of a GAN: one D update, one G update."""

    def __init__(self, generator, discriminator, latent_dim=LATENT_DIM, seed=0):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = latent_dim
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker]

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer

    def train_step(self, real_images):
        batch_size = tf.shape(real_images)[0]

        # Discriminator: real -> 1, G(z1) -> 0.
        z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        fake_images = self.generator(z, training=True)
        with tf.GradientTape() as tape:
            d_loss = bce(self.discriminator(real_images, training=True), 1.0) + bce(
                self.discriminator(fake_images, training=True), 0.0
            )
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply(tape.gradient(d_loss, variables), variables)

        # Generator: -log D(G(z2)) on fresh latents.
        z = keras.random.normal((batch_size, self.latent_dim), seed=self.seed_generator)
        with tf.GradientTape() as tape:
            logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = bce(logits, 1.0)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(g_loss, variables), variables)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return {metric.name: metric.result() for metric in self.metrics}


class FitTrainer:
    """`MinimalGAN.fit` without XLA, one step per call; `run(num_steps)` is one
    `fit(steps_per_epoch=num_steps)` and returns its mean `(d_loss, g_loss)`."""

    steps_per_call = 1
    make_networks = staticmethod(make_networks)

    def __init__(self, images, batch_size=128, seed=0, latent_dim=LATENT_DIM):
        keras.utils.set_random_seed(seed)
        self.gan = MinimalGAN(*self.make_networks(latent_dim), latent_dim, seed)
        self.gan.compile(
            make_optimizer(), make_optimizer(), jit_compile=False, steps_per_execution=1
        )
        self.gan.d_optimizer.build(self.gan.discriminator.trainable_variables)
        self.gan.g_optimizer.build(self.gan.generator.trainable_variables)
        self.dataset = reference_tf.endless_pipeline(images, batch_size, seed)

    def run(self, num_steps):
        history = self.gan.fit(
            self.dataset, epochs=1, steps_per_epoch=num_steps, verbose=0
        ).history
        return history["d_loss"][-1], history["g_loss"][-1]


TRAINERS = {"tf_function": TFFunctionTrainer, "keras_fit": FitTrainer}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trainer", choices=TRAINERS, default="tf_function")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=64)
    args = parser.parse_args()
    import speed  # the data and timing of speed.py's workers

    trainer = TRAINERS[args.trainer](speed.synthetic_images(), args.batch_size)
    speed.time_reference(
        args.trainer, trainer, args.batch_size, args.steps, warmup=4, rate_digits=1
    )


if __name__ == "__main__":
    main()
