"""The TensorFlow trainer: two `tf.GradientTape`s, `tf.distribute`, fused XLA steps."""

import tensorflow as tf

from keras_gan import noise
from keras_gan.backend.tensorflow.fused import FusedTrainFunction
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
        128 on a 2-core CPU), while the MLP runs 2-5x faster under XLA."""
        if tf.config.list_logical_devices("GPU"):
            return True
        return not (
            has_convolutions(self.generator) or has_convolutions(self.discriminator)
        )

    def auto_steps_per_execution(self, jit_compile) -> int:
        return AUTO_STEPS_PER_EXECUTION if jit_compile else 1

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

    def _cond(self, predicate, true_fn, false_fn):
        return tf.cond(predicate, true_fn, false_fn)

    def _next_seed(self):
        seed = super()._next_seed()
        replica_context = tf.distribute.get_replica_context()
        if replica_context is None or replica_context.num_replicas_in_sync == 1:
            return seed
        # Every replica reads the same generator state: fold in the replica id
        # so that replicas draw different latents.
        words = noise.seed_words(seed)
        replica = tf.cast(replica_context.replica_id_in_sync_group, tf.int32)
        folded = noise.hash32(
            tf.bitwise.bitwise_xor(words[1], (replica + 1) * noise.GOLDEN)
        )
        return tf.stack([words[0], folded])

    def make_train_function(self, force=False):
        """Compiles `steps_per_execution` steps into one XLA call when it can.

        Keras runs `steps_per_execution` steps as a TensorFlow while loop that
        launches the XLA-compiled step once per step, paying TensorFlow's
        per-call overhead (~3-4 ms on CPU, most of a small model's step) every
        time. Here the loop is inside the XLA computation: the batches of one
        execution are stacked first, then one compiled call runs them all.
        The steps, their order and their results are those of the plain path;
        only the launches are fewer. Used with `jit_compile=True`,
        `steps_per_execution > 1`, no distribution strategy and networks
        without convolutions; otherwise Keras's own path runs. (TF 2.21's XLA
        CPU backend runs convolutions inside a while loop 2-10x slower than
        outside one, measured with the DCGAN networks; for them the per-call
        overhead is a small part of a step anyway.)
        """
        if self.train_function is not None and not force:
            return self.train_function
        if (
            self.run_eagerly
            or not self.jit_compile
            or self.steps_per_execution <= 1
            or tf.distribute.has_strategy()
            or has_convolutions(self.generator)
            or has_convolutions(self.discriminator)
        ):
            return super().make_train_function(force)
        super().make_train_function(force=True)
        self.train_function = FusedTrainFunction(
            self, self.steps_per_execution, fallback=self.train_function
        )
        return self.train_function
