"""The one exception type for bad input from users."""


class InputError(ValueError):
    """Bad input from a user: data, arguments or files.

    Its message is one line that names the problem, what was received and what
    was expected, so the command line can print it without a traceback.
    """
