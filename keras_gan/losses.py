"""Adversarial losses as pairs of pure functions of the discriminator's logits.

Every pair is `<name>_discriminator_loss(real_logits, fake_logits)` and
`<name>_generator_loss(real_logits, fake_logits)`, each returning a scalar
averaged over the batch. Logits are D's raw outputs: pre-sigmoid scores for
the cross-entropy losses, where D(x) = sigmoid(logit), and log D(x) =
-softplus(-logit), log(1 - D(x)) = -softplus(logit) stay finite where a sigmoid
followed by a log would not; critic values for the Wasserstein loss.
Half-precision logits are cast to float32 first, so that float16 or bfloat16
outputs of a mixed-precision D neither overflow when squared nor lose the
small differences of relativistic losses; float32 and float64 logits keep
their dtype.
"""

import dataclasses
from collections.abc import Callable

from keras import ops

from keras_gan import precision
from keras_gan.errors import InputError

_widen = precision.widen


def _mean(values):
    return ops.mean(precision.widen(values))


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy of D: -log D(x) - log(1 - D(G(z))).

    Eq. 1 of Goodfellow et al. 2014, arXiv:1406.2661, as a loss to minimise.
    """
    real_logits, fake_logits = _widen(real_logits), _widen(fake_logits)
    return _mean(ops.softplus(-real_logits)) + _mean(ops.softplus(fake_logits))


def non_saturating_generator_loss(real_logits, fake_logits):
    """G minimises -log D(G(z)): the "-log D trick" of arXiv:1406.2661, sec. 3.

    Strong gradients early in training, when D rejects G's samples easily.
    `real_logits` is unused; it keeps every generator loss one signature.
    """
    del real_logits
    return _mean(ops.softplus(-_widen(fake_logits)))


minimax_discriminator_loss = non_saturating_discriminator_loss


def minimax_generator_loss(real_logits, fake_logits):
    """G minimises log(1 - D(G(z))): the original minimax game, eq. 1 of
    arXiv:1406.2661. Its gradient vanishes when D is confident.
    """
    del real_logits
    return -_mean(ops.softplus(_widen(fake_logits)))


def least_squares_discriminator_loss(real_logits, fake_logits):
    """LSGAN: 1/2 (D(x) - 1)^2 + 1/2 D(G(z))^2 on D's raw output.

    Eq. 2 of Mao et al. 2017, arXiv:1611.04076, with the 0-1 coding a = 0
    (fake), b = 1 (real). The quadratic penalises samples far on the correct
    side of the boundary too, which keeps G's gradients from vanishing.
    """
    real_logits, fake_logits = _widen(real_logits), _widen(fake_logits)
    return 0.5 * _mean(ops.square(real_logits - 1.0)) + 0.5 * _mean(
        ops.square(fake_logits)
    )


def least_squares_generator_loss(real_logits, fake_logits):
    """LSGAN: G minimises 1/2 (D(G(z)) - 1)^2.

    Eq. 2 of Mao et al. 2017, arXiv:1611.04076, with c = 1: G wants D to take
    its samples for real.
    """
    del real_logits
    return 0.5 * _mean(ops.square(_widen(fake_logits) - 1.0))


def hinge_discriminator_loss(real_logits, fake_logits):
    """Hinge loss of D: max(0, 1 - D(x)) + max(0, 1 + D(G(z))).

    Lim & Ye 2017, "Geometric GAN", arXiv:1705.02894; the loss of SN-GAN,
    Miyato et al. 2018, arXiv:1802.05957, eq. 16. Samples beyond the margin
    (real logits above 1, fake below -1) give D no gradient.
    """
    real_logits, fake_logits = _widen(real_logits), _widen(fake_logits)
    return _mean(ops.relu(1.0 - real_logits)) + _mean(ops.relu(1.0 + fake_logits))


def hinge_generator_loss(real_logits, fake_logits):
    """Hinge loss of G: -D(G(z)), as in arXiv:1705.02894 and arXiv:1802.05957
    (eq. 17). The margin applies to D only.
    """
    del real_logits
    return -_mean(_widen(fake_logits))


def wasserstein_discriminator_loss(real_logits, fake_logits):
    """The critic's loss D(G(z)) - D(x): the negated Kantorovich-Rubinstein
    estimate of the Wasserstein-1 distance, eq. 3 of Arjovsky et al. 2017,
    arXiv:1701.07875.

    D must be 1-Lipschitz for the estimate to hold: pair it with weight
    clipping or, usually, the gradient penalty of Gulrajani et al. 2017,
    arXiv:1704.00028, eq. 3, added as a regulariser of D.
    """
    return _mean(_widen(fake_logits)) - _mean(_widen(real_logits))


def wasserstein_generator_loss(real_logits, fake_logits):
    """G minimises -D(G(z)), the term of arXiv:1701.07875's eq. 3 that
    depends on G (Algorithm 1).
    """
    del real_logits
    return -_mean(_widen(fake_logits))


def _relativistic_average_logits(real_logits, fake_logits):
    # C_r = C(x_r) - mean C(x_f), C_f = C(x_f) - mean C(x_r): how much more
    # realistic each sample looks than the average of the other kind.
    real_logits, fake_logits = _widen(real_logits), _widen(fake_logits)
    return real_logits - ops.mean(fake_logits), fake_logits - ops.mean(real_logits)


def relativistic_discriminator_loss(real_logits, fake_logits):
    """Relativistic average standard GAN (RaSGAN) loss of D:
    -log sigmoid(C_r) - log(1 - sigmoid(C_f)).

    L_D^RaSGAN of Jolicoeur-Martineau 2018, arXiv:1807.00734 (section
    "Relativistic average GANs"), with C the critic's raw output,
    C_r = C(x_r) - mean C(x_f) and C_f = C(x_f) - mean C(x_r), means over the
    batch.
    """
    real_relative, fake_relative = _relativistic_average_logits(
        real_logits, fake_logits
    )
    return _mean(ops.softplus(-real_relative)) + _mean(ops.softplus(fake_relative))


def relativistic_generator_loss(real_logits, fake_logits):
    """RaSGAN loss of G: -log sigmoid(C_f) - log(1 - sigmoid(C_r)).

    L_G^RaSGAN of Jolicoeur-Martineau 2018, arXiv:1807.00734: D's loss with
    real and fake swapped, so G also lowers how real the real images look
    relative to its own. Needs `real_logits`.
    """
    real_relative, fake_relative = _relativistic_average_logits(
        real_logits, fake_logits
    )
    return _mean(ops.softplus(-fake_relative)) + _mean(ops.softplus(real_relative))


@dataclasses.dataclass(frozen=True)
class GANLoss:
    """A named pair of discriminator and generator losses.

    Args:
        name: the name users pass to `GAN.compile(loss=...)`.
        discriminator: `(real_logits, fake_logits) -> scalar` minimised by D.
        generator: `(real_logits, fake_logits) -> scalar` minimised by G.
        generator_needs_real_logits: whether `generator` reads `real_logits`
            (relativistic losses do); when False the generator step skips D on
            real images and passes `None`.
    """

    name: str
    discriminator: Callable
    generator: Callable
    generator_needs_real_logits: bool = False


LOSSES = {
    "non_saturating": GANLoss(
        "non_saturating",
        non_saturating_discriminator_loss,
        non_saturating_generator_loss,
    ),
    "minimax": GANLoss("minimax", minimax_discriminator_loss, minimax_generator_loss),
    "least_squares": GANLoss(
        "least_squares",
        least_squares_discriminator_loss,
        least_squares_generator_loss,
    ),
    "hinge": GANLoss("hinge", hinge_discriminator_loss, hinge_generator_loss),
    "wasserstein": GANLoss(
        "wasserstein", wasserstein_discriminator_loss, wasserstein_generator_loss
    ),
    "relativistic": GANLoss(
        "relativistic",
        relativistic_discriminator_loss,
        relativistic_generator_loss,
        generator_needs_real_logits=True,
    ),
}


def get(name: str) -> GANLoss:
    """Returns the `GANLoss` registered under `name`.

    Example:

    >>> get("minimax").name
    'minimax'
    """
    if name not in LOSSES:
        raise InputError(
            f"Unknown loss {name!r}; expected one of: {', '.join(LOSSES)}."
        )
    return LOSSES[name]
