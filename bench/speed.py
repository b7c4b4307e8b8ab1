"""Training speed of keras_gan against independent implementations, in one run.

Trains the seed MLP GAN (arXiv:1406.2661; keras_gan's `mlp` architecture;
speed_dcgan.py and speed_resnet.py time the convolutional ones) with each
implementation below, at batch 64 and 256, for a
fixed number of steps after a warm-up, and prints one table row per
implementation and batch size:

    keras_gan              GAN.compile() defaults: XLA, 32 steps fused per call
    keras_gan_jax          GAN.compile() defaults on the JAX backend (jax.jit step)
    keras_gan_torch        GAN.compile() defaults on the PyTorch backend (eager)
    keras_gan_user_tfdata  keras_gan's defaults fed by a user's own tf.data
                           pipeline (shuffle, batch, repeat, prefetch) instead of
                           dataset_from_arrays
    keras_gan_jax_user_tfdata  the same on the JAX backend
    keras_gan_spe1         the same under XLA, Keras's own loop, 1 step per call
    keras_fit              the same GAN.fit without XLA (1 step per call)
    tf_function            bench/reference_tf.py's tf.function step, tf.data loop
    tf_function_xla        the same step with jit_compile=True
    torch                  bench/reference_torch.py: PyTorch eager, 2 threads,
                           OMP_WAIT_POLICY=PASSIVE
    torch_1thread          the same with torch.set_num_threads(1)
    torch_omp_default      2 threads, OpenMP's default (busy-waiting) policy
    jax_jit                bench/reference_jax.py: one jax.jit call per step
    jax_scan               jax.lax.scan over 32 steps per jax.jit call

Every step is Algorithm 1 of the paper with k=1: one D update on a real batch
and G(z1), then one G update through the updated D on fresh z2, Adam(2e-4,
beta_1=0.5, epsilon 1e-7) for each player, non-saturating loss on logits.
Data: 60,000 synthetic 28x28x1 float32 images, uniform in [-1, 1], in memory,
the same for all; every implementation reshuffles them each epoch, drops the
last partial batch, and crosses epoch boundaries without stopping.

Each row runs in its own subprocess (`--worker NAME`), so the environment
(OMP_WAIT_POLICY is read once, when torch loads) and the peak resident memory
are its own; rows run one after the other, `--rounds` times over, interleaved,
so that a change in the machine's load falls on all rows alike. Within a run:
one first call (`first s`: trace, compile and the first call's steps), a
warm-up, then `--repeats` timed windows of `--steps` steps each. `steps/s` is
the median window of a row's runs, `best` its fastest window (the figure least
disturbed by other processes). keras_gan windows are `fit` calls on the
`dataset_from_arrays` pipeline as returned, as users run them: whole passes as
epochs, the rest of a window as `fit(steps_per_epoch=rest)`.

Columns:

- `GFLOP/s`, `% peak`: matmul FLOPs only (2 per multiply-add), counting what
  the step needs: forward passes, the weight gradients of the player being
  updated and the activation gradients on the way to them (`step_flops`);
  2.09 MFLOP per image. The peak is the best float32 2048x2048 GEMM that
  NumPy, TensorFlow, PyTorch or JAX reaches on this machine with all cores,
  measured at the start and again at the end of the run (`--gemm` workers):
  other processes lower it as they lower the rows.
- `kg ÷ (best)`: keras_gan's steps/s over the row's, at the same batch size,
  from the medians (from the best windows); above 1: keras_gan is faster.
- `cores`: CPU time of the row's process per wall second in the timed windows;
  `other`: busy cores of every other process then (from /proc/stat), the load
  that the row competed with; `load 1m`: the 1-minute load average before and
  after each run (it lags by about a minute and counts the run itself).
- `RSS MB`: the process's peak resident memory (the images take 188 MB, and
  pipelines may copy them).
- `d_loss / g_loss`: means over the last timed window, a sanity check only;
  the frameworks draw different noise.

bench/speed_dcgan.py and bench/speed_resnet.py run the same harness (the
workers, the rounds, the table and the report helpers below) with their own
implementations, FLOPs and peaks.

The startup rows time `python cli.py train --dataset digits` through
bench/startup_probe.py, which runs the real CLI code path in a fresh process
and marks the moments (see there); `python cli.py train --epochs 1` itself is
timed from spawn to exit beside it.

Usage:

    bench/.venv/bin/python bench/speed.py --out bench/results/speed
    bench/.venv/bin/python bench/speed.py --rounds 2 --out bench/results/speed
    bench/.venv/bin/python bench/speed.py --quick            # smoke run, ~3 min
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)
sys.path.insert(0, REPO_DIR)

LATENT_DIM = 100
IMAGE_SHAPE = (28, 28, 1)
HIDDEN_UNITS = 128
NUM_IMAGES = 60_000
SEED = 0
RESULT_MARKER = "SPEED_RESULT "
SCRIPT = os.path.abspath(__file__)  # the workers' command

# name -> (label, extra environment; None removes the variable)
IMPLEMENTATIONS = {
    "keras_gan": ("keras_gan (XLA, 32 steps/call)", {}),
    "keras_gan_jax": (
        "keras_gan, JAX backend (jit)",
        {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
    ),
    "keras_gan_torch": (
        "keras_gan, PyTorch backend (eager)",
        {"KERAS_BACKEND": "torch"},
    ),
    "keras_gan_user_tfdata": ("keras_gan, fed by a user's tf.data pipeline", {}),
    "keras_gan_jax_user_tfdata": (
        "keras_gan, JAX backend, fed by a user's tf.data pipeline",
        {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
    ),
    "keras_gan_spe1": ("keras_gan XLA, Keras loop, 1 step/call", {}),
    "keras_fit": ("Keras fit, no XLA", {}),
    "tf_function": ("plain tf.function loop", {}),
    "tf_function_xla": ("plain tf.function loop, XLA", {}),
    "torch": ("PyTorch eager, 2 thr, OMP PASSIVE", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "torch_1thread": ("PyTorch eager, 1 thread", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "torch_omp_default": (
        "PyTorch eager, 2 thr, OMP default",
        {"OMP_WAIT_POLICY": None},
    ),
    "jax_jit": ("jax.jit, 1 step/call", {"JAX_PLATFORMS": "cpu"}),
    "jax_scan": ("jax.jit + lax.scan, 32 steps/call", {"JAX_PLATFORMS": "cpu"}),
}
# All cores each: the peak; "torch_1thread" shows what one core does, for scale.
PEAK_GEMMS = ("numpy", "tensorflow", "torch", "jax")
GEMM_LIBRARIES = (*PEAK_GEMMS, "torch_1thread")


def synthetic_images(num_images=NUM_IMAGES, seed=SEED):
    """float32 `(num_images, 28, 28, 1)`, uniform in [-1, 1]; 188 MB for 60,000."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (num_images, *IMAGE_SHAPE)).astype(np.float32)


