import math

import numpy as np
import pytest

from keras_gan import losses
from keras_gan.errors import InputError


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


REAL = np.array([[2.0], [-1.0]], dtype="float32")
FAKE = np.array([[0.5], [-3.0]], dtype="float32")


def test_discriminator_loss_matches_binary_cross_entropy_by_hand():
    # -mean(log D(x)) - mean(log(1 - D(G(z)))), with D = sigmoid(logit).
    expected = -np.mean([math.log(_sigmoid(2.0)), math.log(_sigmoid(-1.0))]) - np.mean(
        [math.log(1 - _sigmoid(0.5)), math.log(1 - _sigmoid(-3.0))]
    )
    value = float(losses.non_saturating_discriminator_loss(REAL, FAKE))
    assert value == pytest.approx(expected, rel=1e-6)
    assert float(losses.minimax_discriminator_loss(REAL, FAKE)) == pytest.approx(
        expected, rel=1e-6
    )


def test_non_saturating_generator_loss_is_minus_log_d_of_fake():
    expected = -np.mean([math.log(_sigmoid(0.5)), math.log(_sigmoid(-3.0))])
    value = float(losses.non_saturating_generator_loss(None, FAKE))
    assert value == pytest.approx(expected, rel=1e-6)


def test_minimax_generator_loss_is_log_one_minus_d_of_fake():
    expected = np.mean([math.log(1 - _sigmoid(0.5)), math.log(1 - _sigmoid(-3.0))])
    value = float(losses.minimax_generator_loss(None, FAKE))
    assert value == pytest.approx(expected, rel=1e-6)


def test_losses_stay_finite_for_extreme_logits():
    extreme = np.array([[1e4], [-1e4]], dtype="float32")
    for pair in losses.LOSSES.values():
        assert np.isfinite(float(pair.discriminator(extreme, extreme)))
        assert np.isfinite(float(pair.generator(extreme, extreme)))


def test_at_equilibrium_d_loss_is_two_log_two():
    # D(x) = 1/2 everywhere: the value of the game at its optimum, eq. 5 of
    # arXiv:1406.2661 (-log 4 for V, +log 4 for the loss).
    zeros = np.zeros((3, 1), "float32")
    value = float(losses.non_saturating_discriminator_loss(zeros, zeros))
    assert value == pytest.approx(math.log(4.0), rel=1e-6)


def test_get_by_name_and_unknown_name():
    assert losses.get("minimax").generator is losses.minimax_generator_loss
    with pytest.raises(InputError, match="Unknown loss 'hinge2'.*non_saturating"):
        losses.get("hinge2")
