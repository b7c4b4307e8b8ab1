"""Keras's own callbacks on a GAN, without GAN-specific arguments, on every backend."""

import os

import keras
import numpy as np
import pytest
from helpers import tiny_gan
from helpers import tiny_images

import keras_gan

pytestmark = pytest.mark.backends


def _compiled(d_rate=4e-3, g_rate=1e-3, **kwargs):
    gan = tiny_gan()
    gan.compile(
        d_optimizer=keras.optimizers.Adam(d_rate, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(g_rate, beta_1=0.5),
        **kwargs,
    )
    return gan


def _rates(gan):
    return [
        float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        for optimizer in (gan.d_optimizer, gan.g_optimizer)
    ]


def _fit(gan, callbacks, epochs=3):
    return gan.fit(
        tiny_images(16), batch_size=4, epochs=epochs, callbacks=callbacks, verbose=0
    )


def test_learning_rate_scheduler_maps_each_players_rate():
    gan = _compiled()
    seen = []

    def schedule(epoch, rate):
        seen.append(rate)
        return rate * 0.5 if epoch else rate

    history = _fit(gan, [keras.callbacks.LearningRateScheduler(schedule)])
    np.testing.assert_allclose(_rates(gan), [1e-3, 2.5e-4], rtol=1e-6)
    # Called per player per epoch: D's rate, then G's.
    np.testing.assert_allclose(seen, [4e-3, 1e-3, 4e-3, 1e-3, 2e-3, 5e-4], rtol=1e-6)
    # Logged per optimizer, under each optimizer's name.
    logged = history.history[f"learning_rate_{gan.g_optimizer.name}"]
    np.testing.assert_allclose(logged, [1e-3, 5e-4, 2.5e-4], rtol=1e-6)
    assert f"learning_rate_{gan.d_optimizer.name}" in history.history


def test_same_named_optimizers_get_the_players_prefixes():
    gan = tiny_gan()
    gan.compile(
        d_optimizer=keras.optimizers.Adam(name="adam"),
        g_optimizer=keras.optimizers.Adam(name="adam"),
    )
    assert (gan.d_optimizer.name, gan.g_optimizer.name) == ("d_adam", "g_adam")


def test_reduce_lr_on_plateau_monitors_g_loss_without_mode():
    gan = _compiled()
    # No epoch improves on the first by 1e9: both rates halve after each later one.
    callback = keras.callbacks.ReduceLROnPlateau(
        monitor="g_loss", factor=0.5, patience=0, min_delta=1e9, min_lr=0.0
    )
    _fit(gan, [callback], epochs=3)
    np.testing.assert_allclose(_rates(gan), [1e-3, 2.5e-4], rtol=1e-6)


def test_early_stopping_knows_losses_go_down():
    gan = _compiled()
    callback = keras.callbacks.EarlyStopping(
        monitor="d_loss", patience=0, min_delta=1e9
    )
    history = _fit(gan, [callback], epochs=5)
    assert callback.monitor_op is keras.ops.less
    assert len(history.history["d_loss"]) == 2  # the first epoch, then no improvement


def test_model_checkpoint_saves_the_lowest_g_loss(tmp_path):
    gan = _compiled(r1=1.0)
    path = os.path.join(tmp_path, "best.weights.h5")
    callback = keras.callbacks.ModelCheckpoint(
        path, monitor="d_penalty", save_best_only=True, save_weights_only=True
    )
    history = _fit(gan, [callback])
    assert os.path.exists(path)
    assert callback.best == min(history.history["d_penalty"])


def test_probabilities_need_a_mode():
    # D's probabilities have no better direction: Keras asks for mode=.
    gan = _compiled()
    with pytest.raises(ValueError, match="maximized or minimized"):
        _fit(gan, [keras.callbacks.EarlyStopping(monitor="d_real")], epochs=1)


def test_learning_rate_schedules_run_per_player():
    schedules = keras.optimizers.schedules
    gan = tiny_gan()
    gan.compile(
        d_optimizer=keras.optimizers.Adam(schedules.ExponentialDecay(4e-3, 1, 0.5)),
        g_optimizer=keras.optimizers.Adam(
            schedules.PiecewiseConstantDecay([2], [1e-3, 1e-4])
        ),
    )
    _fit(gan, [], epochs=1)  # 4 steps
    np.testing.assert_allclose(_rates(gan), [4e-3 * 0.5**4, 1e-4], rtol=1e-5)


def test_tensorboard_steps_by_discriminator_updates(tmp_path):
    pytest.importorskip("tensorflow")
    gan = _compiled()
    _fit(gan, [keras.callbacks.TensorBoard(str(tmp_path), update_freq=1)], epochs=1)
    assert int(keras.ops.convert_to_numpy(gan.optimizer.iterations)) == 4
    assert any("events" in name for _, _, files in os.walk(tmp_path) for name in files)


def test_csv_logger_writes_every_metric(tmp_path):
    gan = _compiled()
    path = tmp_path / "log.csv"
    _fit(gan, [keras.callbacks.CSVLogger(str(path))], epochs=2)
    rows = path.read_text().splitlines()
    header = rows[0].split(",")
    assert {"epoch", "d_loss", "g_loss", "d_real", "d_fake"} <= set(header)
    assert len(rows) == 3


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_backup_and_restore_resumes_both_players(tmp_path):
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    gan = _compiled()
    with pytest.raises(KeyboardInterrupt):
        _fit(gan, [backup, _Interrupt()], epochs=3)
    resumed = _compiled()
    history = _fit(resumed, [backup], epochs=3)
    # The backup written at the end of the second epoch, before the interrupt,
    # is restored: one epoch remains, and both optimizers continue their counts.
    assert len(history.history["d_loss"]) == 1
    for optimizer in (resumed.d_optimizer, resumed.g_optimizer):
        assert int(keras.ops.convert_to_numpy(optimizer.iterations)) == 12


def test_for_player_reduces_only_the_named_players_rate():
    gan = _compiled()
    callback = keras.callbacks.ReduceLROnPlateau(
        monitor="g_loss", factor=0.5, patience=0, min_delta=1e9, verbose=0
    )
    _fit(gan, [keras_gan.callbacks.ForPlayer("generator", callback)], epochs=3)
    # The first epoch sets the best g_loss, no later one beats it by 1e9: G's
    # rate halves after epochs 2 and 3, D's stays.
    np.testing.assert_allclose(_rates(gan), [4e-3, 2.5e-4], rtol=1e-6)


def test_for_player_schedules_one_player_and_passes_stop_training_on():
    gan = _compiled()
    scheduler = keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.1)
    stopper = keras.callbacks.EarlyStopping(monitor="d_loss", patience=0, min_delta=1e9)
    history = _fit(
        gan,
        [
            keras_gan.callbacks.ForPlayer("discriminator", scheduler),
            keras_gan.callbacks.ForPlayer("discriminator", stopper),
        ],
        epochs=5,
    )
    assert len(history.history["d_loss"]) == 2  # stopped through the wrapper
    np.testing.assert_allclose(_rates(gan), [4e-5, 1e-3], rtol=1e-6)


