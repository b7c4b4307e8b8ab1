"""`--deterministic`: the same seed gives the same weights, bit for bit.

`--seed` alone seeds everything keras_gan draws (initial weights, data order,
noise); what can still differ between two runs is the order in which a
backend's parallel kernels add floating-point numbers. Determinism turns the
nondeterministic kernels off, per backend, at some cost in speed on GPUs
(on a CPU the kernels keras_gan uses are deterministic already).
"""

import os

import keras


def enable() -> list[str]:
    """Turns on the current backend's op determinism.

    Call it before any training computation runs (the JAX backend reads its
    XLA flags when its devices are first used).

    Returns:
        One line per fast path turned off, for the run's log.
    """
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        return [
            "TensorFlow op determinism: ops without a deterministic GPU kernel "
            "raise instead of running",
            "tf.data keeps element order in parallel maps and TFDS file interleaving",
        ]
    if backend == "jax":
        from jax._src import xla_bridge

        flag = "--xla_gpu_deterministic_ops=true"
        if flag not in os.environ.get("XLA_FLAGS", ""):
            if xla_bridge.backends_are_initialized():
                import jax

                if jax.default_backend() != "cpu":
                    raise RuntimeError(
                        f"--deterministic needs XLA_FLAGS={flag} before JAX "
                        f"starts; set it in the environment."
                    )
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}"
        return [
            "XLA deterministic GPU ops: scatter-add and reductions in a fixed "
            "order, autotuning limited to deterministic algorithms",
        ]
    if backend == "torch":
        import torch

        # cuBLAS needs a fixed workspace to be deterministic (CUDA >= 10.2).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        return [
            "torch.use_deterministic_algorithms: ops without a deterministic "
            "kernel raise instead of running",
            "cuDNN autotuning (cudnn.benchmark) off",
        ]
    raise ValueError(f"Unknown Keras backend {backend!r}.")