def time_reference(label, trainer, batch_size, steps, warmup, rate_digits=0):
    """A reference module run alone: `warmup` untimed steps, then `steps`
    timed ones; prints one line with the steps/s and the mean losses."""
    trainer.run(warmup)
    start = time.perf_counter()
    d_loss, g_loss = trainer.run(steps)
    seconds = time.perf_counter() - start
    print(
        f"{label}: {steps / seconds:.{rate_digits}f} steps/s at batch "
        f"{batch_size}, d_loss {d_loss:.3f}, g_loss {g_loss:.3f}"
    )


def step_flops(batch_size, latent_dim=LATENT_DIM, hidden=HIDDEN_UNITS, pixels=784):
    """Matmul FLOPs of one GAN step (2 per multiply-add; elementwise ops,
    Adam and noise not counted)."""
    g = latent_dim * hidden + hidden * pixels  # G forward, per image
    d = pixels * hidden + hidden  # D forward, per image
    # D update: G forward (not differentiated), D forward on real and fake,
    # D backward on both: weight gradients (d) and the hidden activation's (hidden).
    d_update = g + 2 * d + 2 * (d + hidden)
    # G update: G and D forward; D backward to its input (d; D's weights are not
    # updated); G backward: weight gradients (g) and the hidden activation's.
    g_update = g + d + d + g + hidden * pixels
    return 2 * batch_size * (d_update + g_update)


