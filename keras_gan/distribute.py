"""Data-parallel training on each backend's own distribution engine: on the
devices of one host, `tf.distribute.MirroredStrategy` on TensorFlow and
`keras.distribution.DataParallel` on JAX; over several processes or hosts
("multi-worker"), `tf.distribute.MultiWorkerMirroredStrategy` from `TF_CONFIG`
on TensorFlow and `keras.distribution.initialize` (a coordinator address) with
`DataParallel` over every process's devices on JAX.

Either way a step on a global batch of B images over R devices equals a step
of one device on the same B images, to float rounding (tests/test_distributed.py):
the losses and penalties are means over the whole batch, batch normalization
uses the whole batch's statistics, and each device draws its own slice of the
whole batch's noise. So the weights, checkpoints and `.keras` files do not
depend on the distribution, and a run may change it when resumed.

Example:

>>> distribution = Distribution.for_name("mirrored")  # doctest: +SKIP
>>> with distribution.scope():  # doctest: +SKIP
...     gan = keras_gan.GAN(generator, discriminator)
...     gan.compile()
...     gan.fit(dataset)  # batches of the global batch size
"""

import contextlib
import json
import os
import re
import sys
import threading
import time

import keras
import numpy as np

from keras_gan.choices import DISTRIBUTE
from keras_gan.errors import InputError
from keras_gan.errors import WorkerFailed

# The backends each name runs on.
_BACKENDS = {
    "mirrored": ("tensorflow",),
    "data-parallel": ("jax",),
    "multi-worker": ("tensorflow", "jax"),
}

# How long a worker waits for all the others to join the cluster.
JOIN_SECONDS = 300

# How long a JAX process may go silent before the others give it up (JAX's
# default is 100 s; TensorFlow's coordination service gives up after 10 s).
# A killed process is noticed sooner, by the collective it leaves (~5 s).
HEARTBEAT_SECONDS = 60

# How long a worker that learns of another's failure lets its own main
# thread end by itself before it exits with that failure's message.
FAILURE_GRACE_SECONDS = 10

# Keys of the coordination service's store: a failed worker's message, and
# each other worker's receipt of it.
_FAILURE_KEY = "keras_gan/failure"
_SEEN_KEY = "keras_gan/seen/{}"


