"""Training speed of keras_gan's DCGAN against independent implementations.

The convolutional companion of bench/speed.py, with its design, columns and
helpers: trains the DCGAN of `keras_gan.networks.dcgan_generator` /
`dcgan_discriminator` (28x28x1, `filters=64`; Radford et al. 2015,
arXiv:1511.06434) with each implementation below, at batch 128 (or
`--batch-sizes`), for a fixed number of steps after a warm-up, and prints one
table row per implementation and batch size:

    keras_gan              GAN.compile() defaults: jit_compile="auto", which
                           picks no XLA for convolutional nets on a CPU
    keras_gan_bf16         the same under keras.config.set_dtype_policy(
                           "mixed_bfloat16"), set before the networks are built
    keras_gan_xla          GAN.compile(jit_compile=True): XLA, 32 steps/call
    keras_gan_jax          GAN.compile() defaults on the JAX backend (jit)
    keras_gan_torch        GAN.compile() defaults on the PyTorch backend (eager)
    tf_function            bench/reference_keras_dcgan.py: the same Keras
                           networks built by hand, a @tf.function step, no XLA
    keras_fit              bench/reference_keras_dcgan.py: Keras fit of a
                           minimal hand-written train_step, no XLA
    torch                  bench/reference_torch_dcgan.py: PyTorch eager, all
                           cores, OMP_WAIT_POLICY=PASSIVE
    torch_omp_default      the same with OpenMP's default (busy-waiting) policy
    jax_jit                bench/reference_jax_dcgan.py: one jax.jit call per step

    G: z (100) -> Dense 7*7*128 (no bias) BN ReLU
       -> ConvTranspose 64, 4x4, stride 2, same (no bias) BN ReLU   # (14, 14, 64)
       -> ConvTranspose 1, 4x4, stride 2, same, tanh               # (28, 28, 1)
    D: Conv 64, 4x4, stride 2, same, LeakyReLU(0.2)                # (14, 14, 64)
       -> Conv 128, 4x4, stride 2, same, LeakyReLU(0.2)            # (7, 7, 128)
       -> flatten -> Dense 1 (logit)

Every step is one D update on a real batch and G(z1), then one G update
through the updated D on fresh z2; Adam(2e-4, beta_1=0.5) for each player,
non-saturating loss on logits; weights start as Keras's do (Glorot uniform,
zero bias). Data: 60,000 synthetic 28x28x1 float32 images, uniform in
[-1, 1], in memory, the same for all; every implementation reshuffles them
each epoch and drops the last partial batch.

Each row runs in its own subprocess (`--worker NAME`), one after the other,
`--rounds` times over, interleaved: a first call (trace, compile), a warm-up
of `--warmup` steps, then `--repeats` timed windows of `--steps` steps each;
the warm-up is not timed. The columns are speed.py's (see its docstring):
`steps/s` is the median window, `best` the fastest, `kg ÷ (best)` keras_gan's
steps/s over the row's, `cores` / `other` the row's and other processes' busy
cores in the windows, `load 1m` the 1-minute load average before and after
each run, `RSS MB` the process's peak resident memory.

`GFLOP/s` and `% peak` count the multiply-adds of the convolutions and dense
layers (2 FLOPs each), from the layer shapes (`layer_macs`), for what the
step needs: forward passes, the weight gradients of the player being updated
and the activation gradients on the way to them (`step_flops`). Batch
normalisation, activations, losses, Adam and noise are not counted. The peak
is the best all-core float32 2048x2048 GEMM that NumPy, TensorFlow, PyTorch
or JAX reaches, measured at the start and at the end (`--gemm` workers); the
mixed_bfloat16 row is set against the best bfloat16 GEMM (TensorFlow,
PyTorch) instead, marked `bf16` in its cell.

Usage:

    bench/.venv/bin/python bench/speed_dcgan.py --out bench/results/speed_dcgan
    bench/.venv/bin/python bench/speed_dcgan.py --batch-sizes 64 128 256
    bench/.venv/bin/python bench/speed_dcgan.py --quick      # smoke run, ~7 min
"""

import importlib
import os
import sys

import numpy as np
import speed

LATENT_DIM = 100
IMAGE_SHAPE = (28, 28, 1)
FILTERS = 64
SEED = speed.SEED
SCRIPT = os.path.abspath(__file__)  # the workers' command
THREADS = os.cpu_count()

