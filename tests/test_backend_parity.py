"""The same GAN step on TensorFlow, JAX and PyTorch.

`parity_cases.py` trains each case of `CASES` (every architecture, loss
family, penalty with a lazy interval, d_steps, EMA, DiffAugment, a conditional
model) for one step and for eight from the same initial weights on each
backend, in float64, in a process of its own; here the final weights, both
optimizers' variables, the logs, the noise state and generated images must
agree, and a `.keras` file written by one backend must continue training the
same way on the others.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")

from parity_cases import CASES  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("parity")
    for backend in BACKENDS:
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
        env["JAX_ENABLE_X64"] = "1"  # float64 arrays on JAX
        env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(HERE), HERE])
        completed = subprocess.run(
            [sys.executable, os.path.join(HERE, "parity_cases.py"), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert completed.returncode == 0, completed.stderr[-3000:]
    return out


def _close(reference, other, name):
    # Relative to the array's scale, plus 1e-4 absolute (a hundredth of a
    # step: the learning rates are 1e-2 and 5e-2). Measured in float64
    # (parity_cases.py, seeded initial weights): under a tenth of this
    # tolerance everywhere; the largest, 1.1e-5 absolute, on convolution
    # biases before batch norm, whose gradient is zero in exact arithmetic
    # and float32 noise on JAX and PyTorch (Keras computes some float64 ops in
    # float32 there). A wrong step differs by about the learning rate.
    reference, other = reference.astype("float64"), other.astype("float64")
    assert reference.shape == other.shape, name
    scale = np.abs(reference).max() if reference.size else 0.0
    error = np.abs(reference - other).max() if reference.size else 0.0
    assert error <= 1e-3 * scale + 1e-4, f"{name}: {error:.3g} at scale {scale:.3g}"


@pytest.mark.parametrize("steps", ["step", "eight"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_backends_train_the_same_gan(results, case, backend, steps):
    name = f"{case}.step.npz" if steps == "step" else f"{case}.npz"
    reference = np.load(results / "tensorflow" / name)
    other = np.load(results / backend / name)
    assert sorted(other.files) == sorted(reference.files)
    np.testing.assert_array_equal(other["seed_state"], reference["seed_state"])
    for name in reference.files:
        _close(reference[name], other[name], name)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_a_keras_file_continues_on_every_backend(results, case, backend):
    reference = np.load(results / "tensorflow" / f"{case}.continued.npz")
    other = np.load(results / backend / f"{case}.continued.npz")
    assert int(reference["iterations"]) == int(other["iterations"]) == 12
    for name in reference.files:
        _close(reference[name], other[name], name)
