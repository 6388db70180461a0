"""Writing outputs atomically: readers see the old file or the complete new one, never half of it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["atomic_path", "atomic_write"]


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
