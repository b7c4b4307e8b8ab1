"""Runs that survive kills: real `python cli.py train` processes, killed and
resumed, end with the uninterrupted run's weights to the bit. The tests marked
`backends` run under every KERAS_BACKEND (the processes inherit it)."""

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import train

from keras_gan import export
from keras_gan import provenance

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Digits at batch 64: 28 steps per epoch. One step per compiled call and a
# checkpoint after every step: most of the run's time is spent in checkpoint
# writes, so random kills often land inside one.
EPOCHS = 12
STEPS = EPOCHS * 28
FLAGS = [
    "--dataset", "digits", "--latent-dim", "8", "--epochs", str(EPOCHS),
    "--steps-per-execution", "1", "--checkpoint-every", "1", "--sample-every", "4",
    "--checkpoint-budget", "1",
]  # fmt: skip


def _command(tmp_path, name, *extra):
    return [
        sys.executable, os.path.join(ROOT, "cli.py"), "train", "--name", name,
        "--runs-dir", str(tmp_path / "runs"),
        "--export-dir", str(tmp_path / "saved_models"), *FLAGS, *extra,
    ]  # fmt: skip


def _start(tmp_path, name, *extra):
    env = {**os.environ, "PYTHONPATH": ROOT}
    return subprocess.Popen(
        _command(tmp_path, name, *extra),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(tmp_path, name, *extra):
    process = _start(tmp_path, name, *extra)
    out, err = process.communicate(timeout=600)
    return process.returncode, out + err


def _weights(path):
    arrays = {}

    def read(key, item):
        if isinstance(item, h5py.Dataset):
            arrays[key] = item[()]

    with h5py.File(path) as file:
        file.visititems(read)
    return arrays


def _final_state(tmp_path, name):
    folder = tmp_path / "runs" / name / "checkpoint" / f"step-{STEPS:09d}"
    meta = json.loads((folder / "meta.json").read_text())
    return meta, _weights(folder / "state.weights.h5")


def _assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _latest(tmp_path, name):
    path = tmp_path / "runs" / name / "checkpoint" / "latest"
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's final checkpoint's weights, and its log."""
    tmp_path = tmp_path_factory.mktemp("reference")
    code, output = _run(tmp_path, "ref")
    assert code == 0, output[-2000:]
    meta, weights = _final_state(tmp_path, "ref")
    assert meta["step"] == STEPS
    return weights, _log(tmp_path, "ref")


def _log(tmp_path, name):
    return (tmp_path / "runs" / name / "log.csv").read_text()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_same_weights(
    tmp_path, reference
):
    rng = random.Random(0)
    kills, inside_writes, inside_exports = 0, 0, 0
    exports = tmp_path / "saved_models" / "k"
    every = ["--export-every", "4"]  # versions at epochs 4, 8 and 12

    def exporting():
        return exports.is_dir() and any(
            n.startswith(".export-") for n in os.listdir(exports)
        )

    for _ in range(60):  # kills until 20 landed mid-training (at most 60 starts)
        started = (tmp_path / "runs" / "k" / "config.json").exists()
        flags = ["--resume"] if started else []
        before = _latest(tmp_path, "k")
        process = _start(tmp_path, "k", *flags, *every)
        # Wait for this process's first checkpoint, then kill it at a random
        # moment among its next steps and writes; the 4th and 9th kills at a
        # random moment of the next export instead.
        deadline = time.monotonic() + 120
        while _latest(tmp_path, "k") == before and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.02)
        if kills in (3, 8):
            while not exporting() and process.poll() is None:
                assert time.monotonic() < deadline, "no export within 120 s"
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.3))
        if process.poll() is not None:
            break  # finished before it could be killed
        time.sleep(rng.uniform(0, 0.4) if kills not in (3, 8) else 0)
        staging = [
            n
            for n in os.listdir(tmp_path / "runs" / "k" / "checkpoint")
            if n.startswith(".staging-")
        ]
        in_export = exporting()
        process.send_signal(signal.SIGKILL)
        process.communicate()
        if process.returncode != -signal.SIGKILL:
            break  # it ended on its own just before the kill
        kills += 1
        inside_writes += bool(staging)
        inside_exports += in_export
        if kills == 20:
            break
    assert kills == 20
    assert inside_exports >= 1
    code, output = _run(tmp_path, "k", "--resume", *every)
    assert code == 0, output[-2000:]
    meta, weights = _final_state(tmp_path, "k")
    # Exactly epochs x steps_per_epoch steps applied, by the optimizers' own
    # counters, and the weights of the run that was never killed.
    assert meta["step"] == STEPS
    assert weights["d_optimizer/vars/0"] == STEPS
    assert weights["g_optimizer/vars/0"] == STEPS
    _assert_same_weights(weights, reference[0])
    # Every epoch's logged means, interrupted epochs included, as uninterrupted.
    assert _log(tmp_path, "k") == reference[1]
    print(
        f"\n20 SIGKILLs survived ({inside_writes} during a checkpoint write, "
        f"{inside_exports} during an export)"
    )
    # Every version is complete and unchanged (its signed manifest verifies),
    # none half-written; the killed exports' staging folders are gone.
    found = export.versions(exports)
    assert len(found) >= 3
    for version in found:
        provenance.verify(exports / str(version))
    assert not [n for n in os.listdir(exports) if n.startswith(".export-")]
    # The kills leave no staging folder behind once a run resumed.
    assert not [
        n
        for n in os.listdir(tmp_path / "runs" / "k" / "checkpoint")
        if n.startswith(".")
    ]


def _resources(pid, checkpoint_dir):
    """(RSS bytes, open files, checkpoint folders, checkpoint bytes) of a run."""
    with open(f"/proc/{pid}/status") as file:
        rss = next(int(line.split()[1]) * 1024 for line in file if "VmRSS" in line)
    open_files = len(os.listdir(f"/proc/{pid}/fd"))
    folders, size = 0, 0
    if checkpoint_dir.exists():
        for entry in checkpoint_dir.iterdir():
            folders += entry.name.startswith("step-")
            for root, _, names in os.walk(entry):
                size += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    return rss, open_files, folders, size


@pytest.mark.slow
def test_a_long_run_keeps_memory_open_files_and_disk_flat(tmp_path):
    # 600 epochs of 28 steps (16,800 steps), a checkpoint due every 100 steps.
    epochs = 600
    command = [
        sys.executable, os.path.join(ROOT, "cli.py"), "train", "--name", "soak",
        "--runs-dir", str(tmp_path / "runs"),
        "--export-dir", str(tmp_path / "saved_models"),
        "--dataset", "digits", "--latent-dim", "8", "--epochs", str(epochs),
        "--checkpoint-every", "100", "--sample-every", "50",
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": ROOT},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    checkpoint_dir = tmp_path / "runs" / "soak" / "checkpoint"
    samples = []  # taken once training has begun (a first checkpoint exists)
    while process.poll() is None:
        try:
            sample = _resources(process.pid, checkpoint_dir)
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            break  # the process ended between poll() and the read
        if sample[2]:
            samples.append(sample)
        time.sleep(0.1)
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-2000:]
    assert len(samples) >= 40, f"only {len(samples)} samples: run too short"
    summary = json.loads((tmp_path / "runs" / "soak" / "summary.json").read_text())
    share = summary["checkpoint_seconds"] / summary["train_seconds"]
    rss = [s[0] for s in samples]
    files = [s[1] for s in samples]
    warm = len(samples) // 4  # the first quarter warms caches up
    growth = max(rss[warm:]) - rss[warm]
    print(
        f"\nsoak: {epochs * 28} steps in {summary['train_seconds']:.1f} s, "
        f"{summary['checkpoints_written']} checkpoints ({share:.1%} of the time), "
        f"RSS {rss[warm] / 2**20:.0f} -> {rss[-1] / 2**20:.0f} MiB (max growth "
        f"{growth / 2**20:.1f} MiB), open files {min(files)}-{max(files)}, "
        f"checkpoint folders at most {max(s[2] for s in samples)}"
    )
    # Memory and open files flat after warm-up; never more than keep (2)
    # checkpoints, plus the new one for the moment before the oldest goes.
    assert growth < 24 * 2**20
    assert max(files[warm:]) <= max(files[:warm]) + 2
    assert max(s[2] for s in samples) <= 3
    assert len(list(checkpoint_dir.glob("step-*"))) == 2
    one = max(s[3] / s[2] for s in samples)
    assert max(s[3] for s in samples) <= 3 * one
    # Checkpoints kept within their share of the time (5%, plus the last
    # epoch's, which is always written).
    assert share < 0.10
    assert summary["checkpoints_written"] >= 10


@pytest.mark.backends
def test_sigterm_checkpoints_the_current_step_and_resume_continues(tmp_path, reference):
    process = _start(tmp_path, "t")
    while _latest(tmp_path, "t") is None and process.poll() is None:
        time.sleep(0.02)
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    stopped_in = time.monotonic() - sent
    assert process.returncode == 75, out + err
    errors = [line for line in (out + err).splitlines() if "Error" in line]
    assert len(errors) == 1 and "Stopped by SIGTERM at step" in errors[0], errors
    assert "Traceback" not in out + err
    assert stopped_in < 5
    step = int(errors[0].split("at step ")[1].split()[0])
    folder = tmp_path / "runs" / "t" / "checkpoint" / f"step-{step:09d}"
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["step"] == step and 0 < step < STEPS
    code, output = _run(tmp_path, "t", "--resume")
    assert code == 0, output[-2000:]
    assert f"from step {step}" in output
    _assert_same_weights(_final_state(tmp_path, "t")[1], reference[0])
    # The interrupted epoch's logged means average its batches before the
    # SIGTERM too (the checkpoint carries the metrics' state).
    assert step % 28, "SIGTERM at an epoch's end: nothing mid-epoch tested"
    assert _log(tmp_path, "t") == reference[1]


@pytest.mark.backends
def test_a_second_writer_is_refused_and_the_first_is_unharmed(tmp_path, reference):
    first = _start(tmp_path, "two")
    while _latest(tmp_path, "two") is None and first.poll() is None:
        time.sleep(0.02)
    code, output = _run(tmp_path, "two", "--resume")
    assert code == 7, output[-2000:]
    lines = [line for line in output.splitlines() if line.startswith("Error")]
    assert lines == [
        f"Error: {tmp_path / 'runs' / 'two'} is being trained by process "
        f"{first.pid}; wait for it to end, or choose another --name."
    ]
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, (out + err)[-2000:]
    _assert_same_weights(_final_state(tmp_path, "two")[1], reference[0])


def _short_run(tmp_path, name):
    """A finished run of 2 epochs (in this process), its 3 newest checkpoints
    kept: every 14 steps (14, 28, 42, 56; no time budget, so that which
    checkpoints are written does not depend on the machine's speed)."""
    result = train(
        tmp_path, "--dataset", "digits", "--name", name, "--latent-dim", "8",
        "--epochs", "2", "--steps-per-execution", "1", "--checkpoint-every", "14",
        "--checkpoint-budget", "1", "--keep-checkpoints", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / name / "checkpoint"
    assert sorted(os.listdir(folder)) == [
        "latest",
        "step-000000028",
        "step-000000042",
        "step-000000056",
    ]
    return folder


@pytest.mark.backends
@pytest.mark.parametrize("damage", ["truncated", "garbage", "manifest"])
def test_a_damaged_newest_checkpoint_is_named_and_the_previous_one_used(
    tmp_path, damage
):
    folder = _short_run(tmp_path, "d")
    newest = folder / "step-000000056"
    state = newest / "state.weights.h5"
    if damage == "truncated":
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    elif damage == "garbage":
        state.write_bytes(os.urandom(state.stat().st_size))
    else:
        (newest / "manifest.json").write_text("{")
    # (summary.json says the run finished 2 epochs: train a third.)
    with pytest.warns(UserWarning) as warned:
        result = train(tmp_path, "--name", "d", "--resume", "--epochs", "3")
    assert result.exit_code == 0, result.output
    (warning,) = [str(w.message) for w in warned if "unusable" in str(w.message)]
    assert str(newest) in warning and "using step-000000042" in warning
    assert "from step 42" in result.output


@pytest.mark.backends
def test_no_usable_checkpoint_is_an_error_unless_restarted(tmp_path):
    folder = _short_run(tmp_path, "gone")
    for step in (28, 42, 56):
        os.remove(folder / f"step-{step:09d}" / "state.weights.h5")
    result = train(tmp_path, "--name", "gone", "--resume", "--epochs", "3")
    assert_one_line_error(result, "No usable checkpoint", "--restart")
    assert result.exit_code == 3
    restarted = train(tmp_path, "--name", "gone", "--restart", "--epochs", "1")
    assert restarted.exit_code == 0, restarted.output
    assert sorted(os.listdir(folder)) == ["latest", "step-000000028"]


@pytest.mark.backends
def test_the_same_seed_gives_the_same_initial_weights_and_another_seed_not(tmp_path):
    def initial(name, seed):
        result = train(
            tmp_path, "--dataset", "digits", "--name", name, "--latent-dim", "8",
            "--epochs", "1", "--seed", str(seed), "--checkpoint-every", "1",
            "--steps-per-execution", "1", "--keep-checkpoints", "100",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        path = tmp_path / "runs" / name / "checkpoint" / "step-000000001"
        return _weights(path / "state.weights.h5")

    first, again, other = initial("a", 3), initial("b", 3), initial("c", 4)
    _assert_same_weights(first, again)
    kernel = "generator/layers/dense/vars/0"
    assert not np.array_equal(first[kernel], other[kernel])


@pytest.mark.backends
def test_deterministic_runs_give_bit_equal_weights_and_grids(tmp_path):
    short = ["--epochs", "2", "--checkpoint-every", "28", "--sample-every", "1"]

    def run(name, seed, *extra):
        code, output = _run(tmp_path, name, *short, "--seed", str(seed), *extra)
        assert code == 0, output
        folder = tmp_path / "runs" / name
        grids = {
            path.name: path.read_bytes()
            for path in sorted((folder / "samples").glob("*.png"))
        }
        state = folder / "checkpoint" / "step-000000056" / "state.weights.h5"
        return output, _weights(state), grids

    output, first, first_grids = run("a", 5, "--deterministic")
    assert "Deterministic: " in output, output
    _, again, again_grids = run("b", 5, "--deterministic")
    _assert_same_weights(first, again)
    assert len(first_grids) == 2 and first_grids == again_grids
    _, other, other_grids = run("c", 6, "--deterministic")
    kernel = "generator/layers/dense/vars/0"
    assert not np.array_equal(first[kernel], other[kernel])
    assert other_grids != first_grids
    # A resumed run keeps the setting without the flag.
    config = json.loads((tmp_path / "runs" / "a" / "config.json").read_text())
    assert config["deterministic"] is True
    code, resumed = _run(tmp_path, "a", "--resume", "--epochs", "3")
    assert code == 0 and "Deterministic: " in resumed, resumed


def _tiny_gan():
    from keras_gan import GAN
    from keras_gan import networks

    keras.utils.set_random_seed(0)
    generator, discriminator = networks.build("mlp", 8, (8, 8, 1))
    gan = GAN(generator, discriminator, seed=0)
    gan.compile(steps_per_execution=1)
    return gan


class _PoisonAt(keras.callbacks.Callback):
    """Puts a NaN into the generator's first kernel after batch `batch`."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            kernel = self.model.generator.trainable_weights[0]
            values = np.array(kernel.numpy())
            values[0, 0] = np.nan
            kernel.assign(values)


@pytest.mark.backends
def test_nan_weights_are_never_checkpointed_and_the_last_good_one_stays(tmp_path):
    from keras_gan import checkpoints
    from keras_gan import data
    from keras_gan.errors import TrainingDivergedError

    images, _ = data.load_arrays("digits")
    dataset = data.dataset_from_arrays(images, batch_size=64, seed=0)
    gan = _tiny_gan()
    manager = checkpoints.CheckpointManager(tmp_path)
    checkpoint = checkpoints.RunCheckpoint(manager, 28, every_n_steps=1, budget=None)
    with pytest.raises(TrainingDivergedError, match="NaN or infinite values at step 6"):
        gan.fit(dataset, epochs=1, callbacks=[_PoisonAt(5), checkpoint], verbose=0)
    assert [os.path.basename(f) for f in manager.checkpoints()] == [
        "step-000000005",
        "step-000000004",
    ]
    restored = _tiny_gan()
    assert manager.restore(restored)["step"] == 5
    for variable in restored.weights:
        assert np.all(np.isfinite(np.asarray(variable.numpy())))


@pytest.mark.backends
def test_stale_staging_folders_are_removed_and_discard_empties(tmp_path):
    from keras_gan import checkpoints

    manager = checkpoints.CheckpointManager(tmp_path, keep=1)
    gan = _tiny_gan()
    (tmp_path / ".staging-123-abc").mkdir()
    (tmp_path / ".staging-123-abc" / "state.weights.h5").write_bytes(b"half")
    manager.save(gan, {"step": 1, "epoch": 0, "batch": 1, "steps_per_epoch": 28})
    manager.save(gan, {"step": 2, "epoch": 0, "batch": 2, "steps_per_epoch": 28})
    manager.remove_staging()
    assert sorted(os.listdir(tmp_path)) == ["latest", "step-000000002"]
    assert (tmp_path / "latest").read_text() == "step-000000002\n"
    manager.discard()
    assert os.listdir(tmp_path) == [] and manager.restore(gan) is None


@pytest.mark.backends
def test_a_run_stopped_before_its_export_finishes_on_resume(tmp_path):
    _short_run(tmp_path, "f")
    run = tmp_path / "runs" / "f"
    # As if killed after the last checkpoint, before the export and the GIF.
    for name in ("summary.json", "gan.keras", "samples/samples.gif"):
        os.remove(run / name)
    shutil.rmtree(tmp_path / "saved_models" / "f" / "1")
    result = train(tmp_path, "--name", "f", "--resume", "--epochs", "2")
    assert result.exit_code == 0, result.output
    assert "Trained 0 epochs" in result.output
    # Version 1 was exported once: its number is not used again.
    assert export.versions(tmp_path / "saved_models" / "f") == [2]
    assert (run / "samples" / "samples.gif").exists() and (run / "gan.keras").exists()
    again = train(tmp_path, "--name", "f", "--resume", "--epochs", "2")
    assert_one_line_error(again, "already trained 2 epochs")


@pytest.mark.parametrize("where", ["runs", "saved_models", "inside"])
def test_symbolic_links_in_the_outputs_are_refused(tmp_path, where):
    outside = tmp_path / "outside"
    outside.mkdir()
    if where == "inside":
        (tmp_path / "runs" / "s").mkdir(parents=True)
        os.symlink(outside, tmp_path / "runs" / "s" / "samples")
    else:
        (tmp_path / where).mkdir()
        os.symlink(outside, tmp_path / where / "s")
    flags = ["--resume"] if where == "inside" else ["--dataset", "digits"]
    result = train(tmp_path, "--name", "s", *flags, "--epochs", "1")
    assert_one_line_error(result, "is a symbolic link", str(outside))
    assert result.exit_code == 6
    assert os.listdir(outside) == []


def test_max_loss_stops_a_diverging_run_before_anything_is_saved(tmp_path):
    result = train(
        tmp_path, "--dataset", "digits", "--name", "m", "--latent-dim", "8",
        "--epochs", "2", "--max-loss", "0.5",
    )  # fmt: skip
    assert_one_line_error(result, "Training diverged", "beyond max_loss 0.5", "epoch 1")
    assert result.exit_code == 4
    assert not (tmp_path / "runs" / "m" / "checkpoint").exists()
    # No empty model folder is left for TF Serving to watch.
    assert not (tmp_path / "saved_models" / "m").exists()


def _limited(limit_bytes):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return preexec


def test_a_full_disk_fails_in_one_line_and_resume_finishes_after(tmp_path):
    _short_run(tmp_path, "full")
    before = {
        path: (path / "state.weights.h5").read_bytes()
        for path in (tmp_path / "runs" / "full" / "checkpoint").glob("step-*")
    }
    versions = export.versions(tmp_path / "saved_models" / "full")
    # A file-size limit below a checkpoint's size: the next checkpoint fails.
    command = [
        sys.executable, os.path.join(ROOT, "cli.py"), "train", "--name", "full",
        "--resume", "--epochs", "3", "--checkpoint-every", "4",
        "--runs-dir", str(tmp_path / "runs"),
        "--export-dir", str(tmp_path / "saved_models"),
    ]  # fmt: skip
    process = subprocess.run(
        command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": ROOT},
        capture_output=True, text=True, timeout=300, preexec_fn=_limited(200_000),
    )  # fmt: skip
    output = (process.stdout + process.stderr).replace("\r", "\n")
    assert process.returncode == 5, output[-2000:]
    assert "Traceback" not in output
    (line,) = [
        line[line.index("Error:") :] for line in output.splitlines() if "Error:" in line
    ]
    assert "I/O error" in line and "File too large" in line and "runs/full" in line
    for path, content in before.items():  # earlier checkpoints intact
        assert (path / "state.weights.h5").read_bytes() == content
    assert export.versions(tmp_path / "saved_models" / "full") == versions
    resumed = train(tmp_path, "--name", "full", "--resume", "--epochs", "3")
    assert resumed.exit_code == 0, resumed.output
    assert export.versions(tmp_path / "saved_models" / "full") == [
        *versions,
        versions[-1] + 1,
    ]


def test_networks_too_large_for_memory_are_one_line_and_write_nothing(tmp_path):
    result = train(
        tmp_path, "--dataset", "digits", "--name", "big",
        "--latent-dim", "1000000000", "--epochs", "1",
    )  # fmt: skip
    assert_one_line_error(result, "do not fit in memory", "latent_dim=1000000000")
    assert result.exit_code == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.backends
def test_steps_per_execution_above_one_on_pytorch_is_one_line(tmp_path):
    if keras.config.backend() != "torch":
        pytest.skip("PyTorch runs one step per call")
    result = train(
        tmp_path, "--dataset", "digits", "--name", "p", "--steps-per-execution", "4"
    )
    assert_one_line_error(result, "--steps-per-execution 4", "expected 1")
    assert not (tmp_path / "runs").exists()
