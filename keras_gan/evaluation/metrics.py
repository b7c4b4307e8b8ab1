"""Sample-quality statistics computed from features and class probabilities.

Every function here is pure NumPy and takes already-extracted arrays: real
features `(n, d)`, generated features `(m, d)` (the penultimate layer of the
domain classifier, see `classifier.py`) or the classifier's softmax
probabilities `(n, num_classes)`. They run once per evaluation, not inside a
compiled step, so they favour exactness: means, covariances, matrix square
roots and kernels are float64. Only the k-NN metrics compute their
10,000 x 10,000 distance matrices in float32 (after centring, see
`_squared_distances`), since those GEMMs dominate the cost and only feed
comparisons.

Metrics and their papers:

- Frechet distance (FID): Heusel et al. 2017, arXiv:1706.08500, eq. 6.
- Kernel distance (KID): Binkowski et al. 2018, arXiv:1801.01401, sec. 3.
- Inception score (IS): Salimans et al. 2016, arXiv:1606.03498, sec. 4.
- Improved precision and recall: Kynkaanniemi et al. 2019, arXiv:1904.06991.
- Density and coverage: Naeem et al. 2020, arXiv:2002.09797.
- Mode coverage: the histogram of predicted classes of generated samples.
"""

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from keras_gan.errors import InputError

# Rows of a distance block are sized so one block holds about this many
# float32 entries (32 MiB): big enough for an efficient GEMM, small enough that
# 10,000 x 10,000 never materialises at once.
_BLOCK_ELEMENTS = 2**23

# Softmax rows summing within this of 1 pass; float32 softmax is off by ~1e-7.
_PROBABILITY_TOLERANCE = 1e-3


# ---------------------------------------------------------------------------
# Input validation: one-line `InputError`s naming what came and what is needed.


def _features(features, name: str, min_samples: int = 1) -> np.ndarray:
    """`features` as a finite float64 `(num_samples, feature_dim)` array."""
    array = np.asarray(features)
    if array.ndim != 2 or array.shape[1] < 1:
        raise InputError(
            f"{name} must be a 2-D array (num_samples, feature_dim); "
            f"received shape {array.shape}."
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InputError(
            f"{name} must hold real numbers; received dtype {array.dtype}."
        )
    array = array.astype(np.float64, copy=False)
    if not np.all(np.isfinite(array)):
        raise InputError(
            f"{name} must be finite; received "
            f"{np.size(array) - np.count_nonzero(np.isfinite(array))} NaN or "
            f"infinite values."
        )
    if array.shape[0] < min_samples:
        raise InputError(
            f"This metric needs at least {min_samples} samples of {name}; "
            f"received {array.shape[0]}."
        )
    return array


def _feature_pair(real, fake, min_samples: int = 1):
    real = _features(real, "real features", min_samples)
    fake = _features(fake, "generated features", min_samples)
    if real.shape[1] != fake.shape[1]:
        raise InputError(
            f"Real and generated features must have the same dimension; received "
            f"{real.shape[1]} and {fake.shape[1]}."
        )
    return real, fake


def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InputError(f"{name} must be an integer; received {value!r}.")
    if value < minimum:
        raise InputError(f"{name} must be at least {minimum}; received {value}.")
    return int(value)


def _probabilities(probabilities, min_samples: int = 1) -> np.ndarray:
    """`probabilities` as a float64 `(n, num_classes)` array of softmax rows."""
    array = _features(probabilities, "probabilities", min_samples)
    if array.min() < -_PROBABILITY_TOLERANCE:
        raise InputError(
            f"probabilities must be non-negative (softmax outputs, not logits); "
            f"received a minimum of {array.min():.4g}."
        )
    sums = array.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > _PROBABILITY_TOLERANCE:
        raise InputError(
            f"Each row of probabilities must sum to 1 (softmax outputs); received "
            f"a row summing to {sums[worst]:.4g} (row {worst})."
        )
    return np.clip(array, 0.0, None)


def _statistics(mean, covariance, name: str):
    mean = np.asarray(mean, dtype=np.float64)
    covariance = np.asarray(covariance, dtype=np.float64)
    if mean.ndim != 1 or covariance.shape != (mean.size, mean.size):
        raise InputError(
            f"{name} must be a mean (d,) and a covariance (d, d); received shapes "
            f"{mean.shape} and {covariance.shape}."
        )
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(covariance))):
        raise InputError(f"{name} must be finite; received NaN or infinite values.")
    scale = max(np.abs(covariance).max(initial=0.0), np.finfo(np.float64).tiny)
    asymmetry = np.abs(covariance - covariance.T).max(initial=0.0)
    if asymmetry > 1e-6 * scale:
        raise InputError(
            f"{name}: the covariance must be symmetric; received one whose "
            f"largest |S - S^T| entry is {asymmetry:.4g}."
        )
    return mean, covariance