# name -> (label, extra environment; None removes the variable)
IMPLEMENTATIONS = {
    "keras_gan": ("keras_gan defaults (no XLA on CPU)", {}),
    "keras_gan_bf16": ("keras_gan, mixed_bfloat16", {}),
    "keras_gan_xla": ("keras_gan, XLA (32 steps/call)", {}),
    # speed.py's rows: keras_gan's defaults on the other backends.
    "keras_gan_jax": speed.IMPLEMENTATIONS["keras_gan_jax"],
    "keras_gan_torch": speed.IMPLEMENTATIONS["keras_gan_torch"],
    "tf_function": ("plain tf.function loop, Keras nets", {}),
    "keras_fit": ("Keras fit, minimal train_step, no XLA", {}),
    "torch": (
        f"PyTorch eager, {THREADS} thr, OMP PASSIVE",
        {"OMP_WAIT_POLICY": "PASSIVE"},
    ),
    "torch_omp_default": (
        f"PyTorch eager, {THREADS} thr, OMP default",
        {"OMP_WAIT_POLICY": None},
    ),
    "jax_jit": ("jax.jit, 1 step/call", {"JAX_PLATFORMS": "cpu"}),
}
BFLOAT16_ROWS = ("keras_gan_bf16",)
FLOAT32_GEMMS = speed.PEAK_GEMMS  # all cores each
BFLOAT16_GEMMS = ("tensorflow_bfloat16", "torch_bfloat16")
GEMM_LIBRARIES = FLOAT32_GEMMS + BFLOAT16_GEMMS


def layer_macs(latent_dim=LATENT_DIM, filters=FILTERS):
    """Multiply-adds per image of the layers with weights, in forward order.

    Returns `(generator, discriminator)`, each a list of `(layer, macs)`. A
    convolution costs output positions x kernel area x in x out channels; a
    transposed one, input positions x kernel area x in x out channels (each
    input pixel scatters a kernel), the taps that "same" padding drops
    included.
    """
    channels = 2 * filters
    generator = [
        ("G Dense 100 -> 7*7*128", latent_dim * 7 * 7 * channels),
        ("G ConvT 7x7x128 -> 14x14x64", 7 * 7 * 4 * 4 * channels * filters),
        ("G ConvT 14x14x64 -> 28x28x1", 14 * 14 * 4 * 4 * filters * 1),
    ]
    discriminator = [
        ("D Conv 28x28x1 -> 14x14x64", 14 * 14 * 4 * 4 * 1 * filters),
        ("D Conv 14x14x64 -> 7x7x128", 7 * 7 * 4 * 4 * filters * channels),
        ("D Dense 7*7*128 -> 1", 7 * 7 * channels * 1),
    ]
    return generator, discriminator


def step_flops(batch_size, latent_dim=LATENT_DIM, filters=FILTERS):
    """Matmul and convolution FLOPs of one GAN step (2 per multiply-add)."""
    return layers_step_flops(batch_size, *layer_macs(latent_dim, filters))


def layers_step_flops(batch_size, generator, discriminator, d_inputs=1):
    """Matmul and convolution FLOPs of one GAN step (2 per multiply-add), from
    `layer_macs`-style lists whose first layer of G reads the noise and whose
    first `d_inputs` layers of D read the images (speed_resnet.py's D has two:
    a 3x3 convolution and the shortcut's 1x1 one)."""
    g = sum(macs for _, macs in generator)  # G forward, per image
    d = sum(macs for _, macs in discriminator)  # D forward, per image
    # The first layers' input gradients are never needed: D's input is data
    # in the D update, G's input is noise.
    g_first = generator[0][1]
    d_first = sum(macs for _, macs in discriminator[:d_inputs])
    # D update: G forward (not differentiated), D forward on real and fake;
    # D backward on both: weight gradients (d) and activation gradients.
    d_update = g + 2 * d + 2 * (d + d - d_first)
    # G update: G and D forward; D backward to its input, activation
    # gradients only (d); G backward: weight and activation gradients.
    g_update = g + d + d + g + (g - g_first)
    return 2 * batch_size * (d_update + g_update)


