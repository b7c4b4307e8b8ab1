"""Training over several processes (`--distribute multi-worker`): two worker
processes on 127.0.0.1 (free ports) against one process on one device, at
the same global batch. TensorFlow: `MultiWorkerMirroredStrategy` from
`TF_CONFIG`; JAX: `jax.distributed` (gloo CPU collectives) and `DataParallel`
over both processes' devices. Every process runs under a timeout and is
killed when its test ends."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import keras
import numpy as np
import pytest

import keras_gan.models  # noqa: F401  (registers the GAN for loading)
from keras_gan.distribute import local_cluster

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = keras.config.backend()
pytestmark = pytest.mark.skipif(
    BACKEND == "torch", reason="multi-worker runs on TensorFlow and JAX"
)
# A worker that hangs fails its test instead of the suite.
TIMEOUT = 240


def _base_env():
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    if BACKEND == "jax":
        env["JAX_PLATFORMS"] = "cpu"
        env.pop("XLA_FLAGS", None)  # one device per process
    return env


def _cluster(count=2):
    """Each worker's environment and extra CLI flags: a TF_CONFIG on
    TensorFlow; on JAX the `KERAS_DISTRIBUTION_*` variables and the same as
    flags (which the CLI takes first)."""
    workers = []
    for variables in local_cluster(count, BACKEND):
        flags = []
        if BACKEND == "jax":
            flags = [
                "--coordinator", variables["KERAS_DISTRIBUTION_JOB_ADDRESSES"],
                "--num-processes", str(count),
                "--process-id", variables["KERAS_DISTRIBUTION_PROCESS_ID"],
            ]  # fmt: skip
        workers.append(({**_base_env(), **variables}, flags))
    return workers


class _Processes:
    """Started processes, each killed (with its children) when the block ends."""

    def __init__(self):
        self.running = []

    def start(self, command, env):
        # Output to files, not pipes: a worker blocked on a full pipe would
        # hold up the others at JAX's shutdown barrier.
        out, err = (tempfile.TemporaryFile("w+") for _ in range(2))  # noqa: SIM115
        process = subprocess.Popen(
            command, env=env, stdout=out, stderr=err, text=True,
            start_new_session=True,
        )  # fmt: skip
        process.outputs = (out, err)
        self.running.append(process)
        return process

    def results(self, processes, timeout=TIMEOUT):
        """(exit code, stdout, stderr) of each, waiting at most `timeout`."""
        deadline = time.monotonic() + timeout
        done = []
        for process in processes:
            process.wait(timeout=max(deadline - time.monotonic(), 1))
            texts = []
            for file in process.outputs:
                file.seek(0)
                texts.append(file.read())
            done.append((process.returncode, *texts))
        return done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.running:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for file in process.outputs:
                file.close()


def _assert_all_succeeded(done):
    failed = [f"exit {code}: {err[-2500:]}" for code, _, err in done if code != 0]
    assert not failed, "\n\n".join(failed)


def _errors(stderr):
    return [line for line in stderr.splitlines() if line.startswith("Error")]


_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np, tensorflow as tf
    import keras_gan
    from keras_gan.distribute import Distribution

    distribution = Distribution.for_name(sys.argv[1] or None)

    def mlp():
        g = keras_gan.networks.mlp_generator(4, (8, 8, 1), hidden_units=16)
        d = keras_gan.networks.mlp_discriminator((8, 8, 1), hidden_units=16)
        return keras_gan.GAN(g, d, seed=3)

    def conditional_dcgan():
        g, d = keras_gan.networks.build("dcgan", 4, (8, 8, 1), num_classes=3)
        return keras_gan.GAN(g, d, seed=3, num_classes=3, ema_decay=0.9)

    configurations = {
        # WGAN-GP and lazy R1, d_steps=2, DiffAugment: every random draw.
        "mlp_penalties": (mlp, dict(
            loss="wasserstein", gradient_penalty=1.0, r1=1.0, penalty_interval=2,
            d_steps=2, augment="color,translation"), False),
        # Batch norm in G: the whole batch's statistics, across the workers.
        "conditional_dcgan_ema": (conditional_dcgan, {}, True),
        # Loss scaling of both optimizers (SGD: see tests/test_distributed.py;
        # made in the scope, as every variable of a distributed run).
        "mlp_float16": (mlp, lambda: dict(
            r1=1.0, d_optimizer=keras.optimizers.SGD(0.1),
            g_optimizer=keras.optimizers.SGD(0.1)), False),
    }
    chosen = sys.argv[2].split(",") if sys.argv[2:] else list(configurations)
    results = {}
    for name in chosen:
        build, options, labelled = configurations[name]
        keras.config.set_dtype_policy("mixed_float16" if "16" in name else "float32")
        keras.utils.set_random_seed(0)
        with distribution.scope():
            gan = build()
            adam = dict(learning_rate=1e-2, beta_1=0.5)
            gan.compile(**{"d_optimizer": keras.optimizers.Adam(**adam),
                           "g_optimizer": keras.optimizers.Adam(**adam),
                           **(options() if callable(options) else options)})
        initial = [w.ravel().tolist() for w in gan.get_weights()]
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (16, 8, 8, 1)).astype("f4")
        labels = rng.integers(0, 3, (16,)).astype("i4")
        data = (images, labels) if labelled else images
        dataset = tf.data.Dataset.from_tensor_slices(data).batch(8)
        with distribution.scope():
            history = gan.fit(distribution.shard(dataset), epochs=2, verbose=0)
        keras.config.set_dtype_policy("float32")
        results[name] = {
            "initial": initial,
            "weights": [w.ravel().tolist() for w in gan.get_weights()],
            "logs": history.history,
            "generated": keras.ops.convert_to_numpy(
                gan.generate(4, seed=1)).ravel().tolist(),
        }
    print(json.dumps({"worker": distribution.worker,
                      "workers": distribution.workers, "results": results}))
    """
)

