"""Data-parallel training on one host: two replicas against one device at the
same global batch, in processes of their own (the devices are configured
before TensorFlow or JAX starts). TensorFlow: `tf.distribute.MirroredStrategy`
over two logical CPUs; JAX: `keras.distribution.DataParallel` over two host
devices (`--xla_force_host_platform_device_count=2`)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from cli_helpers import assert_one_line_error
from cli_helpers import train
from helpers import run_json_script
from helpers import two_jax_cpu_devices_env

from keras_gan.distribute import Distribution
from keras_gan.errors import InputError

# The configurations that both backends train, each on 16 8x8 images at global
# batch 8 for 2 epochs (4 steps; 2 generator updates with d_steps=2).
_CONFIGURATIONS = textwrap.dedent(
    """
    def configurations():
        # name -> (build(), compile kwargs, fit with labels, policy)
        def mlp():
            g = keras_gan.networks.mlp_generator(4, (8, 8, 1), hidden_units=16)
            d = keras_gan.networks.mlp_discriminator((8, 8, 1), hidden_units=16)
            return keras_gan.GAN(g, d, seed=3)

        def conditional_dcgan():
            g, d = keras_gan.networks.build("dcgan", 4, (8, 8, 1), num_classes=3)
            return keras_gan.GAN(g, d, seed=3, num_classes=3, ema_decay=0.9)

        return {
            # WGAN-GP and R1 (lazy), d_steps=2, DiffAugment: every random draw.
            "mlp_penalties": (mlp, dict(
                loss="wasserstein", gradient_penalty=1.0, r1=1.0,
                penalty_interval=2, d_steps=2, augment="color,translation",
                steps_per_execution=2), False, "float32"),
            # Batch norm in G: statistics of the whole batch on every replica.
            "conditional_dcgan_ema": (conditional_dcgan, {}, True, "float32"),
            # SGD: Adam's first steps are +-lr whatever the gradient's size,
            # which turns bfloat16 rounding into whole steps.
            "mlp_bfloat16": (mlp, dict(
                r1=1.0, d_optimizer=keras.optimizers.SGD(0.1),
                g_optimizer=keras.optimizers.SGD(0.1)), False, "mixed_bfloat16"),
            # Loss scaling (keras_gan wraps both optimizers), R1's inner loss too.
            "mlp_float16": (mlp, dict(
                r1=1.0, d_optimizer=keras.optimizers.SGD(0.1),
                g_optimizer=keras.optimizers.SGD(0.1)), False, "mixed_float16"),
        }

    def train(name, build, options, labelled, policy, scope):
        start = time.time()
        keras.config.set_dtype_policy(policy)
        keras.utils.set_random_seed(0)
        with scope():
            gan = build()
            # Steps of 1e-2: the weights move far more than the tolerance.
            adam = dict(learning_rate=1e-2, beta_1=0.5)
            gan.compile(**{"d_optimizer": keras.optimizers.Adam(**adam),
                           "g_optimizer": keras.optimizers.Adam(**adam),
                           **options})
        initial = [w.ravel().tolist() for w in gan.get_weights()]
        rng = np.random.default_rng(0)
        images = rng.uniform(-1, 1, (16, 8, 8, 1)).astype("f4")
        labels = rng.integers(0, 3, (16,)).astype("i4") if labelled else None
        history = gan.fit(images, labels, batch_size=8, epochs=2, shuffle=False,
                          verbose=0)
        keras.config.set_dtype_policy("float32")
        print(name, time.time() - start, file=sys.stderr)
        kernel = gan.discriminator.trainable_variables[0].value
        sharding = getattr(kernel, "sharding", None)  # JAX arrays only
        return name, {
            "devices": len(sharding.device_set) if sharding else None,
            "initial": initial,
            "weights": [w.ravel().tolist() for w in gan.get_weights()],
            "logs": {k: v for k, v in history.history.items()},
            "generated": gan.generate(4, seed=1).ravel().tolist(),
        }
    """
)

_TF_SCRIPT = (
    textwrap.dedent(
        """
    import contextlib, json, sys, time
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, keras_gan
    from keras_gan import noise
    from keras_gan.backend.tensorflow.trainer import _replica_first_image
    """
    )
    + _CONFIGURATIONS
    + textwrap.dedent(
        """
    # One device (no strategy: CPU:0) and two replicas, in this one process.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    results = {
        replicas: dict(train(name, *case, scope)
                       for name, case in configurations().items())
        for replicas, scope in (("1", contextlib.nullcontext),
                                ("2", strategy.scope))
    }

    # The latents that each replica of a step draws for its 4 images.
    def replica_latents():
        context = tf.distribute.get_replica_context()
        first = _replica_first_image(context, 4)
        return noise.latent_noise(4, 4, [5, 6], first_image=first)
    drawn = strategy.experimental_local_results(strategy.run(replica_latents))
    results["replica_latents"] = [z.numpy().tolist() for z in drawn]
    results["whole_batch_latents"] = noise.latent_noise(8, 4, [5, 6]).numpy().tolist()
    print(json.dumps(results))
    """
    )
)


def _compare(one, two, rtol, atol):
    assert two["initial"] == one["initial"]  # the same start
    for a, b in zip(one["weights"], two["weights"], strict=True):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)
    assert one["logs"].keys() == two["logs"].keys()
    for key in one["logs"]:
        np.testing.assert_allclose(
            two["logs"][key], one["logs"][key], rtol=rtol, atol=atol
        )
    np.testing.assert_allclose(two["generated"], one["generated"], rtol=rtol, atol=atol)
    # The runs trained: equal because of the same updates, not of none.
    moved = max(
        np.abs(np.subtract(w, i)).max()
        for w, i in zip(one["weights"], one["initial"], strict=True)
    )
    assert moved > 10 * atol


# (rtol, atol) per configuration, of weights, logs and generated images.
# float32: rounding only (the all-reduce, sums over 4 images against 8, XLA on
# one device against none under the strategy), which Adam's normalised first
# steps magnify: measured 1.6e-4 at most, the weights moving 4.4e-2.
# mixed_bfloat16: measured 1.8e-4 on weights moving 0.22, but an image off by
# one bfloat16 step (3.9e-3 near 0.5).
_TOLERANCES = {
    "mlp_penalties": (1e-3, 5e-4),
    "conditional_dcgan_ema": (1e-3, 5e-4),
    "mlp_bfloat16": (1e-2, 1e-2),
    "mlp_float16": (1e-2, 1e-2),  # measured 9.4e-4 (an image, float16 rounding)
}


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="tf.distribute")
def test_mirrored_replicas_train_as_one_device(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(_TF_SCRIPT)
    results = run_json_script(script, "")
    for name, (rtol, atol) in _TOLERANCES.items():
        _compare(results["1"][name], results["2"][name], rtol, atol)
    # Each replica draws its slice of the whole batch's latents.
    first, second = (np.array(z) for z in results["replica_latents"])
    whole = np.array(results["whole_batch_latents"])
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(np.concatenate([first, second]), whole)


_JAX_SCRIPT = (
    textwrap.dedent(
        """
    import contextlib, json, sys, time
    import jax, keras, numpy as np
    import keras_gan
    from keras_gan.distribute import Distribution
    """
    )
    + _CONFIGURATIONS
    + textwrap.dedent(
        """
    distribution = Distribution.for_name("data-parallel")
    assert distribution.replicas == 2, jax.devices()
    # One device (no distribution) and two, in this one process.
    results = {
        replicas: dict(train(name, *case, scope)
                       for name, case in configurations().items())
        for replicas, scope in (("1", contextlib.nullcontext),
                                ("2", distribution.scope))
    }
    print(json.dumps(results))
    """
    )
)


@pytest.mark.backends
@pytest.mark.skipif(keras.config.backend() != "jax", reason="keras.distribution")
def test_data_parallel_devices_train_as_one_device(tmp_path):
    script = tmp_path / "data_parallel.py"
    script.write_text(_JAX_SCRIPT)
    env = two_jax_cpu_devices_env()
    results = run_json_script(script, "", env)
    # Measured: equal to the bit on this CPU (one SPMD program over the
    # global batch); the TensorFlow tolerances bound it.
    for name, (rtol, atol) in _TOLERANCES.items():
        assert (results["1"][name]["devices"], results["2"][name]["devices"]) == (1, 2)
        _compare(results["1"][name], results["2"][name], rtol, atol)


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="tf.distribute")
def test_cli_trains_mirrored_on_two_cpu_devices_and_resumes_on_one(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    common = ["--dataset", "digits", "--name", "d", "--batch-size", "64",
              "--latent-dim", "8", "--runs-dir", str(tmp_path / "runs"),
              "--export-dir", str(tmp_path / "saved_models")]  # fmt: skip
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))

    def cli(*flags):
        done = subprocess.run(
            [sys.executable, os.path.join(root, "cli.py"), "train", *common, *flags],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    output = cli("--epochs", "1", "--distribute", "mirrored", "--cpu-devices", "2")
    assert output.count("global batch 64 = 2 replicas x 32 per replica") == 1
    run = tmp_path / "runs" / "d"
    assert json.loads((run / "config.json").read_text())["distribute"] == "mirrored"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["replicas"], summary["per_replica_batch"]) == (2, 32)

    def versions():
        return sorted(
            n for n in os.listdir(tmp_path / "saved_models" / "d") if n.isdigit()
        )

    assert versions() == ["1"]  # one export, not one per replica
    # The weights do not depend on the devices: the run goes on on one.
    cli("--epochs", "2", "--resume")
    assert json.loads((run / "config.json").read_text())["distribute"] is None
    assert versions() == ["1", "2"]


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="its names")
def test_cli_refuses_a_distribution_of_another_backend_in_one_line(tmp_path):
    result = train(tmp_path, "--dataset", "digits", "--distribute", "data-parallel")
    assert_one_line_error(result, "data-parallel", "jax", "mirrored")


def test_a_batch_that_does_not_split_evenly_is_refused_in_one_line():
    with pytest.raises(InputError, match="--batch-size 64 .* multiple of 3"):
        Distribution("mirrored", None, 3).per_replica_batch(64)
    assert Distribution("mirrored", None, 4).describe(64) == (
        "global batch 64 = 4 replicas x 16 per replica (mirrored)"
    )