# ---------------------------------------------------------------------------
# Frechet distance.


def feature_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of a set of features.

    Args:
        features: `(num_samples, feature_dim)` array, at least 2 samples.

    Returns:
        `(mean, covariance)`: float64 arrays of shapes `(d,)` and `(d, d)`; the
        covariance divides by `num_samples - 1`.

    Example:

    >>> mean, covariance = feature_statistics(np.ones((500, 128)))
    >>> mean.shape, covariance.shape
    ((128,), (128, 128))
    """
    features = _features(features, "features", min_samples=2)
    mean = features.mean(axis=0)
    covariance = np.cov(features, rowvar=False)
    # np.cov returns a 0-d array for a single feature; keep (1, 1).
    return mean, np.atleast_2d(covariance)


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh.

    Round-off leaves tiny negative eigenvalues on singular matrices; they are
    clipped to 0 so the root stays real.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    roots = np.sqrt(np.clip(eigenvalues, 0.0, None))
    return (eigenvectors * roots) @ eigenvectors.T


def frechet_distance(
    mean1: ArrayLike, cov1: ArrayLike, mean2: ArrayLike, cov2: ArrayLike
) -> float:
    """Frechet distance between the Gaussians N(mean1, cov1) and N(mean2, cov2).

    d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)): eq. 6 of Heusel et
    al. 2017, arXiv:1706.08500 (from Dowson & Landau 1982). FID is this
    distance between the feature statistics of real and generated samples.

    S1 S2 is not symmetric, so `scipy.linalg.sqrtm` of it can return complex
    values or NaN on singular covariances. Instead, with R = S1^(1/2), S1 S2 =
    R (R S2) has the same eigenvalues as (R S2) R = R S2 R, which is symmetric
    PSD; so Tr((S1 S2)^(1/2)) is the sum of the square roots of the
    eigenvalues of R S2 R, each clipped at 0. That is exact, real and finite
    even when both covariances are rank-deficient (fewer samples than
    dimensions).

    Args:
        mean1: `(d,)` mean of the first set (e.g. real features).
        cov1: `(d, d)` symmetric covariance of the first set.
        mean2: `(d,)` mean of the second set (e.g. generated features).
        cov2: `(d, d)` symmetric covariance of the second set.

    Returns:
        The squared Frechet distance as a Python float, at least 0.

    Example:

    >>> frechet_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), np.eye(2))
    25.0
    """
    mean1, cov1 = _statistics(mean1, cov1, "The first statistics")
    mean2, cov2 = _statistics(mean2, cov2, "The second statistics")
    if mean1.size != mean2.size:
        raise InputError(
            f"Both statistics must have the same dimension; received {mean1.size} "
            f"and {mean2.size}."
        )
    root1 = _psd_sqrt(cov1)
    product = root1 @ cov2 @ root1
    product = 0.5 * (product + product.T)  # symmetric up to round-off
    eigenvalues = np.linalg.eigvalsh(product)
    trace_sqrt = np.sqrt(np.clip(eigenvalues, 0.0, None)).sum()
    difference = mean1 - mean2
    distance = difference @ difference + np.trace(cov1) + np.trace(cov2)
    distance -= 2.0 * trace_sqrt
    return float(max(distance, 0.0))


def frechet_distance_from_features(real: ArrayLike, fake: ArrayLike) -> float:
    """Frechet distance (FID) between two sets of features.

    Args:
        real: `(n, d)` real features, at least 2 samples.
        fake: `(m, d)` generated features, at least 2 samples.

    Returns:
        `frechet_distance` of their `feature_statistics`.

    Example:

    ```python
    real = np.random.default_rng(0).normal(size=(1000, 16))
    frechet_distance_from_features(real, real + 1.0)  # 16.0: ||mu1 - mu2||^2
    ```
    """
    real, fake = _feature_pair(real, fake, min_samples=2)
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


# ---------------------------------------------------------------------------
# Kernel distance.


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # k(x, y) = (x . y / d + 1)^3, sec. 3 of arXiv:1801.01401.
    kernel = x @ y.T
    kernel /= x.shape[1]
    kernel += 1.0
    # Two multiplies: `kernel**3` goes through the generic pow(), ~100x slower.
    cube = kernel * kernel
    cube *= kernel
    return cube


def kernel_distance(
    real: ArrayLike,
    fake: ArrayLike,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel distance (KID) of Binkowski et al. 2018, arXiv:1801.01401.

    The unbiased estimator of the squared MMD (eq. 4 of Gretton et al. 2012,
    JMLR 13) with the polynomial kernel k(x, y) = (x . y / d + 1)^3, averaged
    over `num_subsets` random subsets of `subset_size` samples from each set,
    drawn without replacement as in the reference implementation. Unlike FID
    it is unbiased in the number of samples, so it is ~0 (and can be slightly
    negative) for two independent samples of one distribution. A set scored
    against itself gives a small negative value, O(1/subset_size): the two
    subsets share samples, whose large self-similarity k(x, x) then enters
    the cross term.

    Args:
        real: `(n, d)` real features, at least 2 samples.
        fake: `(m, d)` generated features, at least 2 samples.
        num_subsets: number of random subsets averaged.
        subset_size: samples per subset; capped at `min(n, m)`.
        seed: seed of the subset draws, so scores are reproducible.

    Returns:
        `(mean, std)` of the per-subset estimates (population std, ddof 0).

    Example:

    ```python
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2000, 64)), rng.normal(size=(2000, 64))
    kernel_distance(real, fake)  # (~0.0, small): one distribution
    kernel_distance(real, fake + 0.5)  # clearly positive mean
    ```
    """
    real, fake = _feature_pair(real, fake, min_samples=2)
    num_subsets = _positive_int(num_subsets, "num_subsets")
    subset_size = _positive_int(subset_size, "subset_size", minimum=2)
    size = min(subset_size, real.shape[0], fake.shape[0])
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    # Off-diagonal means of k(x, x') and k(y, y'), minus twice the mean of
    # k(x, y): the unbiased MMD^2 with equal subset sizes.
    off_diagonal = size * (size - 1)
    for i in range(num_subsets):
        x = real[rng.choice(real.shape[0], size, replace=False)]
        y = fake[rng.choice(fake.shape[0], size, replace=False)]
        k_xx = _polynomial_kernel(x, x)
        k_yy = _polynomial_kernel(y, y)
        k_xy = _polynomial_kernel(x, y)
        estimates[i] = (
            (k_xx.sum() - np.trace(k_xx)) / off_diagonal
            + (k_yy.sum() - np.trace(k_yy)) / off_diagonal
            - 2.0 * k_xy.mean()
        )
    return float(estimates.mean()), float(estimates.std())


