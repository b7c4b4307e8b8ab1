"""Loading an exported SavedModel, refusing exports keras_gan did not write."""

import os

import tensorflow as tf

from keras_gan import provenance
from keras_gan.errors import InputError
from keras_gan.export import onnx
from keras_gan.export.versions import versions


def load_export(path, trust: bool = False):
    """Loads an exported generator the way TF Serving does (tag `serve`).

    A SavedModel's graph can hold any op, so only exports that keras_gan
    wrote, unchanged, are loaded (see `keras_gan.provenance`) unless `trust`.

    Args:
        path: a version folder, or a model's base folder (its newest version is
            loaded).
        trust: load a SavedModel that keras_gan did not write (or that changed
            since): only for exports whose author you trust.

    Returns:
        The loaded SavedModel; call `.signatures["generate"]` or
        `.signatures["serving_default"]`.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise InputError(f"{path} is not a folder; expected an exported SavedModel.")
    onnx_model = os.path.join(path, onnx.MODEL_FILE)
    if not os.path.exists(os.path.join(path, "saved_model.pb")) and not (
        os.path.exists(onnx_model)
    ):
        found = versions(path)
        if not found:
            raise InputError(
                f"{path} holds no saved_model.pb and no integer version folders; "
                f"expected saved_models/<name>/<version> or saved_models/<name>."
            )
        path = os.path.join(path, str(found[-1]))
        onnx_model = os.path.join(path, onnx.MODEL_FILE)
    if os.path.exists(onnx_model):
        raise InputError(
            f"{path} is an ONNX export; expected a SavedModel (run ONNX exports "
            f"with onnxruntime)."
        )
    if not trust:
        provenance.verify(path)
    try:
        loaded = tf.saved_model.load(path, tags=["serve"])
    except Exception as error:  # corrupt protobufs raise many types
        reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise InputError(
            f"Cannot load the SavedModel at {path} ({type(error).__name__}: "
            f"{reason[:200]}); expected an intact export."
        ) from error
    loaded.keras_gan_path = path
    if "generate" not in loaded.signatures:
        raise InputError(
            f"{path} has no 'generate' signature (found: "
            f"{', '.join(loaded.signatures) or 'none'}); expected a generator "
            f"exported by keras_gan."
        )
    return loaded