class Distribution:
    """A named distribution over this host's devices.

    Args:
        name: `"mirrored"` (TensorFlow) or `"data-parallel"` (JAX), or `None`
            for one device.
        engine: the backend's object (`tf.distribute.MirroredStrategy`,
            `keras.distribution.DataParallel`), or `None`.
        replicas: how many devices share each batch.
    """

    def __init__(self, name, engine, replicas, workers=1, worker=0, store=None):
        self.name = name
        self.engine = engine
        self.replicas = replicas
        self.workers = workers
        self.worker = worker
        self._store = store
        self._failed = False
        self._sum = None  # TensorFlow's compiled all-reduce of `gather`

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run's files: worker 0."""
        return self.worker == 0

    @classmethod
    def for_name(
        cls,
        name: str | None,
        coordinator: str | None = None,
        num_processes: int | None = None,
        process_id: int | None = None,
        join_seconds: float = JOIN_SECONDS,
    ) -> "Distribution":
        """The distribution `name` over all local accelerators, else over the
        host's CPU devices (more than one only after `split_cpu`).

        `"multi-worker"` joins the cluster first, waiting at most
        `join_seconds` for every worker: on TensorFlow the one `TF_CONFIG`
        describes; on JAX the one of `coordinator` (`host:port` of process
        0), `num_processes` and `process_id`, each defaulting to the
        `KERAS_DISTRIBUTION_*` variables of `keras.distribution.initialize`.
        """
        backend = keras.config.backend()
        cluster = {
            "--coordinator": coordinator,
            "--num-processes": num_processes,
            "--process-id": process_id,
        }
        given = [flag for flag, value in cluster.items() if value is not None]
        if given and (name != "multi-worker" or backend != "jax"):
            raise InputError(
                f"{', '.join(given)} describe a JAX multi-worker cluster; expected "
                f"them with --distribute multi-worker on the jax backend (received "
                f"--distribute {name} on {backend}; TensorFlow reads TF_CONFIG)."
            )
        if name is None:
            return cls(None, None, 1)
        if name not in DISTRIBUTE:
            raise InputError(
                f"Unknown distribution {name!r}; expected one of: "
                f"{', '.join(DISTRIBUTE)}."
            )
        if backend not in _BACKENDS[name]:
            fitting = [n for n, b in _BACKENDS.items() if backend in b]
            expected = ", ".join(fitting) if fitting else "none (one device)"
            raise InputError(
                f"--distribute {name} runs on the {' or '.join(_BACKENDS[name])} "
                f"backend; on {backend} expected: {expected}."
            )
        if name == "multi-worker" and backend == "tensorflow":
            return cls._tensorflow_workers(join_seconds)
        if name == "multi-worker":
            return cls._jax_processes(
                coordinator, num_processes, process_id, join_seconds
            )
        if name == "mirrored":
            import tensorflow as tf

            devices = tf.config.list_logical_devices("GPU") or (
                tf.config.list_logical_devices("CPU")
            )
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
            return cls(name, strategy, strategy.num_replicas_in_sync)
        devices = keras.distribution.list_devices()
        return cls(name, keras.distribution.DataParallel(devices=devices), len(devices))

    @classmethod
    def _tensorflow_workers(cls, join_seconds):
        import tensorflow as tf
        from tensorflow.python.eager import context

        workers, worker = _tf_config()
        with _deadline(
            join_seconds,
            f"worker {worker} waited {join_seconds:.0f} s for the {workers} workers "
            f"of TF_CONFIG to join; expected every worker started with the same "
            f"TF_CONFIG cluster (and its own task index).",
        ):
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        ctx = context.context()
        store = _Store(
            ctx.set_config_key_value,
            lambda key, seconds: ctx.get_config_key_value(key, int(seconds * 1000)),
        )
        return cls(
            "multi-worker",
            strategy,
            strategy.num_replicas_in_sync,
            workers=workers,
            worker=worker,
            store=store,
        )

    @classmethod
    def _jax_processes(cls, coordinator, num_processes, process_id, join_seconds):
        import jax

        environ = os.environ
        coordinator = coordinator or environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES")
        if num_processes is None and "KERAS_DISTRIBUTION_NUM_PROCESSES" in environ:
            num_processes = _int_variable("KERAS_DISTRIBUTION_NUM_PROCESSES")
        if process_id is None and "KERAS_DISTRIBUTION_PROCESS_ID" in environ:
            process_id = _int_variable("KERAS_DISTRIBUTION_PROCESS_ID")
        if not coordinator or num_processes is None or process_id is None:
            raise InputError(
                "--distribute multi-worker on JAX needs --coordinator HOST:PORT "
                "(process 0's address), --num-processes N and --process-id I "
                "(or KERAS_DISTRIBUTION_JOB_ADDRESSES, _NUM_PROCESSES, "
                "_PROCESS_ID); received "
                f"coordinator={coordinator!r}, num_processes={num_processes}, "
                f"process_id={process_id}."
            )
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise InputError(
                f"--process-id {process_id} is not one of the {num_processes} "
                f"processes; expected 0 to {num_processes - 1}."
            )
        if not jax.distributed.is_initialized():
            # Collectives between CPU processes (tests, CPU-only clusters).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            try:
                jax.distributed.initialize(
                    coordinator_address=coordinator.split(",")[0],
                    num_processes=num_processes,
                    process_id=process_id,
                    initialization_timeout=max(int(join_seconds), 1),
                    heartbeat_timeout_seconds=HEARTBEAT_SECONDS,
                )
            except Exception as error:  # the cluster did not form
                raise InputError(
                    f"process {process_id} could not join the {num_processes} "
                    f"processes of coordinator {coordinator} within "
                    f"{join_seconds:.0f} s ({type(error).__name__}: "
                    f"{_first_line(error)}); expected every process started with "
                    f"the same --coordinator and --num-processes."
                ) from None
        from jax._src import distributed

        client = distributed.global_state.client
        store = _Store(
            client.key_value_set,
            lambda key, seconds: client.blocking_key_value_get(
                key, int(seconds * 1000)
            ),
        )
        devices = keras.distribution.list_devices()
        return cls(
            "multi-worker",
            # `shard` slices the batches (Keras's `rebatch` would lose the
            # pipeline's length).
            keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False),
            len(devices),
            workers=jax.process_count(),
            worker=jax.process_index(),
            store=store,
        )

    def shard(self, dataset):
        """`dataset` (a `tf.data` pipeline of global batches, the same on
        every worker) as this worker trains it: its part of every batch.

        Every worker reads the same global order of whole batches and keeps
        its replicas' rows of each (TensorFlow: data sharding, which `fit`
        applies to a batched pipeline; JAX: rows `w * B / W` onwards of
        worker `w`), so no batch is trained twice or skipped and each step's
        global batch is one device's. On one worker, `dataset` itself.
        """
        if self.workers == 1:
            return dataset
        import tensorflow as tf

        if keras.config.backend() == "tensorflow":
            options = tf.data.Options()
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.DATA
            )
            return dataset.with_options(options)

        def part(*batch):
            rows = tf.shape(tf.nest.flatten(batch)[0])[0] // self.workers
            first = self.worker * rows
            part = tf.nest.map_structure(lambda x: x[first : first + rows], batch)
            return part if len(part) > 1 else part[0]

        return dataset.map(part)

    def gather(self, values) -> np.ndarray:
        """Every worker's `values` (the same number of ints on each), as an
        array of one row per worker, on every worker."""
        values = np.asarray(values, dtype=np.int64).reshape(-1)
        if self.workers == 1:
            return values[None]
        if keras.config.backend() == "jax":
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(values))
        rows = np.zeros((self.workers, values.size), np.int64)
        rows[self.worker] = values
        if self._sum is None:
            self._sum = _tensorflow_sum(self.engine)
        local = self.engine.num_replicas_in_sync // self.workers
        return self._sum(rows).numpy() // local  # each local replica added it

    def any_worker(self, flags) -> list[bool]:
        """Each of `flags`, true when it is true on any worker: decisions
        every worker takes together (a checkpoint reads the replicated state,
        which on several workers is a collective of all of them)."""
        return [bool(flag) for flag in self.gather(flags).any(axis=0)]

    @contextlib.contextmanager
    def sharing_failures(self, on_failure=None):
        """Within it, an exception on any worker stops every worker with the
        same message: the failing worker raises it as `WorkerFailed` and
        posts it to the cluster's store; the others receive it within a
        second and, unless their main thread ends by itself within
        `FAILURE_GRACE_SECONDS` (it is blocked in a collective the failed
        worker will never join), call `on_failure(message, exit_code)`
        (default: print `Error: <message>` and exit with the code).
        A worker lost without a word (killed) surfaces as the backend's error
        on the others, raised as `WorkerFailed`.
        """
        if self.workers == 1:
            yield
            return
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch, args=(done, on_failure or _exit), daemon=True
        )
        watcher.start()
        try:
            yield
        except BaseException as error:
            raise self._shared(error) from None
        finally:
            done.set()
            # Not left inside a blocking read of the store when the process
            # exits: the backend's shutdown would abort it ("terminate called
            # after throwing an instance of ..."). A read lasts at most 1 s.
            watcher.join(timeout=5)

    def _shared(self, error):
        from keras_gan import errors

        if isinstance(error, WorkerFailed):
            message, code = str(error), error.exit_code
        elif isinstance(error, errors.ONE_LINE_ERRORS):
            # The line the command line prints for it, on every worker.
            message, code = errors.one_line(error)
        else:
            # A collective aborted: the backend noticed a worker gone. Its
            # message, if it posted one before going, names the cause.
            posted = self._posted(timeout=5.0)
            if posted is not None:
                return WorkerFailed(*posted)
            return WorkerFailed(
                f"worker {self.worker} lost contact with the other workers "
                f"({type(error).__name__}: {_first_line(error)}); expected all "
                f"{self.workers} workers running: restart every worker with "
                f"--resume to continue from the last checkpoint."
            )
        if not message.startswith("worker "):
            message = f"worker {self.worker}: {message}"
        self._failed = True
        with contextlib.suppress(Exception):  # another worker posted first
            self._store.set(_FAILURE_KEY, f"{code}\n{message}")
        if self.is_chief:
            # The store lives in the chief's process: wait (boundedly) until
            # the others have read the message before it goes.
            deadline = time.monotonic() + 10.0
            for other in range(1, self.workers):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                with contextlib.suppress(Exception):
                    self._store.get(_SEEN_KEY.format(other), remaining)
        return WorkerFailed(message, code)

    def _posted(self, timeout):
        try:
            return _failure(self._store.get(_FAILURE_KEY, max(timeout, 0.001)))
        except Exception:
            return None

    def _watch(self, done, on_failure):
        errors_in_a_row = 0
        while not done.is_set():
            began = time.monotonic()
            try:
                value = self._store.get(_FAILURE_KEY, 1.0)
            except Exception:
                # A timeout (nothing posted) takes the second; a store that
                # answers at once with an error is gone: the main thread
                # meets the backend's error.
                errors_in_a_row = (
                    0 if time.monotonic() - began > 0.5 else (errors_in_a_row + 1)
                )
                if errors_in_a_row >= 3:
                    return
                if errors_in_a_row:
                    time.sleep(0.5)
                continue
            if self._failed or done.is_set():
                return
            with contextlib.suppress(Exception):
                self._store.set(_SEEN_KEY.format(self.worker), "1")
            # A main thread that is writing a file, or stopping at the same
            # agreed step (a signal), finishes; one blocked in a collective
            # that the failed worker will never join is left.
            if done.wait(FAILURE_GRACE_SECONDS):
                return
            on_failure(*_failure(value))
            return

    def scope(self):
        """Where the GAN is built, compiled and trained."""
        if self.engine is None:
            return contextlib.nullcontext()
        return self.engine.scope()

    def per_replica_batch(self, batch_size: int) -> int:
        """Each device's share of a global batch: an even one, so that every
        replica's step has the same shape (and XLA one program)."""
        if batch_size % self.replicas:
            raise InputError(
                f"--batch-size {batch_size} does not split over {self.replicas} "
                f"replicas; expected a multiple of {self.replicas}."
            )
        return batch_size // self.replicas

    def describe(self, batch_size: int) -> str:
        workers = ""
        if self.workers > 1:
            workers = (
                f"; worker {self.worker} of {self.workers} "
                f"({'chief' if self.is_chief else 'writes nothing'}) trains "
                f"{batch_size // self.workers} per step"
            )
        return (
            f"global batch {batch_size} = {self.replicas} replicas x "
            f"{self.per_replica_batch(batch_size)} per replica ({self.name}"
            f"{workers})"
        )


