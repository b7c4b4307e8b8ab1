import math

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist

from keras_gan.errors import InputError
from keras_gan.evaluation import metrics


def _normal(n, d, seed=0, mean=0.0, scale=1.0):
    return np.random.default_rng(seed).normal(mean, scale, size=(n, d))


# ----------------------------------------------------------------- statistics


def test_feature_statistics_are_mean_and_unbiased_covariance():
    features = _normal(50, 3)
    mean, covariance = metrics.feature_statistics(features)
    np.testing.assert_allclose(mean, features.mean(axis=0))
    centred = features - features.mean(axis=0)
    np.testing.assert_allclose(covariance, centred.T @ centred / 49)
    assert mean.dtype == covariance.dtype == np.float64


def test_feature_statistics_of_one_feature_keep_matrix_shape():
    mean, covariance = metrics.feature_statistics(_normal(10, 1))
    assert mean.shape == (1,) and covariance.shape == (1, 1)


# ----------------------------------------------------------- Frechet distance


def test_frechet_distance_of_unit_gaussians_is_squared_mean_difference():
    mu = np.array([1.0, -2.0, 0.5])
    value = metrics.frechet_distance(np.zeros(3), np.eye(3), mu, np.eye(3))
    assert value == pytest.approx(float(mu @ mu), abs=1e-10)


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form():
    # Tr(A + B - 2 (AB)^(1/2)) = sum (sqrt(a) - sqrt(b))^2 for diagonal A, B.
    a, b = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    value = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    assert value == pytest.approx(expected, abs=1e-10)  # 4 + 1 + 0 + 5 = 10


def test_frechet_distance_matches_scipy_sqrtm_on_full_covariances():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    cov1, cov2 = x @ x.T + np.eye(6), y @ y.T + 0.1 * np.eye(6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    expected = (
        np.sum((mu1 - mu2) ** 2)
        + np.trace(cov1 + cov2)
        - 2 * np.trace(scipy.linalg.sqrtm(cov1 @ cov2)).real
    )
    assert metrics.frechet_distance(mu1, cov1, mu2, cov2) == pytest.approx(expected)


def test_frechet_distance_from_large_samples_approximates_closed_form():
    a, b = np.array([1.0, 4.0]), np.array([4.0, 1.0])
    mu1, mu2 = np.array([0.0, 0.0]), np.array([1.0, -1.0])
    rng = np.random.default_rng(0)
    real = mu1 + rng.normal(size=(20000, 2)) * np.sqrt(a)
    fake = mu2 + rng.normal(size=(20000, 2)) * np.sqrt(b)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + 2.0  # 4.0
    assert metrics.frechet_distance_from_features(real, fake) == pytest.approx(
        expected, abs=0.1
    )


def test_frechet_distance_of_identical_sets_is_zero():
    features = _normal(200, 8)
    assert metrics.frechet_distance_from_features(features, features) == (
        pytest.approx(0.0, abs=1e-9)
    )


def test_frechet_distance_is_symmetric():
    real, fake = _normal(300, 5, seed=0), _normal(300, 5, seed=1, scale=2.0) ** 2
    forward = metrics.frechet_distance_from_features(real, fake)
    assert forward > 1.0
    assert metrics.frechet_distance_from_features(fake, real) == pytest.approx(forward)


def test_frechet_distance_of_singular_covariances_is_finite_and_real():
    # 10 samples in 64 dimensions: both covariances have rank <= 9.
    real, fake = _normal(10, 64, seed=0), _normal(10, 64, seed=1)
    value = metrics.frechet_distance_from_features(real, fake)
    assert isinstance(value, float) and math.isfinite(value) and value > 0
    same = metrics.frechet_distance_from_features(real, real)
    assert same == pytest.approx(0.0, abs=1e-8)
    # All-zero covariances: only the means differ.
    zero = np.zeros((4, 4))
    assert metrics.frechet_distance(np.zeros(4), zero, np.ones(4), zero) == 4.0


# ------------------------------------------------------------ kernel distance


def _unbiased_mmd2_by_loops(x, y):
    def k(a, b):
        return (a @ b / x.shape[1] + 1.0) ** 3

    n = len(x)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j)
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j)
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(n))
    return xx / (n * (n - 1)) + yy / (n * (n - 1)) - 2 * xy / n**2