# ---------------------------------------------------------------------------
# Inception score.


def inception_score(
    probabilities: ArrayLike, num_splits: int = 10
) -> tuple[float, float]:
    """Inception score: exp(E_x KL(p(y|x) || p(y))), Salimans et al. 2016.

    Sec. 4 of arXiv:1606.03498. High when each sample is classified
    confidently (low-entropy p(y|x)) and the classes are varied (high-entropy
    marginal p(y)); it lies in [1, num_classes]. As in the reference code, the
    samples are cut into `num_splits` parts, p(y) is each part's mean, and the
    score's mean and std over parts are returned.

    Args:
        probabilities: `(n, num_classes)` softmax outputs of the classifier on
            generated samples, `n >= num_splits`.
        num_splits: number of parts.

    Returns:
        `(mean, std)` over the parts (population std, ddof 0).

    Example:

    ```python
    confident = np.eye(10)[np.arange(1000) % 10]  # one-hot, every class
    inception_score(confident)  # (10.0, 0.0): the maximum
    ```
    """
    num_splits = _positive_int(num_splits, "num_splits")
    probabilities = _probabilities(probabilities, min_samples=num_splits)
    # 0 log 0 = 0: log of a clipped value, multiplied by the exact 0.
    log_probabilities = np.log(np.maximum(probabilities, np.finfo(np.float64).tiny))
    scores = []
    for part, log_part in zip(
        np.array_split(probabilities, num_splits),
        np.array_split(log_probabilities, num_splits),
        strict=True,
    ):
        marginal = part.mean(axis=0)  # p(y) over this part
        log_marginal = np.log(np.maximum(marginal, np.finfo(np.float64).tiny))
        kl = (part * (log_part - log_marginal)).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


# ---------------------------------------------------------------------------
# k-nearest-neighbour metrics.


