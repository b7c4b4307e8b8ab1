"""Callbacks that act around training steps: sample grids, exports, guards."""

import glob
import math
import os
import warnings

import keras
import numpy as np

from keras_gan import export
from keras_gan import images
from keras_gan import noise
from keras_gan.errors import InputError
from keras_gan.errors import TrainingDivergedError
from keras_gan.evaluation import SCALARS
from keras_gan.evaluation import collapse_warning
from keras_gan.files import atomic_write
from keras_gan.files import make_dirs


def _check_gan(model, callback):
    if not hasattr(model, "latent_dim") or not hasattr(model, "generator"):
        raise InputError(
            f"{callback} needs a keras_gan.GAN; received {type(model).__name__}."
        )


@keras.saving.register_keras_serializable(package="keras_gan")
class SampleGrid(keras.callbacks.Callback):
    """Writes a grid of generated images every few epochs, and a GIF at the end.

    The latents are drawn once from `seed`, so grids of successive epochs (and
    of a resumed run) show the same points of latent space. Files:
    `directory/epoch_0001.png`, ... and `directory/samples.gif`, the grids of
    every epoch in the folder in order.

    With `log_dir`, each grid is also a TensorBoard image: tag `samples`, in
    the run `log_dir/samples/` (beside the `train/` and `validation/` runs of
    `keras.callbacks.TensorBoard(log_dir)`), at the step of that callback's
    epoch scalars, the epoch's index: `epoch_0001.png` is step 0. Each
    training session appends an event file, so a resumed run continues the
    series.

    Args:
        directory: folder of the PNG grids and the GIF.
        num_rows: the grid is `num_rows x num_rows` images; for a
            conditional model, one row of `num_rows` images per class.
        every_n_epochs: write a grid after every this many epochs.
        seed: int seed of the fixed latents.
        log_dir: a TensorBoard log folder for the grids too, or `None`.

    Example:

    ```python
    gan.fit(dataset, epochs=10, callbacks=[
        keras.callbacks.TensorBoard("runs/demo/tensorboard"),
        SampleGrid("runs/demo/samples", log_dir="runs/demo/tensorboard"),
    ])
    ```
    """

    def __init__(
        self,
        directory,
        num_rows: int = 8,
        every_n_epochs: int = 1,
        seed: int = 0,
        log_dir=None,
    ):
        super().__init__()
        if int(num_rows) < 1 or int(every_n_epochs) < 1:
            raise InputError(
                f"SampleGrid needs positive num_rows and every_n_epochs; received "
                f"num_rows={num_rows}, every_n_epochs={every_n_epochs}."
            )
        self.directory = os.fspath(directory)
        self.num_rows = int(num_rows)
        self.every_n_epochs = int(every_n_epochs)
        self.seed = int(seed)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self._latents = None
        self._labels = None
        self._grid_shape = None  # of the grids written by this callback
        self._writer = None

    def on_train_begin(self, logs=None):
        _check_gan(self.model, "SampleGrid")
        make_dirs(self.directory)
        # A conditional model's grid has one row per class.
        rows = self.model.num_classes or self.num_rows
        self._latents = noise.latent_noise(
            rows * self.num_rows, self.model.latent_dim, self.seed
        )
        self._labels = None
        if self.model.num_classes:
            classes = np.arange(self.model.num_classes, dtype=np.int32)
            labels = np.repeat(classes, self.num_rows)
            self._labels = keras.ops.convert_to_tensor(labels)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs == 0:
            path = os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png")
            grid = self.write_grid(path)
            if self.log_dir is not None:
                self._log_image(grid, epoch)

    def _log_image(self, grid, epoch):
        # tf.summary, as Keras's TensorBoard callback, on every backend: the
        # grid is already NumPy.
        import tensorflow as tf

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(
                os.path.join(self.log_dir, "samples")
            )
        with self._writer.as_default():
            tf.summary.image("samples", grid[None], step=epoch)
        # Readable now, and kept if training later raises before on_train_end.
        self._writer.flush()

    def on_train_end(self, logs=None):
        """Writes the GIF of the folder's grids; files there that are not
        grids of this model's shape (or not images at all) are left out."""
        from PIL import Image

        if self._writer is not None:
            self._writer.close()
            self._writer = None

        frames = []
        for path in sorted(glob.glob(os.path.join(self.directory, "epoch_*.png"))):
            try:
                with Image.open(path) as image:
                    frame = np.asarray(image)
            except (OSError, ValueError, SyntaxError):
                message = f"{path} is not a PNG grid; left out of the GIF."
                warnings.warn(message, stacklevel=2)
                continue
            frames.append(frame[..., None] if frame.ndim == 2 else frame)
        if frames:
            # Grids of another shape (another model, a stray file) are not this
            # run's: keep the shape of the grids written now, else the commonest.
            shapes = [frame.shape for frame in frames]
            shape = self._grid_shape or max(set(shapes), key=shapes.count)
            frames = [frame for frame in frames if frame.shape == shape]
            atomic_write(
                os.path.join(self.directory, "samples.gif"),
                lambda path: images.save_gif(frames, path),
            )

    def write_grid(self, path) -> np.ndarray:
        """Writes the grid of the fixed latents, as the model makes them now.

        Returns:
            The grid written, a uint8 array `(height, width, channels)`.
        """
        generated = self.model(self._latents, labels=self._labels, training=False)
        grid = images.image_grid(
            generated,
            len(generated) // self.num_rows,
            scale=images.readable_scale(*generated.shape[1:3]),
        )
        atomic_write(path, lambda staging: images.save_png(grid, staging))
        self._grid_shape = tuple(np.asarray(grid).shape)
        if len(self._grid_shape) == 2:
            self._grid_shape += (1,)
        return grid

    def get_config(self):
        return {
            "directory": self.directory,
            "num_rows": self.num_rows,
            "every_n_epochs": self.every_n_epochs,
            "seed": self.seed,
            "log_dir": self.log_dir,
        }


