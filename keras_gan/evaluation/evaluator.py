"""Scores generated images against real ones in a domain classifier's space.

Every score comes with its real-vs-real floor (the same statistic between two
disjoint real subsets of the same size) and the number of samples: Frechet
distance is biased upward at small n, so numbers are comparable only at equal
n and under the same classifier (named by its weights' SHA-256).
"""

import time

import numpy as np

from keras_gan import data
from keras_gan import export
from keras_gan import images as pixel_ranges
from keras_gan import networks
from keras_gan import noise
from keras_gan.errors import InputError
from keras_gan.evaluation import metrics
from keras_gan.evaluation.classifier import DomainClassifier
from keras_gan.evaluation.classifier import inception_classifier
from keras_gan.evaluation.classifier import load_classifier

DEFAULT_NUM_SAMPLES = 10_000

# The scalar results, in the order tables print them; lower is better for the
# first two, higher for the rest.
# Each scalar `evaluate_images` returns, and whether lower ("down") or higher
# ("up") is better: Keras's monitoring callbacks (EarlyStopping,
# ModelCheckpoint(save_best_only), ReduceLROnPlateau) read it through
# `GAN.metrics`, so they watch these without `mode=`.
DIRECTIONS = {
    "frechet_distance": "down",
    "kid": "down",
    "inception_score": "up",
    "precision": "up",
    "recall": "up",
    "density": "up",
    "coverage": "up",
    "classes_covered": "up",
    "class_entropy": "up",
    "rarest_class_share": "up",
    "commonest_class_share": "down",
    "label_agreement": "up",
}
SCALARS = tuple(DIRECTIONS)