# ----------------------------------------------------------------------------
# Trainers: `steps_per_call` and `run(num_steps) -> (d_loss, g_loss)`, which
# returns once the steps have finished.


class KerasGANTrainer(speed.KerasGANTrainer):
    """speed.py's keras_gan trainer on the DCGAN pair, under `dtype_policy`
    if given (set before the networks are built)."""

    def __init__(self, images, batch_size, compile_kwargs, dtype_policy=None):
        if dtype_policy:
            import keras

            keras.config.set_dtype_policy(dtype_policy)
        super().__init__(images, batch_size, compile_kwargs)

    @staticmethod
    def build_networks():
        import keras_gan

        return (
            keras_gan.networks.dcgan_generator(
                LATENT_DIM, IMAGE_SHAPE, filters=FILTERS
            ),
            keras_gan.networks.dcgan_discriminator(IMAGE_SHAPE, filters=FILTERS),
        )


# keras_gan's rows: name -> (GAN.compile arguments, dtype policy).
KERAS_GAN_ROWS = {
    "keras_gan": ({}, None),
    "keras_gan_bf16": ({}, "mixed_bfloat16"),
    "keras_gan_xla": ({"jit_compile": True}, None),
    # compile() defaults on the backend the row's environment selects.
    "keras_gan_jax": ({}, None),
    "keras_gan_torch": ({}, None),
}
# The reference modules of the other rows: Keras (tf_function and keras_fit),
# PyTorch (torch*), JAX (jax_jit); each imported by its own workers only.
REFERENCES = ("reference_keras_dcgan", "reference_torch_dcgan", "reference_jax_dcgan")


def make_trainer(
    name,
    images,
    batch_size,
    keras_gan_trainer=KerasGANTrainer,
    keras_gan_rows=KERAS_GAN_ROWS,
    references=REFERENCES,
):
    """The trainer of row `name`; speed_resnet.py passes its own networks'
    trainer, keras_gan rows and reference modules."""
    keras_module, torch_module, jax_module = references
    if name in keras_gan_rows:
        compile_kwargs, dtype_policy = keras_gan_rows[name]
        return keras_gan_trainer(images, batch_size, compile_kwargs, dtype_policy)
    if name in ("tf_function", "keras_fit"):
        module = importlib.import_module(keras_module)
        return module.TRAINERS[name](images, batch_size, SEED)
    if name.startswith("torch"):
        module = importlib.import_module(torch_module)
        return module.Trainer(images, batch_size, SEED, threads=THREADS)
    if name == "jax_jit":
        return importlib.import_module(jax_module).Trainer(images, batch_size, SEED)
    raise ValueError(
        f"Unknown implementation {name!r}; expected {list(IMPLEMENTATIONS)}."
    )


# ----------------------------------------------------------------------------
# Worker side: one implementation (or one GEMM library) per process.


def gemm_worker(library, size=2048, repeats=20):
    """Best `size`^3 GEMM rate of one library, in GFLOP/s: speed.py's float32
    ones and bfloat16 in TensorFlow and PyTorch."""
    if library not in BFLOAT16_GEMMS:
        return speed.gemm_worker(library, size, repeats)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    if library == "tensorflow_bfloat16":
        import tensorflow as tf

        version = tf.__version__
        a, b = (tf.cast(tf.constant(x), tf.bfloat16) for x in (a, b))

        def matmul():
            return tf.linalg.matmul(a, b).numpy()

    elif library == "torch_bfloat16":
        import torch

        version = torch.__version__
        torch.set_num_threads(THREADS)
        a, b = (torch.from_numpy(x).to(torch.bfloat16) for x in (a, b))

        def matmul():
            return a @ b

    else:
        raise ValueError(f"Unknown library {library!r}; expected {GEMM_LIBRARIES}.")
    return {
        "library": library,
        "version": version,
        "gflops": speed.best_gflops(matmul, size, repeats),
    }


# ----------------------------------------------------------------------------
# Parent side: spawn the workers, collect their JSON lines, print the table.


def gemm_peaks(*measurements):
    """The best all-core GEMM rates seen: `{"float32": ..., "bfloat16": ...}`,
    in GFLOP/s; bfloat16 falls back to float32 when it could not be measured."""
    float32 = speed.gemm_peak(*measurements, libraries=FLOAT32_GEMMS)
    bfloat16 = speed.gemm_peak(*measurements, libraries=BFLOAT16_GEMMS)
    return {"float32": float32, "bfloat16": bfloat16 or float32}


