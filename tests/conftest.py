import os
import sys
import tempfile

# Quiet TensorFlow's C++ start-up logs; let tests import tests/helpers.py.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Exports are signed with a key under KERAS_GAN_HOME (keras_gan.provenance):
# the tests' own key, shared with the processes they start, not the user's.
os.environ.setdefault(
    "KERAS_GAN_HOME",
    os.path.join(tempfile.gettempdir(), f"keras-gan-tests-{os.getuid()}"),
)
sys.path.insert(0, os.path.dirname(__file__))
