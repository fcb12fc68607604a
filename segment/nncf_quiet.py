"""Keep NNCF's chatter out of the commands' output while it quantizes.

Each NNCF quantization logs a dozen info lines (the layers it keeps in float)
and draws two progress bars, and importing it prints a CUDA notice from
torch's extension builder. The demo quantizes up to a dozen models in its
background preparation, so these buried its own lines. While a thread is
inside :func:`quiet_nncf`, NNCF's info log and that thread's stdout (where the
progress bars go) are dropped; NNCF's warnings and errors still reach stderr,
never stdout, where ``segment bench --json`` and ``segment export`` print their
results. Other threads' output is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading

# torch logs "No CUDA runtime is found" from here when NNCF imports its torch backend.
_NOISY_LOGGERS = ("nncf", "torch.utils.cpp_extension")

_lock = threading.Lock()
_quiet_threads: set[int] = set()
_saved: dict = {}


class _DropForQuietThreads:
    """Stands in for ``sys.stdout``: writes from a quiet thread vanish, the rest go to ``stream``."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if threading.get_ident() in _quiet_threads:
            return len(text)
        return self._stream.write(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding...: the real stream's
        return getattr(self._stream, name)


@contextlib.contextmanager
def quiet_nncf():
    """Drop NNCF's info log and this thread's stdout until the block ends (nests across threads)."""
    me = threading.get_ident()
    with _lock:
        if not _quiet_threads:
            _silence()
        _quiet_threads.add(me)
    try:
        yield
    finally:
        with _lock:
            _quiet_threads.discard(me)
            if not _quiet_threads:
                _restore()


def _silence() -> None:
    from nncf.common.logging import nncf_logger

    _saved["levels"] = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    logging.getLogger("nncf").setLevel(logging.WARNING)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    # NNCF's own handler was given sys.stdout when it was imported: its warnings go to stderr instead.
    handlers = [h for h in nncf_logger.handlers if isinstance(h, logging.StreamHandler)]
    _saved["handlers"] = [(h, h.setStream(sys.stderr)) for h in handlers]
    _saved["stdout"] = sys.stdout
    sys.stdout = _DropForQuietThreads(sys.stdout)


def _restore() -> None:
    for name, level in _saved.pop("levels").items():
        logging.getLogger(name).setLevel(level)
    for handler, stream in _saved.pop("handlers"):
        handler.setStream(stream)
    sys.stdout = _saved.pop("stdout")
