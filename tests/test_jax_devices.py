"""JAX: one device against two (Keras's `DataParallel`), in processes of their
own with two host devices (`--xla_force_host_platform_device_count=2`)."""

import textwrap

import keras
import numpy as np
import pytest
from helpers import run_json_script
from helpers import two_jax_cpu_devices_env

pytestmark = [
    pytest.mark.backends,
    pytest.mark.skipif(keras.config.backend() != "jax", reason="JAX's devices"),
]

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, keras, numpy as np
    import keras_gan

    assert len(jax.devices()) == 2, jax.devices()
    if sys.argv[1] == "2":
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=jax.devices()))
    keras.utils.set_random_seed(0)
    # A DCGAN: batch norm statistics over the batch that the devices split.
    generator, discriminator = keras_gan.networks.build("dcgan", 4, (8, 8, 1))
    gan = keras_gan.GAN(generator, discriminator, seed=0)
    gan.compile(r1=1.0, penalty_interval=2)
    images = np.random.default_rng(0).uniform(-1, 1, (32, 8, 8, 1)).astype("f4")
    history = gan.fit(images, batch_size=8, epochs=2, shuffle=False, verbose=0)
    kernel = gan.discriminator.trainable_variables[0]
    print(json.dumps({
        "devices": len(kernel.value.sharding.device_set),
        "weights": [w.ravel().tolist() for w in gan.get_weights()],
        "g_loss": history.history["g_loss"],
        "iterations": int(gan.g_optimizer.iterations.value),
    }))
    """
)


def test_two_devices_train_as_one(tmp_path):
    script = tmp_path / "devices.py"
    script.write_text(_SCRIPT)
    env = two_jax_cpu_devices_env()
    runs = {devices: run_json_script(script, devices, env) for devices in "12"}
    one, two = runs["1"], runs["2"]
    assert (one["devices"], two["devices"]) == (1, 2)  # replicated on both
    assert one["iterations"] == two["iterations"] == 8
    np.testing.assert_allclose(two["g_loss"], one["g_loss"], rtol=1e-4)
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
