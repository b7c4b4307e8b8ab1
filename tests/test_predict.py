"""`GAN.predict` and `GAN.evaluate` beside fused training steps: honest
progress, one trace for any number of latents, the generator's images."""

import logging
import re

import keras
import numpy as np
import pytest
from helpers import LATENT_DIM
from helpers import tiny_gan
from helpers import tiny_images

_PROGRESS = re.compile(r"(\d+)/(\d+) ")


def _progress(text):
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return [(int(done), int(total)) for done, total in _PROGRESS.findall(plain)]


def _compiled():
    gan = tiny_gan()
    gan.compile(steps_per_execution=32)  # what "auto" picks under XLA
    return gan


@pytest.mark.backends
def test_predict_counts_real_batches_and_returns_the_generators_images(capsys):
    gan = _compiled()
    z = np.random.default_rng(0).normal(size=(100, LATENT_DIM)).astype("float32")
    images = gan.predict(z, batch_size=32, verbose=1)
    shown = _progress(capsys.readouterr().out)
    # Four batches of 32, 32, 32, 4 rows: never "32/4".
    assert shown and all(done <= total == 4 for done, total in shown), shown
    assert shown[-1] == (4, 4)
    expected = keras.ops.convert_to_numpy(gan(z))
    np.testing.assert_allclose(images, expected, atol=1e-6)
    assert gan.steps_per_execution == 32  # training keeps its fused steps


@pytest.mark.backends
def test_evaluate_counts_real_batches(capsys):
    gan = _compiled()
    gan.evaluate(tiny_images(100), batch_size=32, verbose=1)
    shown = _progress(capsys.readouterr().out)
    assert shown and all(done <= total == 4 for done, total in shown), shown


def test_repeated_predicts_of_any_size_do_not_retrace():
    if keras.config.backend() != "tensorflow":
        pytest.skip("tf.function retracing is TensorFlow's")
    warnings = []

    class Recorder(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())

    recorder = Recorder()
    logging.getLogger("tensorflow").addHandler(recorder)
    try:
        gan = _compiled()
        z = np.random.default_rng(0).normal(size=(300, LATENT_DIM)).astype("float32")
        for count in range(1, 300, 23):  # a different last batch each time
            assert gan.predict(z[:count], batch_size=32, verbose=0).shape[0] == count
    finally:
        logging.getLogger("tensorflow").removeHandler(recorder)
    assert not [message for message in warnings if "retracing" in message]
