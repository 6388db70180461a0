"""Writing outputs atomically: readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from .errors import OutputPathError

__all__ = ["atomic_path", "atomic_write", "check_output_file"]


def check_output_file(target: str | os.PathLike) -> Path:
    """Refuse an output *file* name that cannot be one, before any work is done.

    An existing directory (``outfile='results'`` where ``results/`` exists) or a
    parent that is a file raises :class:`~almatools.errors.OutputPathError`
    naming the path, instead of an ``IsADirectoryError`` about a temporary name
    after the work is done.
    """
    target = Path(target)
    if target.is_dir():
        raise OutputPathError(target, "is an existing directory, not a file name; name a file (inside it or "
                              "elsewhere)")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputPathError(target, f"cannot be created: {parent} is a file, not a directory")
            break
    return target


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike):
    """Yield a temporary path next to *target*; on success it replaces *target*, on error it is removed.

    >>> with atomic_path("out.csv") as tmp:      # doctest: +SKIP
    ...     table.write(tmp, format="ascii.csv")
    """
    target = check_output_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # keep the suffix: writers such as matplotlib and astropy choose the format by it
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")
    try:
        yield str(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
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
