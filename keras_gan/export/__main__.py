"""`python -m keras_gan.export FORMAT GENERATOR.keras PATH OPTIONS_JSON`: the
TensorFlow-backend process of `tensorflow_process.export_in_tensorflow`."""

import json
import sys

import keras

from keras_gan.errors import InputError
from keras_gan.export.onnx import export_onnx
from keras_gan.export.saved_model import export_generator
from keras_gan.export.tensorflow_process import ERROR_PREFIX

format, model_file, target, options = sys.argv[1:5]
write = {"saved_model": export_generator, "onnx": export_onnx}[format]
try:
    write(
        keras.saving.load_model(model_file, compile=False),
        target,
        **json.loads(options),
    )
except InputError as error:
    print(f"{ERROR_PREFIX}{error}", file=sys.stderr)
    sys.exit(1)
