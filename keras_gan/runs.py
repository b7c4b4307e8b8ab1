"""A training run on disk: its folder, its settings, its callbacks, its resume.

`runs/<name>/` holds `config.json` (the settings), `class_names.json` (a
conditional run's class names, when its data has them), `checkpoint/` (the
newest verified checkpoints: weights, both optimizers, the noise state and
the step, see `keras_gan.checkpoints`), `samples/` (grids and GIF),
`log.csv`, `tensorboard/`, `.lock` (held by the process that trains it) and,
at the end, `gan.keras` and `summary.json`. The generator is exported to
`saved_models/<name>/<version>/`.
"""

import contextlib
import csv
import dataclasses
import fcntl
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import warnings

import keras

from keras_gan import callbacks as gan_callbacks
from keras_gan import checkpoints
from keras_gan import data
from keras_gan import determinism
from keras_gan import export
from keras_gan import files
from keras_gan import networks
from keras_gan.choices import EXPORT_FORMATS
from keras_gan.choices import EXPORT_GENERATORS
from keras_gan.choices import MIXED_PRECISION
from keras_gan.data import shapes
from keras_gan.distribute import Distribution
from keras_gan.errors import InputError
from keras_gan.errors import RunLockedError
from keras_gan.evaluation import Evaluator
from keras_gan.models import GAN
from keras_gan.models import TRAINING_DEFAULTS

