"""keras_gan's command line: `keras-gan`, `python -m keras_gan`, `python cli.py`.

Each command maps its flags onto one library call, and each flag is named as
the library argument it sets. Nothing here imports Keras or TensorFlow until
a command runs, so `--help` and flag errors (choices included, checked
against `keras_gan.choices`) answer at once, and `--backend` picks the Keras
backend before Keras is first imported.
"""

import contextlib
import functools
import os
import signal
import sys
import tempfile
import warnings

import click

from keras_gan import choices

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _native_start_up_logs_hidden():
    """Hides what TensorFlow's C++ side prints while it loads and finds devices.

    Those lines (oneDNN notices, CUDA probing on a CPU machine) are written
    before absl logging is configured, so no environment variable silences
    them. If loading fails, they are printed after all.
    """
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _load_tensorflow():
    with _native_start_up_logs_hidden():
        import tensorflow as tf

        tf.config.list_physical_devices()
    from absl import logging

    # TFDS reports through absl at WARNING what users need not act on.
    logging.set_verbosity(logging.ERROR)
    # Keras warns that fit ignores shuffle=True for datasets; ours are shuffled.
    warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
    # keras_gan's own warnings (mode collapse) read best as one plain line.
    warnings.formatwarning = lambda message, *args, **kwargs: f"Warning: {message}\n"


class _Failure(click.ClickException):
    """`Error: <one line>` with the exit code of its class of failure."""

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


