"""`BaseGAN`: everything about the GAN that does not depend on the backend.

Constructor checks, `compile` and its config, the metrics, `call`, `generate`,
the EMA generator, the noise seed state, `get_config`, and the training step
itself, written once in `keras.ops` (Algorithm 1 of Goodfellow et al. 2014,
arXiv:1406.2661). A backend trainer (`keras_gan.backend.<name>.trainer`)
contributes only the gradient mechanics, through three hooks:

- `_minimize(objective, model, optimizer)`: run `objective() -> (loss, aux)`,
  descend `loss` on `model.trainable_variables` with `optimizer`, return `aux`;
- `_input_gradients(function, inputs)`: d sum(function(inputs)) / d inputs,
  differentiable again (for gradient penalties);
- `_cond(predicate, true_fn, false_fn)`: a branch whose functions may update
  variables (lazy penalties, `d_steps`);
- `_constant(function)`, optional: `function()` as a value no gradient flows
  through (the discriminator step's fake images); a trainer whose autodiff
  records eagerly runs it unrecorded.
"""

import contextlib

import keras
import numpy as np
from keras import ops
from keras.src.trainers.compile_utils import MetricsList

from keras_gan import augment as augmentation
from keras_gan import losses
from keras_gan import networks
from keras_gan import noise
from keras_gan import precision
from keras_gan.data.pipeline import check_model_range
from keras_gan.errors import InputError
from keras_gan.evaluation.evaluator import DIRECTIONS

# The training options of `GAN.compile` and their defaults.
TRAINING_DEFAULTS = {
    "gradient_penalty": 0.0,
    "r1": 0.0,
    "r2": 0.0,
    "penalty_interval": 1,
    "d_steps": 1,
    "augment": None,
}

_SEED_STATE = "seed_generator_state"
# The latents of `test_step`: one fixed draw, whatever the training noise.
EVALUATION_SEED = 2**31 - 1