@keras.saving.register_keras_serializable(package="keras_gan")
class GeneratorExporter(keras.callbacks.Callback):
    """Exports the generator as a TF Serving SavedModel version.

    Exports at the end of training and, if `every_n_epochs` is set, after every
    that many epochs, each time as the next integer version under `directory`
    (see `keras_gan.export.export_version`: atomic, earlier versions
    untouched). A training run that raises exports nothing.

    Args:
        directory: the model's base path, e.g. `saved_models/<name>`.
        every_n_epochs: also export after every this many epochs; `None` for
            the end of training only.
        class_names: a conditional generator's class names, kept in each
            export's `assets.extra/keras_gan.json`.

    Example:

    ```python
    gan.fit(dataset, epochs=10, callbacks=[GeneratorExporter("saved_models/demo")])
    ```
    """

    def __init__(self, directory, every_n_epochs: int | None = None, class_names=None):
        super().__init__()
        self.class_names = None if class_names is None else list(class_names)
        if every_n_epochs is not None and int(every_n_epochs) < 1:
            raise InputError(
                f"GeneratorExporter needs every_n_epochs >= 1 or None; received "
                f"{every_n_epochs}."
            )
        self.directory = os.fspath(directory)
        self.every_n_epochs = every_n_epochs
        self.exported = []
        self._exported_epoch = None
        self._epoch = None

    def on_train_begin(self, logs=None):
        _check_gan(self.model, "GeneratorExporter")
        # The model's folder itself comes with its first version.
        make_dirs(os.path.dirname(os.path.abspath(self.directory)))
        self._exported_epoch = None
        self._epoch = None

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._export(epoch)

    def on_train_end(self, logs=None):
        if self._epoch is not None and self._exported_epoch != self._epoch:
            self._export(self._epoch)

    def _export(self, epoch):
        path = export.export_version(
            self.model.inference_generator,
            self.directory,
            num_classes=self.model.num_classes,
            class_names=self.class_names,
        )
        self.exported.append(path)
        self._exported_epoch = epoch

    def get_config(self):
        return {
            "directory": self.directory,
            "every_n_epochs": self.every_n_epochs,
            "class_names": self.class_names,
        }


