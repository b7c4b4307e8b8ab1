"""The names a user chooses from, in a module that imports no Keras.

The command line checks its flags against these before TensorFlow loads (a
wrong `--loss` answers in a fraction of a second, not after the 5 s import);
the library's registries (`networks.ARCHITECTURES`, `losses.LOSSES`) hold the
same names, which a test keeps equal.
"""

from collections.abc import Sequence

from keras_gan.errors import InputError

# Each backend's name is also the package it needs.
BACKENDS = ("tensorflow", "jax", "torch")
ARCHITECTURES = ("mlp", "dcgan", "resnet")
LOSSES = (
    "non_saturating",
    "minimax",
    "least_squares",
    "hinge",
    "wasserstein",
    "relativistic",
)
AUGMENT_POLICIES = ("color", "translation", "cutout")
MIXED_PRECISION = ("mixed_float16", "mixed_bfloat16")
EXPORT_FORMATS = ("saved_model", "onnx")
# Data parallelism on one host: tf.distribute.MirroredStrategy (TensorFlow),
# keras.distribution.DataParallel (JAX); on several processes or hosts:
# MultiWorkerMirroredStrategy (TensorFlow), keras.distribution.initialize +
# DataParallel (JAX); see keras_gan.distribute.
DISTRIBUTE = ("mirrored", "data-parallel", "multi-worker")
# Which generator of a run to export: its weight average if it keeps one.
EXPORT_GENERATORS = ("auto", "live", "ema")


def parse_policy(policy: str | Sequence[str] | None) -> tuple[str, ...]:
    """Returns the transform names of a DiffAugment policy, in order.

    Args:
        policy: comma-separated names (`"color,translation,cutout"`), a
            sequence of names, or `None` / `""` for no augmentation. Names come
            from `AUGMENT_POLICIES`, each at most once.

    Returns:
        A tuple of names; empty for no augmentation.

    Example:

    >>> parse_policy("color, cutout")
    ('color', 'cutout')
    """
    if policy is None:
        return ()
    if isinstance(policy, str):
        names = [name.strip() for name in policy.split(",")] if policy.strip() else []
    else:
        names = list(policy)
    for name in names:
        if name not in AUGMENT_POLICIES:
            raise InputError(
                f"Unknown augmentation {name!r} in policy {policy!r}; expected "
                f"comma-separated names from: {', '.join(AUGMENT_POLICIES)}."
            )
    if len(set(names)) != len(names):
        raise InputError(
            f"Augmentation policy {policy!r} names a transform twice; expected "
            f"each of {', '.join(AUGMENT_POLICIES)} at most once."
        )
    return tuple(names)
