"""The ``segment`` subcommands that ``segment`` itself owns: one module per subcommand.

Each module has ``add_arguments(parser)`` and ``run(args) -> int``, parses options, calls
library functions and prints; no library module imports this package. ``segment.cli``
names every subcommand module as a string and imports only the one being run. The
subcommands of the packages above ``segment`` (``train``, ``serve``, ``data``) keep
their command modules in those packages, since ``segment`` may not import them.
"""
