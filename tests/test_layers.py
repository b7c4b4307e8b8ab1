import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from keras_gan.errors import InputError
from keras_gan.layers import ConditionalBatchNormalization
from keras_gan.layers import GlobalSumPooling2D
from keras_gan.layers import SpectralNormalization


def _kernel_with_singular_values(shape, singular_values, seed=0):
    # W = A diag(s) B^T reshaped to `shape`, with A, B random orthonormal.
    rng = np.random.default_rng(seed)
    rows, units = int(np.prod(shape[:-1])), shape[-1]
    left, _ = np.linalg.qr(rng.normal(size=(rows, units)))
    right, _ = np.linalg.qr(rng.normal(size=(units, units)))
    matrix = left @ np.diag(singular_values) @ right.T
    return matrix.reshape(shape).astype("float32")


def _dense(units=3, inputs=4, power_iterations=1, seed=0, **kwargs):
    layer = SpectralNormalization(
        layers.Dense(units, bias_initializer="ones", **kwargs),
        power_iterations=power_iterations,
    )
    layer.build((None, inputs))
    layer.layer.kernel.assign(
        _kernel_with_singular_values((inputs, units), [3.0, 1.0, 0.5], seed)
    )
    return layer


def _sigma(kernel):
    kernel = np.asarray(kernel, dtype="float64")
    return np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]


def test_dense_output_is_x_times_kernel_over_its_largest_singular_value():
    layer = _dense(power_iterations=50)
    x = np.random.default_rng(1).normal(size=(5, 4)).astype("float32")
    outputs = np.asarray(layer(x, training=True))
    kernel = layer.layer.kernel.numpy()
    assert _sigma(kernel) == pytest.approx(3.0, rel=1e-5)
    assert _sigma(layer.normalized_kernel()) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(outputs, x @ kernel / 3.0 + 1.0, atol=1e-5)


def test_one_iteration_per_training_call_converges_through_u():
    layer = _dense(power_iterations=1)
    x = np.ones((2, 4), "float32")
    for _ in range(30):
        layer(x, training=True)
    assert _sigma(layer.normalized_kernel()) == pytest.approx(1.0, abs=1e-3)
    # u is the top right singular vector of the kernel.
    _, _, right = np.linalg.svd(layer.layer.kernel.numpy())
    assert abs(np.dot(layer.u.numpy(), right[0])) == pytest.approx(1.0, abs=1e-3)


def test_u_changes_only_when_training():
    layer = _dense()
    x = np.ones((2, 4), "float32")
    before = layer.u.numpy()
    layer(x)
    layer(x, training=False)
    np.testing.assert_array_equal(layer.u.numpy(), before)
    layer(x, training=True)
    assert not np.allclose(layer.u.numpy(), before)
    assert [weight.name for weight in layer.non_trainable_weights] == ["u"]


def test_gradient_goes_through_the_normalisation_eq_12():
    # f(W) = sum(x W / sigma(W)): df/dW = (G - <G, W> a b^T / sigma) / sigma,
    # with G = x^T 1 and a, b the top singular vectors (eq. 12 of the paper).
    layer = _dense(power_iterations=50)
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    with tf.GradientTape() as tape:
        outputs = layer(x, training=True)
        loss = tf.reduce_sum(outputs - layer.layer.bias)
    gradient = tape.gradient(loss, layer.layer.kernel)

    kernel = layer.layer.kernel.numpy().astype("float64")
    left, singular_values, right = np.linalg.svd(kernel)
    sigma = singular_values[0]
    g = x.astype("float64").T @ np.ones((5, 3))
    expected = (g - np.sum(g * kernel) * np.outer(left[:, 0], right[0]) / sigma) / sigma
    np.testing.assert_allclose(np.asarray(gradient), expected, atol=1e-4)
    # Keras's in-place layer would give g / sigma: the second term is the point.
    assert np.abs(expected - g / sigma).max() > 0.1


def test_conv2d_uses_the_kernel_reshaped_to_filters_columns():
    layer = SpectralNormalization(
        layers.Conv2D(5, 3, strides=2, padding="same", activation="relu"),
        power_iterations=50,
    )
    layer.build((None, 6, 6, 2))
    kernel = _kernel_with_singular_values((3, 3, 2, 5), [2.0, 1.5, 1.0, 0.5, 0.1])
    layer.layer.kernel.assign(kernel)
    layer.layer.bias.assign(np.arange(5, dtype="float32") / 10)
    x = np.random.default_rng(3).normal(size=(2, 6, 6, 2)).astype("float32")
    outputs = np.asarray(layer(x, training=True))

    reference = layers.Conv2D(5, 3, strides=2, padding="same", activation="relu")
    reference.build((None, 6, 6, 2))
    reference.set_weights([kernel / _sigma(kernel), layer.layer.bias.numpy()])
    assert outputs.shape == (2, 3, 3, 5)
    np.testing.assert_allclose(outputs, np.asarray(reference(x)), atol=1e-5)
    assert _sigma(layer.normalized_kernel()) == pytest.approx(1.0, abs=1e-3)


def test_embedding_takes_rows_of_the_normalised_table():
    layer = SpectralNormalization(layers.Embedding(4, 3), power_iterations=50)
    labels = np.array([2, 0, 2], "int32")
    outputs = np.asarray(layer(labels, training=True))
    table = layer.layer.embeddings.numpy()
    np.testing.assert_allclose(outputs, table[labels] / _sigma(table), atol=1e-5)