# ----------------------------------------------------------------------------
# Trainers: `steps_per_call` and `run(num_steps) -> (d_loss, g_loss)`, which
# returns once the steps have finished.


class KerasGANTrainer:
    """keras_gan as users run it: its data pipeline, `GAN.compile`, `GAN.fit`."""

    def __init__(self, images, batch_size, compile_kwargs):
        import keras

        import keras_gan

        keras.utils.set_random_seed(SEED)  # the networks' initial weights
        # As returned, not repeated: the JAX trainer then keeps the images on
        # the device (a repeated dataset would stream through tf.data).
        self.dataset = keras_gan.data.dataset_from_arrays(
            images, batch_size=batch_size, seed=SEED
        )
        self.batches_per_pass = len(images) // batch_size
        self.gan = keras_gan.GAN(*self.build_networks(), seed=SEED)
        self.gan.compile(**compile_kwargs)
        self.steps_per_call = int(self.gan.steps_per_execution)

    @staticmethod
    def build_networks():
        """`(generator, discriminator)`: the seed MLP pair (speed_dcgan.py's
        subclass builds the DCGAN pair)."""
        import keras_gan

        return (
            keras_gan.networks.mlp_generator(LATENT_DIM, IMAGE_SHAPE),
            keras_gan.networks.mlp_discriminator(IMAGE_SHAPE),
        )

    def run(self, num_steps):
        # Whole passes as epochs, then the rest of the steps as a part of one
        # more pass (each fit() starts a new pass).
        passes, rest = divmod(num_steps, self.batches_per_pass)
        if passes:
            history = self.gan.fit(self.dataset, epochs=passes, verbose=0).history
        if rest:
            history = self.gan.fit(
                self.dataset, epochs=1, steps_per_epoch=rest, verbose=0
            ).history
        return history["d_loss"][-1], history["g_loss"][-1]


class UserPipelineTrainer(KerasGANTrainer):
    """keras_gan's defaults fed by the tf.data pipeline a user writes:
    `from_tensor_slices(images).shuffle(all).batch(drop_remainder).prefetch`."""

    def __init__(self, images, batch_size, compile_kwargs):
        import tensorflow as tf

        super().__init__(images, batch_size, compile_kwargs)
        self.dataset = (
            tf.data.Dataset.from_tensor_slices(images)
            .shuffle(len(images), seed=SEED)
            .batch(batch_size, drop_remainder=True)
            .repeat()
            .prefetch(tf.data.AUTOTUNE)
        )

    def run(self, num_steps):
        history = self.gan.fit(
            self.dataset, epochs=1, steps_per_epoch=num_steps, verbose=0
        ).history
        return history["d_loss"][-1], history["g_loss"][-1]


def make_trainer(name, images, batch_size):
    if name in ("keras_gan", "keras_gan_jax", "keras_gan_torch"):
        return KerasGANTrainer(images, batch_size, {})
    if name in ("keras_gan_user_tfdata", "keras_gan_jax_user_tfdata"):
        return UserPipelineTrainer(images, batch_size, {})
    if name == "keras_gan_spe1":
        return KerasGANTrainer(
            images, batch_size, {"jit_compile": True, "steps_per_execution": 1}
        )
    if name == "keras_fit":
        return KerasGANTrainer(
            images, batch_size, {"jit_compile": False, "steps_per_execution": 1}
        )
    if name in ("tf_function", "tf_function_xla"):
        import reference_tf

        xla = name.endswith("xla")
        return reference_tf.Trainer(images, batch_size, SEED, xla, LATENT_DIM)
    if name.startswith("torch"):
        import reference_torch

        threads = 1 if name == "torch_1thread" else os.cpu_count()
        return reference_torch.Trainer(images, batch_size, SEED, threads=threads)
    if name in ("jax_jit", "jax_scan"):
        import reference_jax

        steps_per_call = 32 if name == "jax_scan" else 1
        return reference_jax.Trainer(images, batch_size, SEED, steps_per_call)
    raise ValueError(
        f"Unknown implementation {name!r}; expected {list(IMPLEMENTATIONS)}."
    )


