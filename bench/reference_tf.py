"""A plain, hand-written TensorFlow vanilla GAN: the bar keras_gan must meet.

Same design as `keras_gan.networks.mlp_generator` / `mlp_discriminator` and
`keras_gan.GAN` (Goodfellow et al. 2014, arXiv:1406.2661), written the way the
TensorFlow tutorials write a GAN: `tf.Variable` weights, a `@tf.function`
train step with two tapes, a tf.data pipeline, and a Python loop over epochs
and batches. It imports nothing from keras_gan, so it is an independent check.

    D: flatten 784 -> Dense 128 -> LeakyReLU(0.2) -> Dense 1 (logit)
    G: z (100) -> Dense 128 ReLU -> Dense 784 tanh -> reshape (28, 28, 1)

Both use Adam(2e-4, beta_1=0.5), the BCE of the logits (sigmoid inside
`tf.nn.sigmoid_cross_entropy_with_logits`) and the non-saturating G loss.

Usage:

    python bench/reference_tf.py --epochs 1 --out bench/results/reference.png
"""

import argparse
import gzip
import math
import os
import time

import numpy as np
import tensorflow as tf

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

# Keras's Adam epsilon, so that both sides run the same optimizer.
ADAM_EPSILON = 1e-7


def load_idx_images(data_dir: str = FASHION_MNIST, split: str = "train"):
    """Reads MNIST-format IDX images (raw or .gz) as uint8 `(N, H, W, 1)`."""
    prefix = "train" if split == "train" else "t10k"
    path = os.path.join(data_dir, f"{prefix}-images-idx3-ubyte")
    if not os.path.exists(path):
        path += ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as file:
        content = file.read()
    # Big-endian header: magic 0x00000803, then N, H, W as uint32.
    magic, count, height, width = np.frombuffer(content, dtype=">u4", count=4)
    if magic != 0x803:
        raise ValueError(f"{path} has magic 0x{magic:08x}; expected 0x00000803.")
    pixels = np.frombuffer(content, dtype=np.uint8, offset=16)
    return pixels.reshape(count, height, width, 1)


class Dense(tf.Module):
    """`x @ kernel + bias` with Keras's defaults: glorot_uniform, zero bias."""

    def __init__(self, fan_in, fan_out, seed, name=None):
        super().__init__(name=name)
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        self.kernel = tf.Variable(
            tf.random.stateless_uniform(
                (fan_in, fan_out), seed=seed, minval=-limit, maxval=limit
            ),
            name="kernel",
        )
        self.bias = tf.Variable(tf.zeros((fan_out,)), name="bias")

    def __call__(self, x):
        return tf.matmul(x, self.kernel) + self.bias


class Generator(tf.Module):
    """z `(batch, latent_dim)` -> images `(batch, H, W, C)` in [-1, 1]."""

    def __init__(self, latent_dim, image_shape, hidden_units=128, seed=0):
        super().__init__(name="generator")
        self.image_shape = tuple(image_shape)
        self.hidden = Dense(latent_dim, hidden_units, seed=[seed, 1])
        self.pixels = Dense(hidden_units, math.prod(image_shape), seed=[seed, 2])

    def __call__(self, z):
        x = tf.nn.relu(self.hidden(z))  # (batch, 128)
        x = tf.tanh(self.pixels(x))  # (batch, 784)
        return tf.reshape(x, (-1, *self.image_shape))


class Discriminator(tf.Module):
    """Images `(batch, H, W, C)` -> logits `(batch, 1)`."""

    def __init__(self, image_shape, hidden_units=128, seed=0):
        super().__init__(name="discriminator")
        self.num_pixels = math.prod(image_shape)
        self.hidden = Dense(self.num_pixels, hidden_units, seed=[seed, 3])
        self.logit = Dense(hidden_units, 1, seed=[seed, 4])

    def __call__(self, images):
        x = tf.reshape(images, (-1, self.num_pixels))  # (batch, 784)
        x = tf.nn.leaky_relu(self.hidden(x), alpha=0.2)  # (batch, 128)
        return self.logit(x)


