"""Atomic file writes, the one writer every package uses.

A file is written to a temporary sibling ``.<name>.palliasim-<pid>-<random>.tmp``, flushed and
fsync'ed, then renamed over the target (``os.replace``): readers see the old file or the new one,
never a mix, and a killed process leaves at most a temporary file that :func:`is_our_tmp`
recognises (a user's own ``.notes.tmp`` is never taken for one). Files get the mode the user's
umask gives (0644 under the usual 022).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: marker in the names of our temporary files (nothing else is ever cleaned up)
TMP_MARK = ".palliasim-"
TMP_SUFFIX = ".tmp"
_TMP_RE = re.compile(r"^\..+\.palliasim-\d+-[0-9a-f]{8}\.tmp$")


def tmp_path(path: Path) -> Path:
    """The temporary sibling used while writing ``path``."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{os.urandom(4).hex()}{TMP_SUFFIX}")


def is_our_tmp(path: Path | str) -> bool:
    """True for a temporary file written by :func:`atomic_write` (and only for those)."""
    return bool(_TMP_RE.match(Path(path).name))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path | str, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` atomically: ``write(fileobj)`` into a temporary sibling (binary mode),
    flush + fsync, then ``os.replace``; the directory is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path | str, text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))
