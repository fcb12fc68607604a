"""Errors that reach the user as one clear line (no traceback)."""


class UserError(Exception):
    """Bad input: a missing file, a wrong option, a dataset that fails validation.

    The message must name the file or field and say what to do.
    """
