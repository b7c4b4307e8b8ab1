"""Checkpoints that survive a kill at any moment, and resume at the step.

A checkpoint is a folder `<directory>/step-<global step>/` holding

- `state.weights.h5`: the GAN's weights, both optimizers' variables (moments
  and iteration counts), the noise seed state and the weight average;
- `meta.json`: the global step, its epoch and batch, the steps per epoch and,
  mid-epoch, the metrics' state (the sums and counts that the epoch's logged
  means average), restored when the epoch resumes;
- `manifest.json`, written last: each file's size and SHA-256.

It is written into a `.staging-*` folder, each file fsynced, then renamed into
place in one step (as TensorFlow's `CheckpointManager` and Lightning do), and
`<directory>/latest` names the newest one. A folder whose files do not match
its manifest (a torn write, a truncated or garbled file) is skipped with one
warning line and the previous checkpoint is used; the newest `keep` are kept.
"""

import errno
import json
import math
import os
import re
import shutil
import signal
import tempfile
import time
import warnings

import keras
import numpy as np

from keras_gan import files
from keras_gan.errors import InputError
from keras_gan.errors import NoCheckpointError
from keras_gan.errors import Preempted
from keras_gan.errors import TrainingDivergedError

FORMAT = 1
STATE_FILE = "state.weights.h5"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
LATEST_FILE = "latest"

_STEP_FOLDER = re.compile(r"^step-(\d+)$")


def _reserve(path, model) -> None:
    """Claims the disk space of `model`'s weights file at `path` before HDF5
    writes it, so that a full disk or a file-size limit fails here, as an
    `OSError` naming `path`: HDF5 failing mid-write crashes the process."""
    variables = list(model.weights)
    for player in ("d_optimizer", "g_optimizer"):
        optimizer = getattr(model, player, None)
        variables += list(optimizer.variables) if optimizer is not None else []
    payload = sum(
        math.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize
        for v in variables
    )
    size = payload + 4096 * len(variables) + (64 << 10)  # and HDF5's structures
    with open(path, "wb") as file:
        try:
            os.posix_fallocate(file.fileno(), 0, size)
        except OSError as error:
            if error.errno in (errno.EOPNOTSUPP, errno.EINVAL):
                return  # this file system cannot reserve: write unchecked
            raise OSError(error.errno, error.strerror, path) from None


def _write_text(path, text) -> None:
    with open(path, "w") as file:
        file.write(text)


def _write_json(path, value) -> None:
    with open(path, "w") as file:
        json.dump(value, file, indent=2)
        file.flush()
        os.fsync(file.fileno())


