"""`python -m keras_gan.export GENERATOR.keras PATH MAX_IMAGES NUM_CLASSES
CLASS_NAMES_JSON`, run by `export_generator` on the JAX and PyTorch backends
in a TensorFlow-backend process."""

import json
import sys

import keras

from keras_gan.export.saved_model import export_generator

model_file, target, max_images, num_classes, class_names = sys.argv[1:6]
export_generator(
    keras.saving.load_model(model_file, compile=False),
    target,
    int(max_images),
    int(num_classes) if num_classes else None,
    json.loads(class_names),
)
