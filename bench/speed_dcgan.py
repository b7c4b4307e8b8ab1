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

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import speed

LATENT_DIM = 100
IMAGE_SHAPE = (28, 28, 1)
FILTERS = 64
SEED = speed.SEED
RESULT_MARKER = speed.RESULT_MARKER
THREADS = os.cpu_count()

# name -> (label, extra environment; None removes the variable)
IMPLEMENTATIONS = {
    "keras_gan": ("keras_gan defaults (no XLA on CPU)", {}),
    "keras_gan_bf16": ("keras_gan, mixed_bfloat16", {}),
    "keras_gan_xla": ("keras_gan, XLA (32 steps/call)", {}),
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
FLOAT32_GEMMS = ("numpy", "tensorflow", "torch", "jax")
BFLOAT16_GEMMS = ("tensorflow_bfloat16", "torch_bfloat16")


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
    generator, discriminator = layer_macs(latent_dim, filters)
    g = sum(macs for _, macs in generator)  # G forward, per image
    d = sum(macs for _, macs in discriminator)  # D forward, per image
    # The first layers' input gradients are never needed: D's input is data
    # in the D update, G's input is noise.
    g_first, d_first = generator[0][1], discriminator[0][1]
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


class KerasGANTrainer:
    """keras_gan as users run it: its data pipeline, `GAN.compile`, `GAN.fit`."""

    def __init__(self, images, batch_size, compile_kwargs, dtype_policy=None):
        import keras

        import keras_gan

        if dtype_policy:
            keras.config.set_dtype_policy(dtype_policy)
        keras.utils.set_random_seed(SEED)  # the networks' initial weights
        # repeat(): windows of any length cross epochs; each pass reshuffles.
        self.dataset = keras_gan.data.dataset_from_arrays(
            images, batch_size=batch_size, seed=SEED
        ).repeat()
        self.gan = keras_gan.GAN(
            keras_gan.networks.dcgan_generator(
                LATENT_DIM, IMAGE_SHAPE, filters=FILTERS
            ),
            keras_gan.networks.dcgan_discriminator(IMAGE_SHAPE, filters=FILTERS),
            seed=SEED,
        )
        self.gan.compile(**compile_kwargs)
        self.steps_per_call = int(self.gan.steps_per_execution)

    def run(self, num_steps):
        history = self.gan.fit(
            self.dataset, epochs=1, steps_per_epoch=num_steps, verbose=0
        ).history
        return history["d_loss"][-1], history["g_loss"][-1]


def make_trainer(name, images, batch_size):
    if name == "keras_gan":
        return KerasGANTrainer(images, batch_size, {})
    if name == "keras_gan_bf16":
        return KerasGANTrainer(images, batch_size, {}, dtype_policy="mixed_bfloat16")
    if name == "keras_gan_xla":
        return KerasGANTrainer(images, batch_size, {"jit_compile": True})
    if name in ("tf_function", "keras_fit"):
        import reference_keras_dcgan

        return reference_keras_dcgan.TRAINERS[name](images, batch_size, SEED)
    if name.startswith("torch"):
        import reference_torch_dcgan

        return reference_torch_dcgan.Trainer(images, batch_size, SEED, threads=THREADS)
    if name == "jax_jit":
        import reference_jax_dcgan

        return reference_jax_dcgan.Trainer(images, batch_size, SEED)
    raise ValueError(
        f"Unknown implementation {name!r}; expected {list(IMPLEMENTATIONS)}."
    )


# ----------------------------------------------------------------------------
# Worker side: one implementation (or one GEMM library) per process.


def run_worker(name, batch_size, steps, warmup, repeats):
    images = speed.synthetic_images()
    started = time.perf_counter()
    trainer = make_trainer(name, images, batch_size)
    built = time.perf_counter()
    trainer.run(trainer.steps_per_call)
    first_call = time.perf_counter() - built
    if warmup:
        trainer.run(speed._round_up(warmup, trainer.steps_per_call))
    steps = speed._round_up(steps, trainer.steps_per_call)
    windows = []
    for _ in range(repeats):
        meter = speed.CPUMeter()
        d_loss, g_loss = trainer.run(steps)
        windows.append(meter.stop())
    return {
        "implementation": name,
        "batch_size": batch_size,
        "steps": steps,
        "steps_per_call": trainer.steps_per_call,
        "build_s": built - started,
        "first_call_s": first_call,
        "windows": windows,
        "d_loss": d_loss,
        "g_loss": g_loss,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def bfloat16_gemm_worker(library, size=2048, repeats=20):
    """Best bfloat16 `size`^3 GEMM rate of one library, in GFLOP/s."""
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
        raise ValueError(f"Unknown library {library!r}; expected {BFLOAT16_GEMMS}.")
    matmul()  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - start)
    return {"library": library, "version": version, "gflops": 2 * size**3 / best / 1e9}


# ----------------------------------------------------------------------------
# Parent side: spawn the workers, collect their JSON lines, print the table.


def _spawn(arguments, env_changes, timeout):
    """Runs `speed_dcgan.py --worker ...` in a fresh process; returns its JSON."""
    command = [sys.executable, os.path.abspath(__file__), *arguments]
    try:
        completed = subprocess.run(
            command,
            env=speed._environment(env_changes),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    tail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
    return {"error": f"exit code {completed.returncode}: " + " | ".join(tail)}


def measure_gemm(timeout, when):
    results = {}
    for library in FLOAT32_GEMMS + BFLOAT16_GEMMS:
        env = {"OMP_WAIT_POLICY": "PASSIVE", "JAX_PLATFORMS": "cpu"}
        result = _spawn(["--gemm", library], env, timeout)
        results[library] = result
        shown = f"{result['gflops']:.1f} GFLOP/s" if "gflops" in result else result
        print(f"GEMM at the {when}, {library}: {shown}", flush=True)
    return results


def gemm_peaks(*measurements):
    """The best all-core GEMM rates seen: `{"float32": ..., "bfloat16": ...}`,
    in GFLOP/s; bfloat16 falls back to float32 when it could not be measured."""
    peaks = {}
    for dtype, libraries in (("float32", FLOAT32_GEMMS), ("bfloat16", BFLOAT16_GEMMS)):
        peaks[dtype] = max(
            (
                results[library].get("gflops", 0.0)
                for results in measurements
                for library in libraries
                if library in results
            ),
            default=0.0,
        )
    peaks["bfloat16"] = peaks["bfloat16"] or peaks["float32"]
    return peaks


def measure_run(name, batch_size, args):
    """One worker process for one implementation and batch size."""
    load_before = os.getloadavg()[0]
    arguments = ["--worker", name, "--batch-size", str(batch_size)]
    arguments += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    arguments += ["--repeats", str(args.repeats)]
    run = _spawn(arguments, IMPLEMENTATIONS[name][1], args.timeout)
    run.update(load_before=load_before, load_after=os.getloadavg()[0])
    return run


def _format_row(row, peaks, baseline):
    label = IMPLEMENTATIONS[row["implementation"]][0]
    if "error" in row:
        error = row["error"].replace("|", "/")[:300]
        return f"| {label} | {row['batch_size']} | {error} |"
    steps_per_s = row["steps_per_s"]
    gflops = steps_per_s * step_flops(row["batch_size"]) / 1e9
    if row["implementation"] in BFLOAT16_ROWS:
        share = f"{100 * gflops / peaks['bfloat16']:.1f} bf16"
    else:
        share = f"{100 * gflops / peaks['float32']:.1f}"
    ratio = "-"
    if baseline:
        ratio = (
            f"{baseline['steps_per_s'] / steps_per_s:.2f} "
            f"({baseline['best_steps_per_s'] / row['best_steps_per_s']:.2f})"
        )
    loads = ", ".join(f"{before:.1f}→{after:.1f}" for before, after in row["loads"])
    cells = [
        label,
        str(row["batch_size"]),
        f"{steps_per_s:.2f}",
        f"{row['best_steps_per_s']:.2f}",
        f"{steps_per_s * row['batch_size']:,.0f}",
        f"{gflops:.1f}",
        share,
        ratio,
        f"{row['first_call_s']:.2f}",
        f"{row['own_cores']:.2f}",
        f"{row['other_cores']:.2f}",
        loads,
        f"{row['peak_rss_mb']:.0f}",
        f"{row['d_loss']:.3f} / {row['g_loss']:.3f}",
    ]
    return "| " + " | ".join(cells) + " |"


def format_speed_table(rows, peaks):
    header = [
        "implementation", "batch", "steps/s", "best", "images/s", "GFLOP/s",
        "% peak", "kg ÷ (best)", "first s", "cores", "other", "load 1m",
        "RSS MB", "d_loss / g_loss",
    ]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        baseline = next(
            (
                other
                for other in rows
                if other["implementation"] == "keras_gan"
                and other["batch_size"] == row["batch_size"]
                and "steps_per_s" in other
            ),
            None,
        )
        lines.append(_format_row(row, peaks, baseline))
    return "\n".join(lines)


def flops_note(batch_sizes):
    generator, discriminator = layer_macs()
    per_layer = ", ".join(
        f"{layer} {2 * macs / 1e6:.2f}" for layer, macs in generator + discriminator
    )
    per_step = ", ".join(
        f"{step_flops(batch) / 1e9:.2f} G at batch {batch}" for batch in batch_sizes
    )
    return (
        f"- Forward MFLOP per image: {per_layer}. Step FLOPs (D update + G "
        f"update, {step_flops(1) / 1e6:.1f} M per image): {per_step}."
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="Folder for table.md and results.json.")
    parser.add_argument("--quick", action="store_true", help="Smoke run: few steps.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--only", nargs="+", choices=list(IMPLEMENTATIONS))
    parser.add_argument("--steps", type=int, default=256, help="Steps per window.")
    parser.add_argument("--warmup", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="Windows per run.")
    parser.add_argument(
        "--rounds", type=int, default=1, help="Runs per row, interleaved."
    )
    parser.add_argument("--timeout", type=int, default=1200, help="Seconds per row.")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--gemm", choices=FLOAT32_GEMMS + BFLOAT16_GEMMS, help=argparse.SUPPRESS
    )
    parser.add_argument("--batch-size", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker or args.gemm:
        if args.worker:
            result = run_worker(
                args.worker, args.batch_size, args.steps, args.warmup, args.repeats
            )
        elif args.gemm in BFLOAT16_GEMMS:
            result = bfloat16_gemm_worker(args.gemm)
        else:
            result = speed.gemm_worker(args.gemm)
        print(RESULT_MARKER + json.dumps(result), flush=True)
        return

    if args.quick:
        args.steps, args.warmup, args.repeats = 4, 2, 1
    names = args.only or list(IMPLEMENTATIONS)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_start = os.getloadavg()
    print(f"{speed.machine_description()}; load average {load_start}", flush=True)
    gemm = {"start": measure_gemm(args.timeout, "start")}
    # Rounds interleave the implementations, so that a change in the
    # machine's load falls on all of them rather than on one.
    plan = [(name, batch_size) for batch_size in args.batch_sizes for name in names]
    runs = {key: [] for key in plan}
    for round_index in range(args.rounds):
        for name, batch_size in plan:
            run = measure_run(name, batch_size, args)
            runs[name, batch_size].append(run)
            summary = run.get("error") or ", ".join(
                f"{run['steps'] / window['seconds']:.2f}" for window in run["windows"]
            ) + (
                f" steps/s; first call {run['first_call_s']:.1f} s; other "
                f"cores {statistics.mean(w['other_cores'] for w in run['windows']):.2f}"
            )
            print(f"round {round_index + 1}, {name} @ {batch_size}: {summary}")
    rows = [
        speed.merge_runs(name, batch_size, runs[name, batch_size])
        for name, batch_size in plan
    ]
    gemm["end"] = measure_gemm(args.timeout, "end")
    peaks = gemm_peaks(gemm["start"], gemm["end"])
    generator, discriminator = layer_macs()
    load_end = os.getloadavg()

    gemm_line = ", ".join(
        f"{library} {gemm['start'][library].get('gflops', math.nan):.1f} / "
        f"{gemm['end'][library].get('gflops', math.nan):.1f}"
        for library in FLOAT32_GEMMS + BFLOAT16_GEMMS
    )
    report = [
        "# keras_gan DCGAN training speed against independent implementations",
        "",
        f"- Machine: {speed.machine_description()}; started {started}.",
        f"- Load average (1, 5, 15 min) at start {load_start}, at end {load_end}.",
        f"- GEMM 2048^3, best of 20, GFLOP/s at the start / end: {gemm_line}; "
        f"peaks used (best all-core figures): float32 {peaks['float32']:.1f}, "
        f"bfloat16 {peaks['bfloat16']:.1f} (the `bf16` cell).",
        f"- DCGAN 28x28x1, filters 64 (keras_gan `dcgan`); {args.steps} steps per "
        f"window, {args.repeats} window(s) (median), after a first call and "
        f"{args.warmup} warm-up steps (rounded up to whole calls).",
        flops_note(args.batch_sizes),
        f"- {args.rounds} round(s): each row's runs interleave with the other "
        "rows'. `steps/s`: median window; `best`: fastest window. `kg ÷ (best)`: "
        "keras_gan's steps/s ÷ this row's, medians (best windows). `cores`: this "
        "row's busy cores; `other`: other processes' busy cores, during the "
        "timed windows. `load 1m`: before→after each run.",
        "",
        format_speed_table(rows, peaks),
    ]
    text = "\n".join(report)
    print("\n" + text)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "table.md"), "w") as file:
            file.write(text + "\n")
        results = {
            "command": " ".join(
                [os.path.relpath(sys.executable, speed.REPO_DIR), *sys.argv]
            ),
            "machine": speed.machine_description(),
            "started": started,
            "load_start": load_start,
            "load_end": load_end,
            "settings": {
                "rounds": args.rounds,
                "steps": args.steps,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "batch_sizes": args.batch_sizes,
            },
            "layer_macs_per_image": dict(generator + discriminator),
            "step_flops": {str(b): step_flops(b) for b in args.batch_sizes},
            "gemm": gemm,
            "peak_gflops": peaks,
            "rows": rows,
        }
        with open(os.path.join(args.out, "results.json"), "w") as file:
            json.dump(results, file, indent=2)
        print(f"\nWrote {args.out}/table.md and results.json")


if __name__ == "__main__":
    main()