@keras.saving.register_keras_serializable(package="keras_gan")
class TerminateOnNonFinite(keras.callbacks.Callback):
    """Stops training by raising `TrainingDivergedError` on a NaN or inf loss,
    or on one whose size exceeds `max_loss`.

    Unlike `keras.callbacks.TerminateOnNaN` it watches `d_loss` and `g_loss`,
    and it raises: epoch-end and train-end callbacks then do not run, so no
    checkpoint, grid or export is overwritten with a diverged model.

    Args:
        monitor: names of the logged values to watch.
        max_loss: also stop when a watched value's absolute value exceeds
            this (a run diverging without overflowing); `None` for no bound.
    """

    def __init__(self, monitor=("d_loss", "g_loss"), max_loss=None):
        super().__init__()
        if max_loss is not None and not float(max_loss) > 0:
            raise InputError(f"max_loss must be positive; received {max_loss}.")
        self.monitor = tuple(monitor)
        self.max_loss = None if max_loss is None else float(max_loss)
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        for name in self.monitor:
            value = (logs or {}).get(name)
            if value is None:
                continue
            value = float(value)
            if not math.isfinite(value):
                problem = f"{name} is {value}"
            elif self.max_loss is not None and abs(value) > self.max_loss:
                problem = f"{name} is {value:.4g}, beyond max_loss {self.max_loss:g}"
            else:
                continue
            raise TrainingDivergedError(
                f"Training diverged: {problem} at epoch {self._epoch + 1}, batch "
                f"{batch + 1}; nothing of this step was saved (the last good "
                f"checkpoint is kept). Try a lower learning rate."
            )

    def get_config(self):
        return {"monitor": list(self.monitor), "max_loss": self.max_loss}


@keras.saving.register_keras_serializable(package="keras_gan")
class Evaluate(keras.callbacks.Callback):
    """Adds sample-quality metrics to the training logs every few epochs.

    The `keras_gan.evaluation.SCALARS` (Frechet distance, KID, inception
    score, precision, recall, density, coverage, class coverage) join the
    epoch logs, so `History`, `CSVLogger` and `TensorBoard` record them; put
    `Evaluate` before those two in the callback list. Epochs that are not
    evaluated log NaN, which keeps every epoch's row the same shape.

    With `export_dir`, the generator is exported as a new version whenever
    its Frechet distance is the best so far, so the newest version (the one
    TF Serving serves) is the best one. A result that looks like mode
    collapse (a class never generated, or one class above `max_class_share`
    of the samples) raises a `UserWarning` naming it.

    Args:
        evaluator: a `keras_gan.evaluation.Evaluator`.
        every_n_epochs: evaluate after every this many epochs.
        export_dir: a model base folder for best-so-far exports, or `None`.
        class_names: a conditional generator's class names, for those
            exports (see `GeneratorExporter`).
        seed: seed of the latents of the evaluated samples.
        max_class_share: share of one class above which collapse is reported.

    Example:

    ```python
    evaluator = keras_gan.evaluation.Evaluator.for_dataset("digits", num_samples=500)
    gan.fit(dataset, epochs=20, callbacks=[Evaluate(evaluator, every_n_epochs=5)])
    ```
    """

    def __init__(
        self,
        evaluator,
        every_n_epochs: int = 1,
        export_dir=None,
        seed: int = 1,
        max_class_share: float = 0.5,
        class_names=None,
    ):
        super().__init__()
        if int(every_n_epochs) < 1:
            raise InputError(
                f"Evaluate needs every_n_epochs >= 1; received {every_n_epochs}."
            )
        self.evaluator = evaluator
        self.every_n_epochs = int(every_n_epochs)
        self.export_dir = None if export_dir is None else os.fspath(export_dir)
        self.class_names = None if class_names is None else list(class_names)
        self.seed = int(seed)
        self.max_class_share = float(max_class_share)
        self.results = []
        self.best_frechet_distance = math.inf
        self.best_exports = []
        self.collapse_warnings = []

    def on_train_begin(self, logs=None):
        _check_gan(self.model, "Evaluate")
        if self.export_dir is not None:  # its folder comes with its first version
            make_dirs(os.path.dirname(os.path.abspath(self.export_dir)))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if (epoch + 1) % self.every_n_epochs:
            logs.update(dict.fromkeys(SCALARS, math.nan))
            return
        result = self.evaluator.evaluate_generator(
            self.model.generate, self.seed, num_classes=self.model.num_classes
        )
        result["epoch"] = epoch + 1
        self.results.append(result)
        for key in SCALARS:
            logs[key] = math.nan if result[key] is None else float(result[key])
        if result["frechet_distance"] < self.best_frechet_distance:
            self.best_frechet_distance = result["frechet_distance"]
            if self.export_dir is not None:
                path = export.export_version(
                    self.model.inference_generator,
                    self.export_dir,
                    num_classes=self.model.num_classes,
                    class_names=self.class_names,
                )
                self.best_exports.append(path)
        warning = collapse_warning(result, self.max_class_share)
        if warning:
            self.collapse_warnings.append((epoch + 1, warning))
            warnings.warn(f"Epoch {epoch + 1}: {warning}", stacklevel=2)

    def get_config(self):
        return {
            "every_n_epochs": self.every_n_epochs,
            "export_dir": self.export_dir,
            "class_names": self.class_names,
            "seed": self.seed,
            "max_class_share": self.max_class_share,
        }


