"""The JAX trainer: a stateless `train_step(state, data)` for Keras's JAX `fit`.

Keras's JAX `fit` threads `(trainable, non_trainable, optimizer, metrics)`
variable values through a jitted `train_step` and carries only
`model.optimizer.variables` as the optimizer's part: optimizers kept as other
attributes would be baked into the compiled step as constants and their Adam
moments would never advance. `model.optimizer` is `PlayerOptimizers` (see
`keras_gan.models.base`), a view whose `variables` are both players' optimizer
variables, so both are threaded and written back.

Inside the step, `BaseGAN.train_step` runs as written, in a
`keras.StatelessScope` that maps every variable of the state to its traced
value: reads see the traced values, and every assignment (optimizer updates,
batch-norm statistics, metrics, the noise seed state) is recorded in the scope
and returned as the new state. The hooks turn the backend-free step into pure
functions where JAX needs them: `jax.value_and_grad` over a child scope for
each player, `jax.grad` for input gradients, `jax.lax.cond` over the whole
state for branches that update variables.
"""

import itertools

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops
from keras.src.backend.common.stateless_scope import get_stateless_scope

from keras_gan.backend.feed import DeviceFeed
from keras_gan.backend.feed import gather
from keras_gan.networks import has_convolutions

# Steps per compiled call for networks without convolutions: the seed MLP at
# batch 64 is bound by the per-call overhead of Keras's JAX loop.
AUTO_STEPS_PER_EXECUTION = 32