def local_cluster(count: int, backend: str | None = None) -> list[dict]:
    """The environment variables of each of `count` workers of a cluster on
    this host (127.0.0.1, free ports), for `--distribute multi-worker` on
    one machine (trying it, tests, benchmarks): `TF_CONFIG` on TensorFlow,
    the `KERAS_DISTRIBUTION_*` variables on JAX."""
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    addresses = [f"127.0.0.1:{port}" for port in ports]
    if (backend or keras.config.backend()) == "tensorflow":
        return [
            {
                "TF_CONFIG": json.dumps(
                    {
                        "cluster": {"worker": addresses},
                        "task": {"type": "worker", "index": index},
                    }
                )
            }
            for index in range(count)
        ]
    return [
        {
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": addresses[0],
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(count),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index),
        }
        for index in range(count)
    ]


class _Store:
    """The key-value store of the cluster's coordination service (hosted by
    the chief): `set(key, value)`, `get(key, seconds)` (raises when nothing
    is there in time)."""

    def __init__(self, set_, get):
        self.set = set_
        self.get = get


def _tensorflow_sum(strategy):
    import tensorflow as tf

    @tf.function
    def total(rows):
        return strategy.reduce(
            tf.distribute.ReduceOp.SUM,
            strategy.run(tf.identity, args=(rows,)),
            axis=None,
        )

    return total


