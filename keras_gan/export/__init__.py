"""Exported generators: SavedModels for TF Serving in versioned folders.

- `saved_model`: the SavedModel and its `serving_default` / `generate`
  signatures (`export_generator`, `export_info`).
- `versions`: `<base>/<version>/` folders, written atomically under a lock
  (`export_version`, `versions`).
- `loading`: `load_export`, which loads only exports keras_gan wrote.
- `sampling`: `sample_grid`, the CLI's `sample`.
"""

from keras_gan.export.loading import load_export
from keras_gan.export.sampling import sample_grid
from keras_gan.export.saved_model import export_generator
from keras_gan.export.saved_model import export_info
from keras_gan.export.versions import HIGH_WATER_FILE
from keras_gan.export.versions import export_version
from keras_gan.export.versions import versions

__all__ = [
    "HIGH_WATER_FILE",
    "export_generator",
    "export_info",
    "export_version",
    "load_export",
    "sample_grid",
    "versions",
]
