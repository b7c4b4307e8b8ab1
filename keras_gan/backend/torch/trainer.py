"""The PyTorch trainer: the step with torch autograd, eager as Keras runs it.

Per player: clear its gradients, run its objective, `backward()`, read each
variable's `.grad` and apply it under `torch.no_grad()` (the keras.io PyTorch
GAN recipe). The generator's backward also fills the discriminator's
gradients: they are cleared before the discriminator's next step.
"""

import torch


class TorchGANTrainer:
    """Gradient mechanics of `BaseGAN` on PyTorch (mixed in before it)."""

    def auto_jit_compile(self) -> bool:
        # Keras's choice on PyTorch: eager (torch.compile is opt-in).
        return False

    def _minimize(self, objective, model, optimizer):
        variables = model.trainable_variables
        for variable in variables:
            variable.value.grad = None
        loss, aux = objective()
        optimizer.scale_loss(loss).backward()
        grads = [variable.value.grad for variable in variables]
        with torch.no_grad():
            optimizer.apply(grads, variables)
        return _detached(aux)

    def _input_gradients(self, function, inputs):
        inputs = inputs.detach().requires_grad_(True)
        total = function(inputs).sum()
        # create_graph: the penalty on these gradients is differentiated again.
        (gradients,) = torch.autograd.grad(total, inputs, create_graph=True)
        return gradients

    def _cond(self, predicate, true_fn, false_fn):
        return true_fn() if bool(predicate) else false_fn()


def _detached(values):
    if isinstance(values, tuple):
        return tuple(_detached(value) for value in values)
    return values.detach() if isinstance(values, torch.Tensor) else values
