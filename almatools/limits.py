"""Resource bounds checked before work starts: disk space, memory, counts, input file sizes.

Every size a user or a file controls is bounded before the work that depends
on it begins, and a refusal names what asked (a parameter, a file), what it
needs and the bound — :class:`~almatools.errors.ResourceLimitError`::

    from almatools import limits
    limits.check_disk_space(outdir, nbytes, subject=limits.parameter("imsize"))
    limits.check_memory(8 * nchan * nrow, subject=limits.parameter("spw"))
    limits.check_count(ntimes, 100_000, subject=limits.parameter("ntimes"), unit="times")
    text = limits.read_text(path, max_bytes=16 * limits.MiB)     # a regular file, never a FIFO

Text readers open files through :func:`open_regular` / :func:`read_text`, so a
FIFO or a device named like an input file is refused instead of blocking.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from .errors import InputFileError, ResourceLimitError

__all__ = ["KiB", "MiB", "GiB", "format_bytes", "parameter", "check_disk_space", "check_memory", "check_count",
           "available_memory", "file_kind", "open_regular", "read_bytes", "read_text"]

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

#: disk space left free after any output (the system and other programs need some too)
DISK_RESERVE = 256 * MiB


def format_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``: sizes in messages, in binary units."""
    n = float(n)
    for unit, scale in (("TiB", 1 << 40), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"


def parameter(name: str) -> str:
    """How a message names parameter *name* of the running task (``"cl2image: parameter 'imsize'"``)."""
    from .log import current_task
    task = current_task()
    return f"{task}: parameter '{name}'" if task != "almatools" else f"parameter '{name}'"


def _existing_ancestor(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk_space(path, needed_bytes: float, *, subject: str, reserve: int = DISK_RESERVE) -> None:
    """Refuse when writing *needed_bytes* under *path* would leave less than *reserve* free.

    *path* may not exist yet: the free space of its nearest existing parent is used.
    """
    where = _existing_ancestor(Path(path))
    free = shutil.disk_usage(where).free
    if needed_bytes + reserve > free:
        raise ResourceLimitError(subject, f"{format_bytes(needed_bytes)} of disk space in {where}",
                                 f"{format_bytes(max(free - reserve, 0))} "
                                 f"(free space there minus a {format_bytes(reserve)} reserve)")


def available_memory() -> int:
    """Bytes of memory this process can still use: MemAvailable, capped by a cgroup limit."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * KiB
                    break
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 1 << 60:
            avail = min(avail, max(int(limit) - usage, 0))
        break
    return avail


def check_memory(needed_bytes: float, *, subject: str, fraction: float = 0.5) -> None:
    """Refuse work that would hold more than *fraction* of the memory still available."""
    bound = int(available_memory() * fraction)
    if needed_bytes > bound:
        raise ResourceLimitError(subject, f"{format_bytes(needed_bytes)} of memory",
                                 f"{format_bytes(bound)} ({fraction:.0%} of the memory available now)")


def check_count(count: float, maximum: float, *, subject: str, unit: str = "items", hint: str = "") -> None:
    """Refuse a count (times, channels, pixels, files …) above *maximum*."""
    if count > maximum:
        raise ResourceLimitError(subject, f"{count:,} {unit}", f"{maximum:,} {unit}", hint)


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, for messages: ``a regular file``, ``a directory``, ``a FIFO``, ``a device or socket``."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "a device or socket"


def open_regular(path, max_bytes: int | None = None):
    """Open *path* for binary reading only if it is a regular file (at most *max_bytes* long).

    The type is checked before opening, so a FIFO or a device is never opened,
    and again on the descriptor (opened non-blocking, so a FIFO swapped in
    meanwhile cannot hang the caller); anything else is refused with
    :class:`~almatools.errors.InputFileError`.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InputFileError(path, f"cannot be opened ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise InputFileError(path, "is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise InputFileError(path, f"is {file_kind(mode)}, not a regular file; refused")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except IsADirectoryError:
        raise InputFileError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise InputFileError(path, f"cannot be opened ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(path, f"is {file_kind(info.st_mode)}, not a regular file; refused")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ResourceLimitError(f"file {os.fspath(path)!r}", f"{format_bytes(info.st_size)} read into memory",
                                     format_bytes(max_bytes))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, max_bytes: int) -> bytes:
    """The content of regular file *path*, refusing more than *max_bytes* (checked before and while reading)."""
    with open_regular(path, max_bytes) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:  # the file grew after it was checked
        raise ResourceLimitError(f"file {os.fspath(path)!r}", f"more than {format_bytes(max_bytes)} read into "
                                 "memory (it grew while being read)", format_bytes(max_bytes))
    return data


def read_text(path, max_bytes: int, encoding: str = "utf-8") -> str:
    """:func:`read_bytes` decoded; undecodable bytes are an :class:`InputFileError` naming the line."""
    data = read_bytes(path, max_bytes)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFileError(path, f"is not {encoding} text (byte 0x{data[exc.start]:02x} at offset "
                             f"{exc.start})", line) from None
