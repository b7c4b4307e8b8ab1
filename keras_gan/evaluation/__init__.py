"""Sample-quality evaluation: a domain classifier and metrics on its features."""

from keras_gan.evaluation import metrics
from keras_gan.evaluation.classifier import DomainClassifier
from keras_gan.evaluation.classifier import load_classifier
from keras_gan.evaluation.evaluator import SCALARS
from keras_gan.evaluation.evaluator import Evaluator
from keras_gan.evaluation.evaluator import collapse_warning
from keras_gan.evaluation.evaluator import format_table
from keras_gan.evaluation.evaluator import from_saved_model

__all__ = [
    "SCALARS",
    "DomainClassifier",
    "Evaluator",
    "collapse_warning",
    "format_table",
    "from_saved_model",
    "load_classifier",
    "metrics",
]