class Adam(tf.Module):
    """Adam as Keras 3 writes it (Kingma & Ba 2014, arXiv:1412.6980, alg. 1)."""

    def __init__(self, variables, learning_rate=2e-4, beta_1=0.5, beta_2=0.999):
        super().__init__()
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.iterations = tf.Variable(0.0, trainable=False)
        self.moments = [
            tf.Variable(tf.zeros_like(v), trainable=False) for v in variables
        ]
        self.velocities = [
            tf.Variable(tf.zeros_like(v), trainable=False) for v in variables
        ]

    def apply(self, gradients, variables):
        step = self.iterations.assign_add(1.0)
        # Bias corrections folded into the step size.
        alpha = (
            self.learning_rate
            * tf.sqrt(1.0 - self.beta_2**step)
            / (1.0 - self.beta_1**step)
        )
        for gradient, variable, m, v in zip(
            gradients, variables, self.moments, self.velocities, strict=True
        ):
            m.assign_add((gradient - m) * (1.0 - self.beta_1))
            v.assign_add((tf.square(gradient) - v) * (1.0 - self.beta_2))
            variable.assign_sub(alpha * m / (tf.sqrt(v) + ADAM_EPSILON))


class ReferenceGAN(tf.Module):
    """The trained networks and the per-epoch mean losses of `train_reference`."""

    def __init__(self, latent_dim, image_shape, seed):
        super().__init__(name="reference_gan")
        self.latent_dim = latent_dim
        self.generator = Generator(latent_dim, image_shape, seed=seed)
        self.discriminator = Discriminator(image_shape, seed=seed)
        self.history = []  # one {"d_loss", "g_loss", "seconds"} per epoch
        self.steps = 0

    def __call__(self, z):
        return self.generator(z)


def make_pipeline(images_uint8, batch_size=64, seed=0):
    """uint8 `(N, H, W, C)` in memory -> float32 batches in [-1, 1]."""
    dataset = tf.data.Dataset.from_tensor_slices(images_uint8).cache()
    dataset = dataset.shuffle(
        len(images_uint8), seed=seed, reshuffle_each_iteration=True
    )
    dataset = dataset.batch(batch_size, drop_remainder=True)
    # Scaling whole batches is one vectorised op instead of one per image.
    dataset = dataset.map(
        lambda x: tf.cast(x, tf.float32) / 127.5 - 1.0,
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def endless_pipeline(images, batch_size=64, seed=0):
    """float32 `(N, H, W, C)` in memory, already in [-1, 1] -> batches,
    reshuffled each epoch, crossing epochs without end."""
    dataset = tf.data.Dataset.from_tensor_slices(images).cache()
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=True).repeat()
    return dataset.prefetch(tf.data.AUTOTUNE)


def bce(logits, label):
    """Mean binary cross-entropy of `logits` against a constant `label`."""
    labels = tf.fill(tf.shape(logits), label)
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
    )


def make_train_step(model, batch_size, seed=0, xla=False):
    """The reference's step on `model` (a `ReferenceGAN`), with its own Adams.

    Returns:
        `(train_step, loss_sums)`: `train_step(real_images)` runs one D update
        and one G update; `loss_sums` is a `(2,)` variable accumulating
        `(d_loss, g_loss)` over steps.
    """
    generator, discriminator = model.generator, model.discriminator
    latent_dim = model.latent_dim
    d_optimizer = Adam(discriminator.trainable_variables)
    g_optimizer = Adam(generator.trainable_variables)
    noise = tf.random.Generator.from_seed(seed, alg="philox")
    loss_sums = tf.Variable(tf.zeros((2,)), trainable=False)  # (d_loss, g_loss)

    @tf.function(jit_compile=xla)
    def train_step(real_images):
        # Discriminator: real -> 1, G(z1) -> 0.
        z = noise.normal((batch_size, latent_dim))
        fake_images = generator(z)
        with tf.GradientTape() as tape:
            d_loss = bce(discriminator(real_images), 1.0) + bce(
                discriminator(fake_images), 0.0
            )
        variables = discriminator.trainable_variables
        d_optimizer.apply(tape.gradient(d_loss, variables), variables)

        # Generator: -log D(G(z2)) on fresh latents.
        z = noise.normal((batch_size, latent_dim))
        with tf.GradientTape() as tape:
            g_loss = bce(discriminator(generator(z)), 1.0)
        variables = generator.trainable_variables
        g_optimizer.apply(tape.gradient(g_loss, variables), variables)
        loss_sums.assign_add(tf.stack([d_loss, g_loss]))

    return train_step, loss_sums


