"""The PyTorch trainer: the step with torch autograd, eager as Keras runs it.

Per player: clear its gradients, run its objective, `backward()` into that
player's variables only (`inputs=`: the generator's update computes no weight
gradients for the discriminator), read each variable's `.grad` and apply it
under `torch.no_grad()` (the keras.io PyTorch GAN recipe). The discriminator
step's fake images are generated under `torch.no_grad()`: no graph is
recorded through the generator for images that are not differentiated.
"""

import keras
import torch

from keras_gan.backend.feed import DeviceFeed
from keras_gan.backend.feed import gather


class TorchGANTrainer(DeviceFeed):
    """Gradient mechanics of `BaseGAN` on PyTorch (mixed in before it)."""

    def auto_jit_compile(self) -> bool:
        # Keras's choice on PyTorch: eager (torch.compile is opt-in).
        return False

    def _feed_applies(self):
        return keras.distribution.distribution() is None

    def make_train_function(self, force=False):
        """Keras's train function; fed from the device
        (`keras_gan.backend.feed`), it gathers each batch first."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force)
        keras_function = self.train_function

        def train_function(data):
            # data: [batch]; from the feed, batch is (indices,).
            if self._feed is not None:
                data = [gather(self._feed.arrays, data[0][0])]
            return keras_function(data)

        self.train_function = train_function
        return train_function

    def _minimize(self, objective, model, optimizer):
        variables = model.trainable_variables
        for variable in variables:
            variable.value.grad = None
        loss, aux = objective()
        optimizer.scale_loss(loss).backward(
            inputs=[variable.value for variable in variables]
        )
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

    def _constant(self, function):
        with torch.no_grad():
            return function()


def _detached(values):
    if isinstance(values, tuple):
        return tuple(_detached(value) for value in values)
    return values.detach() if isinstance(values, torch.Tensor) else values
