"""keras_gan: generative adversarial networks for Keras 3, trained with `fit`.

The public names load on first use (PEP 562), so `import keras_gan` and its
command line (`keras_gan.cli`) start without importing Keras and TensorFlow:
`--help` and flag errors answer at once, and `--backend` can still choose the
Keras backend before Keras is imported.
"""

import importlib
import json
import os
import sys

from keras_gan.choices import BACKENDS as SUPPORTED_BACKENDS
from keras_gan.errors import InputError
from keras_gan.version import __version__

_SUBMODULES = (
    "callbacks",
    "data",
    "evaluation",
    "export",
    "images",
    "losses",
    "networks",
    "noise",
)

__all__ = ["GAN", "InputError", "__version__", *_SUBMODULES]


def _configured_backend() -> str:
    # Where Keras itself reads it: $KERAS_BACKEND, else keras.json in
    # $KERAS_HOME (default ~/.keras), else TensorFlow; an imported Keras knows.
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):
        return keras.config.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    try:
        with open(os.path.join(home, "keras.json")) as file:
            return json.load(file).get("backend", "tensorflow")
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


def _started_as_command_line() -> bool:
    # `python -m keras_gan` (argv[0] is "-m" while the package is imported),
    # the `keras-gan` script or `python cli.py`: the command line names a bad
    # KERAS_BACKEND in its own one-line error, and `--backend` may override it.
    return sys.argv[:1] == ["-m"] or os.path.basename(sys.argv[0]) in (
        "keras-gan",
        "cli.py",
    )


if not _started_as_command_line() and _configured_backend() not in SUPPORTED_BACKENDS:
    raise InputError(
        f"keras_gan runs on the Keras backends {', '.join(SUPPORTED_BACKENDS)}; "
        f"KERAS_BACKEND is {_configured_backend()!r}."
    )


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"keras_gan.{name}")
    if name == "GAN":
        from keras_gan.models import GAN

        return GAN
    raise AttributeError(f"module 'keras_gan' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