class Trainer:
    """The reference's step on in-memory images, `run(num_steps)` steps at a
    time: bench/speed.py's `tf_function` rows.

    The step is `make_train_step`'s, the one `train_reference` runs; the
    batches come from `endless_pipeline`, so windows cross epochs.

    Args:
        images: float32 array `(N, H, W, C)` in [-1, 1].
        batch_size: images per step.
        seed: seed of the weights, the order of the images and the latents.
        xla: whether the step is compiled with XLA (`jit_compile=True`).
        latent_dim: size of the latent vector.
    """

    steps_per_call = 1

    def __init__(self, images, batch_size=64, seed=0, xla=False, latent_dim=100):
        model = ReferenceGAN(latent_dim, images.shape[1:], seed)
        self.train_step, self.loss_sums = make_train_step(model, batch_size, seed, xla)
        self.iterator = iter(endless_pipeline(images, batch_size, seed))

    def run(self, num_steps):
        """Trains `num_steps` steps; returns their mean `(d_loss, g_loss)`."""
        self.loss_sums.assign([0.0, 0.0])
        for _ in range(num_steps):
            self.train_step(next(self.iterator))
        d_sum, g_sum = self.loss_sums.numpy() / num_steps  # waits for the steps
        return float(d_sum), float(g_sum)


def train_reference(
    images_uint8, epochs, batch_size=64, seed=0, xla=False, latent_dim=100
):
    """Trains the reference GAN and times its training loop.

    Args:
        images_uint8: uint8 array `(N, H, W, C)` in [0, 255].
        epochs: passes over the data.
        batch_size: images per step; the remainder of each epoch is dropped.
        seed: seed of the initial weights, the shuffle and the latents.
        xla: whether the train step is compiled with XLA
            (`jit_compile=True`); the plain `tf.function` when False.
        latent_dim: size of the latent vector.

    Returns:
        A tuple `(model, seconds)`: a `ReferenceGAN` (call it on latents to
        generate; `model.history` holds the per-epoch mean losses) and the
        wall time of the training loop, first trace and compile included.
    """
    images_uint8 = np.asarray(images_uint8)
    model = ReferenceGAN(latent_dim, images_uint8.shape[1:], seed)
    train_step, loss_sums = make_train_step(model, batch_size, seed, xla)
    dataset = make_pipeline(images_uint8, batch_size, seed)

    start = epoch_start = time.perf_counter()
    for _ in range(epochs):
        loss_sums.assign(tf.zeros((2,)))
        steps = 0
        for real_images in dataset:
            train_step(real_images)
            steps += 1
        # Reading the sums waits for the epoch's last step.
        d_sum, g_sum = loss_sums.numpy() / steps
        epoch_end = time.perf_counter()
        model.history.append(
            {
                "d_loss": float(d_sum),
                "g_loss": float(g_sum),
                "seconds": epoch_end - epoch_start,
            }
        )
        model.steps += steps
        epoch_start = epoch_end
    seconds = time.perf_counter() - start
    return model, seconds


def fixed_latents(num_images=64, latent_dim=100, seed=0):
    """Standard normal latents `(num_images, latent_dim)`, Philox seed `[seed, 0]`.

    The benchmark feeds these same latents to both generators.
    """
    return tf.random.stateless_normal(
        (num_images, latent_dim), seed=[seed, 0], alg="philox"
    )


def sample_grid(generator, latents, num_rows=8, padding=1):
    """Tiles `generator(latents)` into one uint8 `(H', W')` image, row by row."""
    images = np.asarray(generator(latents))  # (N, H, W, 1) in [-1, 1]
    pixels = np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    count, height, width = pixels.shape[:3]
    num_columns = count // num_rows
    grid = np.full(
        (
            num_rows * (height + padding) - padding,
            num_columns * (width + padding) - padding,
        ),
        255,
        dtype=np.uint8,
    )
    for index, image in enumerate(pixels[..., 0]):
        row, column = divmod(index, num_columns)
        top, left = row * (height + padding), column * (width + padding)
        grid[top : top + height, left : left + width] = image
    return grid


def save_grid(grid, path):
    from PIL import Image

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    Image.fromarray(grid).save(path, format="PNG")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=FASHION_MNIST)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--xla", action="store_true", help="jit_compile=True")
    parser.add_argument("--out", default="bench/results/reference.png")
    args = parser.parse_args()

    images = load_idx_images(args.data_dir)
    model, seconds = train_reference(
        images, args.epochs, args.batch_size, args.seed, xla=args.xla
    )
    save_grid(sample_grid(model, fixed_latents(seed=args.seed)), args.out)
    last = model.history[-1]
    print(
        f"reference{' (XLA)' if args.xla else ''}: {args.epochs} epochs, "
        f"{model.steps} steps in {seconds:.1f} s ({model.steps / seconds:.0f} "
        f"steps/s), d_loss {last['d_loss']:.3f}, g_loss {last['g_loss']:.3f}; "
        f"grid: {args.out}"
    )


if __name__ == "__main__":
    main()