def check_images(images, image_shape=None, name="generated images"):
    """Returns float32 images in [-1, 1], or raises a one-line `InputError`."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise InputError(
            f"{name} must have shape (N, H, W, C); received shape {images.shape}."
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise InputError(
            f"{name} have shape {tuple(images.shape[1:])} per image; expected "
            f"{tuple(image_shape)}, the real images' shape (evaluate with the "
            "--image-size / --channels the generator was trained with)."
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(
            f"{name} must be floats in [-1, 1]; received dtype {images.dtype}."
        )
    if not np.all(np.isfinite(images)):
        raise InputError(f"{name} contain NaN or infinite values; expected finite.")
    low, high = float(images.min()), float(images.max())
    if low < -1.0 - 1e-3 or high > 1.0 + 1e-3:
        raise InputError(
            f"{name} have values in [{low:.3g}, {high:.3g}]; expected [-1, 1]."
        )
    return images.astype(np.float32)


class Evaluator:
    """Computes sample-quality metrics of generated images against real ones.

    Real images are split once into two disjoint sets of `num_samples`: the
    reference set that generated images are compared with, and the floor set,
    scored like generated images to give the real-vs-real floor.

    Args:
        real_images: uint8 `(N, H, W, C)` or floats in [-1, 1]; at least
            `2 * num_samples` images.
        classifier: a `DomainClassifier`.
        num_samples: images per set; `None` for `min(10_000, N // 2)`.
        seed: seed of the real subsets and of the KID subsets.

    Example:

    ```python
    evaluator = Evaluator.for_dataset(data_dir="/usr/share/datasets/fashion-mnist")
    result = evaluator.evaluate_generator(gan.generate)
    print(result["frechet_distance"], result["floor"]["frechet_distance"])
    ```
    """

    def __init__(
        self, real_images, classifier: DomainClassifier, num_samples=None, seed=0
    ):
        real_images = np.asarray(real_images)
        if real_images.dtype == np.uint8:
            real_images = np.asarray(pixel_ranges.to_model_range(real_images))
        real_images = check_images(real_images, name="real images")
        available = len(real_images) // 2
        if num_samples is None:
            num_samples = min(DEFAULT_NUM_SAMPLES, available)
        num_samples = int(num_samples)
        if num_samples < 10:
            raise InputError(
                f"num_samples must be at least 10 (the inception score's splits); "
                f"received {num_samples}."
            )
        if num_samples > available:
            raise InputError(
                f"num_samples={num_samples} needs {2 * num_samples} real images "
                f"(two disjoint sets) but the dataset has {len(real_images)}; "
                f"expected num_samples <= {available}."
            )
        self.classifier = classifier
        self.num_samples = num_samples
        self.seed = int(seed)
        self.image_shape = tuple(real_images.shape[1:])
        order = np.random.default_rng(seed).permutation(len(real_images))
        reference = real_images[order[:num_samples]]
        floor_set = real_images[order[num_samples : 2 * num_samples]]
        self._real_features, self._real_probabilities = classifier.predict(reference)
        self.floor = self.evaluate_images(floor_set, _is_floor=True)

    @classmethod
    def for_dataset(
        cls,
        dataset="mnist",
        data_dir=None,
        num_samples=None,
        seed=0,
        cache_dir=None,
        inception=False,
        train_split=None,
        images_cache_dir=None,
        **data_options,
    ):
        """Builds an evaluator on a dataset's training split and its classifier.

        `dataset`, `data_dir` and `data_options` (`image_size`, `channels`,
        `on_bad_image`, `log`) name the source as in
        `keras_gan.data.open_source`; `train_split`, its training
        `(images, labels)` if the caller has loaded them. A labelled source
        (an image folder with class subfolders too) trains its own domain
        classifier; an unlabelled one uses the fixed random-feature network.
        `cache_dir` is the classifiers' cache, `images_cache_dir` the decoded
        image folders' (`open_source`'s `cache_dir`).

        With `inception=True` the features are ImageNet InceptionV3's (standard
        FID, comparable with published numbers; slow on a CPU) instead of the
        domain classifier's.
        """
        if train_split is None:
            train_split = data.load_arrays(
                dataset, data_dir, "train", cache_dir=images_cache_dir, **data_options
            )
        images, labels = train_split
        if inception:
            classifier = inception_classifier(images.shape[1:])
        else:
            classifier = load_classifier(
                dataset,
                data_dir,
                cache_dir=cache_dir,
                train_split=(images, labels),
                **data_options,
            )
        return cls(images, classifier, num_samples=num_samples, seed=seed)

    def evaluate_images(self, images, labels=None, _is_floor=False) -> dict:
        """Scores `num_samples` generated images.

        Args:
            images: floats `(num_samples, H, W, C)` in [-1, 1].
            labels: the classes a conditional generator was asked for, one
                per image; adds `label_agreement`, the share of images the
                classifier assigns to their requested class.

        Returns:
            A dict with the `SCALARS` (class-based ones `None` without a
            labelled classifier), `missing_classes`, `class_shares`,
            `num_samples`, `seconds`, `classifier` (its key, origin, accuracy
            and weights hash) and `floor` (the same scalars for real images).
        """
        start = time.perf_counter()
        images = check_images(images, self.image_shape)
        if len(images) != self.num_samples:
            raise InputError(
                f"expected {self.num_samples} generated images (as many as the "
                f"real sets); received {len(images)}."
            )
        features, probabilities = self.classifier.predict(images)
        real = self._real_features
        kid, kid_std = metrics.kernel_distance(real, features, seed=self.seed)
        precision, recall = metrics.precision_recall(real, features)
        density, coverage = metrics.density_coverage(real, features)
        result = {
            "frechet_distance": metrics.frechet_distance_from_features(real, features),
            "kid": kid,
            "kid_std": kid_std,
            "precision": precision,
            "recall": recall,
            "density": density,
            "coverage": coverage,
            "inception_score": None,
            "classes_covered": None,
            "class_entropy": None,
            "rarest_class_share": None,
            "commonest_class_share": None,
            "missing_classes": [],
            "class_shares": [],
            "label_agreement": None,
        }
        if probabilities is not None:
            score, _ = metrics.inception_score(probabilities)
            modes = metrics.mode_coverage(probabilities)
            result.update(
                inception_score=score,
                classes_covered=modes["num_classes_covered"],
                class_entropy=modes["normalized_entropy"],
                rarest_class_share=modes["min_share"],
                commonest_class_share=modes["max_share"],
                missing_classes=modes["missing_classes"],
                class_shares=modes["shares"],
            )
            if labels is not None:
                predicted = np.argmax(probabilities, axis=-1)
                result["label_agreement"] = float(np.mean(predicted == labels))
        result["num_samples"] = self.num_samples
        result["seconds"] = time.perf_counter() - start
        if not _is_floor:
            result["floor"] = {key: self.floor[key] for key in SCALARS}
            result["classifier"] = {
                "dataset": self.classifier.dataset_key,
                "origin": self.classifier.origin,
                "accuracy": self.classifier.accuracy,
                "weights_sha256": self.classifier.weights_sha256,
            }
        return result

    def evaluate_generator(self, generate, seed: int = 1, num_classes=None) -> dict:
        """Scores a generator: `generate(num_images, seed=...)` returns images.

        `GAN.generate` fits, as does `from_saved_model(path)`. For a
        conditional generator pass `num_classes`: both functions then make
        classes 0, 1, ..., num_classes - 1, 0, 1, ... in turn, and the result
        adds `label_agreement`.
        """
        start = time.perf_counter()
        labels = None
        if num_classes:
            labels = networks.default_labels(self.num_samples, num_classes).numpy()
        result = self.evaluate_images(
            generate(self.num_samples, seed=seed), labels=labels
        )
        result["seconds"] = time.perf_counter() - start
        return result


def loaded_path(loaded) -> str:
    """The folder a SavedModel loaded by `keras_gan.export.load_export` came from."""
    return getattr(loaded, "keras_gan_path", "")


def from_saved_model(loaded, batch_size: int = 500):
    """Wraps an exported generator as `generate(num_images, seed)`.

    Args:
        loaded: a SavedModel from `keras_gan.export.load_export`.
        batch_size: latents per call of the `serving_default` signature.
    """
    serve = loaded.signatures["serving_default"]
    spec = serve.structured_input_signature[1].get("z")
    if spec is None or spec.shape.rank != 2:
        raise InputError(
            "the SavedModel's serving_default takes no 'z' of shape (batch, "
            "latent_dim); expected a generator exported by keras_gan."
        )
    latent_dim = int(spec.shape[-1])
    conditional = "labels" in serve.structured_input_signature[1]
    num_classes = None
    if conditional:
        num_classes = (export.export_info(loaded_path(loaded)) or {}).get("num_classes")
        if not num_classes:
            raise InputError(
                "the conditional SavedModel lacks assets.extra/keras_gan.json "
                "with its num_classes; expected an export written by keras_gan."
            )

    def generate(num_images, seed=0):
        # Conditional exports: classes cycle 0, 1, ..., as in GAN.generate.
        z = noise.latent_noise(num_images, latent_dim, int(seed))
        labels = (
            networks.default_labels(num_images, num_classes) if conditional else None
        )
        batches = []
        for start in range(0, num_images, batch_size):
            inputs = {"z": z[start : start + batch_size]}
            if conditional:
                inputs["labels"] = labels[start : start + batch_size]
            batches.append(serve(**inputs)["images"].numpy())
        return np.concatenate(batches)

    generate.num_classes = num_classes
    return generate


def collapse_warning(result: dict, max_share: float = 0.5) -> str | None:
    """Says what looks like mode collapse in a result, or `None`.

    Collapse shows as classes the generator never makes, or one class taking
    more than `max_share` of the samples.
    """
    problems = []
    if result.get("missing_classes"):
        problems.append(f"classes {', '.join(result['missing_classes'])} missing")
    share = result.get("commonest_class_share")
    if share is not None and share > max_share:
        commonest = int(np.argmax(result["class_shares"]))
        problems.append(f"class {commonest} takes {share:.0%} of the samples")
    if not problems:
        return None
    return "Mode collapse: " + "; ".join(problems) + "."


def format_table(result: dict) -> str:
    """A readable table of a result: each metric, the floor, and the context."""
    lines = [f"{'metric':<24}{'generated':>12}{'real floor':>12}"]
    for key in SCALARS:
        value, floor = result[key], result["floor"][key]
        if value is None:
            continue
        floor = "" if floor is None else _fmt(floor)
        lines.append(f"{key:<24}{_fmt(value):>12}{floor:>12}")
    classifier = result["classifier"]
    accuracy = classifier["accuracy"]
    # Results saved before classifiers had an origin lack it.
    origin = f"{classifier['origin']}, " if classifier.get("origin") else ""
    lines.append(
        f"n = {result['num_samples']} per set, {result['seconds']:.1f} s; "
        f"classifier {classifier['dataset']} ({origin}"
        + (
            f"held-out accuracy {accuracy:.2%}, "
            if accuracy is not None
            else "no class predictions, "
        )
        + f"weights {classifier['weights_sha256'][:12]})"
    )
    if result.get("missing_classes"):
        lines.append(f"missing classes: {', '.join(result['missing_classes'])}")
    return "\n".join(lines)


def _fmt(value) -> str:
    return f"{value:d}" if isinstance(value, int) else f"{value:.4g}"