class JAXGANTrainer(DeviceFeed):
    """Gradient mechanics of `BaseGAN` on JAX (mixed in before it)."""

    def auto_jit_compile(self) -> bool:
        # Keras's choice on JAX: the step is always worth compiling.
        return True

    def auto_steps_per_execution(self, jit_compile) -> int:
        convolutional = has_convolutions(self.generator) or has_convolutions(
            self.discriminator
        )
        return 1 if convolutional or not jit_compile else AUTO_STEPS_PER_EXECUTION

    def _feed_applies(self):
        # Index batches are gathered by the compiled loop of
        # `make_train_function`.
        return self._compiled_loop()

    def _compiled_loop(self):
        return (
            not self.run_eagerly
            and self.jit_compile
            and keras.distribution.distribution() is None
        )

    def make_train_function(self, force=False):
        """The compiled loop: `steps_per_execution` steps in one jitted call.

        Keras's JAX `fit` runs `steps_per_execution` steps as a Python loop of
        jitted calls, each paying the dispatch of the whole state. Here the
        batches of one execution are stacked and one compiled call scans the
        step over them (`jax.lax.scan`); an execution with fewer batches (the
        end of an epoch) runs them one jitted call each. Same steps, same
        order, same results. Fed from the device (`keras_gan.backend.feed`), the calls
        take index batches and gather the images inside.
        """
        if self.train_function is not None and not force:
            return
        if not self._compiled_loop():
            return super().make_train_function(force)
        steps = self.steps_per_execution

        def scan_steps(state, stacked):
            def body(state, batch):
                logs, state = self.train_step(state, batch)
                return state, logs

            state, logs = jax.lax.scan(body, state, stacked)
            return jax.tree.map(lambda values: values[-1], logs), state

        def gathered(step):
            return lambda state, arrays, indices: step(state, gather(arrays, indices))

        single = jax.jit(self.train_step, donate_argnums=0)
        single_gathered = jax.jit(gathered(self.train_step), donate_argnums=0)
        # Not donated: the scan may return one buffer for equal state leaves
        # (the metrics' counts), which a donating call rejects.
        fused = jax.jit(scan_steps)
        fused_gathered = jax.jit(gathered(scan_steps))

        def train_function(state, iterator):
            batches = list(itertools.islice(iterator, steps))
            if not batches:
                raise StopIteration
            feed = self._feed
            if feed is not None:
                indices = [batch[0] for batch in batches]
                if steps > 1 and len(indices) == steps:
                    return fused_gathered(state, feed.arrays, np.stack(indices))
                for batch_indices in indices:
                    logs, state = single_gathered(state, feed.arrays, batch_indices)
                return logs, state
            if steps > 1 and len(batches) == steps:
                # Stacked on the device: Keras has already put the batches there.
                stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *batches)
                return fused(state, stacked)
            for batch in batches:
                logs, state = single(state, batch)
            return logs, state

        self.train_function = train_function

    def train_step(self, state, data):
        groups = (
            self.trainable_variables,
            self.non_trainable_variables,
            self.optimizer.variables,
            self.metrics_variables,
        )
        return _stateless(super().train_step, groups, state, data)

    def test_step(self, state, data):
        # Keras's JAX `evaluate` threads (trainable, non-trainable, metrics);
        # only the metrics change.
        groups = (
            self.trainable_variables,
            self.non_trainable_variables,
            self.metrics_variables,
        )
        return _stateless(super().test_step, groups, state, data)

    def _minimize(self, objective, model, optimizer):
        variables = model.trainable_variables
        parent = get_stateless_scope()
        values = [_current(parent, variable) for variable in variables]

        def loss_and_updates(values):
            replaced = {id(v): x for v, x in zip(variables, values, strict=True)}
            with _child_scope({**parent.state_mapping, **replaced}) as child:
                loss, aux = objective()
                scaled = optimizer.scale_loss(loss)
            return scaled, (aux, _updates(child, parent, exclude=variables))

        grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)
        (_, (aux, updates)), grads = grad_fn(values)
        parent.state_mapping.update(updates)
        # stateless_apply, as Keras's JAX trainer does: LossScaleOptimizer's
        # apply branches with side effects that jax.jit cannot trace.
        slots = optimizer.variables
        new_values, new_slots = optimizer.stateless_apply(
            [_current(parent, slot) for slot in slots], grads, values
        )
        for variable, value in zip(
            [*variables, *slots], [*new_values, *new_slots], strict=True
        ):
            parent.state_mapping[id(variable)] = value
        return aux

    def _input_gradients(self, function, inputs):
        parent = get_stateless_scope()

        def total_and_updates(x):
            with _child_scope(parent.state_mapping) as child:
                total = ops.sum(function(x))
            return total, _updates(child, parent)

        gradients, updates = jax.grad(total_and_updates, has_aux=True)(inputs)
        parent.state_mapping.update(updates)
        return gradients

    def _cond(self, predicate, true_fn, false_fn):
        # A branch may update any variable of the step (optimizer moments, the
        # seed state): each branch is a pure function of the whole state,
        # {id(variable): value} as the scope holds it.
        parent = get_stateless_scope()

        def pure(function):
            def branch(state):
                with _child_scope(state) as child:
                    output = function()
                return output, {key: child.state_mapping[key] for key in state}

            return branch

        output, state = jax.lax.cond(
            predicate, pure(true_fn), pure(false_fn), dict(parent.state_mapping)
        )
        parent.state_mapping.update(state)
        return output


def _stateless(step, groups, state, data):
    """Runs the backend-free `step(data)` with each variable of `groups` read as
    its value in `state`; returns its logs and the state it leaves."""
    mapping = [
        (variable, value)
        for variables, values in zip(groups, state, strict=True)
        for variable, value in zip(variables, values, strict=True)
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = step(data)
    new_state = tuple(
        [_current(scope, variable) for variable in variables] for variables in groups
    )
    return logs, new_state


def _current(scope, variable):
    value = scope.get_current_value(variable)
    return variable.value if value is None else value


def _child_scope(state):
    # A scope that sees every value of `state` ({id(variable): value}): Keras
    # reads only the innermost scope, so a child starts from the parent's.
    child = keras.StatelessScope()
    child.state_mapping = dict(state)
    return child


def _updates(child, parent, exclude=()):
    # What the child scope assigned, to be applied to the parent.
    skip = {id(variable) for variable in exclude}
    return {
        key: value
        for key, value in child.state_mapping.items()
        if key not in skip and value is not parent.state_mapping.get(key)
    }