def test_mixed_precision_keeps_variables_and_float32_layers_in_float32():
    half = SpectralNormalization(layers.Dense(3, dtype="mixed_float16"))
    outputs = half(np.ones((2, 4), "float32"), training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == "float16"
    assert half.u.dtype == half.layer.kernel.dtype == "float32"

    inputs = keras.Input((4,))
    features = layers.Dense(3, dtype="mixed_float16")(inputs)
    logits = SpectralNormalization(layers.Dense(1, dtype="float32"))(features)
    model = keras.Model(inputs, logits)
    assert logits.dtype == "float32"
    assert keras.backend.standardize_dtype(model(np.ones((2, 4))).dtype) == "float32"


def test_keras_round_trip_keeps_u_and_outputs(tmp_path):
    inputs = keras.Input((4,))
    outputs = SpectralNormalization(layers.Dense(3), name="sn_dense")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(4).normal(size=(2, 4)).astype("float32")
    model(x, training=True)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer, loaded_layer = model.get_layer("sn_dense"), loaded.get_layer("sn_dense")
    assert isinstance(loaded_layer, SpectralNormalization)
    assert loaded_layer.power_iterations == layer.power_iterations
    np.testing.assert_array_equal(loaded_layer.u.numpy(), layer.u.numpy())
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))


def test_runs_under_xla_and_updates_u():
    layer = _dense()
    eager_twin = _dense()
    eager_twin.u.assign(layer.u.numpy())
    x = np.ones((2, 4), "float32")

    @tf.function(jit_compile=True)
    def step(x):
        return layer(x, training=True)

    np.testing.assert_allclose(
        np.asarray(step(x)), np.asarray(eager_twin(x, training=True)), atol=1e-5
    )
    np.testing.assert_allclose(layer.u.numpy(), eager_twin.u.numpy(), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(InputError, match="Dense, Conv2D or Embedding.*LSTM"):
        SpectralNormalization(layers.LSTM(2))
    with pytest.raises(InputError, match="power_iterations"):
        SpectralNormalization(layers.Dense(2), power_iterations=0)
    with pytest.raises(InputError, match="num_classes"):
        ConditionalBatchNormalization(0)


def test_conditional_batch_normalization_against_hand_computed_values():
    # One channel, four 1x1 "images": mean 2.5, variance 1.25.
    x = np.array([1.0, 2.0, 3.0, 4.0], "float32").reshape(4, 1, 1, 1)
    labels = np.array([0, 1, 0, 1], "int32")
    layer = ConditionalBatchNormalization(2, momentum=0.5, epsilon=0.01)
    layer.build([x.shape, labels.shape])
    np.testing.assert_array_equal(layer.gamma.numpy(), np.ones((2, 1)))
    np.testing.assert_array_equal(layer.beta.numpy(), np.zeros((2, 1)))
    layer.gamma.assign([[2.0], [-1.0]])
    layer.beta.assign([[0.5], [3.0]])

    outputs = np.asarray(layer([x, labels], training=True)).ravel()
    normalized = (np.array([1.0, 2.0, 3.0, 4.0]) - 2.5) / np.sqrt(1.25 + 0.01)
    expected = normalized * [2.0, -1.0, 2.0, -1.0] + [0.5, 3.0, 0.5, 3.0]
    np.testing.assert_allclose(outputs, expected, atol=1e-5)

    # Moving averages after one step with momentum 0.5: mean 1.25, var 1.125.
    outputs = np.asarray(layer([x, labels], training=False)).ravel()
    normalized = (np.array([1.0, 2.0, 3.0, 4.0]) - 1.25) / np.sqrt(1.125 + 0.01)
    expected = normalized * [2.0, -1.0, 2.0, -1.0] + [0.5, 3.0, 0.5, 3.0]
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_conditional_batch_normalization_keras_round_trip(tmp_path):
    features = keras.Input((2, 2, 3))
    labels = keras.Input((), dtype="int32")
    outputs = ConditionalBatchNormalization(4, name="cbn")([features, labels])
    model = keras.Model([features, labels], GlobalSumPooling2D()(outputs))
    x = np.random.default_rng(5).normal(size=(3, 2, 2, 3)).astype("float32")
    y = np.array([0, 3, 1], "int32")
    model.get_layer("cbn").gamma.assign(np.arange(12, dtype="float32").reshape(4, 3))
    model([x, y], training=True)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.output_shape == (None, 3)
    np.testing.assert_allclose(
        np.asarray(loaded([x, y])), np.asarray(model([x, y])), atol=1e-6
    )


def test_global_sum_pooling():
    x = np.arange(16, dtype="float32").reshape(1, 2, 2, 4)
    np.testing.assert_array_equal(
        np.asarray(GlobalSumPooling2D()(x)), [[24.0, 28.0, 32.0, 36.0]]
    )


def test_savedmodel_export_serves_the_same_outputs(tmp_path):
    features = keras.Input((4, 4, 2), name="features")
    labels = keras.Input((), dtype="int32", name="labels")
    x = SpectralNormalization(layers.Conv2D(3, 3, padding="same"))(features)
    x = ConditionalBatchNormalization(2)([x, labels])
    x = GlobalSumPooling2D()(x)
    embedded = SpectralNormalization(layers.Embedding(2, 3))(labels)
    logits = SpectralNormalization(layers.Dense(1))(layers.Add()([x, embedded]))
    model = keras.Model([features, labels], logits)
    x = np.random.default_rng(6).normal(size=(2, 4, 4, 2)).astype("float32")
    y = np.array([1, 0], "int32")
    model([x, y], training=True)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda x, y: model([x, y], training=False),
        input_signature=[
            tf.TensorSpec((None, 4, 4, 2), tf.float32),
            tf.TensorSpec((None,), tf.int32),
        ],
    )
    archive.write_out(str(tmp_path / "export"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "export"))
    served = reloaded.serve(x, y)
    np.testing.assert_allclose(np.asarray(served), np.asarray(model([x, y])), atol=1e-6)