def _row_blocks(num_rows: int, num_columns: int):
    rows = max(1, _BLOCK_ELEMENTS // max(num_columns, 1))
    for start in range(0, num_rows, rows):
        yield slice(start, min(start + rows, num_rows))


def _squared_distances(a: np.ndarray, b: np.ndarray, b_norms: np.ndarray):
    """Squared Euclidean distances `(len(a), len(b))` by one float32 GEMM.

    ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2, clipped at 0 where round-off makes
    it negative. The callers centre both sets on one mean first: distances do
    not change, but the norms shrink to the scale of the distances, so the
    subtraction loses little of float32's precision.
    """
    distances = (-2.0 * a) @ b.T  # (rows, len(b))
    distances += np.einsum("ij,ij->i", a, a)[:, None]
    distances += b_norms[None, :]
    return np.maximum(distances, 0.0, out=distances)


def _centred_float32(real: np.ndarray, fake: np.ndarray):
    centre = real.mean(axis=0)
    return (
        (real - centre).astype(np.float32),
        (fake - centre).astype(np.float32),
    )


def _squared_norms(x: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", x, x)


def _knn_squared_radii(features: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each sample to its k-th nearest other sample."""
    norms = _squared_norms(features)
    radii = np.empty(features.shape[0], dtype=features.dtype)
    for rows in _row_blocks(features.shape[0], features.shape[0]):
        distances = _squared_distances(features[rows], features, norms)
        # Each sample is its own nearest neighbour at distance 0: set it
        # exactly, then the (k+1)-th smallest (index k) is the k-th other one.
        block = np.arange(rows.stop - rows.start)
        distances[block, block + rows.start] = 0.0
        radii[rows] = np.partition(distances, k, axis=1)[:, k]
    return radii


def _check_k(k, real: np.ndarray, fake: np.ndarray | None = None) -> int:
    k = _positive_int(k, "k")
    for name, features in (("real", real), ("generated", fake)):
        if features is not None and features.shape[0] <= k:
            raise InputError(
                f"k-nearest neighbours with k={k} need more than {k} {name} "
                f"samples; received {features.shape[0]}."
            )
    return k


def precision_recall(
    real: ArrayLike, fake: ArrayLike, k: int = 3
) -> tuple[float, float]:
    """Improved precision and recall of Kynkaanniemi et al. 2019.

    arXiv:1904.06991, sec. 2: each set's manifold is estimated as the union
    of hyperspheres around its samples, each with the radius of the distance
    to the sample's k-th nearest neighbour in its own set (excluding itself).
    Precision is the share of generated samples inside the real manifold
    (quality); recall is the share of real samples inside the generated
    manifold (diversity). A sample on a sphere's boundary counts as inside,
    as in the reference code (`<=`).

    Distances are computed block by block, so 10,000 x 10,000 needs only tens
    of MiB.

    Args:
        real: `(n, d)` real features, `n > k`.
        fake: `(m, d)` generated features, `m > k`.
        k: the neighbour that sets each radius (the paper uses 3).

    Returns:
        `(precision, recall)`, each in [0, 1].

    Example:

    ```python
    real = np.random.default_rng(0).normal(size=(1000, 16))
    collapsed = np.repeat(real[:1], 1000, axis=0)  # one real sample, repeated
    precision_recall(real, collapsed)  # (1.0, ~0.0): realistic, not diverse
    ```
    """
    real, fake = _feature_pair(real, fake)
    k = _check_k(k, real, fake)
    real, fake = _centred_float32(real, fake)
    real_radii = _knn_squared_radii(real, k)  # (n,)
    fake_radii = _knn_squared_radii(fake, k)  # (m,)
    fake_norms = _squared_norms(fake)
    fake_in_real = np.zeros(fake.shape[0], dtype=bool)
    real_in_fake = np.zeros(real.shape[0], dtype=bool)
    for rows in _row_blocks(real.shape[0], fake.shape[0]):
        distances = _squared_distances(real[rows], fake, fake_norms)  # (rows, m)
        fake_in_real |= (distances <= real_radii[rows, None]).any(axis=0)
        real_in_fake[rows] = (distances <= fake_radii[None, :]).any(axis=1)
    return float(fake_in_real.mean()), float(real_in_fake.mean())


def density_coverage(
    real: ArrayLike, fake: ArrayLike, k: int = 5
) -> tuple[float, float]:
    """Density and coverage of Naeem et al. 2020, arXiv:2002.09797.

    Both use only the real k-NN hyperspheres (radius: distance to the k-th
    nearest other real sample), so unlike precision and recall they are not
    inflated by outliers among the generated samples (sec. 3):

    - density = 1 / (k m) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))]: how many
      real spheres hold each generated sample, in units of k; ~1 when both
      sets come from one distribution, and unbounded above.
    - coverage = 1 / n sum_i 1[exists j: Y_j in B(X_i, NND_k(X_i))]: the share
      of real spheres holding at least one generated sample, in [0, 1].

    Membership is strict (`<`), as in the reference implementation.

    Args:
        real: `(n, d)` real features, `n > k`.
        fake: `(m, d)` generated features.
        k: the neighbour that sets each radius (the paper uses 5).

    Returns:
        `(density, coverage)`.

    Example:

    ```python
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(2000, 16)), rng.normal(size=(2000, 16))
    density_coverage(real, fake)  # (~1.0, ~0.97)
    ```
    """
    real, fake = _feature_pair(real, fake)
    k = _check_k(k, real)
    real, fake = _centred_float32(real, fake)
    real_radii = _knn_squared_radii(real, k)  # (n,)
    fake_norms = _squared_norms(fake)
    spheres_per_fake = np.zeros(fake.shape[0], dtype=np.int64)
    covered = np.zeros(real.shape[0], dtype=bool)
    for rows in _row_blocks(real.shape[0], fake.shape[0]):
        distances = _squared_distances(real[rows], fake, fake_norms)  # (rows, m)
        inside = distances < real_radii[rows, None]
        spheres_per_fake += inside.sum(axis=0)
        covered[rows] = inside.any(axis=1)
    density = spheres_per_fake.sum() / (k * fake.shape[0])
    return float(density), float(covered.mean())


# ---------------------------------------------------------------------------
# Mode coverage.


def mode_coverage(
    probabilities: ArrayLike,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
) -> dict:
    """Histogram of the classes the classifier predicts for generated samples.

    Mode collapse shows as classes that are never generated (missing) or a
    skewed histogram: a low entropy, a tiny share for the rarest class or a
    large one for the commonest. A generator matching a balanced dataset has
    normalised entropy ~1 and every share ~1 / num_classes.

    Args:
        probabilities: `(n, num_classes)` softmax outputs of the classifier on
            generated samples; each sample counts for its argmax class.
        num_classes: the number of classes the classifier knows, checked
            against `probabilities.shape[1]`; defaults to it. At least 2.
        class_names: optional `num_classes` names used in `class_names`,
            `missing_classes`, `rarest_class` and `commonest_class`; defaults
            to `"0"`, `"1"`, ...

    Returns:
        A JSON-serialisable dict:
        `num_samples`, `num_classes`, `class_names` (list),
        `counts` (list of ints per class), `shares` (list of floats per class),
        `entropy` (of the shares, in nats), `normalized_entropy` (entropy /
        log(num_classes), in [0, 1]), `min_share` and `rarest_class`,
        `max_share` and `commonest_class`, `missing_classes` (names of classes
        with no sample), `num_classes_covered` (classes with at least one).

    Example:

    >>> report = mode_coverage(np.eye(10)[np.zeros(100, dtype=int)])
    >>> report["num_classes_covered"], report["entropy"]
    (1, 0.0)
    """
    probabilities = _probabilities(probabilities)
    if num_classes is None:
        num_classes = probabilities.shape[1]
    num_classes = _positive_int(num_classes, "num_classes", minimum=2)
    if probabilities.shape[1] != num_classes:
        raise InputError(
            f"probabilities must have one column per class ({num_classes}); "
            f"received shape {probabilities.shape}."
        )
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    else:
        class_names = [str(name) for name in class_names]
        if len(class_names) != num_classes:
            raise InputError(
                f"class_names must name each of the {num_classes} classes; "
                f"received {len(class_names)} names."
            )
    counts = np.bincount(probabilities.argmax(axis=1), minlength=num_classes)
    shares = counts / counts.sum()
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * np.log(nonzero)).sum()) + 0.0  # no -0.0
    rarest, commonest = int(np.argmin(counts)), int(np.argmax(counts))
    return {
        "num_samples": int(counts.sum()),
        "num_classes": num_classes,
        "class_names": class_names,
        "counts": [int(count) for count in counts],
        "shares": [float(share) for share in shares],
        "entropy": entropy,
        "normalized_entropy": entropy / float(np.log(num_classes)),
        "min_share": float(shares[rarest]),
        "rarest_class": class_names[rarest],
        "max_share": float(shares[commonest]),
        "commonest_class": class_names[commonest],
        "missing_classes": [class_names[i] for i in np.flatnonzero(counts == 0)],
        "num_classes_covered": int(np.count_nonzero(counts)),
    }