def test_for_player_refuses_an_unknown_player():
    with pytest.raises(keras_gan.InputError, match="'critic'"):
        keras_gan.callbacks.ForPlayer("critic", keras.callbacks.History())


class _Scores(keras.callbacks.Callback):
    """Logs a scalar as `keras_gan.callbacks.Evaluate` does, before the
    monitoring callbacks see the epoch's logs."""

    def __init__(self, name, values):
        super().__init__()
        self.name, self.values = name, values

    def on_epoch_end(self, epoch, logs=None):
        logs[self.name] = self.values[epoch]


@pytest.mark.parametrize(
    ("name", "values", "epochs_run"),
    [
        ("frechet_distance", [30.0, 20.0, 25.0, 10.0, 9.0], 3),  # lower is better
        ("inception_score", [3.0, 4.0, 3.5, 5.0, 6.0], 3),  # higher is better
    ],
)
def test_evaluation_metrics_carry_their_direction(name, values, epochs_run):
    gan = _compiled()
    stopper = keras.callbacks.EarlyStopping(monitor=name, patience=1)  # no mode=
    history = _fit(gan, [_Scores(name, values), stopper], epochs=5)
    # The best comes at epoch 2; epoch 3 is worse: patience 1 stops there.
    assert len(history.history["d_loss"]) == epochs_run
    # Listed for their direction only, never logged by fit itself.
    logged = set(history.history) - {name}
    assert logged == {"d_loss", "g_loss", "d_real", "d_fake"}
