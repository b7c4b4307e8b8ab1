"""Adversarial losses as pairs of pure functions of the discriminator's logits.

Every pair is `<name>_discriminator_loss(real_logits, fake_logits)` and
`<name>_generator_loss(real_logits, fake_logits)`, each returning a float32
scalar averaged over the batch. Logits are pre-sigmoid scores: D(x) =
sigmoid(logit), and log D(x) = -softplus(-logit), log(1 - D(x)) =
-softplus(logit), which stay finite where a sigmoid followed by a log would not.
"""

import dataclasses
from collections.abc import Callable

from keras import ops

from keras_gan.errors import InputError


def _mean(values):
    return ops.mean(ops.cast(values, "float32"))


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """Binary cross-entropy of D: -log D(x) - log(1 - D(G(z))).

    Eq. 1 of Goodfellow et al. 2014, arXiv:1406.2661, as a loss to minimise.
    """
    return _mean(ops.softplus(-real_logits)) + _mean(ops.softplus(fake_logits))


def non_saturating_generator_loss(real_logits, fake_logits):
    """G minimises -log D(G(z)): the "-log D trick" of arXiv:1406.2661, sec. 3.

    Strong gradients early in training, when D rejects G's samples easily.
    `real_logits` is unused; it keeps every generator loss one signature.
    """
    del real_logits
    return _mean(ops.softplus(-fake_logits))


minimax_discriminator_loss = non_saturating_discriminator_loss


def minimax_generator_loss(real_logits, fake_logits):
    """G minimises log(1 - D(G(z))): the original minimax game, eq. 1 of
    arXiv:1406.2661. Its gradient vanishes when D is confident.
    """
    del real_logits
    return -_mean(ops.softplus(fake_logits))


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
