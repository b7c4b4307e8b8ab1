"""Data-parallel training on the devices of one host, on each backend's own
distribution engine: `tf.distribute.MirroredStrategy` on TensorFlow,
`keras.distribution.DataParallel` on JAX.

Either way a step on a global batch of B images over R devices equals a step
of one device on the same B images, to float rounding (tests/test_distributed.py):
the losses and penalties are means over the whole batch, batch normalization
uses the whole batch's statistics, and each device draws its own slice of the
whole batch's noise. So the weights, checkpoints and `.keras` files do not
depend on the distribution, and a run may change it when resumed.

Example:

>>> distribution = Distribution.for_name("mirrored")  # doctest: +SKIP
>>> with distribution.scope():  # doctest: +SKIP
...     gan = keras_gan.GAN(generator, discriminator)
...     gan.compile()
...     gan.fit(dataset)  # batches of the global batch size
"""

import contextlib
import os

import keras

from keras_gan.choices import DISTRIBUTE
from keras_gan.errors import InputError

# The engine of each name, and the backend it runs on.
_BACKENDS = {"mirrored": "tensorflow", "data-parallel": "jax"}


class Distribution:
    """A named distribution over this host's devices.

    Args:
        name: `"mirrored"` (TensorFlow) or `"data-parallel"` (JAX), or `None`
            for one device.
        engine: the backend's object (`tf.distribute.MirroredStrategy`,
            `keras.distribution.DataParallel`), or `None`.
        replicas: how many devices share each batch.
    """

    def __init__(self, name, engine, replicas):
        self.name = name
        self.engine = engine
        self.replicas = replicas

    @classmethod
    def for_name(cls, name: str | None) -> "Distribution":
        """The distribution `name` over all local accelerators, else over the
        host's CPU devices (more than one only after `split_cpu`)."""
        if name is None:
            return cls(None, None, 1)
        backend = keras.config.backend()
        if name not in DISTRIBUTE:
            raise InputError(
                f"Unknown distribution {name!r}; expected one of: "
                f"{', '.join(DISTRIBUTE)}."
            )
        if _BACKENDS[name] != backend:
            fitting = [n for n, b in _BACKENDS.items() if b == backend]
            expected = ", ".join(fitting) if fitting else "none (one device)"
            raise InputError(
                f"--distribute {name} runs on the {_BACKENDS[name]} backend; on "
                f"{backend} expected: {expected}."
            )
        if name == "mirrored":
            import tensorflow as tf

            devices = tf.config.list_logical_devices("GPU") or (
                tf.config.list_logical_devices("CPU")
            )
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
            return cls(name, strategy, strategy.num_replicas_in_sync)
        devices = keras.distribution.list_devices()
        return cls(name, keras.distribution.DataParallel(devices=devices), len(devices))

    def scope(self):
        """Where the GAN is built, compiled and trained."""
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()

    def per_replica_batch(self, batch_size: int) -> int:
        """Each device's share of a global batch: an even one, so that every
        replica's step has the same shape (and XLA one program)."""
        if batch_size % self.replicas:
            raise InputError(
                f"--batch-size {batch_size} does not split over {self.replicas} "
                f"replicas; expected a multiple of {self.replicas}."
            )
        return batch_size // self.replicas

    def describe(self, batch_size: int) -> str:
        return (
            f"global batch {batch_size} = {self.replicas} replicas x "
            f"{self.per_replica_batch(batch_size)} per replica ({self.name})"
        )


def split_cpu(count: int) -> None:
    """Presents the host's CPU as `count` devices, for data-parallel training
    (and its tests) on a machine without accelerators. No faster: the devices
    share the same cores. Must run before the backend first uses a device.

    TensorFlow: `count` logical CPU devices; JAX: `XLA_FLAGS`
    `--xla_force_host_platform_device_count`.
    """
    if count < 1:
        raise InputError(f"--cpu-devices must be at least 1; received {count}.")
    if keras.config.backend() == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={count}".strip()
        )
        import jax

        found = len(jax.devices("cpu"))
    else:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        # Too late ("Virtual devices cannot be modified after being
        # initialized") shows as the count below.
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        found = len(tf.config.list_logical_devices("CPU"))
    if found != count:
        raise InputError(
            f"--cpu-devices {count}: the {keras.config.backend()} backend already "
            f"started with {found} CPU device(s); expected the split before it "
            f"first uses a device (a new process)."
        )