# ----------------------------------------------------------------------------
# Worker side: one implementation (or one GEMM library) per process.


class CPUMeter:
    """Own and other processes' busy cores over a window, from /proc/stat."""

    def __init__(self):
        self.start = self._read()

    @staticmethod
    def _read():
        with open("/proc/stat") as file:
            # cpu  user nice system idle iowait irq softirq steal ...
            ticks = [int(value) for value in file.readline().split()[1:9]]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "wall": time.perf_counter(),
            "busy": (sum(ticks[:3]) + ticks[5] + ticks[6]) / os.sysconf("SC_CLK_TCK"),
            "steal": ticks[7] / os.sysconf("SC_CLK_TCK"),
            "own": usage.ru_utime + usage.ru_stime,
        }

    def stop(self):
        end = self._read()
        delta = {key: end[key] - self.start[key] for key in end}
        return {
            "seconds": delta["wall"],
            "own_cores": delta["own"] / delta["wall"],
            "other_cores": max(0.0, delta["busy"] - delta["own"]) / delta["wall"],
            "steal_cores": delta["steal"] / delta["wall"],
        }


def _round_up(steps, multiple):
    return max(multiple, math.ceil(steps / multiple) * multiple)


def run_worker(name, batch_size, steps, warmup, repeats, make_trainer=make_trainer):
    """Times `make_trainer(name, images, batch_size)`: a first call, `warmup`
    steps, then `repeats` windows of `steps` steps (both rounded up to whole
    calls); returns the JSON-ready result the parent reads."""
    images = synthetic_images()
    started = time.perf_counter()
    trainer = make_trainer(name, images, batch_size)
    built = time.perf_counter()
    trainer.run(trainer.steps_per_call)
    first_call = time.perf_counter() - built
    if warmup:
        trainer.run(_round_up(warmup, trainer.steps_per_call))
    steps = _round_up(steps, trainer.steps_per_call)
    windows = []
    for _ in range(repeats):
        meter = CPUMeter()
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