def _failure(posted) -> tuple[str, int]:
    """(message, exit code) of a failure posted as `"<code>\n<message>"`."""
    code, _, message = str(posted).partition("\n")
    return message, int(code)


def _exit(message, code):
    # Called from the watcher thread while the main thread may be blocked in
    # a collective that will never complete.
    print(f"Error: {message}", file=sys.stderr, flush=True)
    os._exit(code)


def _first_line(error) -> str:
    # TensorFlow's messages start with the op's name in braces.
    line = (str(error).strip().splitlines() or [""])[0]
    line = re.sub(r"\{\{[^}]*\}\}\s*", "", line)
    # JAX repeats its dispatch error once per level.
    return re.sub(r"(.{8,}?: )\1+", r"\1", line)[:300]


def _int_variable(name) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise InputError(
            f"{name}={os.environ[name]!r} is not an integer; expected one."
        ) from None


def _tf_config() -> tuple[int, int]:
    """(workers, this worker's index) of `TF_CONFIG`; the chief (a "chief"
    task, else worker 0) is worker 0."""
    example = (
        'expected e.g. TF_CONFIG=\'{"cluster": {"worker": ["host0:port", '
        '"host1:port"]}, "task": {"type": "worker", "index": 0}}\' on host 0'
    )
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise InputError(
            f"--distribute multi-worker on TensorFlow reads its cluster from "
            f"TF_CONFIG, which is not set; {example}."
        )
    try:
        config = json.loads(text)
        cluster = config["cluster"]
        chiefs = list(cluster.get("chief", []))
        workers = chiefs + list(cluster["worker"])
        kind, index = config["task"]["type"], int(config["task"]["index"])
        if kind not in ("chief", "worker"):
            raise ValueError(f"task type {kind!r} is not chief or worker")
        worker = index if kind == "chief" else index + len(chiefs)
        if not 0 <= worker < len(workers) or len(chiefs) > 1:
            raise ValueError(f"task {kind} {index} is not in the cluster")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(
            f"TF_CONFIG does not describe this worker's cluster ({error}); {example}."
        ) from None
    return len(workers), worker


@contextlib.contextmanager
def _deadline(seconds, message):
    """Exits the process with `Error: <message>` if the block is not done
    within `seconds`: joining a cluster blocks in the backend, where no
    exception reaches it."""
    timer = threading.Timer(seconds, _exit, args=(message, 1))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def split_cpu(count: int) -> None:
    """Presents the host's CPU as `count` devices, for data-parallel training
    (and its tests) on a machine without accelerators. No faster: the devices
    share the same cores. Must run before the backend first uses a device.

    TensorFlow: `count` logical CPU devices; JAX: `XLA_FLAGS`
    `--xla_force_host_platform_device_count`.
    """
    if count < 1:
        raise InputError(f"--cpu-devices must be at least 1; received {count}.")
    if keras.config.backend() == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={count}".strip()
        )
        import jax

        found = len(jax.devices("cpu"))
    else:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        # Too late ("Virtual devices cannot be modified after being
        # initialized") shows as the count below.
        with contextlib.suppress(RuntimeError):
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        found = len(tf.config.list_logical_devices("CPU"))
    if found != count:
        raise InputError(
            f"--cpu-devices {count}: the {keras.config.backend()} backend already "
            f"started with {found} CPU device(s); expected the split before it "
            f"first uses a device (a new process)."
        )
