"""Errors that reach the user as one clear line (no traceback).

Any exception class with ``is_user_error = True`` is printed by the CLI as one
line and exits with status 2; lower packages (``data``) define their own such
classes without importing ``segment``.
"""


class UserError(Exception):
    """Bad input: a missing file, a wrong option, a dataset that fails validation.

    The message must name the file or field and say what to do.
    """

    is_user_error = True