class CheckpointManager:
    """Writes, verifies, lists and restores a run's checkpoints.

    Args:
        directory: the run's checkpoint folder (created on first save).
        keep: how many of the newest checkpoints to keep on disk.
    """

    def __init__(self, directory, keep: int = 2):
        if int(keep) < 1:
            raise InputError(f"keep must be at least 1; received {keep}.")
        self.directory = os.fspath(directory)
        self.keep = int(keep)

    def checkpoints(self) -> list[str]:
        """The checkpoint folders on disk, newest (highest step) first."""
        if not os.path.isdir(self.directory):
            return []
        found = []
        for name in os.listdir(self.directory):
            match = _STEP_FOLDER.match(name)
            if match and os.path.isdir(os.path.join(self.directory, name)):
                found.append((int(match.group(1)), name))
        return [os.path.join(self.directory, name) for _, name in sorted(found)[::-1]]

    def ever_saved(self) -> bool:
        """Whether a checkpoint was ever committed here (even if now lost)."""
        return os.path.exists(os.path.join(self.directory, LATEST_FILE))

    def remove_staging(self) -> None:
        """Removes what interrupted saves left (call while holding the run)."""
        if os.path.isdir(self.directory):
            for name in os.listdir(self.directory):
                path = os.path.join(self.directory, name)
                if name.startswith(".staging-"):
                    shutil.rmtree(path, True)
                elif name.startswith(".tmp-"):  # of files.atomic_write
                    os.remove(path)

    def discard(self) -> None:
        """Removes every checkpoint (a run trained again from step 0)."""
        for folder in self.checkpoints():
            shutil.rmtree(folder)
        if self.ever_saved():
            os.remove(os.path.join(self.directory, LATEST_FILE))

    def save(self, model, meta: dict) -> str:
        """Writes a checkpoint of `model` at `meta["step"]`; returns its folder.

        Refuses (`TrainingDivergedError`, nothing written) if any weight is
        NaN or infinite, so the last good checkpoint is never replaced by a
        diverged one.
        """
        for variable in model.weights:
            if not np.all(np.isfinite(keras.ops.convert_to_numpy(variable.value))):
                raise TrainingDivergedError(
                    f"Training diverged: weight {variable.path} holds NaN or "
                    f"infinite values at step {meta['step']}; the last good "
                    f"checkpoint is kept. Try a lower learning rate."
                )
        os.makedirs(self.directory, exist_ok=True)
        final = os.path.join(self.directory, f"step-{int(meta['step']):09d}")
        if final in self.checkpoints() and self.verify(final) is not None:
            return final  # this step is already on disk (e.g. an epoch's end)
        staging = tempfile.mkdtemp(
            prefix=f".staging-{os.getpid()}-", dir=self.directory
        )
        try:
            _reserve(os.path.join(staging, STATE_FILE), model)
            model.save_weights(os.path.join(staging, STATE_FILE))
            files.fsync(os.path.join(staging, STATE_FILE))
            _write_json(os.path.join(staging, META_FILE), {"format": FORMAT, **meta})
            manifest = {
                name: {
                    "size": os.path.getsize(os.path.join(staging, name)),
                    "sha256": files.sha256(os.path.join(staging, name)),
                }
                for name in (STATE_FILE, META_FILE)
            }
            _write_json(os.path.join(staging, MANIFEST_FILE), manifest)
            files.fsync(staging)
            if os.path.exists(final):  # a torn folder of the same step
                shutil.rmtree(final)
            os.rename(staging, final)
            files.fsync(self.directory)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        files.atomic_write(
            os.path.join(self.directory, LATEST_FILE),
            lambda path: _write_text(path, os.path.basename(final) + "\n"),
        )
        for old in self.checkpoints()[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def verify(self, folder) -> dict | None:
        """`folder`'s metadata if every file matches its manifest, else None."""
        try:
            with open(os.path.join(folder, MANIFEST_FILE)) as file:
                manifest = json.load(file)
            for name in (STATE_FILE, META_FILE):
                path = os.path.join(folder, name)
                expected = manifest[name]
                if os.path.getsize(path) != expected["size"]:
                    return None
                if files.sha256(path) != expected["sha256"]:
                    return None
            with open(os.path.join(folder, META_FILE)) as file:
                meta = json.load(file)
            int(meta["step"])
            return meta
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def restore(self, model) -> dict | None:
        """Loads the newest usable checkpoint into `model`; returns its
        metadata, or None if this run never saved one.

        Raises:
            NoCheckpointError: checkpoints were saved but none is usable.
        """
        candidates = self.checkpoints()
        for index, folder in enumerate(candidates):
            meta = self.verify(folder)
            if meta is not None:
                try:
                    model.load_weights(os.path.join(folder, STATE_FILE))
                except Exception as error:  # a file that matches but will not load
                    reason = f"it does not load ({type(error).__name__})"
                else:
                    return meta
            else:
                reason = "its files do not match its manifest"
            fallback = (
                f"using {os.path.basename(candidates[index + 1])}"
                if index + 1 < len(candidates)
                else "no older checkpoint left"
            )
            warnings.warn(
                f"Checkpoint {folder} is unusable: {reason}; {fallback}.", stacklevel=2
            )
        if candidates or self.ever_saved():
            raise NoCheckpointError(
                f"No usable checkpoint in {self.directory} (the run saved one, "
                f"but it is missing or damaged); expected a step-* folder that "
                f"matches its manifest. Pass --restart to train this run again "
                f"from step 0."
            )
        return None


# On several workers, the checkpoint decisions within an epoch are agreed
# (an all-reduce: 2.0-3.8 ms between 2 CPU processes, bench/multi_worker.py)
# when a step-driven checkpoint is due and otherwise once every this many
# steps: a signal or `every_seconds` takes effect within them.
AGREE_EVERY_STEPS = 16


class RunCheckpoint(keras.callbacks.Callback):
    """Checkpoints a run every few steps, at epochs' ends, and on SIGTERM.

    An epoch's end and every `every_n_steps` steps are checkpointed while
    writing checkpoints stays within `budget` of the time since training
    began: a small model runs epochs (and 100 steps) faster than a checkpoint
    is written (Keras's weight saving costs ~30 ms even for a tiny network),
    so a checkpoint that would exceed it waits for the first step at which
    it fits. The last epoch's end, `every_seconds` and signals always are.

    Put it last in the callbacks, so that an epoch's grid, log row and export
    are written before the checkpoint that marks the epoch done.

    Args:
        manager: the run's `CheckpointManager`.
        steps_per_epoch: batches in one epoch of the run's data.
        every_n_steps: also checkpoint every this many steps (at the end of
            the compiled call that reaches it); `None` for epochs only.
        every_seconds: also checkpoint when this long has passed since the
            last one; `None` for never.
        budget: the largest share of the training time that epoch-end and
            step-driven checkpoints may take; `None` for no limit.
    """

    def __init__(
        self,
        manager,
        steps_per_epoch,
        every_n_steps=None,
        every_seconds=None,
        budget=0.05,
    ):
        super().__init__()
        self.manager = manager
        self.steps_per_epoch = int(steps_per_epoch)
        self.every_n_steps = every_n_steps
        self.every_seconds = every_seconds
        self.batch_offset = 0  # batches of the current epoch done before this fit
        self.step = 0  # global steps done
        self.saved_step = None
        self.saved_path = None
        self.budget = budget
        self.writing_seconds = 0.0  # spent writing checkpoints so far
        self.written = 0  # checkpoints written so far
        self._began = self._saved_at = time.monotonic()
        self._epoch = 0
        self._signal = None
        # A resumed mid-epoch checkpoint's metric state, for the epoch's start.
        self.resumed_metrics = None
        # On several workers, `Distribution.any_worker`: every worker
        # checkpoints (and stops) when any of them decides to, since saving
        # reads the replicated state in a collective of all of them.
        self.agree = None
        self._agreed_at = 0  # the step of the last agreement
        # What messages call the checkpoint (a worker other than the chief
        # writes its own into a folder it removes).
        self.shown_path = None

    def on_train_begin(self, logs=None):
        self._began = self._saved_at = time.monotonic()

    def request_stop(self, signum, frame=None) -> None:
        """A signal handler: checkpoint at the next step's end, then stop."""
        self._signal = signum

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.resumed_metrics:
            # `fit` has just reset the metrics: the interrupted epoch's logs
            # average its batches before the checkpoint too.
            for metric in self.model.metrics:
                values = self.resumed_metrics.get(metric.name)
                if values is not None and len(values) == len(metric.variables):
                    for variable, value in zip(metric.variables, values, strict=True):
                        variable.assign(np.asarray(value, dtype=variable.dtype))
        self.resumed_metrics = None

    def on_train_batch_end(self, batch, logs=None):
        done = self.batch_offset + batch + 1  # batches of this epoch
        self.step = self._epoch * self.steps_per_epoch + done
        if done >= self.steps_per_epoch:
            # The epoch's end checkpoints it, after its log row, grid and
            # export: a checkpoint here, then a kill, would skip them.
            return
        due = self.every_n_steps and self.step - (self.saved_step or 0) >= (
            self.every_n_steps
        )
        if (
            self.agree is not None
            and not due
            and (self.step // AGREE_EVERY_STEPS == self._agreed_at // AGREE_EVERY_STEPS)
        ):
            return  # signals and timers wait for the next agreement
        stop, save = self._agreed(
            self._signal is not None, (due and self._affordable()) or self._late()
        )
        if stop:
            self._save(self._epoch, done)
            self._stop()
        if save:
            self._save(self._epoch, done)

    def on_epoch_end(self, epoch, logs=None):
        self.step = (epoch + 1) * self.steps_per_epoch
        self.batch_offset = 0
        last = epoch + 1 >= self.params.get("epochs", epoch + 1)
        stop, save = self._agreed(
            self._signal is not None, last or self._late() or self._affordable()
        )
        if save or stop:
            self._save(epoch + 1, 0)
        if stop:
            self._stop()

    def _agreed(self, stop, save):
        if self.agree is None:
            return stop, save
        self._agreed_at = self.step
        return self.agree([stop, save])

    def _stop(self):
        name = (
            signal.Signals(self._signal).name
            if self._signal is not None
            else "a signal to another worker"
        )
        epoch, batch = divmod(self.step, self.steps_per_epoch)
        where = f"epoch {epoch + 1}" if batch else f"the end of epoch {epoch}"
        raise Preempted(
            f"Stopped by {name} at step {self.step} ({where}); checkpoint "
            f"{self.shown_path or self.saved_path} written. Run the same command "
            f"with --resume to continue from this step."
        )

    def _late(self) -> bool:
        """Whether `every_seconds` have passed since the last checkpoint."""
        return (
            self.every_seconds is not None
            and time.monotonic() - self._saved_at >= self.every_seconds
        )

    def _affordable(self) -> bool:
        """Whether one more checkpoint keeps writing within the budget."""
        if self.budget is None:
            return True
        spent = time.monotonic() - self._began
        # The next write is expected to take as long as the average one.
        expected = self.writing_seconds / max(self.written, 1)
        return self.writing_seconds + expected <= self.budget * spent

    def _save(self, epoch, batch):
        if self.step == self.saved_step:
            return  # written already (a step-driven checkpoint at an epoch's end)
        if batch == self.steps_per_epoch:  # the epoch's last step
            epoch, batch = epoch + 1, 0
        meta = {
            "step": self.step,
            "epoch": epoch,
            "batch": batch,
            "steps_per_epoch": self.steps_per_epoch,
        }
        if batch:
            meta["metrics"] = {
                metric.name: [
                    keras.ops.convert_to_numpy(variable).tolist()
                    for variable in metric.variables
                ]
                for metric in self.model.metrics
                if metric.variables
            }
        began = time.monotonic()
        self.saved_path = self.manager.save(self.model, meta)
        self.saved_step = self.step
        self._saved_at = time.monotonic()
        self.writing_seconds += self._saved_at - began
        self.written += 1