def gemm_worker(library, size=2048, repeats=20):
    """Best float32 `size`^3 GEMM rate of one library, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    if library == "numpy":
        version = np.__version__

        def matmul():
            return a @ b

    elif library == "tensorflow":
        import tensorflow as tf

        version = tf.__version__
        a, b = tf.constant(a), tf.constant(b)

        def matmul():
            return tf.linalg.matmul(a, b).numpy()

    elif library.startswith("torch"):
        import torch

        version = torch.__version__
        torch.set_num_threads(1 if library == "torch_1thread" else os.cpu_count())
        a, b = torch.from_numpy(a), torch.from_numpy(b)

        def matmul():
            return a @ b

    elif library == "jax":
        import jax

        version = jax.__version__
        a, b = jax.device_put(a), jax.device_put(b)
        product = jax.jit(lambda a, b: a @ b)

        def matmul():
            return product(a, b).block_until_ready()

    else:
        raise ValueError(f"Unknown library {library!r}; expected {GEMM_LIBRARIES}.")
    return {
        "library": library,
        "version": version,
        "gflops": best_gflops(matmul, size, repeats),
    }


def best_gflops(matmul, size, repeats=20):
    """GFLOP/s of the fastest of `repeats` calls of `matmul`, a `size`^3
    GEMM, after one untimed call (warm-up, and compile for JAX)."""
    matmul()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        matmul()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


# ----------------------------------------------------------------------------
# Parent side: spawn the workers, collect their JSON lines, print the tables.


def _environment(changes):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _spawn(arguments, env_changes, timeout, script=SCRIPT):
    """Runs `script --worker ...` (or `--gemm`) in a fresh process; returns
    its JSON result, or `{"error": ...}`."""
    command = [sys.executable, script, *arguments]
    try:
        completed = subprocess.run(
            command,
            env=_environment(env_changes),
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


def measure_gemm(timeout, when, libraries=GEMM_LIBRARIES, script=SCRIPT):
    results = {}
    for library in libraries:
        env = {"OMP_WAIT_POLICY": "PASSIVE", "JAX_PLATFORMS": "cpu"}
        result = _spawn(["--gemm", library], env, timeout, script)
        results[library] = result
        shown = f"{result['gflops']:.1f} GFLOP/s" if "gflops" in result else result
        print(f"GEMM at the {when}, {library}: {shown}", flush=True)
    return results


def gemm_peak(*measurements, libraries=PEAK_GEMMS):
    """The best GEMM rate of `libraries` seen, in GFLOP/s; 0 if none ran."""
    return max(
        (
            results[library].get("gflops", 0.0)
            for results in measurements
            for library in libraries
            if library in results
        ),
        default=0.0,
    )


def measure_run(name, batch_size, args, implementations=IMPLEMENTATIONS, script=SCRIPT):
    """One worker process for one implementation and batch size."""
    load_before = os.getloadavg()[0]
    arguments = ["--worker", name, "--batch-size", str(batch_size)]
    arguments += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    arguments += ["--repeats", str(args.repeats)]
    run = _spawn(arguments, implementations[name][1], args.timeout, script)
    run.update(load_before=load_before, load_after=os.getloadavg()[0])
    return run


def measure_rows(
    names, args, implementations=IMPLEMENTATIONS, script=SCRIPT, rate_digits=0
):
    """Runs each implementation at each of `args.batch_sizes`, `args.rounds`
    times over, and returns one `merge_runs` row per pair; prints each run's
    windows in steps/s with `rate_digits` decimals as it ends."""
    # Rounds interleave the implementations, so that a change in the
    # machine's load falls on all of them rather than on one.
    plan = [(name, batch_size) for batch_size in args.batch_sizes for name in names]
    runs = {key: [] for key in plan}
    for round_index in range(args.rounds):
        for name, batch_size in plan:
            run = measure_run(name, batch_size, args, implementations, script)
            runs[name, batch_size].append(run)
            summary = run.get("error") or ", ".join(
                f"{run['steps'] / window['seconds']:.{rate_digits}f}"
                for window in run["windows"]
            ) + (
                f" steps/s; first call {run['first_call_s']:.1f} s; other "
                f"cores {statistics.mean(w['other_cores'] for w in run['windows']):.2f}"
            )
            print(f"round {round_index + 1}, {name} @ {batch_size}: {summary}")
    return [
        merge_runs(name, batch_size, runs[name, batch_size])
        for name, batch_size in plan
    ]


def merge_runs(name, batch_size, runs):
    """One table row from the runs (rounds) of one implementation and batch."""
    row = {"implementation": name, "batch_size": batch_size, "runs": runs}
    done = [run for run in runs if "error" not in run]
    if not done:
        row["error"] = runs[0]["error"]
        return row
    windows = [window for run in done for window in run["windows"]]
    seconds = [window["seconds"] for window in windows]
    steps = done[0]["steps"]
    row.update(
        steps=steps,
        steps_per_s=steps / statistics.median(seconds),
        best_steps_per_s=steps / min(seconds),
        spread=(max(seconds) - min(seconds)) / statistics.median(seconds),
        first_call_s=done[0]["first_call_s"],
        own_cores=statistics.mean(window["own_cores"] for window in windows),
        other_cores=statistics.mean(window["other_cores"] for window in windows),
        peak_rss_mb=max(run["peak_rss_mb"] for run in done),
        d_loss=done[-1]["d_loss"],
        g_loss=done[-1]["g_loss"],
        loads=[(run["load_before"], run["load_after"]) for run in runs],
    )
    return row


def measure_startup(timeout):
    """Phases of `python cli.py train --dataset digits` up to its first steps."""
    probe = os.path.join(BENCH_DIR, "startup_probe.py")
    results = {"load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as folder:
        flags = ["train", "--dataset", "digits", "--name", "startup"]

        def folders(tag):
            return [
                "--runs-dir",
                os.path.join(folder, tag, "runs"),
                "--export-dir",
                os.path.join(folder, tag, "exports"),
            ]

        # Two epochs: the second epoch's call (same steps, compiled) is the
        # baseline that the first call's compile time is measured against.
        command = [sys.executable, probe, *flags, "--epochs", "2", *folders("probe")]
        spawned = time.time()
        completed = subprocess.run(
            command, env=_environment({}), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        marks = None
        for line in completed.stdout.splitlines():
            if line.startswith(RESULT_MARKER):
                marks = json.loads(line[len(RESULT_MARKER) :])
        if marks is None:
            tail = completed.stderr.strip().splitlines()[-5:]
            results["error"] = f"probe failed: {' | '.join(tail)}"
        else:
            results.update(_startup_phases(spawned, marks))

        # The real command, unmodified, spawn to exit.
        command = [sys.executable, os.path.join(REPO_DIR, "cli.py"), *flags]
        command += ["--epochs", "1", *folders("cli")]
        start = time.perf_counter()
        completed = subprocess.run(
            command, env=_environment({}), capture_output=True, text=True,
            timeout=timeout, check=False, cwd=REPO_DIR,
        )  # fmt: skip
        results["cli_epochs_1_total_s"] = time.perf_counter() - start
        results["cli_returncode"] = completed.returncode
    results["load_after"] = os.getloadavg()[0]
    return results


def _startup_phases(spawned, marks):
    first, second = marks["calls"][0], marks["calls"][1]
    first_call = first["end"] - first["begin"]
    steady_call = second["end"] - second["begin"]
    compile_s = first_call - steady_call
    return {
        "steps_per_call": marks["steps_per_call"],
        "interpreter_s": marks["started"] - spawned,
        "import_tensorflow_keras_s": marks["keras_imported"] - marks["started"],
        "cli_setup_s": marks["fit_called"] - marks["keras_imported"],
        "fit_setup_s": first["begin"] - marks["fit_called"],
        "first_call_s": first_call,
        "steady_call_s": steady_call,
        "compile_s": compile_s,
        "to_first_call_end_s": first["end"] - spawned,
        # The first step ends one step's time after compiling, inside the call.
        "to_first_step_s": first["begin"] + compile_s
        + steady_call / marks["steps_per_call"] - spawned,
        "probe_total_s": marks["finished"] - spawned,
    }  # fmt: skip


def _format_row(row, label, flops, peak, baseline, rate_digits):
    if "error" in row:
        error = row["error"].replace("|", "/")[:300]
        return f"| {label} | {row['batch_size']} | {error} |"
    steps_per_s = row["steps_per_s"]
    gflops = steps_per_s * flops(row["batch_size"]) / 1e9
    peak_gflops, mark = peak
    share = f"{100 * gflops / peak_gflops:.1f}" + (f" {mark}" if mark else "")
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
        f"{steps_per_s:.{rate_digits}f}",
        f"{row['best_steps_per_s']:.{rate_digits}f}",
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


def format_speed_table(
    rows,
    peak_gflops,
    implementations=IMPLEMENTATIONS,
    flops=step_flops,
    rate_digits=0,
    other_peaks=None,
):
    """The speed table in Markdown, one line per row.

    Args:
        rows: `merge_runs` rows; those of "keras_gan" are the `kg ÷` baselines.
        peak_gflops: the GEMM rate that `% peak` is a share of.
        implementations: name -> `(label, environment)`, for the labels.
        flops: `flops(batch_size)`, the FLOPs of one step.
        rate_digits: decimals of the steps/s columns.
        other_peaks: name -> `(gflops, mark)` for the rows set against
            another peak; the mark follows their `% peak`.
    """
    other_peaks = other_peaks or {}
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
        name = row["implementation"]
        peak = other_peaks.get(name, (peak_gflops, None))
        label = implementations[name][0]
        lines.append(_format_row(row, label, flops, peak, baseline, rate_digits))
    return "\n".join(lines)


def format_startup_table(startup):
    if "error" in startup:
        return f"startup: {startup['error']}"
    steps = startup["steps_per_call"]
    phases = [
        ("spawn -> first Python statement (interpreter)", "interpreter_s"),
        ("import TensorFlow + Keras", "import_tensorflow_keras_s"),
        ("CLI: keras_gan import, digits data, networks, compile, callbacks",
         "cli_setup_s"),
        ("fit() -> first call begins (iterator, callbacks' on_train_begin)",
         "fit_setup_s"),
        (f"first call: trace + XLA compile + {steps} steps", "first_call_s"),
        (f"  a compiled call of {steps} steps (epoch 2)", "steady_call_s"),
        ("  compile time (first call - compiled call)", "compile_s"),
        ("spawn -> end of the first step (estimated)", "to_first_step_s"),
        (f"spawn -> end of the first call ({steps} steps)", "to_first_call_end_s"),
        ("probe, 2 epochs: spawn -> exit (grids, checkpoint, export)",
         "probe_total_s"),
        ("`python cli.py train --dataset digits --epochs 1`: spawn -> exit",
         "cli_epochs_1_total_s"),
    ]  # fmt: skip
    lines = ["| startup phase | seconds |", "|---|---|"]
    lines += [f"| {label} | {startup[key]:.2f} |" for label, key in phases]
    load = f"{startup['load_before']:.2f}→{startup['load_after']:.2f}"
    lines.append(f"| load 1m before → after | {load} |")
    return "\n".join(lines)


def machine_description():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def argument_parser(
    description, implementations, gemm_libraries, batch_sizes, steps, warmup, timeout
):
    """The options of a speed benchmark, with the given defaults, and the
    hidden ones of its worker processes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", help="Folder for table.md and results.json.")
    parser.add_argument("--quick", action="store_true", help="Smoke run: few steps.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=batch_sizes)
    parser.add_argument("--only", nargs="+", choices=list(implementations))
    parser.add_argument("--steps", type=int, default=steps, help="Steps per window.")
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--repeats", type=int, default=3, help="Windows per run.")
    parser.add_argument(
        "--rounds", type=int, default=1, help="Runs per row, interleaved."
    )
    parser.add_argument("--timeout", type=int, default=timeout, help="Seconds per row.")
    parser.add_argument("--worker", choices=implementations, help=argparse.SUPPRESS)
    parser.add_argument("--gemm", choices=gemm_libraries, help=argparse.SUPPRESS)
    parser.add_argument(
        "--batch-size", type=int, default=batch_sizes[0], help=argparse.SUPPRESS
    )
    return parser


def worker_main(args, make_trainer=make_trainer, gemm_worker=gemm_worker):
    """A worker process: one `--worker` run or one `--gemm` measurement,
    printed as the JSON line that the parent reads."""
    if args.worker:
        result = run_worker(
            args.worker,
            args.batch_size,
            args.steps,
            args.warmup,
            args.repeats,
            make_trainer,
        )
    else:
        result = gemm_worker(args.gemm)
    print(RESULT_MARKER + json.dumps(result), flush=True)


def start_run():
    """Prints the machine and its load; returns `(started, load_start)`."""
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_start = os.getloadavg()
    print(f"{machine_description()}; load average {load_start}", flush=True)
    return started, load_start


def report_header(title, started, load_start, load_end):
    """The report's title and its machine and load lines."""
    return [
        title,
        "",
        f"- Machine: {machine_description()}; started {started}.",
        f"- Load average (1, 5, 15 min) at start {load_start}, at end {load_end}.",
    ]


def gemm_summary(gemm, libraries=GEMM_LIBRARIES):
    """Each library's GEMM GFLOP/s at the start / end of the run."""
    return ", ".join(
        f"{library} {gemm['start'][library].get('gflops', math.nan):.1f} / "
        f"{gemm['end'][library].get('gflops', math.nan):.1f}"
        for library in libraries
    )


def rounds_note(rounds):
    """The report's line on rounds and on the columns' meaning."""
    return (
        f"- {rounds} round(s): each row's runs interleave with the other "
        "rows'. `steps/s`: median window; `best`: fastest window. `kg ÷ (best)`: "
        "keras_gan's steps/s ÷ this row's, medians (best windows). `cores`: this "
        "row's busy cores; `other`: other processes' busy cores, during the "
        "timed windows. `load 1m`: before→after each run."
    )


def write_results(args, text, started, load_start, load_end, **fields):
    """Writes `text` to `args.out`/table.md and, to results.json, the run's
    command, machine, load and settings followed by `fields`."""
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table.md"), "w") as file:
        file.write(text + "\n")
    results = {
        "command": " ".join([os.path.relpath(sys.executable, REPO_DIR), *sys.argv]),
        "machine": machine_description(),
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
        **fields,
    }
    with open(os.path.join(args.out, "results.json"), "w") as file:
        json.dump(results, file, indent=2)
    print(f"\nWrote {args.out}/table.md and results.json")


def main():
    parser = argument_parser(
        __doc__.split("\n")[0],
        IMPLEMENTATIONS,
        GEMM_LIBRARIES,
        batch_sizes=[64, 256],
        steps=2048,
        warmup=64,
        timeout=900,
    )
    parser.add_argument("--no-startup", action="store_true")
    args = parser.parse_args()
    if args.worker or args.gemm:
        worker_main(args)
        return

    if args.quick:
        args.steps, args.warmup, args.repeats = 128, 32, 2
    started, load_start = start_run()
    gemm = {"start": measure_gemm(args.timeout, "start")}
    rows = measure_rows(args.only or list(IMPLEMENTATIONS), args)
    gemm["end"] = measure_gemm(args.timeout, "end")
    peak = gemm_peak(gemm["start"], gemm["end"])
    startup = None if args.no_startup else measure_startup(args.timeout)
    load_end = os.getloadavg()

    report = [
        *report_header(
            "# keras_gan training speed against independent implementations",
            started,
            load_start,
            load_end,
        ),
        f"- float32 GEMM 2048^3, best of 20, GFLOP/s at the start / end: "
        f"{gemm_summary(gemm)}; peak used (best all-core figure): {peak:.1f}.",
        f"- Seed MLP GAN (keras_gan `mlp`; speed_dcgan.py and speed_resnet.py "
        f"time the others); "
        f"{args.steps} steps per window, {args.repeats} windows (median), after "
        f"a first call and {args.warmup} warm-up steps. Step FLOPs (matmuls): "
        f"{step_flops(64) / 1e6:.1f} M at batch 64, {step_flops(256) / 1e6:.1f} M "
        f"at 256.",
        rounds_note(args.rounds),
        "",
        format_speed_table(rows, peak),
    ]
    if startup is not None:
        report += ["", format_startup_table(startup)]
    text = "\n".join(report)
    print("\n" + text)
    if args.out:
        write_results(
            args,
            text,
            started,
            load_start,
            load_end,
            step_flops={str(b): step_flops(b) for b in args.batch_sizes},
            gemm=gemm,
            peak_gflops=peak,
            rows=rows,
            startup=startup,
        )


if __name__ == "__main__":
    main()