def test_kernel_distance_matches_hand_computed_unbiased_mmd():
    # One subset of every sample: a permutation, which MMD does not see.
    x, y = _normal(6, 3, seed=0), _normal(6, 3, seed=1, mean=0.5)
    mean, std = metrics.kernel_distance(x, y, num_subsets=1, subset_size=6)
    assert mean == pytest.approx(_unbiased_mmd2_by_loops(x, y), rel=1e-10)
    assert std == 0.0


def test_kernel_distance_is_near_zero_for_one_distribution_and_grows_with_shift():
    real, fake = _normal(400, 8, seed=0), _normal(400, 8, seed=1)
    # Against itself: O(1/subset_size) below 0, as subsets share samples.
    same, same_std = metrics.kernel_distance(real, real, num_subsets=8, subset_size=200)
    assert abs(same) < 0.05 and same_std > 0
    independent, _ = metrics.kernel_distance(real, fake, num_subsets=8)
    assert abs(independent) < 0.02
    small_shift, _ = metrics.kernel_distance(real, fake + 0.3, num_subsets=8)
    large_shift, _ = metrics.kernel_distance(real, fake + 1.0, num_subsets=8)
    assert large_shift > small_shift > 5 * max(abs(same), abs(independent))


def test_kernel_distance_caps_subset_size_and_is_reproducible():
    real, fake = _normal(30, 4, seed=0), _normal(20, 4, seed=1, mean=1.0)
    first = metrics.kernel_distance(real, fake, num_subsets=5, seed=3)
    assert first == metrics.kernel_distance(real, fake, num_subsets=5, seed=3)
    assert math.isfinite(first[0]) and first[0] > 0


# ------------------------------------------------------------ Inception score


def test_inception_score_of_confident_uniform_predictions_is_num_classes():
    probabilities = np.eye(10)[np.arange(1000) % 10]
    mean, std = metrics.inception_score(probabilities, num_splits=10)
    assert mean == pytest.approx(10.0) and std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_constant_predictions_is_one():
    probabilities = np.tile([0.7, 0.2, 0.1], (100, 1))
    assert metrics.inception_score(probabilities) == pytest.approx((1.0, 0.0))
    collapsed = np.eye(3)[np.zeros(100, dtype=int)]  # one-hot: log(0) everywhere
    assert metrics.inception_score(collapsed) == pytest.approx((1.0, 0.0))


def test_inception_score_by_hand_with_a_zero_probability():
    probabilities = np.array([[0.5, 0.5], [1.0, 0.0]])
    marginal = np.array([0.75, 0.25])
    kl_first = 0.5 * math.log(0.5 / marginal[0]) + 0.5 * math.log(0.5 / marginal[1])
    kl_second = math.log(1.0 / marginal[0])  # 0 log 0 = 0
    expected = math.exp((kl_first + kl_second) / 2)
    assert metrics.inception_score(probabilities, num_splits=1) == pytest.approx(
        (expected, 0.0)
    )


# ------------------------------------------------------ k-NN reference metrics


def _kth_radii(features, k):
    distances = cdist(features, features)
    return np.sort(distances, axis=1)[:, k]  # column 0 is the sample itself


def _reference_precision_recall(real, fake, k):
    real_radii, fake_radii = _kth_radii(real, k), _kth_radii(fake, k)
    distances = cdist(real, fake)  # (n, m)
    precision = (distances <= real_radii[:, None]).any(axis=0).mean()
    recall = (distances <= fake_radii[None, :]).any(axis=1).mean()
    return precision, recall


def _reference_density_coverage(real, fake, k):
    radii = _kth_radii(real, k)
    inside = cdist(real, fake) < radii[:, None]
    return inside.sum() / (k * len(fake)), inside.any(axis=1).mean()


