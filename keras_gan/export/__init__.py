"""Exported generators: SavedModels for TF Serving and ONNX models, in
versioned folders.

- `saved_model`: the SavedModel and its `serving_default` / `generate`
  signatures (`export_generator`).
- `onnx`: the same two entry points as ONNX models, verified in onnxruntime
  (`export_onnx`).
- `info`: `assets.extra/keras_gan.json` of either format (`export_info`).
- `versions`: `<base>/<version>/` and `<base>/onnx/<version>/` folders,
  written atomically under a lock (`export_version`, `versions`).
- `tensorflow_process`: the exports of the JAX and PyTorch backends, written
  by a TensorFlow process.
- `loading`: `load_export`, which loads only SavedModels keras_gan wrote.
- `sampling`: `sample_grid`, the CLI's `sample`.
"""

from keras_gan.export.info import export_info
from keras_gan.export.loading import load_export
from keras_gan.export.onnx import export_onnx
from keras_gan.export.sampling import sample_grid
from keras_gan.export.saved_model import export_generator
from keras_gan.export.versions import FORMATS
from keras_gan.export.versions import HIGH_WATER_FILE
from keras_gan.export.versions import ONNX_FOLDER
from keras_gan.export.versions import export_version
from keras_gan.export.versions import versions

__all__ = [
    "FORMATS",
    "HIGH_WATER_FILE",
    "ONNX_FOLDER",
    "export_generator",
    "export_info",
    "export_onnx",
    "export_version",
    "load_export",
    "sample_grid",
    "versions",
]
