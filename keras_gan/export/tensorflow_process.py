"""Exports on the JAX and PyTorch backends, written by a TensorFlow process.

A SavedModel is a TensorFlow graph, and the ONNX models are converted from
one: on the JAX and PyTorch backends the generator's architecture and weights
go through a `.keras` file to a TensorFlow-backend process that writes the
same export the TensorFlow backend writes (the same graph, the same
signatures, no jax2tf custom calls for TF Serving or the ONNX converter).
"""

import json
import os
import subprocess
import sys
import tempfile

from keras_gan.errors import InputError

# The folder holding this keras_gan package: the child process imports the
# same keras_gan as its parent, whatever the working folder and installs.
_PACKAGE_ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
# The child prints an InputError's message after it, so that the parent
# raises the same one-line message.
ERROR_PREFIX = "keras_gan export refused: "


def export_in_tensorflow(generator, path, format: str, options: dict) -> str:
    """Writes the export of `generator` at `path` in a TensorFlow process.

    Args:
        generator: the generator `keras.Model`, on any backend.
        path: the folder to write.
        format: `"saved_model"` or `"onnx"`.
        options: the keyword arguments of that format's export function
            (JSON values).

    Returns:
        `path`, as a string.
    """
    given = os.fspath(path)
    with tempfile.TemporaryDirectory(prefix=".keras-gan-export-") as scratch:
        model_file = os.path.join(scratch, "generator.keras")
        generator.save(model_file)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")])
        )
        command = [sys.executable, "-m", "keras_gan.export", format, model_file]
        command += [os.path.abspath(given), json.dumps(options)]
        # `-m` puts the working folder first on the child's path.
        completed = subprocess.run(
            command, env=env, cwd=_PACKAGE_ROOT, capture_output=True, text=True
        )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines() or ["no output"]
        if lines[-1].startswith(ERROR_PREFIX):
            raise InputError(lines[-1][len(ERROR_PREFIX) :])
        raise InputError(
            f"Exporting through TensorFlow failed: {lines[-1][:300]}; expected "
            f"a generator that TensorFlow can load."
        )
    return given
