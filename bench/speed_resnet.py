"""Training speed of keras_gan's SNGAN ResNet against independent implementations.

The ResNet companion of bench/speed_dcgan.py, with its harness, columns and
report (bench/speed.py's workers, rounds and table): trains keras_gan's
shipped `resnet` pair, `keras_gan.networks.build("resnet", 100, (28, 28, 1))`
(SNGAN's ResNet, Miyato et al. 2018, arXiv:1802.05957, table 4;
unconditional, `channels=128`; keras_gan/resnet.py), with each implementation
below, at batch 64 (or `--batch-sizes`), for a fixed number of steps after a
warm-up, and prints one table row per implementation and batch size:

    keras_gan              GAN.compile() defaults: jit_compile="auto", which
                           picks no XLA for convolutional nets on a CPU
    keras_gan_bf16         the same under keras.config.set_dtype_policy(
                           "mixed_bfloat16"), set before the networks are built
    keras_gan_xla          GAN.compile(jit_compile=True, steps_per_execution=1):
                           XLA, 1 step per call (see below)
    tf_function            bench/reference_keras_resnet.py: the same networks
                           built by hand from Keras layers, with a spectral
                           normalisation of its own, a @tf.function step, no XLA
    keras_fit              the same networks, Keras fit of a minimal
                           hand-written train_step, no XLA
    torch                  bench/reference_torch_resnet.py: PyTorch eager,
                           parametrizations.spectral_norm, all cores,
                           OMP_WAIT_POLICY=PASSIVE
    torch_omp_default      the same with OpenMP's default (busy-waiting) policy
    jax_jit                bench/reference_jax_resnet.py: one jax.jit call per
                           step, lax.conv_general_dilated, hand-written spectral
                           and batch normalisation

The networks at 28x28x1 (k = 2 halvings, 28 -> 14 -> 7; every convolution
stride 1, "same", with a bias):

    G: z (100) -> Dense 7*7*128 -> reshape (7, 7, 128)
       -> up-block 1 (7 -> 14), up-block 2 (14 -> 28), each:
          BN ReLU upsample(2, nearest) conv3x3 BN ReLU conv3x3
          + conv1x1(upsample(x))                                # (28, 28, 128)
       -> BN ReLU conv3x3 (1 channel) tanh                      # (28, 28, 1)
    D (every conv and the Dense spectrally normalised):
       optimised block 1: SNconv3x3 (1 -> 128) ReLU SNconv3x3 avgpool(2)
          + SNconv1x1(avgpool(2)(x))                            # (14, 14, 128)
       -> blocks 2 and 3 (size kept): ReLU SNconv3x3 ReLU SNconv3x3 + x
       -> ReLU, sum over space (batch, 128) -> SNDense 1 (logit)

Parameters, equal in all four implementations (checked with Keras's
`count_params`, PyTorch's `parameters()`/buffers and the JAX trees):
G 1,259,265 trainable + 1,280 batch-norm moving statistics (Keras's
1,260,545); D 739,585 trainable + 897 spectral-norm u entries (Keras's
740,482; PyTorch's parametrization also keeps 5,898 v entries). With
keras_gan's weights copied in, each reference's G images, D logits and D
kernel gradients match keras_gan's to about 1e-6 (PyTorch's with u and v set
to the exact singular vectors, see below). Weights start as keras_gan's
(drawn independently): residual 3x3 convolutions Glorot uniform with its
bound times sqrt(2), the rest Glorot uniform, zero biases; batch
normalisation with momentum 0.9 and epsilon 2e-5 (Chainer's, the authors'
code); spectral normalisation by one power iteration per training-mode D
forward pass (the G update's included), from a persistent u, with u and v
held constant for the gradient.

Differences that do not change the work done: PyTorch's spectral norm
iterates from its stored v (keras_gan's, the Keras and the JAX reference's
from u), so its sigma is half an iteration apart; its 15 power iterations at
construction are undone so that every implementation starts from a random
vector. PyTorch runs NCHW (G's Dense output viewed as (128, 7, 7), a
permutation of Keras's (7, 7, 128)) and keeps batch normalisation's moving
variance unbiased. The first steps' losses differ between rows: the initial
weights and u are drawn independently, and with an unconverged u the logits
start large.

Every step is one D update on a real batch and G(z1), D called on each
separately, then one G update through the updated D on fresh z2;
GAN.compile's defaults: Adam(2e-4, beta_1=0.5) for each player (epsilon
1e-7, Keras's), the non-saturating loss on logits, no penalty. G runs in
training mode (batch statistics) in both updates. Data: 60,000 synthetic
28x28x1 float32 images, uniform in [-1, 1], in memory, the same for all;
every implementation reshuffles them each epoch and drops the last partial
batch.

keras_gan_xla runs one step per call: with `jit_compile=True`,
steps_per_execution="auto" would be 32, and keras_gan fuses steps into one
XLA call only for networks without convolutions (for these it would be
Keras's loop of 32 launches of the compiled step), so a window would be at
least 32 steps (a minute or more) for no gain: a ResNet step takes seconds,
the per-call overhead milliseconds. XLA compiles the step in about 12 s.

Each row runs in its own subprocess (`--worker NAME`), one after the other,
`--rounds` times over, interleaved: a first call (trace, compile and one
step), a warm-up of `--warmup` steps, then `--repeats` timed windows of
`--steps` steps each. The columns are speed.py's (see its docstring; `steps/s`
the median window, `best` the fastest, `kg ÷ (best)` keras_gan's steps/s over
the row's, `cores` / `other` the row's and other processes' busy cores,
`load 1m`, `RSS MB`); `GFLOP/s` and `% peak` are speed_dcgan.py's: the
multiply-adds of the convolutions (1x1 shortcuts included) and dense layers,
2 FLOPs each, from the layer shapes (`layer_macs`), for what the step needs
(`step_flops`): 6.16 GFLOP per image and step, 394 G at batch 64. Batch and
spectral normalisation, upsampling, pooling, activations, losses, Adam and
noise are not counted. The peak is the best all-core float32 GEMM measured at
the start and the end; the mixed_bfloat16 row is set against the best
bfloat16 GEMM, marked `bf16`.

The default run (batch 64, 3 windows of 12 steps after 2 warm-up steps;
about 15-20 minutes on 2 cores) is short in steps: a step takes about two
seconds there (four on one core), so a window lasts about 25. Run one row alone with
`--worker NAME --steps 2 --warmup 0 --repeats 1` (prints its JSON result).

Usage:

    bench/.venv/bin/python bench/speed_resnet.py --out bench/results/speed_resnet
    bench/.venv/bin/python bench/speed_resnet.py --batch-sizes 32 64
    bench/.venv/bin/python bench/speed_resnet.py --quick     # smoke run, ~4 min
"""

