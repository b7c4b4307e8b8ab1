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

import inspect
import itertools
import weakref

import jax
import jax.numpy as jnp
import keras
import numpy as np
from keras import ops
from keras.src.backend.common.stateless_scope import get_stateless_scope

from keras_gan.data import in_memory_source
from keras_gan.networks import has_convolutions

# Steps per compiled call for networks without convolutions: the seed MLP at
# batch 64 is bound by the per-call overhead of Keras's JAX loop.
AUTO_STEPS_PER_EXECUTION = 32

# In-memory datasets up to this size are copied to the device once and
# gathered there (see `JAXGANTrainer._device_feed`); larger ones stream.
DEVICE_DATA_MAX_BYTES = 2 * 1024**3


class JAXGANTrainer:
    """Gradient mechanics of `BaseGAN` on JAX (mixed in before it)."""

    _feed = None  # the `_IndexBatches` of the `fit` running now, if any

    def auto_jit_compile(self) -> bool:
        # Keras's choice on JAX: the step is always worth compiling.
        return True

    def auto_steps_per_execution(self, jit_compile) -> int:
        convolutional = has_convolutions(self.generator) or has_convolutions(
            self.discriminator
        )
        return 1 if convolutional or not jit_compile else AUTO_STEPS_PER_EXECUTION

    def fit(self, *args, **kwargs):
        """Keras's `fit`; a `dataset_from_arrays` pipeline is read from the
        device instead (see `_device_feed`)."""
        arguments = inspect.signature(super().fit).bind(*args, **kwargs).arguments
        feed = self._device_feed(arguments)
        if feed is None:
            return super().fit(*args, **kwargs)
        self._feed = feed
        try:
            return super().fit(**{**arguments, "x": feed, "shuffle": False})
        finally:
            self._feed = None

    def _device_feed(self, arguments):
        """Index batches for `fit` when its data can live on the device.

        A `dataset_from_arrays` pipeline, passed as it was returned, is made
        of arrays and an order per pass. Its images are put on the device
        once and every batch is gathered inside the compiled step, as a lean
        hand-written JAX loop does: no tf.data element, no host-to-device
        copy per step. `fit` iterates the pass's index batches instead, so
        steps, epochs, callbacks and the order of batches are the pipeline's.
        """
        source = in_memory_source(arguments.get("x"))
        if (
            source is None
            or arguments.get("y") is not None
            or arguments.get("validation_split")
            or not self._compiled_loop()
            or source.images.nbytes > DEVICE_DATA_MAX_BYTES
        ):
            return None
        return _IndexBatches(source)

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
        order, same results. Fed from the device (`_device_feed`), the calls
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
            return lambda state, arrays, indices: step(state, _gather(arrays, indices))

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


class _IndexBatches(keras.utils.PyDataset):
    """Passes over an `InMemorySource` as `(batch_size,)` index batches;
    `arrays` holds its data on the device.

    Each pass draws its order when its first batch is read, as each new
    iterator over the tf.data pipeline does; Keras's epoch loop, shared by
    both, decides when a pass starts (every epoch, or when one runs out
    under `steps_per_epoch`).
    """

    def __init__(self, source):
        super().__init__()
        self._source = source
        self._order = None
        self.arrays = _device_arrays(source)

    @property
    def num_batches(self):
        return self._source.num_batches

    def __len__(self):
        return self._source.num_batches

    def __getitem__(self, index):
        if index == 0:
            self._order = self._source.next_order()
        return self._order[index]


# source -> its arrays on the device, for as long as the source lives: a
# dataset trained on in several `fit` calls is copied once.
_ON_DEVICE = weakref.WeakKeyDictionary()


def _device_arrays(source):
    if source not in _ON_DEVICE:
        labels = () if source.labels is None else (jnp.asarray(source.labels),)
        _ON_DEVICE[source] = (jnp.asarray(source.images), *labels)
    return _ON_DEVICE[source]


def _gather(arrays, indices):
    # What the tf.data pipeline computes: a batch in [-1, 1] (and its labels).
    images, *labels = (jnp.take(array, indices, axis=0) for array in arrays)
    if images.dtype == jnp.uint8:
        images = jnp.take(jnp.asarray(_MODEL_RANGE), images.astype(jnp.int32))
    return images if not labels else (images, *labels)


# uint8 -> [-1, 1] as a table, the pipeline's values to the bit: XLA on CPU
# computes `x / 127.5 - 1` through a reciprocal, off by one ulp for most x.
_MODEL_RANGE = np.arange(256, dtype=np.float32) / np.float32(127.5) - np.float32(1)