class BaseGAN(keras.Model):
    """A generative adversarial network trained with `fit`.

    Each `train_step` updates the discriminator once on a batch of real images
    and a batch of generated ones, then the generator once on fresh latents
    (Algorithm 1 of Goodfellow et al. 2014, arXiv:1406.2661). Latents come
    from the model's own `SeedGenerator`, so compiled steps draw fresh noise
    and a saved model restores its random state. The same step runs on the
    TensorFlow, JAX and PyTorch backends (`keras_gan.GAN` picks the trainer of
    `keras.config.backend()`).

    Logged per epoch: `d_loss`, `g_loss`, and the discriminator's mean
    probability that real images are real (`d_real`) and that generated images
    are real (`d_fake`); `d_penalty` when a gradient penalty is on.

    Args:
        generator: a `keras.Model` from latents `(batch, latent_dim)` (and
            labels, for a conditional GAN) to images in [-1, 1].
        discriminator: a `keras.Model` from images (and labels) to logits
            `(batch, 1)`.
        latent_dim: size of the latent vector; read from the generator's
            input when `None`.
        seed: int seed of the training noise, or `None` for a random one.
        num_classes: number of classes of a conditional GAN, or `None`.
        ema_decay: decay of an exponential moving average of the generator's
            weights used for sampling and export (e.g. 0.999), or `None`.
        **kwargs: passed to `keras.Model` (`name`, `dtype`, ...).

    Example:

    ```python
    gan = keras_gan.GAN(
        generator=keras_gan.networks.mlp_generator(100, (28, 28, 1)),
        discriminator=keras_gan.networks.mlp_discriminator((28, 28, 1)),
        latent_dim=100, seed=0)
    gan.compile()
    gan.fit(dataset, epochs=10)
    images = gan.generate(16, seed=0)
    ```
    """

    def __init__(
        self,
        generator,
        discriminator,
        latent_dim=None,
        seed=None,
        num_classes=None,
        ema_decay=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        conditional = networks.is_conditional(generator, num_classes)
        if conditional and len(discriminator.inputs) != 2:
            raise InputError(
                "A conditional GAN needs a discriminator with inputs "
                f"[images, labels]; this one takes {len(discriminator.inputs)}."
            )
        generator_latent_dim = generator.inputs[0].shape[-1]
        if latent_dim is None:
            latent_dim = generator_latent_dim
        if latent_dim != generator_latent_dim:
            raise InputError(
                f"latent_dim={latent_dim} does not match the generator's input "
                f"size {generator_latent_dim}; expected them equal."
            )
        image_shape = tuple(generator.outputs[0].shape[1:])
        discriminator_shape = tuple(discriminator.inputs[0].shape[1:])
        if image_shape != discriminator_shape:
            raise InputError(
                f"The generator makes images of shape {image_shape} but the "
                f"discriminator takes {discriminator_shape}; expected the same."
            )
        if ema_decay is not None and not 0.0 < float(ema_decay) < 1.0:
            raise InputError(
                f"ema_decay must be in (0, 1), e.g. 0.999, or None; "
                f"received {ema_decay}."
            )
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(latent_dim)
        self.image_shape = image_shape
        self.seed = seed
        self.num_classes = None if num_classes is None else int(num_classes)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        self.ema_generator = None
        if ema_decay is not None:
            # Same architecture, weights averaged over training steps; its
            # weight paths start with ema_generator/, apart from the generator's.
            with keras.name_scope("ema_generator"):
                self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        self.seed_generator = keras.random.SeedGenerator(seed, name="latents")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.penalty_tracker = keras.metrics.Mean(name="d_penalty")
        # Monitoring callbacks (EarlyStopping, ModelCheckpoint(save_best_only),
        # ReduceLROnPlateau) read a metric's direction for mode="auto". D's
        # probabilities have none: a GAN in balance keeps them near 0.5.
        for tracker in (self.d_loss_tracker, self.g_loss_tracker, self.penalty_tracker):
            tracker._direction = "down"
        self.d_optimizer = None
        self.g_optimizer = None
        self.gan_loss = None
        self.training_options = dict(TRAINING_DEFAULTS)
        self.built = True

    @property
    def conditional(self) -> bool:
        """Whether the networks take class labels."""
        return self.num_classes is not None

    @property
    def inference_generator(self) -> keras.Model:
        """The generator that samples, grids, evaluation and exports use: the
        moving average of the generator's weights when `ema_decay` is set,
        else the generator itself."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, z, labels=None, training=False):
        """Maps latents `(batch, latent_dim)` (and labels) to images in [-1, 1].

        Uses `inference_generator` (the weight average when enabled).
        """
        generator = self.generator if training else self.inference_generator
        if self.conditional:
            if labels is None:
                labels = networks.default_labels(ops.shape(z)[0], self.num_classes)
            labels = ops.cast(labels, "int32")
            # Without it, one label would broadcast over a batch of latents.
            if len(labels.shape) != 1 or (
                labels.shape[0] is not None
                and z.shape[0] is not None
                and labels.shape[0] != z.shape[0]
            ):
                raise InputError(
                    f"labels must hold one class per row of z; received labels "
                    f"of shape {tuple(labels.shape)} for z of shape "
                    f"{tuple(z.shape)}."
                )
        return self._generate(z, labels, training, generator)

    @property
    def _penalized(self) -> bool:
        options = self.training_options
        return bool(options["gradient_penalty"] or options["r1"] or options["r2"])

    @property
    def metrics(self):
        # Only the GAN's own trackers: `fit` resets them each epoch, and the
        # `loss` tracker that `compile()` adds would log a meaningless 0. In a
        # `MetricsList`, the one place where Keras's monitoring callbacks look
        # up a metric's direction.
        return [
            _GANMetrics(self._trackers() + _EVALUATION_DIRECTIONS, name="gan_metrics")
        ]

    def _trackers(self):
        trackers = [
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.d_real_tracker,
            self.d_fake_tracker,
        ]
        if self._penalized:
            trackers.append(self.penalty_tracker)
        return trackers

    def compile(
        self,
        d_optimizer="auto",
        g_optimizer="auto",
        loss="non_saturating",
        gradient_penalty=0.0,
        r1=0.0,
        r2=0.0,
        penalty_interval=1,
        d_steps=1,
        augment=None,
        jit_compile="auto",
        steps_per_execution="auto",
        **kwargs,
    ):
        """Configures the GAN for training.

        Args:
            d_optimizer: the discriminator's optimizer: `"auto"` for
                Adam(2e-4, beta_1=0.5), an optimizer name or instance.
            g_optimizer: the generator's optimizer, likewise.
            loss: name of an adversarial loss in `keras_gan.losses.LOSSES`.
            gradient_penalty: weight lambda of the WGAN-GP penalty
                lambda * E[(||grad D(x_hat)|| - 1)^2] at random interpolates of
                real and generated images (Gulrajani et al. 2017,
                arXiv:1704.00028, eq. 3; lambda = 10 there); 0 turns it off.
            r1: weight gamma of the R1 penalty gamma/2 * E[||grad D(x)||^2] on
                real images (Mescheder et al. 2018, arXiv:1801.04406, eq. 9).
            r2: weight of the same penalty on generated images (eq. 10).
            penalty_interval: apply the penalties every this many
                discriminator steps, scaled up by it ("lazy regularization",
                Karras et al. 2020, arXiv:1912.04958, sec. 3.1).
            d_steps: discriminator updates per generator update; each
                discriminator update takes its own batch (WGAN's n_critic).
            augment: DiffAugment policy (`"color,translation,cutout"`, a
                subset, or None) applied to every image D sees, real and
                generated (Zhao et al. 2020, arXiv:2006.10738).
            jit_compile: whether the train step is compiled with XLA. `"auto"`
                is the backend trainer's choice: on TensorFlow XLA on a GPU
                and, on a CPU, for networks without convolutions (see README's
                speed table), never under a `tf.distribute` strategy (as
                Keras's own "auto"); always on JAX; never on PyTorch (eager,
                as Keras does).
            steps_per_execution: training steps per compiled call. `"auto"`
                is the backend trainer's choice (32 under XLA on TensorFlow,
                1 elsewhere). Batch-level callback hooks fire once per call.
                Under a strategy or a `keras.distribution`, N > 1 runs N
                one-step calls (see README, Distributed training).
            **kwargs: other `keras.Model.compile` arguments (`run_eagerly`, ...).

        Under a `mixed_float16` policy both optimizers are wrapped in a
        `keras.optimizers.LossScaleOptimizer`; logits and losses stay float32
        (float64 models train in float64 throughout: see `keras_gan.precision`).
        """
        for argument in ("optimizer", "metrics", "loss_weights"):
            if kwargs.get(argument) is not None:
                raise InputError(
                    f"GAN.compile does not take {argument}=; use d_optimizer=, "
                    f"g_optimizer= and loss= (one of {', '.join(losses.LOSSES)})."
                )
        gan_loss = losses.get(loss)
        options = {
            "gradient_penalty": _non_negative(gradient_penalty, "gradient_penalty"),
            "r1": _non_negative(r1, "r1"),
            "r2": _non_negative(r2, "r2"),
            "penalty_interval": _at_least_one(penalty_interval, "penalty_interval"),
            "d_steps": _at_least_one(d_steps, "d_steps"),
            "augment": ",".join(augmentation.parse_policy(augment)) or None,
        }
        # Saved as given, so that a file compiled with "auto" on one backend
        # gets the other backend's choice when loaded there.
        self._compile_choices = {
            "jit_compile": jit_compile,
            "steps_per_execution": steps_per_execution,
        }
        if kwargs.get("run_eagerly"):
            jit_compile = False
        if jit_compile == "auto":
            jit_compile = self.auto_jit_compile()
        if steps_per_execution == "auto":
            steps_per_execution = self.auto_steps_per_execution(jit_compile)
        # No `model.optimizer`: the two players have their own.
        super().compile(
            optimizer=None,
            jit_compile=jit_compile,
            steps_per_execution=steps_per_execution,
            **kwargs,
        )
        self.gan_loss = gan_loss
        self.training_options = options
        self.d_optimizer = _get_optimizer(d_optimizer, "d_optimizer")
        self.g_optimizer = _get_optimizer(g_optimizer, "g_optimizer")
        if _uses_float16(self.generator) or _uses_float16(self.discriminator):
            # Keras wraps only `model.optimizer` under mixed_float16 (Keras
            # notes); gradients of float16 activations need loss scaling.
            self.d_optimizer = _loss_scaled(self.d_optimizer)
            self.g_optimizer = _loss_scaled(self.g_optimizer)
        # Built now, not on the first step, so that loading weights (load_model,
        # BackupAndRestore) restores their moments and iteration counts
        # instead of skipping them.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.d_optimizer.name == self.g_optimizer.name:
            # Keras's learning-rate callbacks log `learning_rate_<name>` per
            # optimizer: two "adam"s would log one.
            self.d_optimizer.name = f"d_{self.d_optimizer.name}"
            self.g_optimizer.name = f"g_{self.g_optimizer.name}"
        # Not a Keras object (the two optimizers are saved under their own
        # names): the view that Keras's callbacks and JAX `fit` read.
        object.__setattr__(
            self, "optimizer", PlayerOptimizers(self.d_optimizer, self.g_optimizer)
        )

    def auto_jit_compile(self) -> bool:
        """What `jit_compile="auto"` picks; backend trainers override it."""
        return True

    def auto_steps_per_execution(self, jit_compile) -> int:
        """What `steps_per_execution="auto"` picks; backend trainers override it."""
        return 1

    def get_compile_config(self):
        if self.gan_loss is None:
            return None
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "loss": self.gan_loss.name,
            **self.training_options,
            **self._compile_choices,
            "run_eagerly": self.run_eagerly,
        }

    def compile_from_config(self, config):
        config = dict(config)
        for argument in ("d_optimizer", "g_optimizer"):
            config[argument] = keras.saving.deserialize_keras_object(config[argument])
        self.compile(**config)

    # -- The training step, in keras.ops. ------------------------------------

    def train_step(self, data):
        real_images, labels = self._unpack(data)
        batch_size = ops.shape(real_images)[0]
        options = self.training_options

        # Discriminator: tell real images from generated ones. Generated
        # images take the real batch's labels, so classes keep the data's mix.
        first = self._first_image(batch_size)
        z = noise.latent_noise(
            batch_size, self.latent_dim, self._next_seed(), self._full_dtype, first
        )
        fake_images = self._constant(lambda: self._generate(z, labels, training=True))
        real_seed, fake_seed = self._augment_seeds()

        def discriminator_objective():
            real_logits = self._discriminate(real_images, labels, real_seed)
            fake_logits = self._discriminate(fake_images, labels, fake_seed)
            d_loss = self.gan_loss.discriminator(real_logits, fake_logits)
            penalty = ops.zeros((), self._full_dtype)
            if self._penalized:
                penalty = self._penalty(real_images, fake_images, labels)
            total = d_loss + penalty + _sum(self.discriminator.losses)
            return total, (d_loss, penalty, real_logits, fake_logits)

        d_loss, penalty, real_logits, fake_logits = self._minimize(
            discriminator_objective, self.discriminator, self.d_optimizer
        )

        # Generator: make D call fresh samples real (every d_steps-th step).
        def generator_step():
            z = noise.latent_noise(
                batch_size, self.latent_dim, self._next_seed(), self._full_dtype, first
            )
            real_seed, fake_seed = self._augment_seeds()

            def generator_objective():
                generated = self._generate(z, labels, training=True)
                generated_logits = self._discriminate(generated, labels, fake_seed)
                real_for_g = None
                if self.gan_loss.generator_needs_real_logits:
                    real_for_g = self._discriminate(real_images, labels, real_seed)
                g_loss = self.gan_loss.generator(real_for_g, generated_logits)
                return g_loss + _sum(self.generator.losses), g_loss

            g_loss = self._minimize(
                generator_objective, self.generator, self.g_optimizer
            )
            self._update_ema()
            return ops.cast(g_loss, self._full_dtype)

        d_steps = options["d_steps"]
        if d_steps == 1:
            g_loss, g_weight = generator_step(), 1.0
        else:
            due = self._due("generator", d_steps)
            g_loss = self._cond(
                due, generator_step, lambda: ops.zeros((), self._full_dtype)
            )
            g_weight = ops.cast(due, self._full_dtype)

        # Metrics: the losses and D's probabilities before this step's update.
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss, sample_weight=g_weight)
        self.d_real_tracker.update_state(ops.sigmoid(precision.widen(real_logits)))
        self.d_fake_tracker.update_state(ops.sigmoid(precision.widen(fake_logits)))
        if self._penalized:
            self.penalty_tracker.update_state(penalty)
        return {metric.name: metric.result() for metric in self._trackers()}

    def test_step(self, data):
        """Scores D on held-out real images and generated ones; updates nothing.

        `evaluate(dataset)` and `fit(..., validation_data=...)` log `d_loss`,
        `g_loss`, `d_real` and `d_fake` (`val_*` in `fit`) as the training
        step defines them, with D and G in inference mode, no augmentation
        and no penalties. `d_real` on training images against `val_d_real` on
        held-out ones is the discriminator's overfitting signal (Karras et al.
        2020, ADA, arXiv:2006.06676, sec. 3). The generated images come from
        fixed latents (`EVALUATION_SEED`, the same for every batch), so an
        evaluation is reproducible and leaves the training noise untouched.
        """
        real_images, labels = self._unpack(data)
        batch_size = ops.shape(real_images)[0]
        z = noise.latent_noise(
            batch_size, self.latent_dim, EVALUATION_SEED, self._full_dtype
        )
        fake_images = self._generate(z, labels, training=False)
        real_logits = self._discriminate(real_images, labels, training=False)
        fake_logits = self._discriminate(fake_images, labels, training=False)
        real_for_g = real_logits if self.gan_loss.generator_needs_real_logits else None
        trackers = {
            self.d_loss_tracker: self.gan_loss.discriminator(real_logits, fake_logits),
            self.g_loss_tracker: self.gan_loss.generator(real_for_g, fake_logits),
            self.d_real_tracker: ops.sigmoid(precision.widen(real_logits)),
            self.d_fake_tracker: ops.sigmoid(precision.widen(fake_logits)),
        }
        for tracker, value in trackers.items():
            tracker.update_state(value)
        return {tracker.name: tracker.result() for tracker in trackers}

    def _unpack(self, data):
        # (images,) or (images, labels); unconditional models ignore labels.
        if isinstance(data, (tuple, list)):
            real_images = data[0]
            labels = data[1] if len(data) > 1 else None
        else:
            real_images, labels = data, None
        real_images = ops.convert_to_tensor(real_images)
        _check_float_images(real_images.dtype)
        if self.conditional:
            if labels is None:
                raise InputError(
                    "A conditional GAN trains on (images, labels) batches; the "
                    "dataset yields images only."
                )
            labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
        return real_images, labels

    def _next_seed(self):
        """The `(2,)` seed of the next random draw of a training step."""
        return self.seed_generator.next()

    def _due(self, event, interval):
        """Whether this step's `event` is due: `"penalty"` (read before D's
        update: every `interval`-th D update from the first) or
        `"generator"` (read after it: every `interval`-th D update). A
        trainer may decide it before the step, from the same count."""
        return ops.equal(self.d_optimizer.iterations % interval, 0)

    def _first_image(self, batch_size):
        """Index of this batch's first image in the step's whole batch: its
        draws are that slice of the whole batch's (0 but in a replica)."""
        return 0

    def _generate(self, z, labels, training, generator=None):
        generator = generator or self.generator
        if self.conditional:
            return generator([z, labels], training=training)
        return generator(z, training=training)

    def _discriminate(self, images, labels, seed=None, training=True):
        if seed is not None and self.training_options["augment"]:
            images = augmentation.diff_augment(
                images,
                self.training_options["augment"],
                seed,
                self._first_image(ops.shape(images)[0]),
            )
        if self.conditional:
            return self.discriminator([images, labels], training=training)
        return self.discriminator(images, training=training)

    def _augment_seeds(self):
        if not self.training_options["augment"]:
            return None, None
        # Independent transforms for the real and the generated batch.
        return self._next_seed(), self._next_seed()

    def _penalty(self, real_images, fake_images, labels):
        """The gradient penalties of this discriminator step (`_full_dtype`)."""
        options = self.training_options
        full = self._full_dtype
        batch_size = ops.shape(real_images)[0]

        def input_gradient_norms(images):
            # ||grad_x D(x)|| per image; under loss scaling the inner gradient
            # is scaled too, or float16 underflows.
            scale = _loss_scale(self.d_optimizer, full)

            def scaled_logits(x):
                return precision.widen(self._discriminate(x, labels)) * scale

            gradients = self._input_gradients(scaled_logits, images)
            gradients = ops.cast(gradients, full) / scale
            return ops.sqrt(ops.sum(ops.square(gradients), axis=(1, 2, 3)) + 1e-12)

        def penalties():
            total = ops.zeros((), full)
            if options["gradient_penalty"]:
                # Interpolation weights uniform in (0, 1), one per image.
                weight = noise.uniforms(
                    batch_size,
                    noise.seed_words(self._next_seed()),
                    self._first_image(batch_size),
                )
                weight = ops.reshape(weight, (-1, 1, 1, 1))
                weight = ops.cast(weight, full)
                real = ops.cast(real_images, full)
                fake = ops.cast(fake_images, full)
                norms = input_gradient_norms(weight * real + (1.0 - weight) * fake)
                total += options["gradient_penalty"] * ops.mean(ops.square(norms - 1.0))
            for gamma, images in (
                (options["r1"], real_images),
                (options["r2"], fake_images),
            ):
                if gamma:
                    norms = input_gradient_norms(ops.cast(images, full))
                    total += 0.5 * gamma * ops.mean(ops.square(norms))
            return total

        interval = options["penalty_interval"]
        if interval == 1:
            return penalties()
        due = self._due("penalty", interval)
        return self._cond(
            due, lambda: interval * penalties(), lambda: ops.zeros((), full)
        )

    def _update_ema(self):
        if self.ema_generator is None:
            return
        # Warm-up as in tf.train.ExponentialMovingAverage(num_updates=...):
        # early averages forget the random initialisation quickly.
        step = ops.cast(self.g_optimizer.iterations, self._full_dtype)
        decay = ops.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for average, variable in zip(
            self.ema_generator.weights, self.generator.weights, strict=True
        ):
            value = ops.stop_gradient(ops.cast(variable.value, average.dtype))
            if variable.trainable:
                average.assign(average.value * decay + value * (1.0 - decay))
            else:  # batch-norm statistics and the like: copied
                average.assign(value)

    @property
    def _full_dtype(self):
        # Of latents, losses and penalties: float32 under float32 and mixed
        # precision, float64 for a float64 discriminator (see `precision`).
        return self.discriminator.dtype_policy.variable_dtype

    # -- Backend hooks (see the module docstring), defined by the trainers. --

    def _minimize(self, objective, model, optimizer):
        raise _no_trainer(self)

    def _input_gradients(self, function, inputs):
        raise _no_trainer(self)

    def _cond(self, predicate, true_fn, false_fn):
        raise _no_trainer(self)

    def _constant(self, function):
        return ops.stop_gradient(function())

    # -- Sampling. -----------------------------------------------------------

    def generate(self, num_images: int, seed=None, batch_size: int = 256, labels=None):
        """Generates images from standard normal latents.

        Args:
            num_images: how many images.
            seed: int seed of the latents; the same seed gives the same images
                here, on every backend and from the exported `generate`
                signature, to float32 rounding (within 1e-6). `None` draws a
                seed from NumPy's global generator.
            batch_size: images generated per generator call.
            labels: conditional models only: an int class, or `num_images`
                ints; `None` cycles through the classes (0, 1, ..., 0, 1, ...).

        Returns:
            A float32 `np.ndarray` `(num_images, H, W, C)` in [-1, 1], from
            `inference_generator` (the weight average when enabled).

        Example:

        >>> images = gan.generate(16, seed=0)  # doctest: +SKIP
        """
        if int(num_images) < 1 or int(batch_size) < 1:
            raise InputError(
                f"num_images and batch_size must be positive; received "
                f"num_images={num_images}, batch_size={batch_size}."
            )
        num_images, batch_size = int(num_images), int(batch_size)
        labels = self._check_labels(labels, num_images)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        z = noise.latent_noise(num_images, self.latent_dim, int(seed))
        batches = []
        for start in range(0, num_images, batch_size):
            end = start + batch_size
            batch_labels = None
            if labels is not None:
                batch_labels = ops.convert_to_tensor(labels[start:end])
            images = self(z[start:end], labels=batch_labels)
            batches.append(ops.convert_to_numpy(ops.cast(images, "float32")))
        return np.concatenate(batches).astype(np.float32)

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`; images given as an array are checked first: a
        GAN trained on pixels in [0, 255] learns the wrong range silently."""
        if isinstance(x, np.ndarray) or ops.is_tensor(x):
            images = np.asarray(ops.convert_to_numpy(x)) if ops.is_tensor(x) else x
            _check_float_images(images.dtype)
            check_model_range(images)
        return super().fit(x, *args, **kwargs)

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """`keras.Model.predict` on latents, one batch per compiled call."""
        with self._one_step_per_call():
            return super().predict(
                x,
                batch_size=batch_size,
                verbose=verbose,
                steps=steps,
                callbacks=callbacks,
            )

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate` (see `test_step`), one batch per compiled call."""
        with self._one_step_per_call():
            return super().evaluate(*args, **kwargs)

    @contextlib.contextmanager
    def _one_step_per_call(self):
        # `steps_per_execution` fuses training steps; predicting and scoring
        # gain nothing from it, and Keras's loops would report each call as
        # `steps_per_execution` batches (a progress bar of `32/4`).
        fused = self.steps_per_execution
        self.steps_per_execution = 1
        try:
            yield
        finally:
            self.steps_per_execution = fused

    def _check_labels(self, labels, num_images):
        if not self.conditional:
            if labels is not None:
                raise InputError(
                    "labels= is for conditional GANs; this GAN is unconditional."
                )
            return None
        if labels is None:
            return ops.convert_to_numpy(
                networks.default_labels(num_images, self.num_classes)
            )
        labels = np.asarray(labels)
        if labels.ndim == 0:
            labels = np.full(num_images, labels)
        if labels.shape != (num_images,) or not np.issubdtype(labels.dtype, np.integer):
            raise InputError(
                f"labels must be an int or {num_images} ints; received "
                f"{labels.dtype} of shape {labels.shape}."
            )
        if labels.min() < 0 or labels.max() >= self.num_classes:
            raise InputError(
                f"labels must be in [0, {self.num_classes - 1}]; received values "
                f"in [{labels.min()}, {labels.max()}]."
            )
        return labels.astype(np.int32)

    # -- Saving. -------------------------------------------------------------

    def save_own_variables(self, store):
        # Keras saves a layer's seed generators with neither `.keras` files nor
        # weights files; saving the state here makes a resumed run draw the
        # latents the uninterrupted run would have drawn. Stored as int64 on
        # every backend, so a file moves between backends.
        super().save_own_variables(store)
        state = ops.convert_to_numpy(self.seed_generator.state.value)
        if state.dtype != np.int64:  # int32 (PyTorch), uint32 (JAX): unsigned
            state = state.astype(np.int64) % 2**32
        store[_SEED_STATE] = state

    def load_own_variables(self, store):
        # Keras's H5 store supports `.keys()` but not `in`.
        keys = list(store.keys())  # noqa: SIM118
        if _SEED_STATE in keys:
            self.seed_generator.state.assign(
                _seed_state(store[_SEED_STATE], self.seed_generator.state.dtype)
            )
        super().load_own_variables(
            {key: store[key] for key in keys if key != _SEED_STATE}
        )

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.saving.serialize_keras_object(self.dtype_policy),
        }
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(
                    self.discriminator
                ),
                "latent_dim": self.latent_dim,
                "seed": self.seed,
                "num_classes": self.num_classes,
                "ema_decay": self.ema_decay,
            }
        )
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key in ("generator", "discriminator"):
            # Weight paths start with the role, as `keras_gan.networks` builds
            # them, whatever the file's networks were built under.
            with keras.name_scope(key):
                config[key] = keras.saving.deserialize_keras_object(
                    config[key], custom_objects=custom_objects
                )
        return cls(**config)


class _GANMetrics(MetricsList):
    # The trackers' results, as `fit` logs them.
    def result(self):
        return {
            metric.name: metric.result()
            for metric in self.metrics
            if not isinstance(metric, _Direction)
        }


class _Direction(keras.metrics.Metric):
    """A metric that a callback logs (`keras_gan.callbacks.Evaluate`), listed in
    `GAN.metrics` for its direction only: Keras's monitoring callbacks look a
    monitored name up there to know whether lower or higher is better. It
    holds no state and is never logged."""

    def __init__(self, name, direction):
        super().__init__(name=name)
        self._direction = direction

    def update_state(self, *args, **kwargs):
        pass  # the callback computes the value itself

    def result(self):
        return 0.0

    def reset_state(self):
        pass


# Shared by every GAN (they hold nothing), and not attributes of one: a model's
# attributes are saved with it.
_EVALUATION_DIRECTIONS = [
    _Direction(name, direction) for name, direction in DIRECTIONS.items()
]


class PlayerOptimizers:
    """`model.optimizer` of a compiled GAN: both players' optimizers as one.

    Keras reads `model.optimizer` in three places, and this view answers each
    as Keras's own `MultiOptimizer` convention does:
    - `LearningRateScheduler`, `ReduceLROnPlateau` and `TensorBoard` act on
      each of `optimizers` (the discriminator's, then the generator's), each
      with its own learning rate: a schedule `fn(epoch, lr)` maps each
      player's rate, so a multiplicative schedule keeps their ratio (TTUR).
    - `TensorBoard` steps its scalars by `iterations`: the discriminator's
      updates.
    - Keras's JAX `fit` threads `variables` (the discriminator's first)
      through the compiled step and writes them back.
    """

    built = True

    def __init__(self, d_optimizer, g_optimizer):
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.name = "player_optimizers"

    @property
    def optimizers(self):
        return [self.d_optimizer, self.g_optimizer]

    @property
    def iterations(self):
        return self.d_optimizer.iterations

    @property
    def variables(self):
        return list(self.d_optimizer.variables) + list(self.g_optimizer.variables)

    def build(self, variables):  # both players' optimizers are built in compile()
        pass


def _check_float_images(dtype):
    # Integer pixels (uint8 in [0, 255]) would train the wrong range silently.
    dtype = keras.backend.standardize_dtype(dtype)
    if not dtype.startswith(("float", "bfloat")):
        raise InputError(
            f"The dataset yields {dtype} images; expected floats in [-1, 1] "
            f"(keras_gan.data.dataset_from_arrays converts uint8 images, or "
            f"use images / 127.5 - 1)."
        )


def _no_trainer(model):
    return TypeError(
        f"{type(model).__name__} has no backend trainer to train with; use "
        f"keras_gan.GAN, which adds the trainer of keras.config.backend()."
    )


def _seed_state(saved, dtype):
    # Seed states are int64 (TensorFlow), uint32 (JAX) or int32 (PyTorch);
    # the noise reads their low 32 bits, so a state moves between backends.
    state = np.asarray(saved).astype(np.int64)
    name = str(dtype).replace("torch.", "")
    if name == "int64":
        return state
    words = (state % 2**32).astype(np.uint32)
    return words if name == "uint32" else words.view(np.int32)


def _sum(values):
    return ops.sum(ops.stack([precision.widen(v) for v in values])) if values else 0.0


def _default_optimizer():
    # Radford et al. 2015 (DCGAN), arXiv:1511.06434, sec. 4: the usual GAN Adam.
    return keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)


def _get_optimizer(identifier, argument):
    if isinstance(identifier, str) and identifier == "auto":
        return _default_optimizer()
    try:
        return keras.optimizers.get(identifier)
    except ValueError as error:
        raise InputError(
            f"{argument} must be 'auto', an optimizer name or a "
            f"keras.optimizers.Optimizer; received {identifier!r}."
        ) from error


def _non_negative(value, argument):
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (np.isfinite(number) and number >= 0.0):
        raise InputError(
            f"{argument} must be a finite number >= 0 (0 turns it off); "
            f"received {value!r}."
        )
    return number


def _at_least_one(value, argument):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{argument} must be an integer >= 1; received {value!r}.")
    return int(value)


def _uses_float16(model):
    return any(layer.dtype_policy.compute_dtype == "float16" for layer in model.layers)


def _loss_scaled(optimizer):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def _loss_scale(optimizer, dtype):
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return ops.cast(optimizer.dynamic_scale, dtype)
    return ops.ones((), dtype)