# Settings that define the model and its data: fixed for the life of a run.
MODEL_SETTINGS = {
    "dataset": "mnist",
    "data_dir": None,
    "image_size": None,  # [height, width], or None for the data's own
    "channels": None,
    "on_bad_image": "fail",
    "architecture": "mlp",
    "loss": "non_saturating",
    "batch_size": 64,
    "latent_dim": 100,
    "learning_rate": 2e-4,
    "seed": 0,
    "conditional": False,
    **TRAINING_DEFAULTS,
    "ema": None,
    "mixed_precision": None,
    "deterministic": False,
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class _CSVLogger(keras.callbacks.CSVLogger):
    # Keras's logger adds a `val_` twin of every column when the first epoch
    # has no validation logs; a GAN run has none, so those columns are noise.
    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and logs:
            self.keys = sorted(logs)
        super().on_epoch_end(epoch, logs)


@dataclasses.dataclass
class RunResult:
    """What a finished run left behind."""

    run_dir: str
    export_path: str | None
    history: dict
    seconds: float
    epochs_done: int  # the run's total, earlier invocations' epochs included
    first_epoch: int = 0  # epochs completed before this invocation
    first_step: int = 0  # steps done before this invocation (0 unless resumed)
    evaluations: list = dataclasses.field(default_factory=list)


def _write_json(path, value):
    with open(path, "w") as file:
        json.dump(value, file, indent=2)


def check_name(name: str) -> str:
    """Returns `name` if it is a safe single folder name, else raises."""
    if not name or not _NAME.match(name) or ".." in name:
        raise InputError(
            f"Invalid run name {name!r}; expected letters, digits, '.', '_' or "
            f"'-', starting with a letter or digit, without '..' or path separators."
        )
    return name


def _positive(settings, keys):
    for key in keys:
        value = settings[key]
        if value is not None and not value > 0:
            raise InputError(f"{key} must be positive; received {value}.")


LOCK_FILE = ".lock"


@contextlib.contextmanager
def _holding(run_dir):
    """Holds `run_dir` for this process: a second writer is refused at once.

    The lock is `fcntl.flock` on `run_dir/.lock`, which the kernel releases
    when the process ends in any way (SIGKILL included). Folders this call
    created are removed again if nothing but the lock was written into them.
    """
    created = []  # the folders made here, deepest first
    folder = os.path.abspath(run_dir)
    while not os.path.exists(folder):
        created.append(folder)
        folder = os.path.dirname(folder)
    files.make_dirs(run_dir)
    path = os.path.join(run_dir, LOCK_FILE)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(handle, 32).decode(errors="replace").strip() or "?"
        os.close(handle)
        raise RunLockedError(
            f"{run_dir} is being trained by process {holder}; wait for it to "
            f"end, or choose another --name."
        ) from None
    os.ftruncate(handle, 0)
    os.write(handle, f"{os.getpid()}\n".encode())
    try:
        yield
    except BaseException:
        if created and os.listdir(run_dir) == [LOCK_FILE]:
            os.remove(path)
            for folder in created:
                with contextlib.suppress(OSError):  # not empty: keep it
                    os.rmdir(folder)
        raise
    finally:
        os.close(handle)


@contextlib.contextmanager
def _checkpoint_on_signals(checkpoint):
    """SIGTERM and SIGINT make `checkpoint` save the current step and stop."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {
        number: signal.signal(number, checkpoint.request_stop)
        for number in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class _OneRun(keras.callbacks.CallbackList):
    """The callbacks of a run that `fit` trains in more than one call (the
    rest of an interrupted epoch, then whole epochs): they see one
    `on_train_begin` and, from `end()`, one `on_train_end`."""

    _begun = False
    _end_logs = None

    def on_train_begin(self, logs=None):
        if not self._begun:
            self._begun = True
            super().on_train_begin(logs)

    def on_train_end(self, logs=None):
        self._end_logs = logs

    def end(self):
        super().on_train_end(self._end_logs)


def _truncate_log(path, epochs) -> None:
    """Keeps the rows of the first `epochs` epochs of a CSV log (a resumed
    run writes the rest again)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as file:
        rows = list(csv.reader(file))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [
        row for row in rows[1:] if row[column].isdigit() and int(row[column]) < epochs
    ]
    if len(kept) == len(rows):
        return

    def write(staging):
        with open(staging, "w", newline="") as file:
            csv.writer(file).writerows(kept)

    files.atomic_write(path, write)


def resolve_settings(run_dir, resume: bool, given: dict) -> dict:
    """Merges the settings given now with defaults (new run) or the run's own.

    Args:
        run_dir: the run's folder.
        resume: whether the run continues.
        given: model settings passed now; `None` values mean "not given".

    Returns:
        The complete model settings.
    """
    given = {key: value for key, value in given.items() if value is not None}
    config_path = os.path.join(run_dir, "config.json")
    if not resume:
        if os.path.exists(run_dir) and set(os.listdir(run_dir)) - {LOCK_FILE}:
            raise InputError(
                f"{run_dir} already holds a run; pass --resume to continue it "
                f"or choose another --name."
            )
        settings = {**MODEL_SETTINGS, **given}
        if settings["data_dir"] is not None:
            settings["data_dir"] = os.path.abspath(settings["data_dir"])
        return settings
    try:
        with open(config_path) as file:
            stored = json.load(file)
    except FileNotFoundError as error:
        raise InputError(
            f"No run to resume: {config_path} does not exist; expected a run "
            f"started earlier with the same --name."
        ) from error
    except (OSError, ValueError) as error:
        raise InputError(
            f"{config_path} is unreadable ({error}); expected the JSON a run writes."
        ) from error
    settings = {**MODEL_SETTINGS, **stored}
    if given.get("data_dir") is not None:
        given["data_dir"] = os.path.abspath(given["data_dir"])
    for key, value in given.items():
        if settings.get(key) != value:
            raise InputError(
                f"--{key.replace('_', '-')} {value} differs from the run's "
                f"{settings.get(key)}; a resumed run keeps its model and data "
                f"settings (only --epochs and speed flags may change)."
            )
    return settings


def train(
    name: str,
    *,
    dataset: str | None = None,
    data_dir: str | None = None,
    image_size: int | tuple[int, int] | str | None = None,
    channels: int | None = None,
    on_bad_image: str | None = None,
    cache_dir: str | None = None,
    architecture: str | None = None,
    loss: str | None = None,
    batch_size: int | None = None,
    latent_dim: int | None = None,
    learning_rate: float | None = None,
    seed: int | None = None,
    conditional: bool | None = None,
    gradient_penalty: float | None = None,
    r1: float | None = None,
    r2: float | None = None,
    penalty_interval: int | None = None,
    d_steps: int | None = None,
    augment: str | None = None,
    ema: float | None = None,
    mixed_precision: str | None = None,
    deterministic: bool | None = None,
    epochs: int = 30,
    steps_per_execution: int | str = "auto",
    jit_compile: bool | str = "auto",
    distribute: str | None = None,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    resume: bool = False,
    runs_dir: str = "runs",
    export_dir: str = "saved_models",
    sample_every: int = 1,
    export_every: int | None = None,
    evaluate_every: int | None = None,
    evaluate_samples: int | None = None,
    keep_best: bool = False,
    checkpoint_every: int | None = None,
    checkpoint_seconds: float | None = 600,
    checkpoint_budget: float | None = 0.05,
    keep_checkpoints: int = 2,
    restart: bool = False,
    max_loss: float | None = None,
    verbose="auto",
) -> RunResult:
    """Runs (or resumes) a whole training job: data, model, callbacks, export.

    Model settings left `None` take their defaults (`MODEL_SETTINGS`) in a new
    run and the stored values in a resumed one.

    Args:
        name: the run's name: `runs_dir/<name>/` and `export_dir/<name>/`.
        dataset: a TFDS image dataset name or `"digits"`.
        data_dir: a path (overrides `dataset`): a folder of images (class
            subfolders are labels), a folder of MNIST-format IDX files, or a
            `.npy` / `.npz` file (see `keras_gan.data.open_source`).
        image_size: crop and resize every image to this: an int, `(height,
            width)` or `"64x48"`; `None` keeps the data's size.
        channels: 1 or 3 to convert every image; `None` keeps grey and colour.
        on_bad_image: `"fail"` (default) or `"skip"` unreadable image files.
        cache_dir: where image folders are decoded to (`None`:
            `keras_gan.data.default_cache_dir()`); not a model setting.
        architecture: a name in `keras_gan.networks.ARCHITECTURES`.
        loss: a name in `keras_gan.losses.LOSSES`.
        batch_size: images per step.
        latent_dim: size of the latent vector.
        learning_rate: Adam learning rate of both players (beta_1=0.5).
        seed: seed of the data order and the training noise.
        conditional: train a class-conditional model on (image, label) data.
        gradient_penalty, r1, r2, penalty_interval, d_steps, augment: as in
            `GAN.compile`.
        ema: decay of the generator's weight average (e.g. 0.999), used for
            grids, evaluation and exports; `None` for none.
        mixed_precision: `"mixed_float16"` or `"mixed_bfloat16"`, or `None`
            for float32.
        deterministic: also turn the backend's op determinism on
            (`keras_gan.determinism`): with the same seed, bit-equal weights
            and grids; kept by a resumed run.
        epochs: total number of epochs, counting those of a resumed run.
        steps_per_execution: training steps per compiled call; `"auto"` as in
            `GAN.compile`.
        jit_compile: compile the step with XLA; `"auto"` as in `GAN.compile`.
        distribute: `"mirrored"` (TensorFlow) or `"data-parallel"` (JAX) to
            split each batch over this host's devices, `"multi-worker"` over
            several processes or hosts (`keras_gan.distribute`); `batch_size`
            stays the global batch. Not a model setting: a resumed run may
            change it (config.json keeps the latest). With several workers
            only worker 0 (the chief) writes under `runs_dir` and
            `export_dir`; the others write into a temporary folder they
            remove, and read the run's settings and checkpoint from the
            chief's `runs_dir` when resuming (a file system they share).
        coordinator, num_processes, process_id: the JAX cluster of
            `"multi-worker"` (`keras_gan.distribute.Distribution.for_name`);
            TensorFlow reads `TF_CONFIG`.
        resume: continue `runs_dir/<name>` from its newest usable checkpoint,
            at the step it was written (mid-epoch too).
        runs_dir: parent folder of runs.
        export_dir: parent folder of exported generators.
        sample_every: write a sample grid every this many epochs.
        export_every: also export every this many epochs (`None`: at the end).
        evaluate_every: add sample-quality metrics (`keras_gan.evaluation`) to
            the logs every this many epochs; `None` for never.
        evaluate_samples: images per set for those metrics; `None` for
            `min(10_000, half the dataset)`.
        keep_best: export a version only when the evaluated Frechet distance
            is the best so far (needs `evaluate_every`), instead of at the end.
        checkpoint_every: also checkpoint every this many steps (at the end
            of the compiled call that reaches it); `None`: at each epoch's end,
            on SIGTERM / SIGINT and every `checkpoint_seconds`.
        checkpoint_seconds: also checkpoint when this long has passed since
            the last checkpoint; `None` for never.
        checkpoint_budget: the largest share of the training time that
            checkpoints at epochs' ends and every `checkpoint_every` steps may
            take (one that would exceed it waits until it fits); `None` for
            no limit. The last epoch, signals and `checkpoint_seconds` always
            checkpoint.
        keep_checkpoints: how many of the newest checkpoints stay on disk.
        max_loss: stop (as on a NaN loss) when `d_loss` or `g_loss` exceeds
            this in absolute value; `None` for no bound.
        restart: with `resume`, discard the run's checkpoints and train it
            again from step 0 with its stored settings.
        verbose: passed to `fit` (`"auto"` shows Keras's progress bar).

    Returns:
        A `RunResult`.
    """
    arguments = dict(locals())
    for key in ("distribute", "coordinator", "num_processes", "process_id"):
        del arguments[key]
    check_name(name)
    distribution = Distribution.for_name(
        distribute,
        coordinator=coordinator,
        num_processes=num_processes,
        process_id=process_id,
    )
    with distribution.sharing_failures():
        if distribution.is_chief:
            return _train(distribution, **arguments)
        # The other workers take every step (and every checkpoint: reading
        # the replicated state is a collective of all workers) with the
        # chief, into a folder of their own that they remove.
        scratch = tempfile.mkdtemp(prefix=f"keras_gan-worker{distribution.worker}-")
        try:
            result = _train(
                distribution,
                **{
                    **arguments,
                    "runs_dir": os.path.join(scratch, "runs"),
                    "export_dir": os.path.join(scratch, "saved_models"),
                },
                shared_runs_dir=runs_dir,
            )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return dataclasses.replace(
            result, run_dir=files.output_folder(runs_dir, name), export_path=None
        )


def _train(
    distribution,
    name,
    *,
    dataset,
    data_dir,
    image_size,
    channels,
    on_bad_image,
    cache_dir,
    architecture,
    loss,
    batch_size,
    latent_dim,
    learning_rate,
    seed,
    conditional,
    gradient_penalty,
    r1,
    r2,
    penalty_interval,
    d_steps,
    augment,
    ema,
    mixed_precision,
    deterministic,
    epochs,
    steps_per_execution,
    jit_compile,
    resume,
    runs_dir,
    export_dir,
    sample_every,
    export_every,
    evaluate_every,
    evaluate_samples,
    keep_best,
    checkpoint_every,
    checkpoint_seconds,
    checkpoint_budget,
    keep_checkpoints,
    restart,
    max_loss,
    verbose,
    shared_runs_dir=None,
) -> RunResult:
    """`train` on one worker; `shared_runs_dir`: the chief's `runs_dir`, which
    a worker other than the chief reads a resumed run from."""
    run_dir = files.output_folder(runs_dir, name)
    # Where a resumed run's settings and checkpoints are read.
    source_dir = files.output_folder(shared_runs_dir or runs_dir, name)
    export_base = files.output_folder(export_dir, name)
    if image_size is not None:
        if isinstance(image_size, str):
            image_size = data.parse_image_size(image_size)
        image_size = list(shapes.checked_image_size(image_size))
    given = {
        "dataset": dataset,
        "data_dir": data_dir,
        "image_size": image_size,
        "channels": channels,
        "on_bad_image": on_bad_image,
        "architecture": architecture,
        "loss": loss,
        "batch_size": batch_size,
        "latent_dim": latent_dim,
        "learning_rate": learning_rate,
        "seed": seed,
        "conditional": conditional,
        "gradient_penalty": gradient_penalty,
        "r1": r1,
        "r2": r2,
        "penalty_interval": penalty_interval,
        "d_steps": d_steps,
        "augment": augment,
        "ema": ema,
        "mixed_precision": mixed_precision,
        "deterministic": deterministic,
    }
    schedule = {
        "epochs": epochs,
        "sample_every": sample_every,
        "export_every": export_every,
        "evaluate_every": evaluate_every,
        "evaluate_samples": evaluate_samples,
        "checkpoint_every": checkpoint_every,
        "checkpoint_seconds": checkpoint_seconds,
        "checkpoint_budget": checkpoint_budget,
        "keep_checkpoints": keep_checkpoints,
        "max_loss": max_loss,
    }
    if steps_per_execution != "auto":
        schedule["steps_per_execution"] = steps_per_execution
    _positive(schedule, tuple(schedule))
    if keep_best and not evaluate_every:
        raise InputError("--keep-best needs --evaluate-every N; received none.")
    resume = resume or restart
    with _holding(run_dir):
        settings = resolve_settings(source_dir if resume else run_dir, resume, given)
        if settings["mixed_precision"] not in (None, *MIXED_PRECISION):
            raise InputError(
                f"Unknown mixed precision policy {settings['mixed_precision']!r}; "
                f"expected one of: {', '.join(MIXED_PRECISION)}."
            )
        _positive(settings, ("batch_size", "latent_dim", "learning_rate"))
        replicas_note = distribution.describe(settings["batch_size"])
        if verbose and distribution.name is not None:
            print(f"Distributed: {replicas_note}.")
        if settings["deterministic"]:
            for line in determinism.enable():
                if verbose:
                    print(f"Deterministic: {line}.")

        # Everything that can fail on bad input fails before anything is written.
        data_options = {
            "image_size": settings["image_size"],
            "channels": settings["channels"],
            "on_bad_image": settings["on_bad_image"],
        }
        source, dataset_ = open_data(
            settings, cache_dir=cache_dir, log=print if verbose else None
        )
        class_names = source.class_names if settings["conditional"] else None
        steps_per_epoch = int(dataset_.cardinality())
        if steps_per_epoch < 1:
            raise InputError(
                f"The dataset's number of batches is unknown ({steps_per_epoch}); "
                f"expected a pipeline of known length."
            )
        try:
            with distribution.scope():  # variables mirrored / replicated
                gan, jit_compile, steps_per_execution = build_gan(
                    settings,
                    data.image_shape(dataset_),
                    source.num_classes if settings["conditional"] else None,
                    jit_compile,
                    steps_per_execution,
                    steps_per_epoch,
                )
        except Exception as error:
            if not _out_of_memory(error):
                raise
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            raise InputError(
                f"The networks do not fit in memory with latent_dim="
                f"{settings['latent_dim']}, batch_size={settings['batch_size']} "
                f"({type(error).__name__}: {first_line}); expected smaller settings."
            ) from None
        manager = checkpoints.CheckpointManager(
            os.path.join(run_dir, "checkpoint"), keep=keep_checkpoints
        )
        manager.remove_staging()  # of a process that died saving (we hold the run)
        if restart:
            manager.discard()
        restoring = (
            manager
            if source_dir == run_dir
            else (checkpoints.CheckpointManager(os.path.join(source_dir, "checkpoint")))
        )
        meta = restoring.restore(gan) if resume and not restart else None
        step = 0
        if meta is not None:
            step = int(meta["step"])
            if int(meta["steps_per_epoch"]) != steps_per_epoch:
                raise InputError(
                    f"The run's data changed: its checkpoint has "
                    f"{meta['steps_per_epoch']} batches per epoch, the data now "
                    f"{steps_per_epoch}; expected the data it was started on."
                )
        if distribution.workers > 1:
            steps = distribution.gather([step, steps_per_epoch])
            if len({tuple(row) for row in steps}) > 1:
                raise InputError(
                    f"The workers start from different steps or data (step, "
                    f"batches per epoch: {steps.tolist()}); expected every worker "
                    f"to read the chief's runs folder (a shared file system) and "
                    f"the same data."
                )
        total = epochs * steps_per_epoch
        finishing = step >= total
        if finishing and (step > total or _finished(source_dir, epochs)):
            done = step // steps_per_epoch
            raise InputError(
                f"{run_dir} has already trained {done} epochs; pass --epochs "
                f"larger than {done} to continue it."
            )
        evaluator = None
        if evaluate_every:
            evaluator = Evaluator.for_dataset(
                settings["dataset"],
                settings["data_dir"],
                num_samples=evaluate_samples,
                seed=settings["seed"],
                train_split=source.arrays(),
                **data_options,
            )
        files.make_dirs(export_dir)  # saved_models/<name> comes with its export
        if not resume or settings.get("distribute") != distribution.name:
            settings["distribute"] = distribution.name
            files.atomic_write(
                os.path.join(run_dir, "config.json"),
                lambda path: _write_json(path, settings),
            )
        if class_names is not None:
            files.atomic_write(
                os.path.join(run_dir, "class_names.json"),
                lambda path: _write_json(path, class_names),
            )
        log_path = os.path.join(run_dir, "log.csv")
        _truncate_log(log_path, step // steps_per_epoch)

        checkpoint = checkpoints.RunCheckpoint(
            manager,
            steps_per_epoch,
            every_n_steps=checkpoint_every,
            every_seconds=checkpoint_seconds,
            budget=checkpoint_budget,
        )
        if meta is not None:
            checkpoint.resumed_metrics = meta.get("metrics")
        if distribution.workers > 1:
            checkpoint.agree = distribution.any_worker
        if source_dir != run_dir:
            checkpoint.shown_path = f"of the chief in {source_dir}"
        callbacks = [
            # First, so that a diverged batch raises before anything is saved.
            gan_callbacks.TerminateOnNonFinite(max_loss=max_loss)
        ]
        if evaluator is not None:
            # Before the loggers, so that they record its metrics.
            evaluate = gan_callbacks.Evaluate(
                evaluator,
                every_n_epochs=evaluate_every,
                export_dir=export_base if keep_best else None,
                class_names=class_names,
            )
            callbacks.append(evaluate)
        exporter = gan_callbacks.GeneratorExporter(
            export_base, every_n_epochs=export_every, class_names=class_names
        )
        tensorboard_dir = os.path.join(run_dir, "tensorboard")
        callbacks += [
            _CSVLogger(log_path, append=True),
            keras.callbacks.TensorBoard(tensorboard_dir),
            gan_callbacks.SampleGrid(
                os.path.join(run_dir, "samples"),
                every_n_epochs=sample_every,
                seed=settings["seed"],
                log_dir=tensorboard_dir,
            ),
        ]
        if not keep_best:
            callbacks.append(exporter)
        # Last: an epoch's grid, log row and export come before the checkpoint
        # that marks the epoch done.
        callbacks.append(checkpoint)
        callbacks = _OneRun(
            callbacks,
            add_history=True,
            add_progbar=verbose != 0,
            verbose=verbose,
            epochs=epochs,
            steps=steps_per_epoch,
            model=gan,
        )
        start = time.perf_counter()
        # On JAX the distribution must be current while fit runs.
        with _checkpoint_on_signals(checkpoint), distribution.scope():
            if finishing:  # trained to the end, stopped before its export
                callbacks.on_train_begin()
                if not keep_best:
                    exporter.on_epoch_end(epochs - 1)
            for pipeline, first, last, offset in _segments(
                dataset_, step, steps_per_epoch, epochs
            ):
                checkpoint.batch_offset = offset
                steps = steps_per_epoch - offset  # the progress bar's length
                callbacks.set_params(
                    {"verbose": verbose, "epochs": epochs, "steps": steps}
                )
                gan.fit(
                    distribution.shard(pipeline),
                    initial_epoch=first,
                    epochs=last,
                    callbacks=callbacks,
                    verbose=verbose,
                )
            callbacks.end()
        seconds = time.perf_counter() - start
        files.atomic_write(os.path.join(run_dir, "gan.keras"), gan.save)
        # This invocation's timing, for benchmarks and tables.
        summary = {
            "epochs": epochs,
            "first_epoch": step // steps_per_epoch,
            "first_step": step,
            "steps": epochs * steps_per_epoch,
            "train_seconds": seconds,
            "checkpoint_seconds": checkpoint.writing_seconds,
            "checkpoints_written": checkpoint.written,
            "distribute": distribution.name,
            "replicas": distribution.replicas,
            "workers": distribution.workers,
            "global_batch": settings["batch_size"],
            "per_replica_batch": distribution.per_replica_batch(settings["batch_size"]),
        }
        files.atomic_write(
            os.path.join(run_dir, "summary.json"),
            lambda path: _write_json(path, summary),
        )
    history = [
        c for c in callbacks.callbacks if isinstance(c, keras.callbacks.History)
    ][0]
    exports = evaluate.best_exports if keep_best else exporter.exported
    return RunResult(
        run_dir=run_dir,
        export_path=exports[-1] if exports else None,
        history=history.history,
        seconds=seconds,
        epochs_done=epochs,
        first_epoch=step // steps_per_epoch,
        first_step=step,
        evaluations=evaluate.results if evaluator is not None else [],
    )


def _out_of_memory(error) -> bool:
    """Whether `error` is an allocation failure of Python or of a backend."""
    if isinstance(error, MemoryError):
        return True
    text = f"{type(error).__name__} {error}"
    return any(
        sign in text
        for sign in (
            "ResourceExhausted",
            "RESOURCE_EXHAUSTED",
            "OutOfMemory",
            "can't allocate memory",
        )
    )


def _finished(run_dir, epochs) -> bool:
    """Whether the run's last invocation completed `epochs` and its outputs."""
    return _summary_number(run_dir, "epochs") == epochs


def _summary_number(run_dir, key) -> int | None:
    """An int of the run's `summary.json` (written last, after `gan.keras`),
    or None if it is absent or unreadable."""
    try:
        with open(os.path.join(run_dir, "summary.json")) as file:
            return int(json.load(file)[key])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _segments(dataset, step, steps_per_epoch, epochs):
    """The `fit` calls that train a run from global `step` to the end: the rest
    of an interrupted epoch (its first batches skipped), then whole epochs.

    Yields `(pipeline, first epoch, end epoch, batches skipped)`. An in-memory
    pipeline is set to the pass (epoch) each call starts at, so every epoch
    sees the order it has in an uninterrupted run.
    """
    epoch, batch = divmod(step, steps_per_epoch)
    source = data.in_memory_source(dataset)
    if batch:
        if source is not None:
            source.seek(epoch)
        else:
            warnings.warn(
                "The dataset is streamed: the rest of the interrupted epoch is "
                "drawn in a new order (step-exact order needs in-memory data).",
                stacklevel=3,
            )
        yield dataset.skip(batch), epoch, epoch + 1, batch
        epoch += 1
    if epoch < epochs:
        if source is not None:
            source.seek(epoch)
        yield dataset, epoch, epochs, 0


def open_data(settings, cache_dir=None, log=None):
    """Opens a run's data as the run reads it.

    Args:
        settings: the run's settings (`MODEL_SETTINGS` keys).
        cache_dir, log: see `keras_gan.data.open_source`.

    Returns:
        `(source, dataset)`: the `keras_gan.data.DataSource` and the training
        pipeline of batches.
    """
    source = data.open_source(
        settings["dataset"],
        settings["data_dir"],
        cache_dir=cache_dir,
        log=log,
        with_labels=settings["conditional"],
        image_size=settings["image_size"],
        channels=settings["channels"],
        on_bad_image=settings["on_bad_image"],
    )
    dataset = source.pipeline(
        settings["batch_size"],
        seed=settings["seed"],
        with_labels=settings["conditional"],
    )
    return source, dataset


def build_gan(
    settings,
    image_shape,
    num_classes=None,
    jit_compile="auto",
    steps_per_execution="auto",
    steps_per_epoch=None,
):
    """The GAN of a run, built from its settings as the run builds it (its
    initial weights from its seed) and compiled, so that the run's
    checkpoints load into it.

    Args:
        settings: the run's settings (`MODEL_SETTINGS` keys).
        image_shape: `(height, width, channels)` of the run's images.
        num_classes: the classes of a conditional run, else `None`.
        jit_compile, steps_per_execution: as in `GAN.compile`.
        steps_per_epoch: batches per epoch, the most steps per execution;
            `None` for no bound.

    Returns:
        `(gan, jit_compile, steps_per_execution)`, the last two resolved.
    """
    policy = keras.config.dtype_policy()
    try:  # the networks' layers take the global policy when they are built
        keras.config.set_dtype_policy(settings["mixed_precision"] or "float32")
        # The initial weights are drawn from Keras's global seed.
        keras.utils.set_random_seed(settings["seed"])
        generator, discriminator = networks.build(
            settings["architecture"],
            settings["latent_dim"],
            image_shape,
            num_classes=num_classes,
        )
        gan = GAN(
            generator,
            discriminator,
            seed=settings["seed"],
            num_classes=num_classes,
            ema_decay=settings["ema"],
            name="gan",
        )
    finally:
        keras.config.set_dtype_policy(policy)
    if jit_compile == "auto":
        jit_compile = gan.auto_jit_compile()
    if steps_per_execution == "auto":
        steps_per_execution = gan.auto_steps_per_execution(jit_compile)
    elif steps_per_execution > 1 and keras.config.backend() == "torch":
        raise InputError(
            f"--steps-per-execution {steps_per_execution}: the PyTorch backend runs "
            f"one step per call; expected 1 (or the default) there."
        )
    if steps_per_epoch is not None:
        # More would not run anyway, and would confuse the progress bar.
        steps_per_execution = min(steps_per_execution, steps_per_epoch)
    gan.compile(
        d_optimizer=keras.optimizers.Adam(settings["learning_rate"], beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(settings["learning_rate"], beta_1=0.5),
        loss=settings["loss"],
        **{option: settings[option] for option in TRAINING_DEFAULTS},
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return gan, jit_compile, steps_per_execution


def trained_gan(run_dir, cache_dir=None, log=None):
    """The GAN a run trained: its `gan.keras` or, if a checkpoint holds a
    later step (the run was resumed since) or there is no `gan.keras`, its
    newest usable checkpoint.

    A checkpoint holds weights only: the GAN is built from the run's
    `config.json` as the run builds it, its data opened (as `--resume` opens
    it) for the image shape and the classes, and the weights restored.

    Args:
        run_dir: the run's folder, `runs/<name>`.
        cache_dir, log: see `keras_gan.data.open_source`.

    Returns:
        `(gan, source)`: the GAN, and the file or folder its weights came from.
    """
    run_dir = os.fspath(run_dir)
    settings = _stored_settings(run_dir)
    saved = os.path.join(run_dir, "gan.keras")
    manager = checkpoints.CheckpointManager(os.path.join(run_dir, "checkpoint"))
    usable = (manager.verify(folder) for folder in manager.checkpoints())
    newest = next((int(meta["step"]) for meta in usable if meta is not None), -1)
    if os.path.exists(saved) and newest <= _final_step(run_dir):
        # safe_mode (the default) refuses a file whose Lambda would run code.
        return keras.saving.load_model(saved, compile=False), saved
    if not manager.checkpoints() and not manager.ever_saved():
        raise InputError(
            f"{run_dir} has no gan.keras and no checkpoint; expected a run that "
            f"trained at least one epoch."
        )
    source, dataset = open_data(settings, cache_dir=cache_dir, log=log)
    num_classes = source.num_classes if settings["conditional"] else None
    gan, _, _ = build_gan(
        settings,
        data.image_shape(dataset),
        num_classes,
        jit_compile=False,
        steps_per_execution=1,
    )
    meta = manager.restore(gan)  # NoCheckpointError if none is usable
    step = os.path.join(manager.directory, f"step-{int(meta['step']):09d}")
    return gan, step


def _stored_settings(run_dir) -> dict:
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise InputError(
            f"{run_dir} is not a run folder (it has no config.json); expected "
            f"runs/<name> as written by train."
        )
    return resolve_settings(run_dir, resume=True, given={})


def _final_step(run_dir) -> int:
    """The step at which `gan.keras` was saved; -1 if unknown."""
    step = _summary_number(run_dir, "steps")
    return -1 if step is None else step


def export_run(
    run_dir,
    format: str = "saved_model",
    generator: str = "auto",
    export_dir="saved_models",
    max_images: int = 4096,
    cache_dir=None,
    log=None,
) -> str:
    """Exports a run's trained generator as the next version of
    `export_dir/<the run's name>` (see `keras_gan.export.export_version`).

    Args:
        run_dir: the run's folder, `runs/<name>`; its weights come from
            `trained_gan`, its class names from `class_names.json`.
        format: `"saved_model"` or `"onnx"`.
        generator: `"live"` (the trained generator), `"ema"` (its weight
            average; the run must keep one) or `"auto"` (the average when the
            run keeps one, as the run's own exports do).
        export_dir: parent folder of exported generators.
        max_images: see `keras_gan.export.export_generator`.
        cache_dir, log: see `trained_gan`.

    Returns:
        The path of the new version folder.

    Example:

    ```python
    export_run("runs/digits", format="onnx")  # saved_models/digits/onnx/1
    ```
    """
    run_dir = os.fspath(run_dir)
    if format not in EXPORT_FORMATS:
        raise InputError(
            f"Unknown export format {format!r}; expected one of "
            f"{', '.join(EXPORT_FORMATS)}."
        )
    if generator not in EXPORT_GENERATORS:
        raise InputError(
            f"Unknown generator {generator!r}; expected one of "
            f"{', '.join(EXPORT_GENERATORS)}."
        )
    name = check_name(os.path.basename(os.path.normpath(run_dir)))
    export_base = files.output_folder(export_dir, name)
    settings = _stored_settings(run_dir)
    if generator == "ema" and settings["ema"] is None:
        raise InputError(
            f"generator='ema' but {run_dir} was trained without a weight average "
            f"(ema is None in its config.json); expected 'live' or 'auto'."
        )
    gan, _ = trained_gan(run_dir, cache_dir=cache_dir, log=log)
    chosen = {
        "auto": gan.inference_generator,
        "live": gan.generator,
        "ema": gan.ema_generator,
    }[generator]
    class_names = None
    if os.path.exists(os.path.join(run_dir, "class_names.json")):
        with open(os.path.join(run_dir, "class_names.json")) as file:
            class_names = json.load(file)
    return export.export_version(
        chosen,
        export_base,
        max_images,
        num_classes=gan.num_classes,
        class_names=class_names,
        format=format,
    )