import functools
import os
import sys

import speed_dcgan

LATENT_DIM = 100
IMAGE_SHAPE = (28, 28, 1)
CHANNELS = 128
SCRIPT = os.path.abspath(__file__)  # the workers' command

# name -> (label, extra environment): speed_dcgan.py's rows, XLA at 1 step/call.
IMPLEMENTATIONS = {
    **speed_dcgan.IMPLEMENTATIONS,
    "keras_gan_xla": ("keras_gan, XLA (1 step/call)", {}),
}
# keras_gan's rows: name -> (GAN.compile arguments, dtype policy).
KERAS_GAN_ROWS = {
    **speed_dcgan.KERAS_GAN_ROWS,
    "keras_gan_xla": ({"jit_compile": True, "steps_per_execution": 1}, None),
}
REFERENCES = (
    "reference_keras_resnet",
    "reference_torch_resnet",
    "reference_jax_resnet",
)


def layer_macs(latent_dim=LATENT_DIM, channels=CHANNELS):
    """Multiply-adds per image of the layers with weights, at 28x28x1.

    Returns `(generator, discriminator)`, each a list of `(layer, macs)`; a
    convolution costs output positions x kernel area x in x out channels. G's
    first layer reads the noise; D's first two read the images (block 1's
    first convolution and its shortcut's, on the pooled images), which
    `step_flops` needs to know.
    """
    c = channels

    def conv(size, kernel, in_channels, out_channels):
        return size * size * kernel * kernel * in_channels * out_channels

    generator = [(f"G Dense {latent_dim} -> 7*7*{c}", latent_dim * 7 * 7 * c)]
    for block, size in ((1, 14), (2, 28)):
        generator += [
            (f"G block{block} conv1 3x3 @{size}", conv(size, 3, c, c)),
            (f"G block{block} conv2 3x3 @{size}", conv(size, 3, c, c)),
            (f"G block{block} shortcut 1x1 @{size}", conv(size, 1, c, c)),
        ]
    generator.append(("G to_image 3x3 @28", conv(28, 3, c, 1)))
    discriminator = [
        ("D block1 conv1 3x3 @28 (1 ->)", conv(28, 3, 1, c)),
        ("D block1 shortcut 1x1 @14 (1 ->)", conv(14, 1, 1, c)),
        ("D block1 conv2 3x3 @28", conv(28, 3, c, c)),
    ]
    for block in (2, 3):
        discriminator += [
            (f"D block{block} conv1 3x3 @14", conv(14, 3, c, c)),
            (f"D block{block} conv2 3x3 @14", conv(14, 3, c, c)),
        ]
    discriminator.append((f"D Dense {c} -> 1", c))
    return generator, discriminator


def step_flops(batch_size, latent_dim=LATENT_DIM, channels=CHANNELS):
    """Convolution and matmul FLOPs of one GAN step (2 per multiply-add)."""
    generator, discriminator = layer_macs(latent_dim, channels)
    return speed_dcgan.layers_step_flops(
        batch_size, generator, discriminator, d_inputs=2
    )


class KerasGANTrainer(speed_dcgan.KerasGANTrainer):
    """speed_dcgan.py's keras_gan trainer on the ResNet pair."""

    @staticmethod
    def build_networks():
        import keras_gan

        return keras_gan.networks.build("resnet", LATENT_DIM, IMAGE_SHAPE)


make_trainer = functools.partial(
    speed_dcgan.make_trainer,
    keras_gan_trainer=KerasGANTrainer,
    keras_gan_rows=KERAS_GAN_ROWS,
    references=REFERENCES,
)


# The report's title and network, argument_parser's defaults, and --quick's
# (steps, warmup, repeats): read by speed_dcgan.main.
TITLE = "# keras_gan ResNet training speed against independent implementations"
NETWORK = "SNGAN ResNet 28x28x1, channels 128 (keras_gan `resnet`)"
DEFAULTS = {"batch_sizes": [64], "steps": 12, "warmup": 2, "timeout": 1200}
QUICK = (1, 0, 1)


def main():
    speed_dcgan.main(sys.modules[__name__])


if __name__ == "__main__":
    main()
