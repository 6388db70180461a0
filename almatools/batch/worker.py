"""What runs one call, wherever it runs: in this process, in a local worker process, on an MPI server.

:func:`invoke` resolves a target ``"module:function"``, calls it with keyword
arguments and returns an *outcome* — never raises for the call's own errors::

    {"ok": True, "result": {...}, "error": "", "seconds": 1.2, "cpu_seconds": 1.1, "worker": "node7:4242"}

A task call is the target ``almatools.batch.worker:call_task``, which runs
``almatools.casa_tasks.<task>(**params)`` — the same call a user makes, so
every task, built-in or third-party, runs in a batch unchanged.  Results pass
through :func:`almatools.batch.ledger.to_json`, so they are identical whichever
back end ran them.

``python -m almatools.batch.worker`` is a local worker process: it reads
length-prefixed pickled ``(target, kwargs)`` requests on its standard input
and answers each with a pickled outcome on the standard output it had at
start; anything a task prints goes to standard error instead.
"""

from __future__ import annotations

import base64
import importlib
import os
import pickle
import socket
import struct
import sys
import time

from .ledger import to_json

__all__ = ["invoke", "call_task", "invoke_payload", "encode_payload", "error_text", "worker_name", "TASK_TARGET"]

TASK_TARGET = "almatools.batch.worker:call_task"
_HEADER = struct.Struct("!Q")


def worker_name() -> str:
    """``host:pid`` of this process (where a call ran, as the ledger records it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def error_text(exc: BaseException) -> str:
    """``Type: message`` plus the notes almatools adds (which task failed inside which)."""
    notes = [n for n in getattr(exc, "__notes__", []) if n]
    return "; ".join([f"{type(exc).__name__}: {exc}"] + notes)


def call_task(task: str, params: dict):
    """Run almatools task *task* with *params*, exactly as ``almatools.casa_tasks.<task>(**params)``."""
    import almatools.casa_tasks as tasks
    return getattr(tasks, task)(**params)


def resolve_target(target: str):
    """The function named by ``"package.module:function"``."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"a batch target is 'module:function', not {target!r}")
    return getattr(importlib.import_module(module), name)


def invoke(target: str, kwargs: dict, as_json: bool = True) -> dict:
    """Call *target* with *kwargs*; the outcome says how it went (errors are caught and described).

    The result passes through :func:`to_json` unless ``as_json=False`` (partial results such as numpy
    arrays or objects that a task merges itself; they must pickle).
    """
    start, cpu = time.perf_counter(), time.process_time()
    try:
        result = resolve_target(target)(**kwargs)
        result = to_json(result) if as_json else result
        ok, error = True, ""
    except Exception as exc:  # one input's failure is that input's outcome, never the batch's
        result, ok, error = None, False, error_text(exc)
    return {"ok": ok, "result": result, "error": error, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu, "worker": worker_name()}


def encode_payload(target: str, kwargs: dict, as_json: bool = True) -> str:
    """A request as text, for casampi's command parameters (which it formats with ``repr``)."""
    return base64.b64encode(pickle.dumps((target, kwargs, as_json), protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def invoke_payload(payload: str) -> dict:
    """:func:`invoke` on a request made by :func:`encode_payload` (what the MPI servers evaluate)."""
    _release_casatasks_import()
    target, kwargs, as_json = pickle.loads(base64.b64decode(payload))
    return invoke(target, kwargs, as_json)


def _release_casatasks_import() -> None:
    """Let this thread import from casatasks on an MPI server.

    casampi's servers serve from inside ``import casatasks`` (its last
    statement starts casampi), so to Python casatasks never finishes
    initialising, and any ``from casatasks import …`` in the thread that runs
    commands waits forever for the import in the main thread.  CASA's own
    parallel tasks import everything before; almatools imports casatasks on
    first use.  Every task is defined by then, so the module is marked
    initialised for the other threads.
    """
    module = sys.modules.get("casatasks")
    spec = getattr(module, "__spec__", None)
    if spec is not None and getattr(spec, "_initializing", False):
        spec._initializing = False


# --------------------------------------------------------------------------- the local worker process

def write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream):
    """The next object on *stream*, or None at its end (the other side closed or died)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)


def _warm_up() -> None:
    """Load the registry and CASA once, before the first call, so no call's time includes the start-up."""
    from almatools.registry import get_registry
    get_registry()
    try:
        from almatools.casaenv import casatools
        casatools()
    except Exception:  # a batch of tasks that need no CASA still runs; a task that does reports why
        pass


def main() -> int:
    """Serve requests on stdin until it closes; outcomes go to the original stdout."""
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # a task's prints (and CASA's C++ writes to fd 1) must not corrupt the answers
    sys.stdout = sys.stderr
    _warm_up()
    while True:
        request = read_frame(requests)
        if request is None:
            return 0
        target, kwargs = request
        write_frame(answers, invoke(target, kwargs))


def _leave(status: int) -> None:
    """Exit without the interpreter's teardown, as multiprocessing ends its workers: every answer is
    written and flushed, CASA's log sink writes each message through, and the exit handlers of CASA's
    modules take about half a second that the batch, waiting for its workers, would spend idle."""
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    _leave(main())