# (rtol, atol): float32 rounding of the all-reduce and of sums over 4 images
# against 8, magnified by Adam's normalised first steps (as tests/
# test_distributed.py, where measured 1.6e-4 on weights moving 4.4e-2).
_TOLERANCES = {
    "mlp_penalties": (1e-3, 5e-4),
    "conditional_dcgan_ema": (1e-3, 5e-4),
    "mlp_float16": (1e-2, 1e-2),  # float16 rounding of images
}


@pytest.mark.skipif(
    BACKEND == "jax",
    reason="JAX processes running this script end now and then in a gloo collective "
    "mismatch (a device_put's cross-process check against another collective); "
    "the CLI test below checks JAX's two workers against one device",
)
def test_two_workers_train_as_one_device_at_the_same_global_batch(tmp_path):
    script = tmp_path / "workers.py"
    script.write_text(_SCRIPT)
    with _Processes() as processes:
        # One after the other: 3 processes on 2 cores starve each other.
        one = processes.start([sys.executable, str(script), ""], _base_env())
        done = processes.results([one])
        # JAX: one GAN per pair of processes. A second and third GAN trained
        # in the same JAX processes sometimes end in a gloo collective
        # mismatch ("Received data size doesn't match expected size"; a
        # device_put's cross-process check against another collective); the
        # CLI trains one GAN per process.
        groups = [",".join(_TOLERANCES)] if BACKEND == "tensorflow" else _TOLERANCES
        parts = []
        for group in groups:
            workers = [
                processes.start(
                    [sys.executable, str(script), "multi-worker", group], env
                )
                for env, _ in _cluster()
            ]
            parts.append(processes.results(workers))
    _assert_all_succeeded(done + [r for part in parts for r in part])
    one = json.loads(done[0][1].strip().splitlines()[-1])
    workers = []
    for part in parts:
        found = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in part]
        if not workers:
            workers = found
        else:
            for mine, theirs in zip(workers, found, strict=True):
                mine["results"].update(theirs["results"])
    assert [(w["worker"], w["workers"]) for w in workers] == [(0, 2), (1, 2)]
    assert one["workers"] == 1
    assert one["results"].keys() == _TOLERANCES.keys()
    for name, reference in one["results"].items():
        rtol, atol = _TOLERANCES[name]
        chief, other = (w["results"][name] for w in workers)
        assert chief["weights"] == other["weights"]  # replicas in step
        assert chief["initial"] == reference["initial"]
        for a, b in zip(reference["weights"], chief["weights"], strict=True):
            np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
        for key, values in reference["logs"].items():
            np.testing.assert_allclose(chief["logs"][key], values, rtol=rtol, atol=atol)
        np.testing.assert_allclose(
            chief["generated"], reference["generated"], rtol=rtol, atol=atol
        )
        moved = max(
            np.abs(np.subtract(w, i)).max()
            for w, i in zip(reference["weights"], reference["initial"], strict=True)
        )
        assert moved > 10 * atol  # equal because of the same updates, not of none


def _train_command(tmp_path, folder, *flags):
    return [
        sys.executable, os.path.join(ROOT, "cli.py"), "train", "--dataset", "digits",
        "--name", "d", "--batch-size", "64", "--latent-dim", "8", "--seed", "5",
        "--runs-dir", str(tmp_path / folder / "runs"),
        "--export-dir", str(tmp_path / folder / "saved_models"), *flags,
    ]  # fmt: skip


