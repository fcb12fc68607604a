"""The one error type of the data package."""


class DatasetError(ValueError):
    """A dataset on disk is missing, incomplete or malformed.

    The CLI prints any exception with ``is_user_error = True`` as one line
    (exit status 2, no traceback). Messages name the file and say what to do.
    ``data`` may not import ``segment``, hence its own class.
    """

    is_user_error = True
