"""Writing outputs atomically: readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from .errors import AlmatoolsError

__all__ = ["atomic_path", "atomic_write", "NotRegularFileError", "open_regular", "read_regular"]


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path next to *target*; on success it replaces *target*, on error it is removed.

    >>> with atomic_path("out.csv") as tmp:      # doctest: +SKIP
    ...     table.write(tmp, format="ascii.csv")
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: writers such as matplotlib and astropy choose the format by it
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        yield str(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(target: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> None:
    """Write *data* (text exactly as given, no newline translation, or bytes) to *target* atomically."""
    with atomic_path(target) as tmp:
        if isinstance(data, str):
            with open(tmp, "w", encoding=encoding, newline="") as fh:
                fh.write(data)
        else:
            with open(tmp, "wb") as fh:
                fh.write(data)


class NotRegularFileError(AlmatoolsError):
    """A path that should be a file is a FIFO, device, socket or directory; it is never opened.

    Opening a FIFO for reading blocks until someone writes to it, and a device
    can stream without end, so text readers refuse them before reading a byte.
    """

    def __init__(self, path, mode: int):
        self.path, self.kind = str(path), file_kind(mode)
        super().__init__(f"{path} is {self.kind}, not a regular file: not opened (reading it could block "
                         "or never end)")


def file_kind(mode: int) -> str:
    """``a FIFO (named pipe)``, ``a character device`` ... for an ``st_mode``."""
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return kind
    return "not a regular file"


def open_regular(path: str | os.PathLike):
    """Open *path* for binary reading only if it is a regular file (symbolic links to one are fine).

    The file type is checked before opening (so a FIFO is never opened) and
    again on the open descriptor (so a swap in between is caught); anything
    else raises :class:`NotRegularFileError`.
    """
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(path, mode)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(path, mode)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> tuple[bytes, bool]:
    """At most *limit* bytes of the regular file *path*, and whether the file holds more."""
    chunks, size = [], 0
    with open_regular(path) as fh:
        while size <= limit:  # in pieces: a huge limit never becomes one huge allocation
            chunk = fh.read(min(limit + 1 - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    data = b"".join(chunks)
    return data[:limit], len(data) > limit
