import keras
import numpy as np
import pytest
from scipy import special
from scipy import stats

from keras_gan import noise

pytestmark = pytest.mark.backends


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def test_latents_are_standard_normal():
    z = _numpy(noise.latent_noise(20_000, 50, seed=3))
    assert z.shape == (20_000, 50) and np.all(np.isfinite(z))
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert abs((z**4).mean() - 3.0) < 0.05  # Gaussian kurtosis
    assert stats.kstest(z.ravel()[:100_000], "norm").pvalue > 1e-3


def test_erfinv_matches_scipy_to_float32_accuracy():
    x = np.linspace(-1 + 2**-23, 1 - 2**-23, 100_001).astype("float32")
    expected = special.erfinv(x.astype("float64"))
    relative = np.abs(_numpy(noise.erfinv(x)) - expected) / np.abs(expected).clip(1e-30)
    assert relative.max() < 4e-7


def test_hash_is_lowbias32_on_uint32():
    # The int32 hash reproduces the uint32 reference bit for bit.
    def reference(x):
        x = x.astype(np.uint64)
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    words = np.array([0, 1, 2**31 - 1, 2**31, 2**32 - 1, 123456789], np.uint32)
    hashed = _numpy(noise.hash32(keras.ops.convert_to_tensor(words.view(np.int32))))
    np.testing.assert_array_equal(hashed.view(np.uint32), reference(words))


def test_same_seed_same_latents_eager_and_compiled():
    seed = np.array([7, 2], np.int32)
    eager = _numpy(noise.latent_noise(64, 100, seed))
    np.testing.assert_array_equal(eager, _numpy(noise.latent_noise(64, 100, [7, 2])))
    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        def draw(s):
            return noise.latent_noise(64, 100, s)

        compiled = [tf.function(draw)(seed), tf.function(draw, jit_compile=True)(seed)]
    elif keras.config.backend() == "jax":
        import jax

        compiled = [jax.jit(lambda s: noise.latent_noise(64, 100, s))(seed)]
    else:
        pytest.skip("PyTorch runs eagerly")
    # The bits are identical; the backends' log and sqrt may differ by an ulp.
    for values in compiled:
        np.testing.assert_allclose(eager, _numpy(values), rtol=0, atol=1e-6)


def test_large_seeds_wrap_modulo_two_to_the_32():
    np.testing.assert_array_equal(
        _numpy(noise.latent_noise(4, 3, [2**33 + 5, 2**40 + 1])),
        _numpy(noise.latent_noise(4, 3, [5, 1])),
    )


def test_seeds_and_counters_give_unrelated_streams():
    base = _numpy(noise.latent_noise(500, 20, [1, 0])).ravel()
    for other in ([1, 1], [2, 0], [0, 1]):
        draw = _numpy(noise.latent_noise(500, 20, other))
        assert abs(np.corrcoef(base, draw.ravel())[0, 1]) < 0.05
    # Columns of one draw are uncorrelated too.
    z = _numpy(noise.latent_noise(5000, 8, 0))
    assert np.abs(np.corrcoef(z.T) - np.eye(8)).max() < 0.06


def test_a_seed_generator_advances_by_one_per_draw():
    generator = keras.random.SeedGenerator(5)
    first = _numpy(noise.latent_noise(4, 3, generator))
    second = _numpy(noise.latent_noise(4, 3, generator))
    assert not np.allclose(first, second)
    np.testing.assert_array_equal(_numpy(generator.state.value), [5, 2])
    np.testing.assert_array_equal(first, _numpy(noise.latent_noise(4, 3, [5, 0])))
