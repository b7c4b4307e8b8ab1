"""The TensorFlow trainer: two `tf.GradientTape`s, `tf.distribute`, fused XLA steps."""

import contextlib

import keras
import tensorflow as tf

from keras_gan.backend.tensorflow.fused import FusedTrainFunction
from keras_gan.errors import InputError
from keras_gan.networks import has_convolutions

# Steps per compiled call under XLA: measured on a 2-core CPU with the seed MLP
# (batch 64), 32 fused steps run ~1.4x faster than 1 and within ~5% of 128,
# while batch-level callbacks still fire every 32 steps.
AUTO_STEPS_PER_EXECUTION = 32


class TensorFlowGANTrainer:
    """Gradient mechanics of `BaseGAN` on TensorFlow (mixed in before it)."""

    def auto_jit_compile(self) -> bool:
        """XLA on a GPU, and on a CPU unless a network has convolutions:
        convolutions run faster on TensorFlow's oneDNN kernels than under
        XLA's CPU backend (1048 against 753 images/s for the DCGAN at batch
        128 on a 2-core CPU), while the MLP runs 2-5x faster under XLA.
        Never under a `tf.distribute` strategy, as Keras's own "auto"."""
        if distribute_strategy(self) is not None:
            return False
        if tf.config.list_logical_devices("GPU"):
            return True
        return not (
            has_convolutions(self.generator) or has_convolutions(self.discriminator)
        )

    def auto_steps_per_execution(self, jit_compile) -> int:
        return AUTO_STEPS_PER_EXECUTION if jit_compile else 1

    def compile(self, *args, **kwargs):
        super().compile(*args, **kwargs)
        strategy = distribute_strategy(self)
        if self.jit_compile and strategy is not None and _on_cpus(strategy):
            # XLA compiles each replica's step for CPU:0 and then reads the
            # other replicas' variables there ("Trying to access resource
            # .../replica_1 located in device CPU:1"): Keras's own step too.
            raise InputError(
                f"jit_compile=True does not run under {type(strategy).__name__} "
                f"over CPU devices ({', '.join(strategy.extended.worker_devices)}); "
                f"pass jit_compile='auto' or False."
            )

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Under a strategy Keras reads the first batch and reduces it across
        # replicas to build the model, which fails under
        # MultiWorkerMirroredStrategy on several workers ("Attempt to convert
        # a value (PerReplica...) to a Tensor"). A GAN's networks are built
        # when made and its optimizers in `compile`: nothing is left to build.
        built = all(layer.built for layer in self._flatten_layers())
        if built and (self.optimizer is None or self.optimizer.built):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def _minimize(self, objective, model, optimizer):
        # Gradients are summed across replicas, and these losses (penalties
        # included) are means over one replica's batch: scale them so the
        # update is the mean.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            loss, aux = objective()
            scaled = optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled, variables)
        # Embedding gradients come as IndexedSlices, on which Keras's Adam
        # squares each occurrence of a repeated row (sum of g_i^2) instead
        # of the row's gradient ((sum of g_i)^2): dense gradients give Adam's
        # update, as on JAX and PyTorch.
        gradients = [
            tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g
            for g in gradients
        ]
        optimizer.apply(gradients, variables)
        return aux

    def _input_gradients(self, function, inputs):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            total = tf.reduce_sum(function(inputs))
        return tape.gradient(total, inputs)

    # Not converted by autograph (nothing in it branches on a tensor): a
    # converted zero-argument `super()` was once called without `interval`
    # (seen once, in a long test session; not reproduced).
    @tf.autograph.experimental.do_not_convert
    def _due(self, event, interval):
        schedule = getattr(self, "_replica_schedule", None)
        if schedule is None:
            return super()._due(event, interval)
        return schedule[event]

    def _cond(self, predicate, true_fn, false_fn):
        if isinstance(predicate, bool):  # decided before the step (`_due`)
            return true_fn() if predicate else false_fn()
        return tf.cond(predicate, true_fn, false_fn)

    def _first_image(self, batch_size):
        # A replica's step is its slice of one step on the whole batch: its
        # draws are that slice of the whole batch's draws, so replicas never
        # repeat each other's noise and the update is one device's.
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return 0
        return _replica_first_image(context, batch_size)

    def make_train_function(self, force=False):
        """Compiles `steps_per_execution` steps into one XLA call when it can.

        Keras runs `steps_per_execution` steps as a TensorFlow while loop that
        launches the XLA-compiled step once per step, paying TensorFlow's
        per-call overhead (~3-4 ms on CPU, most of a small model's step) every
        time. Here the loop is inside the XLA computation: the batches of one
        execution are stacked first, then one compiled call runs them all.
        The steps, their order and their results are those of the plain path;
        only the launches are fewer. Used with `jit_compile=True`,
        `steps_per_execution > 1`, no distribution strategy (the batches
        would be per-replica values; `fit` may run outside the strategy's
        scope, so the model's own strategy is asked) and networks
        without convolutions; otherwise Keras's own path runs. (TF 2.21's XLA
        CPU backend runs convolutions inside a while loop 2-10x slower than
        outside one, measured with the DCGAN networks; for them the per-call
        overhead is a small part of a step anyway.)
        """
        if self.train_function is not None and not force:
            return self.train_function
        strategy = distribute_strategy(self)
        if strategy is not None:
            self.train_function = self._replicated_train_function(strategy)
            return self.train_function
        if (
            self.run_eagerly
            or not self.jit_compile
            or self.steps_per_execution <= 1
            or has_convolutions(self.generator)
            or has_convolutions(self.discriminator)
        ):
            return super().make_train_function(force)
        super().make_train_function(force=True)
        self.train_function = FusedTrainFunction(
            self, self.steps_per_execution, fallback=self.train_function
        )
        return self.train_function

    def _scheduled_events(self):
        # {event: interval} of the step's branches on the D update count.
        options = self.training_options
        events = {"generator": options["d_steps"]}
        if self._penalized:
            events["penalty"] = options["penalty_interval"]
        return {event: every for event, every in events.items() if every > 1}

    def _replicated_train_function(self, strategy):
        """`train_function` under a `tf.distribute` strategy: one step per
        call of `strategy.run`, `steps_per_execution` calls in a Python loop.

        Two things must happen outside the replicas, where Keras's train
        function has no place for them. In a replica, a synchronisation (the
        optimizer's all-reduce, synchronized batch-norm statistics) cannot sit
        inside `tf.cond` ("`merge_call` called while defining a new graph"),
        so the branches of `d_steps` and lazy penalties are taken here: each
        combination of due events is one `strategy.run` of the step with
        those events decided (`_due`), and a `tf.cond` on the D update count
        picks one. And batch normalization is synchronized while the step is
        traced (the whole batch's statistics, as on one device and under
        JAX's `DataParallel`); the replicas trace in threads of their own, so
        the switch cannot be made inside the step.
        """
        events = self._scheduled_events()
        # The count that `_due` reads: before D's update for the penalty,
        # after it for the generator.
        offsets = {"penalty": 0, "generator": 1}

        def replicated_step(data, schedule):
            object.__setattr__(self, "_replica_schedule", schedule)
            structure = []  # the logs' structure, seen by the replicas' trace

            def packed_step(data):
                # The logs as one vector: one all-reduce instead of one per
                # log (each a round trip between workers).
                logs = self.train_step(data)
                flat = keras.tree.flatten(logs)
                structure[:] = [logs, [v.dtype for v in flat]]
                return tf.stack([tf.cast(v, tf.float32) for v in flat])

            try:
                with _synchronized_batch_norm(self.generator, self.discriminator):
                    outputs = strategy.run(packed_step, args=(data,))
            finally:
                object.__setattr__(self, "_replica_schedule", None)
            means = tf.unstack(mean_over_replicas(outputs, strategy))
            logs, dtypes = structure
            return keras.tree.pack_sequence_as(
                logs, [tf.cast(m, d) for m, d in zip(means, dtypes, strict=True)]
            )

        def one_step(data):
            count = self.d_optimizer.iterations.value

            def branch(remaining, schedule):
                if not remaining:
                    return replicated_step(data, schedule)
                event, every = remaining[0]
                due = tf.equal((count + offsets[event]) % every, 0)
                return tf.cond(
                    due,
                    lambda: branch(remaining[1:], {**schedule, event: True}),
                    lambda: branch(remaining[1:], {**schedule, event: False}),
                )

            return branch(list(events.items()), {})

        if not self.run_eagerly:
            # As Keras's own step: XLA over the replicated step if asked for
            # (`compile` refuses it on CPU devices).
            one_step = tf.function(
                one_step, reduce_retracing=True, jit_compile=self.jit_compile
            )

        def train_function(iterator):
            outputs = None
            for _ in range(self.steps_per_execution):
                try:
                    data = next(iterator)
                except (StopIteration, tf.errors.OutOfRangeError):
                    break
                outputs = one_step(data)
            if outputs is None:
                raise StopIteration
            return outputs

        return train_function