# Every hook of keras.callbacks.Callback that `fit`, `evaluate` and `predict` call.
_HOOKS = tuple(
    name
    for name in dir(keras.callbacks.Callback)
    if name.startswith("on_") and callable(getattr(keras.callbacks.Callback, name))
)


class _OnePlayer:
    """The GAN as a wrapped callback sees it: `optimizer` is one player's, every
    other attribute (`stop_training`, `generator`, ...) the GAN's own."""

    def __init__(self, gan, optimizer):
        object.__setattr__(self, "_gan", gan)
        object.__setattr__(self, "optimizer", optimizer)

    def __getattr__(self, name):
        return getattr(self._gan, name)

    def __setattr__(self, name, value):
        setattr(self._gan, name, value)


class ForPlayer(keras.callbacks.Callback):
    """Applies a Keras callback to one player's optimizer only.

    Keras's learning-rate callbacks act on `model.optimizer`, which for a GAN
    stands for both players (`GAN.optimizer.optimizers`): `ReduceLROnPlateau`
    scales both rates, `LearningRateScheduler` maps each. Wrapped, the
    callback sees the GAN with `optimizer` set to the named player's, and the
    other player's rate is left alone.

    Args:
        player: `"discriminator"` or `"generator"`.
        callback: any `keras.callbacks.Callback`.

    Example:

    ```python
    gan.fit(dataset, epochs=30, callbacks=[
        ForPlayer("generator", keras.callbacks.ReduceLROnPlateau(
            monitor="g_loss", factor=0.5, patience=3))])
    ```
    """

    PLAYERS = ("discriminator", "generator")

    def __init__(self, player: str, callback: keras.callbacks.Callback):
        super().__init__()
        if player not in self.PLAYERS:
            raise InputError(
                f"ForPlayer's player must be one of {', '.join(self.PLAYERS)}; "
                f"received {player!r}."
            )
        if not isinstance(callback, keras.callbacks.Callback):
            raise InputError(
                f"ForPlayer wraps a keras.callbacks.Callback; received "
                f"{type(callback).__name__}."
            )
        self.player = player
        self.callback = callback

    def set_model(self, model):
        super().set_model(model)
        _check_gan(model, "ForPlayer")
        optimizer = getattr(model, f"{self.player[0]}_optimizer", None)
        if optimizer is None:
            raise InputError("ForPlayer needs a compiled GAN; call compile() first.")
        self.callback.set_model(_OnePlayer(model, optimizer))

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)


def _forward(hook):
    def forward(self, *args, **kwargs):
        return getattr(self.callback, hook)(*args, **kwargs)

    forward.__name__ = hook
    return forward


for _hook in _HOOKS:
    setattr(ForPlayer, _hook, _forward(_hook))
