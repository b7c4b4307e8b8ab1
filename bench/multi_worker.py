"""Per-step time of two worker processes against one, on this machine.

Trains the seed MLP GAN (keras_gan's `mlp` architecture on 28x28x1 images,
the vanilla GAN of arXiv:1406.2661) at a global batch of `--batch-size`, for
`--steps` timed steps after a warm-up, on each backend that has a multi-worker
engine (TensorFlow: `MultiWorkerMirroredStrategy` over gRPC on 127.0.0.1;
JAX: `jax.distributed` with gloo CPU collectives), and prints one row per
configuration:

    one, defaults      one process, `GAN.compile()` defaults (the fused XLA
                       loop of 32 steps per call on TensorFlow, `lax.scan` on
                       JAX): what a user runs on one device
    one, 1 step/call   one process, one step per compiled call, the way a
                       distribution runs them (TensorFlow: no XLA, as under
                       a strategy; JAX: one jitted call per step)
    one, half batch    the same at half the global batch: one worker's share
    two workers        `--distribute multi-worker` over 2 processes, each
                       training half of every global batch
    agreement          one `Distribution.any_worker` call (the all-reduce of
                       the checkpoint decisions a run takes after each
                       compiled call on several workers), per call

`overhead` is the two workers' step time less the half-batch step time of one
process: what the workers pay beyond their share of the computation
(gradient all-reduce, replicated optimizer step, and here the 2 cores they
share with each other). This machine has 2 cores and no accelerator, so no
speed-up is expected; the figure shows the cost of the communication.

Rows run `--rounds` times, interleaved, each in fresh processes; a row's
figure is the median of its rounds' medians of `--repeats` timed windows.
The 1-minute load average is printed before and after each row.

    python bench/multi_worker.py --out bench/results/multi_worker
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def worker(args):
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_gan
    from keras_gan.distribute import Distribution

    distribution = Distribution.for_name(args.distribute)
    keras.utils.set_random_seed(0)
    options = {}
    if args.plain:
        options = {"steps_per_execution": 1}
        if keras.config.backend() == "tensorflow":
            options["jit_compile"] = False
    with distribution.scope():
        generator = keras_gan.networks.mlp_generator(64, (28, 28, 1))
        discriminator = keras_gan.networks.mlp_discriminator((28, 28, 1))
        gan = keras_gan.GAN(generator, discriminator, seed=1)
        gan.compile(**options)
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (args.batch_size * 64, 28, 28, 1)).astype("f4")
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(
        args.batch_size, drop_remainder=True
    )
    dataset = distribution.shard(dataset.repeat())
    windows = []
    with distribution.scope():
        gan.fit(dataset, steps_per_epoch=args.warmup, epochs=1, verbose=0)
        for _ in range(args.repeats):
            began = time.perf_counter()
            gan.fit(dataset, steps_per_epoch=args.steps, epochs=1, verbose=0)
            windows.append((time.perf_counter() - began) / args.steps)
    agreement = None
    if distribution.workers > 1:
        distribution.any_worker([0, 0])  # traced
        began = time.perf_counter()
        for _ in range(50):
            distribution.any_worker([0, 0])
        agreement = (time.perf_counter() - began) / 50
    print(
        json.dumps(
            {
                "worker": distribution.worker,
                "step_ms": [w * 1e3 for w in windows],
                "agreement_ms": agreement and agreement * 1e3,
            }
        ),
        flush=True,
    )


def _run(backend, args, batch_size, workers=1, plain=False):
    """The chief's result of one configuration, in fresh processes."""
    command = [
        sys.executable, __file__, "--worker", "--batch-size", str(batch_size),
        "--steps", str(args.steps), "--warmup", str(args.warmup),
        "--repeats", str(args.repeats),
    ]  # fmt: skip
    if plain:
        command.append("--plain")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    if backend == "jax":
        env["JAX_PLATFORMS"] = "cpu"
    environments = [env]
    if workers > 1:
        command += ["--distribute", "multi-worker"]
        sys.path.insert(0, ROOT)
        from keras_gan.distribute import local_cluster

        environments = [
            {**env, **variables} for variables in local_cluster(workers, backend)
        ]
    processes = [
        subprocess.Popen(
            command, env=e, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        for e in environments
    ]
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    if any(p.returncode for p in processes):
        raise SystemExit(f"{backend} {workers} worker(s) failed: {outputs}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--distribute", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=None, help="folder for results.json")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    batch = args.batch_size
    rows = {
        "one, defaults": {"batch_size": batch},
        "one, 1 step/call": {"batch_size": batch, "plain": True},
        "one, half batch": {"batch_size": batch // 2, "plain": True},
        "two workers": {"batch_size": batch, "workers": 2},
    }
    results = {b: {name: [] for name in rows} for b in args.backends}
    agreements = {b: [] for b in args.backends}
    loads = []
    for _ in range(args.rounds):
        for backend in args.backends:
            for name, config in rows.items():
                before = os.getloadavg()[0]
                result = _run(backend, args, **config)
                loads.append((before, os.getloadavg()[0]))
                results[backend][name].append(statistics.median(result["step_ms"]))
                if result["agreement_ms"] is not None:
                    agreements[backend].append(result["agreement_ms"])
                print(
                    f"  {backend:10s} {name:17s} "
                    f"{results[backend][name][-1]:7.2f} ms/step"
                    f"  (load {before:.2f} -> {loads[-1][1]:.2f})",
                    file=sys.stderr,
                    flush=True,
                )
    print(f"\nMLP GAN, 28x28x1, global batch {batch}, {os.cpu_count()} CPU cores")
    print(f"{'backend':10s} {'row':17s} {'ms/step':>8s} {'vs one':>7s}")
    summary = {}
    for backend in args.backends:
        median = {n: statistics.median(v) for n, v in results[backend].items()}
        for name, value in median.items():
            ratio = value / median["one, defaults"]
            print(f"{backend:10s} {name:17s} {value:8.2f} {ratio:6.2f}x")
        overhead = median["two workers"] - median["one, half batch"]
        agreement = statistics.median(agreements[backend])
        print(
            f"{backend:10s} {'overhead':17s} {overhead:8.2f}  "
            "(two workers - half batch)"
        )
        print(f"{backend:10s} {'agreement':17s} {agreement:8.2f}  (per call)")
        summary[backend] = {
            "ms_per_step": median,
            "overhead_ms": overhead,
            "agreement_ms": agreement,
            "rounds": results[backend],
        }
    print(f"load 1m before/after each row: {[f'{a:.1f}/{b:.1f}' for a, b in loads]}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "results.json"), "w") as file:
            json.dump({"batch_size": batch, "backends": summary, "loads": loads}, file)


if __name__ == "__main__":
    main()