def distribute_strategy(model):
    """The `tf.distribute` strategy `model` trains under, or None: the one it
    was created in (Keras keeps it), else the one in scope."""
    strategy = getattr(model, "_distribute_strategy", None)
    if strategy is None and tf.distribute.has_strategy():
        strategy = tf.distribute.get_strategy()
    return strategy


def mean_over_replicas(values, strategy):
    """The mean of the replicas' `values` (their logs, packed in one vector).

    Keras's own reduction (`reduce_per_replica`) reduces a multi-worker
    strategy's values along axis 0, which scalar logs do not have: its `fit`
    fails under `MultiWorkerMirroredStrategy` on more than one worker with
    "Invalid reduction dimension 0 for input with 0 dimensions"
    (keras-team/keras#20585, tensorflow/tensorflow#72388). A reduction over
    the replicas alone (`axis=None`) is the same mean on one worker and an
    all-reduce across workers on several (tests/test_multi_worker.py).
    """
    return strategy.reduce(tf.distribute.ReduceOp.MEAN, values, axis=None)


def _on_cpus(strategy):
    return any(
        tf.DeviceSpec.from_string(device).device_type == "CPU"
        for device in strategy.extended.worker_devices
    )


def _replica_first_image(context, batch_size):
    # The replicas' batch sizes may differ (an epoch's last batch splits
    # unevenly): sum those of the replicas before this one.
    replicas = context.num_replicas_in_sync
    replica = context.replica_id_in_sync_group
    sizes = context.all_reduce(
        tf.distribute.ReduceOp.SUM,
        tf.one_hot(replica, replicas, dtype=tf.int32) * tf.cast(batch_size, tf.int32),
    )
    return tf.reduce_sum(sizes[:replica])


@contextlib.contextmanager
def _synchronized_batch_norm(*models):
    # Only while the step is traced: `synchronized` is read when a layer is
    # called, and a saved model keeps False (True does not load on JAX or
    # PyTorch).
    layers = [
        layer
        for model in models
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
    ]
    for layer in layers:
        layer.synchronized = True
    try:
        yield
    finally:
        for layer in layers:
            layer.synchronized = False
