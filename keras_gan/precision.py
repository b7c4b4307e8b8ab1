"""The dtypes GAN losses, penalties and latents are computed in.

Under a mixed-precision policy (`mixed_float16`, `mixed_bfloat16`) the
networks compute in half precision, but their logits, images, losses,
penalties and latents are float32, the policy's variable dtype: squared
logits would overflow float16, and relativistic losses subtract nearly equal
logits. Under `keras.config.set_floatx("float64")` all of them are float64,
so that a float64 model trains to float64 rounding end to end.
"""

import keras
from keras import ops


def full_dtype():
    """The dtype of outputs, losses and latents under the global policy:
    its variable dtype (float32 for float32 and mixed precision, float64 for
    float64)."""
    return keras.config.dtype_policy().variable_dtype


def widen(x):
    """`x` cast to float32 if it is half precision, unchanged otherwise."""
    x = ops.convert_to_tensor(x)
    if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
        return ops.cast(x, "float32")
    return x