def _tree(folder):
    """Relative paths under `folder`; TensorBoard's event files, whose names
    carry a time and a process id, by their folder."""
    paths = set()
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.relpath(os.path.join(root, name), folder)
            if name.startswith("events.out.tfevents."):
                path = os.path.join(os.path.dirname(path), "<events>")
            paths.add(path)
    return paths


def _weights(path):
    gan = keras.saving.load_model(path)
    return gan, gan.get_weights()


@pytest.mark.backends
def test_cli_workers_train_the_one_device_run_and_only_the_chief_writes(tmp_path):
    scratch = tmp_path / "worker1_tmp"
    scratch.mkdir()
    with _Processes() as processes:
        one = processes.start(
            _train_command(tmp_path, "one", "--epochs", "2"), _base_env()
        )
        workers = []
        for index, (env, flags) in enumerate(_cluster()):
            if index == 1:
                env["TMPDIR"] = str(scratch)
            command = _train_command(
                tmp_path, "two", "--epochs", "2", "--distribute", "multi-worker", *flags
            )
            workers.append(processes.start(command, env))
        done = processes.results([one, *workers])
    _assert_all_succeeded(done)
    chief_out, other_out = done[1][1], done[2][1]
    assert "worker 0 of 2 (chief)" in chief_out
    assert "global batch 64 = 2 replicas x 32 per replica" in other_out
    # The chief wrote the run as one process does; the other worker wrote
    # nothing there and removed its own folder.
    assert _tree(tmp_path / "two") == _tree(tmp_path / "one")
    assert os.listdir(scratch) == []
    lock = tmp_path / "two" / "runs" / "d" / ".lock"
    assert lock.read_text().strip() == str(workers[0].pid)
    summary = json.loads((tmp_path / "two" / "runs" / "d" / "summary.json").read_text())
    assert (summary["workers"], summary["replicas"], summary["global_batch"]) == (
        2, 2, 64,
    )  # fmt: skip
    # Each worker trained its half of every batch of the one-device order:
    # the same weights (rounding apart) as the one-device run.
    _, reference = _weights(tmp_path / "one" / "runs" / "d" / "gan.keras")
    _, trained = _weights(tmp_path / "two" / "runs" / "d" / "gan.keras")
    for a, b in zip(reference, trained, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-3, atol=1e-4)


@pytest.mark.backends
def test_a_killed_worker_stops_the_other_and_a_restart_finishes_the_exact_steps(
    tmp_path,
):
    epochs, steps_per_epoch = 12, 28  # digits at batch 64
    flags = ["--epochs", str(epochs), "--distribute", "multi-worker",
             "--checkpoint-every", str(steps_per_epoch),
             "--checkpoint-budget", "1"]  # fmt: skip
    checkpoints = tmp_path / "run" / "runs" / "d" / "checkpoint"
    with _Processes() as processes:
        chief, other = (
            processes.start(_train_command(tmp_path, "run", *flags, *extra), env)
            for env, extra in _cluster()
        )
        _wait_for_a_checkpoint(checkpoints, chief)
        os.kill(other.pid, signal.SIGKILL)
        killed = time.monotonic()
        ((code, _, err),) = processes.results([chief], timeout=120)
        stopped_after = time.monotonic() - killed
        other.wait()
    # The survivor gives up on its own, in one line: TensorFlow's
    # coordination service misses the dead worker's heartbeats for 10 s;
    # JAX's gloo collective fails on the closed connection (measured 12 s
    # and 5 s).
    assert code != 0
    assert stopped_after < 90
    assert len(_errors(err)) == 1 and "lost contact" in _errors(err)[0], err[-2000:]
    assert "Traceback" not in err
    cut = _steps(checkpoints)[-1]
    assert cut < epochs * steps_per_epoch
    # Restarted, every worker the same command with --resume.
    _restart_all(tmp_path, flags)
    run = tmp_path / "run" / "runs" / "d"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["first_step"] == cut and summary["steps"] == epochs * steps_per_epoch
    gan, _ = _weights(run / "gan.keras")
    applied = epochs * steps_per_epoch
    assert int(gan.d_optimizer.iterations.numpy()) == applied
    assert int(gan.g_optimizer.iterations.numpy()) == applied


def _restart_all(tmp_path, flags):
    """Every worker, the same command with --resume, to the end."""
    with _Processes() as processes:
        restarted = [
            processes.start(
                _train_command(tmp_path, "run", *flags, *extra, "--resume"), env
            )
            for env, extra in _cluster()
        ]
        _assert_all_succeeded(processes.results(restarted))


def _wait_for_a_checkpoint(checkpoints, chief):
    deadline = time.monotonic() + TIMEOUT
    while not (checkpoints.exists() and _steps(checkpoints)):
        assert time.monotonic() < deadline and chief.poll() is None
        time.sleep(0.2)


