import pathlib
import re

from setuptools import find_packages
from setuptools import setup

here = pathlib.Path(__file__).parent
version = re.search(
    r'__version__ = "([^"]+)"', (here / "keras_gan" / "version.py").read_text()
).group(1)

# export_version(..., format="onnx"): opset 18 (BitwiseAnd / BitwiseXor, which
# the latents' hash needs) arrived in onnx 1.13 and onnxruntime 1.14; tf2onnx
# 1.17 is the first without a protobuf 3.20 pin (TensorFlow 2.21 needs 6.31).
ONNX = ["onnx>=1.14", "onnxruntime>=1.16", "tf2onnx>=1.17"]

setup(
    name="keras-gan",
    version=version,
    description="Generative adversarial networks for Keras 3 (TensorFlow, JAX, torch).",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["keras_gan", "keras_gan.*"]),
    # The shipped domain classifiers (keras_gan.evaluation.shipped).
    package_data={"keras_gan.evaluation": ["classifiers/*.npz", "classifiers/*.json"]},
    python_requires=">=3.10",
    install_requires=[
        # Keras 3 arrives with TensorFlow 2.16; 3.15 has the safe_mode fixes
        # and MultiOptimizer.
        "tensorflow>=2.16",
        "keras>=3.15",
        "tensorflow-datasets>=4.9",
        # TFDS downloads need it but do not declare it (seen with 4.9.10).
        "importlib_resources>=6.0",
        # TF 2.21 no longer installs TensorBoard; the TensorBoard callback needs it.
        "tensorboard>=2.16",
        "numpy>=1.26",
        "click>=8.1",
        "pillow>=10.0",
        "scikit-learn>=1.3",
    ],
    extras_require={
        # The JAX and PyTorch backends (CPU builds; .ci/run installs PyTorch's
        # CPU wheel first so that pip does not fetch a CUDA build).
        "tests": [
            "pytest>=8.0",
            "ruff>=0.6",
            "scipy>=1.10",
            "jax>=0.4.30",
            "torch>=2.4",
            *ONNX,
        ],
        "jax": ["jax>=0.4.30"],
        "onnx": ONNX,
        "torch": ["torch>=2.4"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
    },
    entry_points={"console_scripts": ["keras-gan=keras_gan.cli:main"]},
)