@pytest.mark.parametrize("block_elements", [2**23, 50])
def test_knn_metrics_match_brute_force_references(monkeypatch, block_elements):
    # 50 elements per block forces many row blocks, one row at a time.
    monkeypatch.setattr(metrics, "_BLOCK_ELEMENTS", block_elements)
    real, fake = _normal(120, 5, seed=0), _normal(90, 5, seed=1, mean=0.3, scale=1.3)
    assert metrics.precision_recall(real, fake, k=3) == pytest.approx(
        _reference_precision_recall(real, fake, 3)
    )
    assert metrics.density_coverage(real, fake, k=5) == pytest.approx(
        _reference_density_coverage(real, fake, 5)
    )


def test_precision_recall_of_identical_sets_is_one():
    features = _normal(500, 16)
    assert metrics.precision_recall(features, features) == (1.0, 1.0)


def test_precision_recall_of_one_repeated_real_sample_has_no_recall():
    real = _normal(500, 16)
    collapsed = np.repeat(real[:1], 500, axis=0)
    precision, recall = metrics.precision_recall(real, collapsed)
    assert precision == 1.0
    assert recall <= 1 / 500


def test_precision_recall_of_a_distant_set_is_zero():
    real = _normal(300, 16)
    assert metrics.precision_recall(real, real + 100.0) == (0.0, 0.0)


def test_density_and_coverage_of_one_distribution_are_near_one():
    real, fake = _normal(1500, 8, seed=0), _normal(1500, 8, seed=1)
    density, coverage = metrics.density_coverage(real, fake)
    assert density == pytest.approx(1.0, abs=0.15)
    assert coverage > 0.9


def test_coverage_of_a_collapsed_generator_is_low():
    real = _normal(1000, 8)
    collapsed = np.repeat(real[:1], 1000, axis=0)
    density, coverage = metrics.density_coverage(real, collapsed)
    assert coverage < 0.02
    assert metrics.density_coverage(real, real + 100.0) == (0.0, 0.0)


# -------------------------------------------------------------- mode coverage


def test_mode_coverage_of_a_one_class_collapse():
    probabilities = np.eye(4)[np.full(40, 2)]
    report = metrics.mode_coverage(probabilities, class_names=["a", "b", "c", "d"])
    assert report["num_classes_covered"] == 1
    assert report["missing_classes"] == ["a", "b", "d"]
    assert report["counts"] == [0, 0, 40, 0]
    assert report["entropy"] == 0.0 and report["normalized_entropy"] == 0.0
    assert report["max_share"] == 1.0 and report["commonest_class"] == "c"
    assert report["min_share"] == 0.0 and report["rarest_class"] == "a"


def test_mode_coverage_of_uniform_predictions_has_normalized_entropy_one():
    probabilities = np.eye(10)[np.arange(200) % 10] * 0.91 + 0.009
    report = metrics.mode_coverage(probabilities, num_classes=10)
    assert report["normalized_entropy"] == pytest.approx(1.0)
    assert report["entropy"] == pytest.approx(math.log(10))
    assert report["shares"] == pytest.approx([0.1] * 10)
    assert report["missing_classes"] == [] and report["num_classes_covered"] == 10
    assert report["class_names"] == [str(i) for i in range(10)]
    assert report["num_samples"] == 200


def test_mode_coverage_by_hand():
    labels = np.array([0, 0, 0, 1])
    report = metrics.mode_coverage(np.eye(3)[labels])
    shares = np.array([0.75, 0.25])
    entropy = -np.sum(shares * np.log(shares))
    assert report["shares"] == [0.75, 0.25, 0.0]
    assert report["entropy"] == pytest.approx(entropy)
    assert report["normalized_entropy"] == pytest.approx(entropy / math.log(3))


# ----------------------------------------------------------------- validation

