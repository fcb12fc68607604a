"""Atomic file writes: a reader, or a crash, sees the old file or the new one, never half of one.

Every file the project writes for others to read (checkpoints, PNGs, exported
models, JSON records, synthetic datasets) goes through :func:`write_atomic` or
:func:`write_path_atomic`:

1. the content goes to a temporary name in the target's own folder (so the
   rename below stays on one filesystem and is atomic);
2. the file gets the mode a plain ``open()`` would give it (``0o666`` less the
   umask; ``mkstemp`` alone would leave it ``0o600``);
3. it is flushed and fsynced, then renamed over the target;
4. the folder is fsynced, so that after a power loss the rename is not undone;
5. on any error (a full disk, an exception in the writer, Ctrl-C) the temporary
   file is removed and the old target, if any, is left as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any, BinaryIO, Callable

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows.

    ``os.umask`` can only be read by setting it, which for a moment would let
    another thread create files with umask 0; Linux exposes it in
    ``/proc/self/status`` instead.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` less the umask."""
    return 0o666 & ~current_umask()


def fsync_dir(folder: str | os.PathLike) -> None:
    """Persist a folder's entries (a rename into it). Best effort: some systems cannot open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Call ``write(f)`` on a binary file object and put the result at ``path`` atomically; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, default_file_mode())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomic(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """``obj`` as JSON; it is serialized before the file is opened, so a bad object leaves nothing behind."""
    return write_text(path, json.dumps(obj, indent=indent))


def torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    import torch

    return write_atomic(path, lambda f: torch.save(obj, f))


def write_path_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """For writers that want a file name, not a file object (ONNX and OpenVINO exporters).

    ``write(tmp_path)`` creates ``tmp_path`` as a file or as a folder (OpenVINO's
    xml + bin); its files are fsynced and it is renamed to ``path``. If ``path``
    is a folder that another process finished first, theirs is kept (it holds
    the same export). Nothing is left at ``path`` or beside it on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        tmp_path = Path(tmp_dir) / path.name
        write(tmp_path)
        for f in ([tmp_path] if tmp_path.is_file() else sorted(p for p in tmp_path.rglob("*") if p.is_file())):
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        try:
            os.replace(tmp_path, path)
        except OSError:
            if not (tmp_path.is_dir() and path.is_dir()):
                raise
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    fsync_dir(path.parent)
    return path
