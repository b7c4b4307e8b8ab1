"""keras_gan's exceptions, each with the exit code the command line gives it.

Every message is one line that names the problem, what was received and what
was expected, so the command line prints it without a traceback.
"""


class InputError(ValueError):
    """Bad input from a user: data, arguments or files."""

    exit_code = 1


class NoCheckpointError(InputError):
    """A run saved checkpoints and none of them is usable now."""

    exit_code = 3


class UnsafeInputError(InputError):
    """Refused for safety: a path leading outside its output folder, or a
    file that would run code when loaded."""

    exit_code = 6


class TrainingDivergedError(RuntimeError):
    """Training produced NaN or infinite losses or weights."""

    exit_code = 4


class RunLockedError(RuntimeError):
    """Another process is writing the run."""

    exit_code = 7


class Preempted(RuntimeError):
    """Training stopped on a signal after checkpointing the current step."""

    exit_code = 75  # EX_TEMPFAIL: run again (with --resume)


# Exit code of an error while writing outputs (disk full, file too large,
# no permission): printed as one line naming the path.
IO_ERROR_EXIT_CODE = 5

# The failures the command line reports as one line (`one_line`).
ONE_LINE_ERRORS = (
    InputError,
    TrainingDivergedError,
    RunLockedError,
    Preempted,
    OSError,
    KeyboardInterrupt,
)


def one_line(error) -> tuple[str, int]:
    """The line (after `Error: `) and the exit code of one of
    `ONE_LINE_ERRORS`, as the command line prints them (see README,
    Reliability)."""
    if isinstance(error, KeyboardInterrupt):
        return "Interrupted; the last checkpoint is kept for --resume.", 130
    if isinstance(error, OSError):  # disk full, file too large, no permission
        where = f" {error.filename}" if error.filename else ""
        return (
            f"I/O error{where}: {error.strerror or error}; earlier checkpoints "
            f"and exports are kept (free space, then --resume).",
            IO_ERROR_EXIT_CODE,
        )
    return str(error), error.exit_code


class WorkerFailed(RuntimeError):
    """Another worker of a multi-worker run failed (its message, its exit
    code), or was lost."""

    def __init__(self, message, exit_code=8):
        super().__init__(message)
        self.exit_code = exit_code
