"""Several training steps in one XLA call, for `fit` on the TensorFlow backend."""

import tensorflow as tf


class FusedTrainFunction:
    """`train_function(iterator)` running up to `steps` steps in one XLA call.

    Each call runs the steps whose batches the previous call stacked into a
    buffer, and meanwhile stacks the next ones: the XLA computation and the
    input pipeline are independent ops of one graph, so TensorFlow runs them
    concurrently. Batches of a non-static shape, which XLA cannot stack, fall
    back to Keras's own train function.
    """

    def __init__(self, gan, steps, fallback):
        self.gan = gan
        self.steps = steps
        self.fallback = fallback
        self.iterator = None
        self.use_fallback = False
        # Per element spec: its buffer variables and the functions traced on them.
        self.prepared = {}
        self.run_steps = tf.function(
            self._run_steps, jit_compile=True, reduce_retracing=True
        )

    def _prepare(self, spec):
        # The functions close over their own buffer, so a retrace never mixes
        # the buffers of two datasets.
        if spec not in self.prepared:
            buffer = [  # per leaf: a (steps, batch, ...) variable
                tf.Variable(tf.zeros((self.steps, *leaf.shape), leaf.dtype),
                            trainable=False)
                for leaf in tf.nest.flatten(spec)
            ]  # fmt: skip
            count = tf.Variable(0, trainable=False)  # how many batches are real

            def fill(iterator):
                stacked, real = self._next_batches(iterator)
                for variable, value in zip(
                    buffer, tf.nest.flatten(stacked), strict=True
                ):
                    variable.assign(value)
                count.assign(real)

            def run_and_refill(iterator):
                stacked = tf.nest.pack_sequence_as(
                    spec, [v.read_value() for v in buffer]
                )
                real = count.read_value()
                logs = self.run_steps(stacked, real)
                with tf.control_dependencies(tf.nest.flatten(stacked) + [real]):
                    fill(iterator)
                return real, logs

            self.prepared[spec] = (tf.function(fill), tf.function(run_and_refill))
        return self.prepared[spec]

    def _run_steps(self, stacked, count):
        # stacked: each leaf (steps, batch, ...); only the first `count` are real.
        def body(index, logs):
            batch = tf.nest.map_structure(lambda leaf: leaf[index], stacked)
            return index + 1, self.gan.train_step(batch)

        initial_logs = {metric.name: metric.result() for metric in self.gan._trackers()}
        _, logs = tf.while_loop(
            lambda index, _: index < count,
            body,
            (tf.constant(0), initial_logs),
            maximum_iterations=self.steps,
        )
        return logs

    def _next_batches(self, iterator):
        # The end of an epoch may leave fewer than `steps` batches: pad with
        # zeros (never trained on) and count the real ones.
        optionals = [iterator.get_next_as_optional() for _ in range(self.steps)]
        zeros = tf.nest.map_structure(
            lambda leaf: tf.zeros(leaf.shape, leaf.dtype), iterator.element_spec
        )
        batches = [
            tf.cond(optional.has_value(), optional.get_value, lambda: zeros)
            for optional in optionals
        ]
        count = tf.add_n([tf.cast(o.has_value(), tf.int32) for o in optionals])
        stacked = tf.nest.map_structure(lambda *leaves: tf.stack(leaves), *batches)
        return stacked, count

    def __call__(self, iterator):
        if iterator is not self.iterator:  # a new epoch's (or dataset's) iterator
            self.iterator = iterator
            spec = iterator.element_spec
            self.use_fallback = not all(
                leaf.shape.is_fully_defined() for leaf in tf.nest.flatten(spec)
            )
            if not self.use_fallback:
                self.fill, self.run_and_refill = self._prepare(spec)
                self.fill(iterator)
        if self.use_fallback:
            return self.fallback(iterator)
        count, logs = self.run_and_refill(iterator)
        if int(count) == 0:
            raise StopIteration
        return logs
