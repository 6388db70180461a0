"""The ledger: what each input of a batch has become, kept so that a rerun does only what is left.

A ledger is a journal of JSON lines.  The first line names the task; every
later line is one event of one input, identified by the input's *key* (a hash
of the task and the call's resolved parameters)::

    {"almatools_batch_ledger": 1, "task": "wtcheck"}
    {"key": "3f…", "row": 0, "status": "running", "time": …, "worker": "node7:1234"}
    {"key": "3f…", "row": 0, "status": "done", "result": {…}, "seconds": 4.2, …}
    {"key": "a1…", "row": 1, "status": "failed", "error": "InputFileError: …", …}

The last event of a key is its state.  Each event is written with one
``write()`` on a file opened for appending and then ``fsync``-ed, so a kill
at any moment leaves every earlier event intact and at most a torn last line,
which reading drops (that input simply runs again).  Opening the ledger for a
run compacts it — one line per key — into a new file that atomically replaces
the old one, and takes an exclusive lock (``<ledger>.lock``) so that two
batches never write one ledger at the same time.

``running`` without a later ``done``/``failed`` means the run stopped (killed,
crashed, node lost) while the input was in flight: it is not done, and the
next run does it again.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from ..errors import AlmatoolsError, InputFileError
from ..io import atomic_path

__all__ = ["Ledger", "LedgerBusyError", "FORMAT", "DONE", "FAILED", "RUNNING", "read_ledger", "to_json"]

FORMAT = 1
DONE, FAILED, RUNNING = "done", "failed", "running"
_STATES = (DONE, FAILED, RUNNING)


class LedgerBusyError(AlmatoolsError):
    """Another batch holds the ledger (its lock file names the host and process)."""


def to_json(value):
    """*value* as plain JSON types (numpy scalars and arrays, paths, tuples, sets converted).

    Every back end passes results through this, so a result reads the same
    from a plain loop, the process pool, the MPI servers and the ledger.
    """
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_json(v) for v in value), key=repr)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return to_json(tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _dumps(record: dict) -> tuple[str, bool]:
    """One line per event, and whether json wrote *record* without converting anything in it.

    NaN and infinities stay (Python's json reads them back).  Results arrive already plain (every back
    end passes them through :func:`to_json`), so json's C encoder writes them directly and calls
    :func:`to_json` only for what is not JSON yet (numpy values, paths, sets): converting or re-reading
    results of thousands of numbers per event cost the batch's parent process a large share of a core.
    """
    converted = []

    def plain(value):
        out = to_json(value)
        if out is value:  # to_json left it as it was: json would ask again forever
            raise TypeError(f"{type(value).__name__} is not JSON")
        converted.append(True)
        return out

    if all(isinstance(k, str) for k in record):
        try:
            return json.dumps(record, separators=(",", ":"), sort_keys=True, default=plain) + "\n", not converted
        except (TypeError, ValueError):  # a nested key json cannot write (a tuple), or a cycle: convert it all
            pass
    return json.dumps(to_json(record), separators=(",", ":"), sort_keys=True) + "\n", False


def read_ledger(path) -> tuple[dict, dict[str, dict]]:
    """(header, the last event of each key) of the ledger at *path*.

    A torn last line (a kill during a write) is dropped; a line that is not an
    event anywhere else, or a first line that is not a ledger header, is an
    :class:`InputFileError` naming the file and the line.
    """
    path = Path(path)
    from .. import limits
    with limits.open_regular(path) as fh:
        data = fh.read()
    lines = data.split(b"\n")
    complete = len(lines) - 1  # the part after the last newline is a torn or empty tail
    header, states = None, {}
    for number, raw in enumerate(lines[:complete], start=1):
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            raise InputFileError(path, "is not an almatools batch ledger line (JSON expected)", number) from None
        if number == 1:
            if not isinstance(record, dict) or record.get("almatools_batch_ledger") != FORMAT:
                raise InputFileError(path, "is not an almatools batch ledger (its first line is no ledger header)",
                                     1)
            header = record
            continue
        if not isinstance(record, dict) or not isinstance(record.get("key"), str) or \
                record.get("status") not in _STATES:
            raise InputFileError(path, "is not a ledger event (key and status expected)", number)
        states[record["key"]] = record
    # no complete header: an empty file, or one whose header a kill tore before any event was written
    return (header or {}), states


class Ledger:
    """The ledger of one batch, opened for a run (a context manager).

    >>> with Ledger("survey.ledger", task="wtcheck") as ledger:      # doctest: +SKIP
    ...     ledger.state(key)              # None, or the last event of that input
    ...     ledger.record(key, "running", row=3)
    """

    def __init__(self, path, task: str):
        self.path = Path(path)
        self.task = task
        self.states: dict[str, dict] = {}
        self._fd: int | None = None
        self._lock_fd: int | None = None

    # ----------------------------------------------------------------- opening
    def __enter__(self) -> "Ledger":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        """Lock, read and compact the ledger, then open it for appending events."""
        from ..io import check_output_file
        check_output_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            header = {}
            if self.path.exists():
                header, self.states = read_ledger(self.path)
            if header and header.get("task") != self.task:
                raise InputFileError(self.path, f"is the ledger of a batch of task {header.get('task')!r}, not "
                                     f"{self.task!r}; name another ledger")
            self._compact()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> None:
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise LedgerBusyError(f"{self.path}: the ledger is in use by another batch ({holder}); wait for it "
                                  "to finish or name another ledger") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    def _compact(self) -> None:
        """Rewrite the ledger as its header and one line per key, atomically."""
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(_dumps({"almatools_batch_ledger": FORMAT, "task": self.task})[0])
                for record in self.states.values():
                    fh.write(_dumps(record)[0])
                fh.flush()
                os.fsync(fh.fileno())
        _fsync_dir(self.path.parent)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._unlock()

    # ----------------------------------------------------------------- events
    def state(self, key: str) -> dict | None:
        """The last event of *key*, or None when the ledger has never seen it."""
        return self.states.get(key)

    def is_done(self, key: str) -> bool:
        state = self.states.get(key)
        return state is not None and state["status"] == DONE

    def record(self, key: str, status: str, *, json_types: bool = False, **fields) -> dict:
        """Append one event (``running``, ``done`` with ``result``, ``failed`` with ``error``) durably.

        ``json_types=True`` says the fields hold JSON types only (what :func:`to_json` returns: lists,
        string keys), so the event itself is what the line reads back as and is kept without reading it
        back; otherwise the state is the line read back (checking or re-reading a result of thousands of
        numbers costs more than writing it).
        """
        if status not in _STATES:
            raise ValueError(f"ledger status must be one of {_STATES}, not {status!r}")
        if self._fd is None:
            raise RuntimeError(f"{self.path}: the ledger is not open")
        event = {"key": key, "status": status, "time": round(time.time(), 3), **fields}
        text, plain = _dumps(event)
        line = text.encode("utf-8")
        written = os.write(self._fd, line)
        while written < len(line):  # a regular file takes it in one write; be correct anyway
            written += os.write(self._fd, line[written:])
        os.fsync(self._fd)
        self.states[key] = event if json_types and plain else json.loads(line)  # as a later run reads it
        return self.states[key]


def _fsync_dir(path: Path) -> None:
    """Make a rename in *path* durable (a power cut must not bring the old ledger back)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
