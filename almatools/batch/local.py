"""The local back end: a pool of worker processes on this machine.

CASA's tools are not thread-safe, so every call runs in a process of its own
kind: ``python -m almatools.batch.worker``, a fresh interpreter started with
this one's executable and environment (so CASA is configured the same way)
that runs calls one after another and is reused for the whole batch.  Fresh
interpreters rather than ``fork``: a forked copy of a process that has started
casatools inherits its threads and locks in whatever state they were.  Not
``multiprocessing``'s spawn either, which re-imports the caller's main script
in every worker — a plain script without ``if __name__ == "__main__"`` would
run again in each.

Each worker is driven by one thread of this process that hands it the next
call and waits for the outcome, so the calls of a worker that dies (a crash
inside CASA, the kernel's OOM killer, ``kill -9``) are known exactly: that
call fails alone with the exit status in its error, the worker is replaced,
and the batch goes on.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading

from .. import limits
from .worker import read_frame, write_frame

__all__ = ["LocalPool", "default_workers", "MEMORY_PER_WORKER"]

#: memory a CASA worker process is assumed to need when the pool is sized to the machine
MEMORY_PER_WORKER = 1 * limits.GiB


def default_workers(njobs: int | None = None) -> int:
    """Workers for this machine: one per usable core, fewer when memory is short (1 GiB each) or jobs few."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_memory = max(1, limits.available_memory() // MEMORY_PER_WORKER)
    n = max(1, min(cores, by_memory))
    return max(1, min(n, njobs)) if njobs else n


class _Worker:
    """One worker process and the pipe pair to it."""

    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "almatools.batch.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=os.environ.copy())

    def call(self, target: str, kwargs: dict) -> dict | None:
        """The outcome of one call, or None when the process died before answering."""
        try:
            write_frame(self.proc.stdin, (target, kwargs))
        except (BrokenPipeError, OSError):
            return None
        return read_frame(self.proc.stdout)

    def death(self) -> str:
        code = self.proc.wait()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"killed by {name}"
        return f"exited with status {code}"

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # end of requests: the worker returns
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class LocalPool:
    """Run jobs on *nworkers* local worker processes (default :func:`default_workers`)."""

    name = "local"

    def __init__(self, nworkers: int | None = None):
        if nworkers is not None and nworkers < 1:
            raise ValueError(f"nworkers must be at least 1, not {nworkers}")
        self.nworkers = nworkers

    def run(self, jobs, started, finished) -> None:
        """Run every job; ``started(job)`` before and ``finished(job, outcome)`` after each, in this thread.

        A job is any object with ``target`` and ``kwargs``.
        """
        jobs = list(jobs)
        if not jobs:
            return
        n = min(self.nworkers or default_workers(len(jobs)), len(jobs))
        todo: queue.Queue = queue.Queue()
        events: queue.Queue = queue.Queue()
        for job in jobs:
            todo.put(job)
        threads = [threading.Thread(target=self._drive, args=(todo, events), daemon=True,
                                    name=f"almatools-batch-worker-{i}") for i in range(n)]
        for t in threads:
            t.start()
        remaining = len(jobs)
        try:
            while remaining:
                kind, job, outcome = events.get()
                if kind == "start":
                    started(job)
                else:
                    remaining -= 1
                    finished(job, outcome)
        finally:
            for _ in threads:
                todo.put(None)
            for t in threads:
                t.join(timeout=30)

    @staticmethod
    def _drive(todo: queue.Queue, events: queue.Queue) -> None:
        """One worker's thread: take a job, run it in the worker process, report; replace a dead worker."""
        worker = None
        try:
            while True:
                job = todo.get()
                if job is None:
                    return
                events.put(("start", job, None))
                try:
                    if worker is None:
                        worker = _Worker()
                    outcome = worker.call(job.target, job.kwargs)
                except Exception as exc:  # the worker could not be started, or the call not sent
                    from .worker import error_text
                    events.put(("done", job, {"ok": False, "result": None, "seconds": 0.0, "worker": "",
                                              "error": f"the call could not be handed to a worker process: "
                                                       f"{error_text(exc)}"}))
                    continue
                if outcome is None:
                    how = worker.death()
                    outcome = {"ok": False, "result": None, "seconds": 0.0, "worker": f"pid {worker.proc.pid}",
                               "error": f"WorkerDied: the worker process running this call {how} (a crash "
                                        "inside CASA, the out-of-memory killer or a kill); the other calls "
                                        "went on"}
                    worker = None
                events.put(("done", job, outcome))
        finally:
            if worker is not None:
                worker.close()