def _steps(checkpoints):
    return sorted(
        int(n.split("-")[1]) for n in os.listdir(checkpoints) if n.startswith("step-")
    )


@pytest.mark.skipif(BACKEND != "tensorflow", reason="one backend's cluster suffices")
def test_sigterm_to_one_worker_checkpoints_every_worker_at_one_step(tmp_path):
    epochs, steps_per_epoch = 12, 28
    flags = ["--epochs", str(epochs), "--distribute", "multi-worker",
             "--checkpoint-every", str(steps_per_epoch),
             "--checkpoint-budget", "1"]  # fmt: skip
    run = tmp_path / "run" / "runs" / "d"
    with _Processes() as processes:
        chief, other = (
            processes.start(_train_command(tmp_path, "run", *flags, *extra), env)
            for env, extra in _cluster()
        )
        _wait_for_a_checkpoint(run / "checkpoint", chief)
        first = _steps(run / "checkpoint")[-1]
        os.kill(other.pid, signal.SIGTERM)  # a preemption notice to one host
        done = processes.results([chief, other], timeout=120)
    # Both stop at the next agreement, after one checkpoint of that step.
    for code, _, err in done:
        assert code == 75, err[-2000:]
        assert "Traceback" not in err
    (chief_line,), (other_line,) = (_errors(err) for _, _, err in done)
    assert "Stopped by a signal to another worker at step " in chief_line
    assert "Stopped by SIGTERM at step " in other_line
    step = int(chief_line.split(" at step ")[1].split()[0])
    assert step == int(other_line.split(" at step ")[1].split()[0])
    assert first < step < epochs * steps_per_epoch
    assert _steps(run / "checkpoint")[-1] == step
    _restart_all(tmp_path, flags)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["first_step"] == step
    gan, _ = _weights(run / "gan.keras")
    assert int(gan.d_optimizer.iterations.numpy()) == epochs * steps_per_epoch


@pytest.mark.backends
def test_an_error_on_one_worker_stops_every_worker_with_its_message(tmp_path):
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"\x93NUMPY not an array")
    with _Processes() as processes:
        started = []
        for index, (env, flags) in enumerate(_cluster()):
            data = ["--data-dir", str(broken)] if index == 1 else []
            command = _train_command(
                tmp_path, "run", "--epochs", "2", "--distribute", "multi-worker",
                *flags, *data,
            )  # fmt: skip
            started.append(processes.start(command, env))
        began = time.monotonic()
        done = processes.results(started, timeout=120)
        seconds = time.monotonic() - began
    lines = [_errors(err) for _, _, err in done]
    assert all(len(found) == 1 for found in lines), [err[-1500:] for *_, err in done]
    assert lines[0] == lines[1]  # the same message on both
    assert lines[1][0].startswith("Error: worker 1: ") and "broken.npy" in lines[1][0]
    assert done[0][0] == done[1][0] == 1  # the failing worker's exit code
    assert all("Traceback" not in err for _, _, err in done)
    assert seconds < 100
    # The chief wrote no checkpoint or export of a run that never trained.
    assert not (tmp_path / "run" / "runs" / "d" / "checkpoint").exists() or not any(
        n.startswith("step-")
        for n in os.listdir(tmp_path / "run" / "runs" / "d" / "checkpoint")
    )


@pytest.mark.backends
def test_a_missing_or_broken_cluster_description_is_one_line(monkeypatch):
    from keras_gan.distribute import Distribution
    from keras_gan.errors import InputError

    with pytest.raises(InputError, match="--coordinator describe a JAX"):
        Distribution.for_name(None, coordinator="127.0.0.1:1234")
    if BACKEND == "tensorflow":
        monkeypatch.delenv("TF_CONFIG", raising=False)
        with pytest.raises(InputError, match="TF_CONFIG, which is not set; expected"):
            Distribution.for_name("multi-worker")
        for broken, why in (
            ("{not json", "Expecting property name"),
            ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
             "task type 'ps'"),
            ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}',
             "task worker 3 is not in the cluster"),
        ):  # fmt: skip
            monkeypatch.setenv("TF_CONFIG", broken)
            with pytest.raises(InputError, match=f"TF_CONFIG does not describe.*{why}"):
                Distribution.for_name("multi-worker")
    else:
        for name in ("JOB_ADDRESSES", "NUM_PROCESSES", "PROCESS_ID"):
            monkeypatch.delenv(f"KERAS_DISTRIBUTION_{name}", raising=False)
        with pytest.raises(InputError, match="needs --coordinator HOST:PORT"):
            Distribution.for_name("multi-worker", num_processes=2)
        with pytest.raises(InputError, match="--process-id 2 is not one of the 2"):
            Distribution.for_name(
                "multi-worker", coordinator="127.0.0.1:1", num_processes=2, process_id=2
            )
