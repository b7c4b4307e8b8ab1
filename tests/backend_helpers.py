"""Backend-neutral helpers: gradients by each backend's own autodiff."""

import keras
import numpy as np


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def gradients(loss_fn, variables):
    """d loss_fn() / d variables with the active backend's autodiff, for
    references written by hand (independent of keras_gan's trainers)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        return [numpy(g) for g in tape.gradient(loss, variables)]
    if backend == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(
                state_mapping=list(zip(variables, values, strict=True))
            ):
                return loss_fn()

        return [numpy(g) for g in jax.grad(pure)([v.value for v in variables])]
    import torch

    loss = loss_fn()
    grads = torch.autograd.grad(loss, [v.value for v in variables])
    return [g.detach().cpu().numpy() for g in grads]


def sgd(variables, grads, learning_rate):
    for variable, grad in zip(variables, grads, strict=True):
        variable.assign(numpy(variable.value) - learning_rate * grad)


def snapshot(variables):
    return [np.array(numpy(v.value)) for v in variables]
