"""Writing outputs atomically: readers see the old file or the complete new one, never half of it.

Large outputs (images, cubes) are built in *scratch* paths next to their target, named so that a
later run can recognise them: ``.<target name>.<task>-<host>-<pid>.<tag>``.  A run that is killed
cannot remove its scratch, so each task calls :func:`remove_stale_scratch` on the output directory
before it starts: scratch of a process that no longer runs on this host is removed (or, for a
replaced output caught between its two renames, put back).  Scratch therefore never accumulates:
at most one set per running task.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
from pathlib import Path

from .errors import OutputPathError

__all__ = ["atomic_path", "atomic_write", "check_output_file", "scratch_path", "remove_stale_scratch",
           "replace_path", "remove_path"]


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


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def scratch_path(target: str | os.PathLike, task: str, tag: str) -> Path:
    """The scratch path of *target* for this process: ``.<name>.<task>-<host>-<pid>.<tag>`` beside it.

    *tag* says what it holds (``part``: the output being written, ``old``: a replaced output until
    the new one is in place, ``work``: intermediate files).
    """
    target = Path(target)
    return target.with_name(f".{target.name}.{task}-{_host()}-{os.getpid()}.{tag}")


def _scratch_pattern(task: str) -> re.Pattern:
    return re.compile(rf"^\.(?P<name>.+)\.{re.escape(task)}-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)\.(?P<tag>[a-z]+)$")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_path(path: str | os.PathLike) -> None:
    """Remove a file, a symbolic link or a directory tree (never following a link); absent is fine."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale_scratch(directory: str | os.PathLike, task: str, legacy: tuple = ()) -> list[Path]:
    """Clean up after killed runs of *task* in *directory*; returns the paths removed or restored.

    Only scratch of this host whose process is gone is touched.  A stale ``old`` whose target is
    missing is an output that was being replaced when the run died: it is renamed back.  *legacy*
    are patterns (with a ``pid`` group) of temporaries an earlier version of the task named
    otherwise; those of processes that no longer run are removed too.
    """
    directory = Path(directory)
    pattern, host, handled = _scratch_pattern(task), _host(), []
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return handled
    for entry in entries:
        old = next((m for m in (p.match(entry.name) for p in legacy) if m), None)
        if old and int(old["pid"]) != os.getpid() and not _running(int(old["pid"])):
            remove_path(entry.path)
            handled.append(Path(entry.path))
            continue
        m = pattern.match(entry.name)
        if not m or m["host"] != host or int(m["pid"]) == os.getpid() or _running(int(m["pid"])):
            continue
        path, target = Path(entry.path), directory / m["name"]
        if m["tag"] == "old" and not os.path.lexists(target):
            os.replace(path, target)
        else:
            remove_path(path)
        handled.append(path)
    return handled


def replace_path(new: str | os.PathLike, target: str | os.PathLike, task: str) -> None:
    """Move the finished *new* (a file or a directory) to *target*, replacing what is there.

    A file replaces atomically.  A directory (a CASA image) cannot be renamed over another, so the
    old one first moves to its ``old`` scratch and is removed once the new one is in place; a run
    killed in between is repaired by :func:`remove_stale_scratch`.
    """
    new, target = Path(new), Path(target)
    if not os.path.lexists(target) or not (target.is_dir() or Path(new).is_dir()):
        os.replace(new, target)
        return
    old = scratch_path(target, task, "old")
    os.replace(target, old)
    os.replace(new, target)
    remove_path(old)

