"""Keep NNCF's chatter out of the commands' output while it quantizes.

Each NNCF quantization logs a dozen info lines (the layers it keeps in float)
and draws two progress bars, and importing it prints a CUDA notice from
torch's extension builder. The demo quantizes up to a dozen models in its
background preparation, so these buried its own lines. While any thread is
inside :func:`quiet_nncf`, NNCF's info log and rich's shared console (which
draws NNCF's bars, from a refresh thread of its own on a terminal) are
silenced; NNCF's warnings and errors still reach stderr, never stdout, where
``segment bench --json`` and ``segment export`` print their results. The
project's own output does not go through either.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

# Logger -> the level it is raised to: torch logs "No CUDA runtime is found" from
# torch.utils.cpp_extension when NNCF imports its torch backend.
_QUIET_LEVELS = {"nncf": logging.WARNING, "torch.utils.cpp_extension": logging.ERROR}

_lock = threading.Lock()
_inside = 0  # blocks running now, in any thread: the first one in silences, the last one out restores
_saved: dict = {}


@contextlib.contextmanager
def quiet_nncf():
    """Silence NNCF's info log and progress bars until the block ends (nests across threads)."""
    global _inside
    with _lock:
        if not _inside:
            _silence()
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if not _inside:
                _restore()


def _silence() -> None:
    import rich
    from nncf.common.logging import nncf_logger

    _saved["levels"] = {name: logging.getLogger(name).level for name in _QUIET_LEVELS}
    for name, level in _QUIET_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    # NNCF's own handler was given sys.stdout when it was imported: its warnings go to stderr instead.
    handlers = [h for h in nncf_logger.handlers if isinstance(h, logging.StreamHandler)]
    _saved["handlers"] = [(h, h.setStream(sys.stderr)) for h in handlers]
    console = rich.get_console()  # the console NNCF's progress bars draw on (rich.progress's default)
    _saved["console"] = (console, console.quiet)
    console.quiet = True


def _restore() -> None:
    for name, level in _saved.pop("levels").items():
        logging.getLogger(name).setLevel(level)
    for handler, stream in _saved.pop("handlers"):
        handler.setStream(stream)
    console, quiet = _saved.pop("console")
    console.quiet = quiet
