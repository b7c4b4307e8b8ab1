"""Loading runs no code from files, and the package has no unsafe loader."""

import ast
import os

import keras
import pytest
from helpers import IMAGE_SHAPE
from helpers import LATENT_DIM

import keras_gan

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules that deserialize code or arbitrary objects.
UNSAFE_MODULES = {
    *("pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "yaml")
}


def _sources():
    yield os.path.join(ROOT, "cli.py")
    for folder, _, names in os.walk(os.path.join(ROOT, "keras_gan")):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def _keyword(call, name):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def _unsafe_uses(path):
    with open(path) as file:
        tree = ast.parse(file.read(), path)
    for node in ast.walk(tree):
        where = f"{os.path.relpath(path, ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.split(".")[0] in UNSAFE_MODULES:
                    yield f"{where}: imports {name}"
        if not isinstance(node, ast.Call):
            continue
        function = ast.unparse(node.func)
        if function in ("eval", "exec"):
            yield f"{where}: calls {function}"
        if _keyword(node, "allow_pickle") is True:
            yield f"{where}: allow_pickle=True"
        if _keyword(node, "safe_mode") is False:
            yield f"{where}: safe_mode=False"
        if function.endswith("enable_unsafe_deserialization"):
            yield f"{where}: enables unsafe deserialization"
        weights_only = _keyword(node, "weights_only")
        if function.endswith("torch.load") and weights_only is not True:
            yield f"{where}: torch.load without weights_only=True"


def test_no_unsafe_deserializer_anywhere_in_the_package():
    found = [use for path in _sources() for use in _unsafe_uses(path)]
    assert found == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom yaml import load\nimport numpy as np\n"
        "np.load('x', allow_pickle=True)\n"
        "keras.saving.load_model('m.keras', safe_mode=False)\neval('1')\n"
    )
    assert len(list(_unsafe_uses(str(bad)))) == 5


def _hostile_gan(marker):
    """A GAN whose generator holds a Lambda that writes `marker` when run."""

    # A lambda: Keras stores its bytecode (a named function only by name); the
    # path is a constant in that code.
    drop_marker = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    generator = keras.Sequential(
        [
            keras.Input((LATENT_DIM,)),
            keras.layers.Lambda(drop_marker),
            keras.layers.Dense(IMAGE_SHAPE[0] * IMAGE_SHAPE[1], activation="tanh"),
            keras.layers.Reshape(IMAGE_SHAPE),
        ]
    )
    discriminator = keras_gan.networks.mlp_discriminator(IMAGE_SHAPE, hidden_units=8)
    return keras_gan.GAN(generator, discriminator, latent_dim=LATENT_DIM)


def test_a_keras_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "hostile.keras"
    _hostile_gan(marker).save(path)
    os.remove(marker)  # building it ran the function once
    with pytest.raises(ValueError, match="Lambda"):
        keras.saving.load_model(path)
    assert not marker.exists()
    # The file really runs its code when loaded unsafely: the test can fail.
    keras.saving.load_model(path, safe_mode=False)
    assert marker.exists()
