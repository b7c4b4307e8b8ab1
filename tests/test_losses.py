import math

import numpy as np
import pytest
import tensorflow as tf

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


def _softplus(x):
    return math.log1p(math.exp(x))


def _gradients(loss, real, fake):
    real, fake = tf.constant(real), tf.constant(fake)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([real, fake])
        value = loss(real, fake)
    zero = tf.UnconnectedGradients.ZERO
    gradients = tape.gradient(value, [real, fake], unconnected_gradients=zero)
    return gradients[0].numpy(), gradients[1].numpy()


def test_least_squares_losses_by_hand():
    # D: 1/2 mean((2-1)^2, (-1-1)^2) + 1/2 mean(0.5^2, (-3)^2) = 1.25 + 2.3125
    value = float(losses.least_squares_discriminator_loss(REAL, FAKE))
    assert value == pytest.approx(3.5625, rel=1e-6)
    # G: 1/2 mean((0.5-1)^2, (-3-1)^2) = 1/2 (0.25 + 16) / 2
    value = float(losses.least_squares_generator_loss(None, FAKE))
    assert value == pytest.approx(4.0625, rel=1e-6)
    # d/d real_i = (real_i - 1) / batch, d/d fake_i = fake_i / batch.
    real_grad, fake_grad = _gradients(
        losses.least_squares_discriminator_loss, REAL, FAKE
    )
    np.testing.assert_allclose(real_grad, [[0.5], [-1.0]])
    np.testing.assert_allclose(fake_grad, [[0.25], [-1.5]])


def test_hinge_losses_by_hand():
    # D: mean(relu(1-2), relu(1+1)) + mean(relu(1+0.5), relu(1-3)) = 1 + 0.75
    value = float(losses.hinge_discriminator_loss(REAL, FAKE))
    assert value == pytest.approx(1.75, rel=1e-6)
    # G: -mean(0.5, -3)
    assert float(losses.hinge_generator_loss(None, FAKE)) == pytest.approx(1.25)


def test_hinge_discriminator_ignores_samples_beyond_the_margin():
    # Real 2 > 1 and fake -3 < -1 are beyond the margin: zero gradient there;
    # inside it D pushes real logits up and fake logits down.
    real_grad, fake_grad = _gradients(losses.hinge_discriminator_loss, REAL, FAKE)
    np.testing.assert_array_equal(real_grad, [[0.0], [-0.5]])
    np.testing.assert_array_equal(fake_grad, [[0.5], [0.0]])
    # G always pushes its logits up, even beyond the margin.
    _, fake_grad = _gradients(losses.hinge_generator_loss, REAL, FAKE)
    np.testing.assert_array_equal(fake_grad, [[-0.5], [-0.5]])


def test_wasserstein_losses_by_hand():
    # Critic: mean(0.5, -3) - mean(2, -1) = -1.25 - 0.5
    value = float(losses.wasserstein_discriminator_loss(REAL, FAKE))
    assert value == pytest.approx(-1.75, rel=1e-6)
    assert float(losses.wasserstein_generator_loss(None, FAKE)) == pytest.approx(1.25)
    real_grad, fake_grad = _gradients(losses.wasserstein_discriminator_loss, REAL, FAKE)
    np.testing.assert_array_equal(real_grad, [[-0.5], [-0.5]])
    np.testing.assert_array_equal(fake_grad, [[0.5], [0.5]])


def test_relativistic_losses_by_hand():
    # mean(real) = 0.5, mean(fake) = -1.25:
    # C_r = real - mean(fake) = (3.25, 0.25), C_f = fake - mean(real) = (0, -3.5).
    d_expected = np.mean([_softplus(-3.25), _softplus(-0.25)]) + np.mean(
        [_softplus(0.0), _softplus(-3.5)]
    )
    g_expected = np.mean([_softplus(0.0), _softplus(3.5)]) + np.mean(
        [_softplus(3.25), _softplus(0.25)]
    )
    value = float(losses.relativistic_discriminator_loss(REAL, FAKE))
    assert value == pytest.approx(d_expected, rel=1e-6)
    value = float(losses.relativistic_generator_loss(REAL, FAKE))
    assert value == pytest.approx(g_expected, rel=1e-6)
    # At equal logits every relative logit is 0: log 2 per term.
    zeros = np.zeros((3, 1), "float32")
    for loss in (
        losses.relativistic_discriminator_loss,
        losses.relativistic_generator_loss,
    ):
        assert float(loss(zeros, zeros)) == pytest.approx(2 * math.log(2.0))


def test_relativistic_generator_raises_fake_and_lowers_real_logits():
    real_grad, fake_grad = _gradients(losses.relativistic_generator_loss, REAL, FAKE)
    assert np.all(fake_grad < 0) and np.all(real_grad > 0)
    real_grad, fake_grad = _gradients(
        losses.relativistic_discriminator_loss, REAL, FAKE
    )
    assert np.all(fake_grad > 0) and np.all(real_grad < 0)


def test_only_the_relativistic_generator_reads_real_logits():
    needs_real = {
        name for name, pair in losses.LOSSES.items() if pair.generator_needs_real_logits
    }
    assert needs_real == {"relativistic"}
    assert list(losses.LOSSES)[:2] == ["non_saturating", "minimax"]
    for name, pair in losses.LOSSES.items():
        assert pair.name == name
        if not pair.generator_needs_real_logits:
            pair.generator(None, FAKE)  # the GAN passes None


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_losses_are_float32_and_finite_for_half_precision_logits(dtype):
    # Mixed precision feeds D's float16/bfloat16 outputs; 300^2 overflows
    # float16, so the losses must cast before squaring.
    real = tf.constant([[300.0], [-2.0], [0.25]], dtype)
    fake = tf.constant([[-300.0], [1.5], [0.0]], dtype)
    for name, pair in losses.LOSSES.items():
        for loss in (pair.discriminator, pair.generator):
            value = loss(real, fake)
            assert value.dtype == tf.float32, name
            assert np.isfinite(float(value)), name
            full = float(loss(tf.cast(real, "float32"), tf.cast(fake, "float32")))
            assert float(value) == pytest.approx(full, rel=1e-6), name


def test_get_by_name_and_unknown_name():
    assert losses.get("minimax").generator is losses.minimax_generator_loss
    assert losses.get("hinge").discriminator is losses.hinge_discriminator_loss
    with pytest.raises(
        InputError,
        match="Unknown loss 'hinge2'; expected one of: non_saturating, minimax, "
        "least_squares, hinge, wasserstein, relativistic",
    ):
        losses.get("hinge2")