def flops_note(batch_sizes, layers, flops):
    """The report's line on FLOPs: per layer (`layers`, a `layer_macs` pair)
    and per step (`flops(batch_size)`)."""
    generator, discriminator = layers
    per_layer = ", ".join(
        f"{layer} {2 * macs / 1e6:.2f}" for layer, macs in generator + discriminator
    )
    per_step = ", ".join(
        f"{flops(batch) / 1e9:.2f} G at batch {batch}" for batch in batch_sizes
    )
    return (
        f"- Forward MFLOP per image: {per_layer}. Step FLOPs (D update + G "
        f"update, {flops(1) / 1e6:.1f} M per image): {per_step}."
    )


# The report's title and network, argument_parser's defaults, and --quick's
# (steps, warmup, repeats).
TITLE = "# keras_gan DCGAN training speed against independent implementations"
NETWORK = "DCGAN 28x28x1, filters 64 (keras_gan `dcgan`)"
DEFAULTS = {"batch_sizes": [128], "steps": 256, "warmup": 16, "timeout": 1200}
QUICK = (4, 2, 1)


def main(benchmark=None):
    """Runs the benchmark (or, with `--worker` / `--gemm`, one worker) that
    the module `benchmark` defines: this one by default; speed_resnet.py
    passes itself. Read from it: the docstring's first line, `TITLE`,
    `NETWORK`, `IMPLEMENTATIONS`, `make_trainer`, `SCRIPT` (the workers'
    command), `layer_macs`, `step_flops`, `DEFAULTS` and `QUICK`."""
    benchmark = benchmark or sys.modules[__name__]
    implementations = benchmark.IMPLEMENTATIONS
    script, flops = benchmark.SCRIPT, benchmark.step_flops
    parser = speed.argument_parser(
        benchmark.__doc__.split("\n")[0],
        implementations,
        GEMM_LIBRARIES,
        **benchmark.DEFAULTS,
    )
    args = parser.parse_args()
    if args.worker or args.gemm:
        speed.worker_main(args, benchmark.make_trainer, gemm_worker)
        return

    if args.quick:
        args.steps, args.warmup, args.repeats = benchmark.QUICK
    started, load_start = speed.start_run()
    gemm = {"start": speed.measure_gemm(args.timeout, "start", GEMM_LIBRARIES, script)}
    names = args.only or list(implementations)
    rows = speed.measure_rows(names, args, implementations, script, rate_digits=2)
    gemm["end"] = speed.measure_gemm(args.timeout, "end", GEMM_LIBRARIES, script)
    peaks = gemm_peaks(gemm["start"], gemm["end"])
    generator, discriminator = benchmark.layer_macs()
    load_end = os.getloadavg()

    report = [
        *speed.report_header(benchmark.TITLE, started, load_start, load_end),
        f"- GEMM 2048^3, best of 20, GFLOP/s at the start / end: "
        f"{speed.gemm_summary(gemm, GEMM_LIBRARIES)}; "
        f"peaks used (best all-core figures): float32 {peaks['float32']:.1f}, "
        f"bfloat16 {peaks['bfloat16']:.1f} (the `bf16` cell).",
        f"- {benchmark.NETWORK}; {args.steps} steps per "
        f"window, {args.repeats} window(s) (median), after a first call and "
        f"{args.warmup} warm-up steps (rounded up to whole calls).",
        flops_note(args.batch_sizes, (generator, discriminator), flops),
        speed.rounds_note(args.rounds),
        "",
        speed.format_speed_table(
            rows,
            peaks["float32"],
            implementations,
            flops,
            rate_digits=2,
            other_peaks=dict.fromkeys(BFLOAT16_ROWS, (peaks["bfloat16"], "bf16")),
        ),
    ]
    text = "\n".join(report)
    print("\n" + text)
    if args.out:
        speed.write_results(
            args,
            text,
            started,
            load_start,
            load_end,
            layer_macs_per_image=dict(generator + discriminator),
            step_flops={str(b): flops(b) for b in args.batch_sizes},
            gemm=gemm,
            peak_gflops=peaks,
            rows=rows,
        )


if __name__ == "__main__":
    main()