FEATURES = _normal(20, 4)
PROBABILITIES = np.full((20, 4), 0.25)
NAN_FEATURES = np.where(np.arange(80).reshape(20, 4) == 5, np.nan, FEATURES)
INF_FEATURES = np.where(np.arange(80).reshape(20, 4) == 5, np.inf, FEATURES)
ASYMMETRIC = np.array([[1.0, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: metrics.feature_statistics(FEATURES[0]), "2-D array"),
        (lambda: metrics.feature_statistics(np.zeros((5, 0))), "2-D array"),
        (lambda: metrics.feature_statistics(FEATURES[:1]), "at least 2"),
        (lambda: metrics.feature_statistics(NAN_FEATURES), "NaN or infinite"),
        (lambda: metrics.feature_statistics(INF_FEATURES), "NaN or infinite"),
        (lambda: metrics.feature_statistics(np.array([["a"], ["b"]])), "real numbers"),
        (
            lambda: metrics.frechet_distance_from_features(FEATURES, FEATURES[:, :3]),
            "same dimension",
        ),
        (
            lambda: metrics.frechet_distance_from_features(FEATURES, FEATURES[:1]),
            "at least 2",
        ),
        (
            lambda: metrics.frechet_distance(
                np.zeros(2), np.eye(3), np.zeros(2), np.eye(2)
            ),
            "mean (d,) and a covariance (d, d)",
        ),
        (
            lambda: metrics.frechet_distance(
                np.zeros(2), np.eye(2), np.zeros(3), np.eye(3)
            ),
            "same dimension",
        ),
        (
            lambda: metrics.frechet_distance(
                np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)
            ),
            "NaN or infinite",
        ),
        (
            lambda: metrics.frechet_distance(
                np.zeros(2), ASYMMETRIC, np.zeros(2), np.eye(2)
            ),
            "symmetric",
        ),
        (lambda: metrics.kernel_distance(FEATURES, FEATURES[:1]), "at least 2"),
        (lambda: metrics.kernel_distance(FEATURES, FEATURES[:, :2]), "same dimension"),
        (lambda: metrics.kernel_distance(FEATURES, NAN_FEATURES), "NaN or infinite"),
        (
            lambda: metrics.kernel_distance(FEATURES, FEATURES, num_subsets=0),
            "at least 1",
        ),
        (
            lambda: metrics.kernel_distance(FEATURES, FEATURES, subset_size=1),
            "at least 2",
        ),
        (
            lambda: metrics.kernel_distance(FEATURES, FEATURES, num_subsets=2.5),
            "integer",
        ),
        (lambda: metrics.inception_score(PROBABILITIES[:5]), "at least 10"),
        (lambda: metrics.inception_score(PROBABILITIES, num_splits=0), "at least 1"),
        (lambda: metrics.inception_score(PROBABILITIES[0]), "2-D array"),
        (lambda: metrics.inception_score(PROBABILITIES * 2), "sum to 1"),
        (lambda: metrics.inception_score(FEATURES), "non-negative"),
        (lambda: metrics.inception_score(NAN_FEATURES), "NaN or infinite"),
        (lambda: metrics.precision_recall(FEATURES, FEATURES[:3]), "more than 3"),
        (lambda: metrics.precision_recall(FEATURES[:3], FEATURES), "more than 3"),
        (lambda: metrics.precision_recall(FEATURES, FEATURES, k=0), "at least 1"),
        (lambda: metrics.precision_recall(FEATURES, FEATURES, k=True), "integer"),
        (lambda: metrics.precision_recall(FEATURES, FEATURES[:, :3]), "same dimension"),
        (lambda: metrics.precision_recall(INF_FEATURES, FEATURES), "NaN or infinite"),
        (lambda: metrics.precision_recall(FEATURES[0], FEATURES), "2-D array"),
        (lambda: metrics.density_coverage(FEATURES[:5], FEATURES), "more than 5"),
        (lambda: metrics.density_coverage(FEATURES, FEATURES[:, :3]), "same dimension"),
        (lambda: metrics.density_coverage(FEATURES, NAN_FEATURES), "NaN or infinite"),
        (lambda: metrics.mode_coverage(PROBABILITIES, num_classes=5), "one column"),
        (lambda: metrics.mode_coverage(PROBABILITIES[:, :1] * 4), "at least 2"),
        (lambda: metrics.mode_coverage(PROBABILITIES, class_names=["a"]), "4 classes"),
        (lambda: metrics.mode_coverage(PROBABILITIES - 0.5), "non-negative"),
        (lambda: metrics.mode_coverage(PROBABILITIES[:, :3]), "sum to 1"),
    ],
)
def test_bad_input_raises_one_line_input_error(call, message):
    with pytest.raises(
        InputError, match=message.replace("(", r"\(").replace(")", r"\)")
    ) as info:
        call()
    assert "\n" not in str(info.value)
    assert "received" in str(info.value)