def _one_line_errors(command):
    """Turns each class of failure into `Error: <one line>` and its exit code
    (see README, Reliability), without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        # A file-size limit (ulimit -f) then fails the write (EFBIG), where the
        # default action of SIGXFSZ kills the process mid-write.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        _load_tensorflow()
        from keras_gan import errors

        try:
            return command(*args, **kwargs)
        except errors.WorkerFailed as error:
            # Every worker of a multi-worker run prints this same line. Gone
            # at once: a normal exit waits for the other workers at the
            # backend's shutdown barrier, and they are stopping too.
            click.echo(f"Error: {error}", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(error.exit_code)
        except errors.ONE_LINE_ERRORS as error:
            raise _Failure(*errors.one_line(error)) from None

    return wrapper


@click.group()
@click.option(
    "--backend",
    type=click.Choice(choices.BACKENDS),
    default=None,
    show_default="$KERAS_BACKEND, else tensorflow",
    help="Keras backend that trains and samples (TensorFlow always reads the "
    "data and writes the exports).",
)
def cli(backend):
    """Train generative adversarial networks and sample from their exports."""
    import importlib.util

    if backend is not None:
        # Read by Keras when it is first imported, which no command has done yet.
        os.environ["KERAS_BACKEND"] = backend
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    if backend not in choices.BACKENDS:
        expected = ", ".join(choices.BACKENDS)
        raise click.UsageError(
            f"KERAS_BACKEND is {backend!r}; expected one of: {expected}."
        )
    if importlib.util.find_spec(backend) is None:
        raise click.ClickException(
            f"The {backend} backend needs the {backend} package, which is not "
            f"installed; pip install {backend}, or pick another --backend."
        )


# Extensions of files that are data, not TFDS names.
_PATH_EXTENSIONS = (
    ".npy",
    ".npz",
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".gif",
    ".webp",
    ".gz",
)


def _dataset_name(context, parameter, value):
    """--dataset takes names; a path gets a hint towards --data-dir."""
    if value is not None and (
        os.path.exists(value) or value.lower().endswith(_PATH_EXTENSIONS)
    ):
        raise click.BadParameter(
            f"{value!r} is a path, not a TFDS dataset name; pass it as "
            f"--data-dir {value} (a folder of images, of IDX files, or a .npy / "
            ".npz file).",
            param_hint="--dataset",
        )
    return value


def _data_options(default_dataset):
    """The flags naming a data source and its shape, shared by train and
    evaluate (`keras_gan.data.open_source`)."""
    options = [
        click.option(
            "--dataset",
            default=None,
            callback=_dataset_name,
            show_default=default_dataset,
            help="TFDS image dataset name, or 'digits' (scikit-learn's 8x8 digits, "
            "offline).",
        ),
        click.option(
            "--data-dir",
            "--data",
            "data_dir",
            type=click.Path(),
            default=None,
            show_default="none: --dataset",
            help="A path, overriding --dataset: a folder of images (PNG, JPEG, "
            "BMP, GIF, WebP; one subfolder per class for labels), a folder of "
            "MNIST-format IDX files (e.g. /usr/share/datasets/fashion-mnist), or "
            "a .npy / .npz file.",
        ),
        click.option(
            "--image-size",
            default=None,
            metavar="SIZE",
            show_default="the data's own size",
            help="Crop every image to this aspect ratio, centred, then resize it "
            "(bicubic): 64 for 64x64, or HEIGHTxWIDTH such as 64x48.",
        ),
        click.option(
            "--channels",
            type=click.Choice(["1", "3"]),
            default=None,
            show_default="1 if every image is grey, else 3",
            help="1 (grey) or 3 (RGB) channels for every image.",
        ),
        click.option(
            "--on-bad-image",
            type=click.Choice(["fail", "skip"]),
            default=None,
            show_default="fail",
            help="An unreadable image file in a folder stops the run (fail) or "
            "is left out with a line saying why (skip).",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(),
            default=None,
            show_default="$KERAS_GAN_CACHE/images, else ~/.cache/keras_gan/images",
            help="Where image folders are decoded to, once.",
        ),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def _policy(context, parameter, value):
    """--augment: checked here, before TensorFlow loads."""
    if value is None:
        return None
    try:
        return ",".join(choices.parse_policy(value))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--augment") from None


@cli.command()
@_data_options("mnist")
@click.option(
    "--architecture",
    type=click.Choice(choices.ARCHITECTURES),
    default=None,
    show_default="mlp",
    help="Network pair: mlp (the original GAN), dcgan, or resnet (SNGAN, "
    "spectral normalisation).",
)
@click.option(
    "--loss",
    type=click.Choice(choices.LOSSES),
    default=None,
    show_default="non_saturating",
    help="Adversarial loss (GAN.compile's loss).",
)
@click.option(
    "--conditional",
    is_flag=True,
    default=None,
    show_default="off",
    help="Class-conditional model trained on (image, label); grids show one "
    "class per row and exports take labels.",
)
@click.option(
    "--gradient-penalty",
    type=click.FloatRange(min=0),
    default=None,
    show_default="0, off",
    help="WGAN-GP penalty weight (10 in the paper).",
)
@click.option(
    "--r1",
    type=click.FloatRange(min=0),
    default=None,
    show_default="0, off",
    help="R1 penalty weight on real images.",
)
@click.option(
    "--r2",
    type=click.FloatRange(min=0),
    default=None,
    show_default="0, off",
    help="R2 penalty weight on generated images.",
)
@click.option(
    "--penalty-interval",
    type=click.IntRange(min=1),
    default=None,
    show_default="1",
    help="Apply the penalties every N discriminator steps (lazy regularization).",
)
@click.option(
    "--d-steps",
    type=click.IntRange(min=1),
    default=None,
    show_default="1",
    help="Discriminator updates per generator update.",
)
@click.option(
    "--augment",
    default=None,
    callback=_policy,
    show_default="none",
    help="DiffAugment policy for D's inputs: comma-separated names from "
    f"{','.join(choices.AUGMENT_POLICIES)}.",
)
@click.option(
    "--ema-decay",
    "--ema",
    "ema_decay",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    show_default="off",
    help="Decay of the generator's weight average used for grids, evaluation "
    "and exports, e.g. 0.999 (GAN's ema_decay).",
)
@click.option(
    "--mixed-precision",
    type=click.Choice(choices.MIXED_PRECISION),
    default=None,
    show_default="float32",
    help="Compute in 16-bit floats with float32 weights.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Total epochs, counting those of a resumed run.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    show_default="64",
    help="Images per training step (per discriminator update).",
)
@click.option(
    "--latent-dim",
    type=click.IntRange(min=1),
    default=None,
    show_default="100",
    help="Size of the generator's standard normal input z.",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    show_default="0.0002",
    help="Adam learning rate of both players (beta_1=0.5).",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    show_default="0",
    help="Seed of the initial weights, the data order, the training noise, the "
    "sample grids' latents and evaluation's samples.",
)
@click.option(
    "--deterministic",
    is_flag=True,
    default=None,
    show_default="off",
    help="Also turn the backend's op determinism on (slower on GPUs): the same "
    "--seed then gives bit-equal weights and grids. Kept by --resume.",
)
@click.option(
    "--steps-per-execution",
    type=click.IntRange(min=1),
    default=None,
    show_default="auto: 32 under XLA for networks without convolutions, else 1",
    help="Training steps per compiled call, run inside one XLA computation.",
)
@click.option(
    "--jit-compile/--no-jit-compile",
    "--jit/--no-jit",
    "jit_compile",
    default=None,
    show_default="auto: on a GPU, on a CPU for networks without convolutions, "
    "always on JAX, never on PyTorch",
    help="Compile the training step (XLA; torch.compile on PyTorch).",
)
@click.option(
    "--distribute",
    type=click.Choice(choices.DISTRIBUTE),
    default=None,
    show_default="off: one device",
    help="Split each batch over this host's devices (all GPUs, else the CPU "
    "devices of --cpu-devices): mirrored on TensorFlow, data-parallel on JAX; "
    "or over several processes or hosts: multi-worker (TensorFlow: the cluster "
    "of TF_CONFIG; JAX: --coordinator, --num-processes, --process-id). "
    "--batch-size stays the global batch; only worker 0 writes files.",
)
@click.option(
    "--coordinator",
    default=None,
    show_default="$KERAS_DISTRIBUTION_JOB_ADDRESSES",
    help="JAX multi-worker: HOST:PORT of process 0, the same on every process.",
)
@click.option(
    "--num-processes",
    type=click.IntRange(min=1),
    default=None,
    show_default="$KERAS_DISTRIBUTION_NUM_PROCESSES",
    help="JAX multi-worker: how many processes train together.",
)
@click.option(
    "--process-id",
    type=click.IntRange(min=0),
    default=None,
    show_default="$KERAS_DISTRIBUTION_PROCESS_ID",
    help="JAX multi-worker: this process's index (0 is the chief, which writes).",
)
@click.option(
    "--cpu-devices",
    type=click.IntRange(min=1),
    default=None,
    show_default="1",
    help="Present the CPU as this many devices for --distribute (a machine "
    "without accelerators, or a test; not faster).",
)
@click.option(
    "--name",
    default=None,
    show_default="the dataset's name",
    help="Run name: runs/<name>/ and saved_models/<name>/.",
)
@click.option(
    "--resume",
    is_flag=True,
    show_default="off",
    help="Continue runs/<name> from its newest usable checkpoint, at its step.",
)
@click.option(
    "--restart",
    is_flag=True,
    show_default="off",
    help="Discard runs/<name>'s checkpoints and train it again from step 0 with "
    "its stored settings.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=None,
    show_default="off: each epoch's end, every 10 minutes and on SIGTERM/SIGINT",
    help="Also checkpoint every N steps (later while checkpoints would exceed "
    "--checkpoint-budget).",
)
@click.option(
    "--checkpoint-budget",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.05,
    show_default=True,
    help="Largest share of the training time that checkpoints at epochs' ends and "
    "every N steps may take; one that would exceed it waits until it fits (1: no "
    "limit). The last epoch and SIGTERM always checkpoint.",
)
@click.option(
    "--max-loss",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    show_default="no bound",
    help="Stop as on a NaN loss when d_loss or g_loss exceeds this in absolute "
    "value (a diverging run), e.g. 1000.",
)
@click.option(
    "--keep-checkpoints",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Newest checkpoints kept on disk (an older one is used if the newest "
    "is damaged).",
)
@click.option(
    "--sample-every",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Write a sample grid every N epochs.",
)
@click.option(
    "--export-every",
    type=click.IntRange(min=1),
    default=None,
    show_default="at the end only",
    help="Also export a version every N epochs.",
)
@click.option(
    "--evaluate-every",
    type=click.IntRange(min=1),
    default=None,
    show_default="never",
    help="Log Frechet distance, KID, precision/recall, coverage every N epochs.",
)
@click.option(
    "--evaluate-samples",
    type=click.IntRange(min=10),
    default=None,
    show_default="10000, or half the dataset if smaller",
    help="Images per set for --evaluate-every.",
)
@click.option(
    "--keep-best",
    is_flag=True,
    show_default="off",
    help="With --evaluate-every: export a version whenever the Frechet distance "
    "is the best so far, instead of at the end.",
)
@click.option(
    "--runs-dir",
    default="runs",
    show_default=True,
    type=click.Path(),
    help="Folder of the runs: grids, logs and checkpoints go to <runs-dir>/<name>.",
)
@click.option(
    "--export-dir",
    default="saved_models",
    show_default=True,
    type=click.Path(),
    help="Folder of the exports: versions go to <export-dir>/<name>/<version>.",
)
@_one_line_errors
def train(name, **flags):
    """Train a GAN, write grids and logs to runs/<name>, export the generator."""
    if flags["cpu_devices"] is not None:
        # Before anything in keras_gan.runs starts the backend's devices.
        from keras_gan import distribute

        distribute.split_cpu(flags["cpu_devices"])
    from keras_gan import runs

    if name is None:
        if flags["data_dir"]:
            name = os.path.basename(os.path.normpath(flags["data_dir"]))
        else:
            name = flags["dataset"] or runs.MODEL_SETTINGS["dataset"]
    result = runs.train(
        name,
        dataset=flags["dataset"],
        data_dir=flags["data_dir"],
        image_size=flags["image_size"],
        channels=None if flags["channels"] is None else int(flags["channels"]),
        on_bad_image=flags["on_bad_image"],
        cache_dir=flags["cache_dir"],
        architecture=flags["architecture"],
        loss=flags["loss"],
        batch_size=flags["batch_size"],
        latent_dim=flags["latent_dim"],
        learning_rate=flags["learning_rate"],
        seed=flags["seed"],
        conditional=True if flags["conditional"] else None,
        gradient_penalty=flags["gradient_penalty"],
        r1=flags["r1"],
        r2=flags["r2"],
        penalty_interval=flags["penalty_interval"],
        d_steps=flags["d_steps"],
        augment=flags["augment"],
        ema=flags["ema_decay"],
        mixed_precision=flags["mixed_precision"],
        deterministic=True if flags["deterministic"] else None,
        epochs=flags["epochs"],
        steps_per_execution=flags["steps_per_execution"] or "auto",
        jit_compile="auto" if flags["jit_compile"] is None else flags["jit_compile"],
        distribute=flags["distribute"],
        coordinator=flags["coordinator"],
        num_processes=flags["num_processes"],
        process_id=flags["process_id"],
        resume=flags["resume"],
        restart=flags["restart"],
        checkpoint_every=flags["checkpoint_every"],
        checkpoint_budget=None
        if flags["checkpoint_budget"] >= 1
        else flags["checkpoint_budget"],
        keep_checkpoints=flags["keep_checkpoints"],
        max_loss=flags["max_loss"],
        runs_dir=flags["runs_dir"],
        export_dir=flags["export_dir"],
        sample_every=flags["sample_every"],
        export_every=flags["export_every"],
        evaluate_every=flags["evaluate_every"],
        evaluate_samples=flags["evaluate_samples"],
        keep_best=flags["keep_best"],
    )
    trained = result.epochs_done - result.first_epoch
    what = f"{trained} epoch" + ("s" if trained != 1 else "")
    if result.first_step:  # resumed: which of the run's epochs this was
        first, last = result.first_epoch + 1, result.epochs_done
        span = f"epoch {last}" if first == last else f"epochs {first}-{last}"
        what += f" ({span} of the run, from step {result.first_step})"
    click.echo(f"Trained {what} in {result.seconds:.1f} s.")
    click.echo(f"Run folder: {result.run_dir} (samples/, log.csv, tensorboard/)")
    if result.evaluations:
        last = result.evaluations[-1]
        click.echo(
            f"Frechet distance at epoch {last['epoch']}: "
            f"{last['frechet_distance']:.4g} (real floor "
            f"{last['floor']['frechet_distance']:.4g}, n={last['num_samples']})"
        )
    if result.export_path:
        click.echo(f"Exported generator: {result.export_path}")


@cli.command("export")
@click.argument("run_dir", type=click.Path())
@click.option(
    "--format",
    "export_format",
    type=click.Choice(choices.EXPORT_FORMATS),
    default="saved_model",
    show_default=True,
    help="saved_model (TF Serving: <export-dir>/<name>/<version>) or onnx "
    "(onnxruntime: <export-dir>/<name>/onnx/<version>, verified against the "
    "Keras generator before it is written).",
)
@click.option(
    "--generator",
    type=click.Choice(choices.EXPORT_GENERATORS),
    default="auto",
    show_default=True,
    help="Which generator: live (the trained one), ema (its weight average, for "
    "runs trained with --ema-decay) or auto (ema when the run has it, as the "
    "run's own exports).",
)
@click.option(
    "--export-dir",
    default="saved_models",
    show_default=True,
    type=click.Path(),
    help="Folder of the exports: the run's versions go to <export-dir>/<name>/.",
)
@click.option(
    "--cache-dir",
    type=click.Path(),
    default=None,
    show_default="$KERAS_GAN_CACHE/images, else ~/.cache/keras_gan/images",
    help="Where an image folder is decoded to, for a run exported from a "
    "checkpoint (its data gives the image shape and classes).",
)
@_one_line_errors
def export_command(run_dir, export_format, generator, export_dir, cache_dir):
    """Export a run's generator as the next version of <export-dir>/<name>: from
    runs/<name>/gan.keras or, for a run that has not finished, its newest usable
    checkpoint."""
    from keras_gan import runs

    path = runs.export_run(
        run_dir,
        format=export_format,
        generator=generator,
        export_dir=export_dir,
        cache_dir=cache_dir,
        log=functools.partial(click.echo, err=True),
    )
    click.echo(f"Exported generator: {path}")


# `sample` and `evaluate` load SavedModels: see keras_gan.provenance.
_TRUST = click.option(
    "--trust",
    is_flag=True,
    show_default="off",
    help="Load a SavedModel that keras_gan did not write (its graph may run any "
    "op): only for exports whose author you trust.",
)


@cli.command()
@click.argument("saved_model_dir", type=click.Path())
@click.option(
    "--num-images",
    type=click.IntRange(min=1),
    default=None,
    show_default="64, or 8 per class for a conditional export",
    help="Images in the grid.",
)
@click.option(
    "--labels",
    default=None,
    show_default="every class",
    help="Conditional exports: comma-separated classes, one row each, by index "
    "(0,3,7) or, for an export trained on class subfolders, by name "
    "(cats,dogs).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the latents."
)
@click.option(
    "--num-rows",
    type=click.IntRange(min=1),
    default=None,
    show_default="as square as the number of images allows",
    help="Rows of the grid.",
)
@click.option(
    "--output",
    type=click.Path(),
    default="grid.png",
    show_default=True,
    help="PNG file of the grid.",
)
@_TRUST
@_one_line_errors
def sample(saved_model_dir, num_images, labels, seed, num_rows, output, trust):
    """Write a grid of images from an exported generator (a version folder, or
    a model's base folder to use its newest version)."""
    from keras_gan import export

    if labels is not None:
        labels = [label.strip() for label in labels.split(",")]
    path = export.sample_grid(
        saved_model_dir, output, num_images, seed, num_rows, labels=labels, trust=trust
    )
    click.echo(f"Wrote {path}")


@cli.command()
@click.argument("saved_model_dir", type=click.Path())
@_data_options("mnist")
@click.option(
    "--num-samples",
    type=click.IntRange(min=10),
    default=None,
    show_default="10000, or half the dataset if smaller",
    help="Images per set.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Latent seed.")
@click.option(
    "--inception",
    is_flag=True,
    show_default="off",
    help="Use ImageNet InceptionV3 features (standard FID; needs the weights in "
    "Keras's cache, slow on CPU) instead of the domain classifier.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    show_default="off: a table",
    help="Print the result as one JSON line.",
)
@_TRUST
@_one_line_errors
def evaluate(saved_model_dir, num_samples, seed, inception, as_json, trust, **flags):
    """Score an exported generator against a dataset's real images: Frechet
    distance, KID, inception score, precision/recall, density/coverage and class
    coverage in a domain classifier's features, beside the real-vs-real floor.
    Give the --image-size / --channels the generator was trained with."""
    import json

    from keras_gan import evaluation
    from keras_gan import export

    generate = evaluation.from_saved_model(export.load_export(saved_model_dir, trust))
    channels = flags["channels"]
    evaluator = evaluation.Evaluator.for_dataset(
        flags["dataset"] or "mnist",
        flags["data_dir"],
        num_samples=num_samples,
        inception=inception,
        image_size=flags["image_size"],
        channels=None if channels is None else int(channels),
        on_bad_image=flags["on_bad_image"] or "fail",
        images_cache_dir=flags["cache_dir"],
        log=functools.partial(click.echo, err=True),
    )
    result = evaluator.evaluate_generator(
        generate, seed=seed, num_classes=generate.num_classes
    )
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(evaluation.format_table(result))
    warning = evaluation.collapse_warning(result)
    if warning:
        click.echo(f"Warning: {warning}")


def main():
    """The console script `keras-gan` and `python -m keras_gan`."""
    cli(prog_name="keras-gan")


if __name__ == "__main__":
    main()
