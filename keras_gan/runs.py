"""A training run on disk: its folder, its settings, its callbacks, its resume.

`runs/<name>/` holds `config.json` (the settings), `checkpoint/` (weights,
both optimizers and the noise state after each epoch, for `resume`),
`samples/` (grids and GIF), `log.csv`, `tensorboard/` and, at the end,
`gan.keras`. The generator is exported to `saved_models/<name>/<version>/`.
"""

import dataclasses
import json
import os
import re
import time

import keras

from keras_gan import callbacks as gan_callbacks
from keras_gan import data
from keras_gan import files
from keras_gan import networks
from keras_gan.errors import InputError
from keras_gan.evaluation import Evaluator
from keras_gan.models import GAN
from keras_gan.models import TRAINING_DEFAULTS

# Settings that define the model and its data: fixed for the life of a run.
MODEL_SETTINGS = {
    "dataset": "mnist",
    "data_dir": None,
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
}

MIXED_PRECISION = ("mixed_float16", "mixed_bfloat16")

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
    first_epoch: int = 0  # epochs done before this invocation (0 unless resumed)
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


def _completed_epochs(checkpoint_dir) -> int:
    path = os.path.join(checkpoint_dir, "training_metadata.json")
    if not os.path.exists(path):
        return 0
    try:
        with open(path) as file:
            return int(json.load(file)["epoch"])
    except (ValueError, KeyError, OSError) as error:
        raise InputError(
            f"Checkpoint metadata {path} is unreadable ({error}); expected the "
            f"JSON written by keras.callbacks.BackupAndRestore."
        ) from error


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
        if os.path.exists(run_dir) and os.listdir(run_dir):
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
    epochs: int = 30,
    steps_per_execution: int | str = "auto",
    jit_compile: bool | str = "auto",
    resume: bool = False,
    runs_dir: str = "runs",
    export_dir: str = "saved_models",
    sample_every: int = 1,
    export_every: int | None = None,
    evaluate_every: int | None = None,
    evaluate_samples: int | None = None,
    keep_best: bool = False,
    verbose="auto",
) -> RunResult:
    """Runs (or resumes) a whole training job: data, model, callbacks, export.

    Model settings left `None` take their defaults (`MODEL_SETTINGS`) in a new
    run and the stored values in a resumed one.

    Args:
        name: the run's name: `runs_dir/<name>/` and `export_dir/<name>/`.
        dataset: a TFDS image dataset name or `"digits"`.
        data_dir: a folder of MNIST-format IDX files (overrides `dataset`).
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
        epochs: total number of epochs, counting those of a resumed run.
        steps_per_execution: training steps per compiled call; `"auto"` as in
            `GAN.compile`.
        jit_compile: compile the step with XLA; `"auto"` as in `GAN.compile`.
        resume: continue `runs_dir/<name>` from its last epoch.
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
        verbose: passed to `fit` (`"auto"` shows Keras's progress bar).

    Returns:
        A `RunResult`.
    """
    check_name(name)
    run_dir = os.path.join(runs_dir, name)
    given = {
        "dataset": dataset,
        "data_dir": data_dir,
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
    }
    settings = resolve_settings(run_dir, resume, given)
    if settings["mixed_precision"] not in (None, *MIXED_PRECISION):
        raise InputError(
            f"Unknown mixed precision policy {settings['mixed_precision']!r}; "
            f"expected one of: {', '.join(MIXED_PRECISION)}."
        )
    _positive(settings, ("batch_size", "latent_dim", "learning_rate"))
    schedule = {
        "epochs": epochs,
        "sample_every": sample_every,
        "export_every": export_every,
        "evaluate_every": evaluate_every,
        "evaluate_samples": evaluate_samples,
    }
    if steps_per_execution != "auto":
        schedule["steps_per_execution"] = steps_per_execution
    _positive(schedule, tuple(schedule))
    checkpoint_dir = os.path.join(run_dir, "checkpoint")
    if keep_best and not evaluate_every:
        raise InputError("--keep-best needs --evaluate-every N; received none.")
    done = _completed_epochs(checkpoint_dir) if resume else 0
    if done >= epochs:
        raise InputError(
            f"{run_dir} has already trained {done} epochs; pass --epochs larger "
            f"than {done} to continue it."
        )

    # Everything that can fail on bad input fails before anything is written.
    dataset_ = data.make_dataset(
        settings["dataset"],
        data_dir=settings["data_dir"],
        batch_size=settings["batch_size"],
        seed=settings["seed"],
        with_labels=settings["conditional"],
    )
    num_classes = None
    if settings["conditional"]:
        num_classes = data.num_classes(settings["dataset"], settings["data_dir"])
    policy = keras.config.dtype_policy()
    try:  # the networks' layers take the global policy when they are built
        keras.config.set_dtype_policy(settings["mixed_precision"] or "float32")
        generator, discriminator = networks.build(
            settings["architecture"],
            settings["latent_dim"],
            data.image_shape(dataset_),
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
    steps_per_epoch = int(dataset_.cardinality())
    if steps_per_epoch > 0:
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
    evaluator = None
    if evaluate_every:
        evaluator = Evaluator.for_dataset(
            settings["dataset"],
            settings["data_dir"],
            num_samples=evaluate_samples,
            seed=settings["seed"],
        )
    for folder in (run_dir, os.path.join(export_dir, name)):
        files.make_dirs(folder)
    if not resume:
        with open(os.path.join(run_dir, "config.json"), "w") as file:
            json.dump(settings, file, indent=2)

    callbacks = [
        # First, so that a diverged batch raises before anything is saved.
        gan_callbacks.TerminateOnNonFinite(),
        keras.callbacks.BackupAndRestore(checkpoint_dir, delete_checkpoint=False),
    ]
    if evaluator is not None:
        # Before the loggers, so that they record its metrics.
        evaluate = gan_callbacks.Evaluate(
            evaluator,
            every_n_epochs=evaluate_every,
            export_dir=os.path.join(export_dir, name) if keep_best else None,
        )
        callbacks.append(evaluate)
    exporter = gan_callbacks.GeneratorExporter(
        os.path.join(export_dir, name), every_n_epochs=export_every
    )
    callbacks += [
        _CSVLogger(os.path.join(run_dir, "log.csv"), append=True),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
        gan_callbacks.SampleGrid(
            os.path.join(run_dir, "samples"),
            every_n_epochs=sample_every,
            seed=settings["seed"],
        ),
    ]
    if not keep_best:
        callbacks.append(exporter)
    start = time.perf_counter()
    history = gan.fit(dataset_, epochs=epochs, callbacks=callbacks, verbose=verbose)
    seconds = time.perf_counter() - start
    files.atomic_write(os.path.join(run_dir, "gan.keras"), gan.save)
    # This invocation's timing, for benchmarks and tables.
    summary = {"epochs": epochs, "first_epoch": done, "train_seconds": seconds}
    files.atomic_write(
        os.path.join(run_dir, "summary.json"),
        lambda path: _write_json(path, summary),
    )
    exports = evaluate.best_exports if keep_best else exporter.exported
    return RunResult(
        run_dir=run_dir,
        export_path=exports[-1] if exports else None,
        history=history.history,
        seconds=seconds,
        epochs_done=epochs,
        first_epoch=done,
        evaluations=evaluate.results if evaluator is not None else [],
    )
