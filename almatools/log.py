"""Logging through CASA's ``casalog``, the way CASA's own tasks log.

Task implementations call :func:`info`, :func:`warn`, :func:`severe` (or
:func:`post`); the origin is the running task's name, set by
:class:`almatools.task.Task`, so lines land in the user's CASA log as
``INFO  calversion::::  …`` — or ``wtcheck>calversion`` while a task runs
another one internally.  When casatasks cannot be imported (or under
``python -O``) the same lines go to the standard :mod:`logging` logger
``almatools.<task>``.  Where the CASA log file is: :func:`logfile`.

:func:`progress` reports long work: percentage lines in the log (every 10 %),
and a live bar with rate and ETA on an interactive terminal.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
import time

__all__ = ["post", "info", "warn", "severe", "debug", "progress", "current_task", "task_chain", "task_origin",
           "casalog", "logfile"]

#: the running almatools tasks, outermost first (a task may call another: wtcheck runs calversion)
_task_chain: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("almatools_tasks", default=())
_casalog = None
# casalog is one C++ object with one current origin: a line's origin and its posting must not interleave with
# another thread's, and concurrent calls into it have crashed the process (worker threads' progress lines)
_casalog_lock = threading.Lock()
_PRIORITY = {"DEBUG": logging.DEBUG, "DEBUG1": logging.DEBUG, "DEBUG2": logging.DEBUG, "INFO": logging.INFO,
             "INFO1": logging.INFO, "INFO2": logging.INFO, "WARN": logging.WARNING, "SEVERE": logging.ERROR}


def current_task() -> str:
    """The innermost running task, ``'almatools'`` outside any task."""
    chain = _task_chain.get()
    return chain[-1] if chain else "almatools"


def task_chain() -> tuple[str, ...]:
    """The running tasks, outermost (the one the user called) first; ``()`` outside any task."""
    return _task_chain.get()


def task_origin() -> str:
    """The log origin: the task, or ``outer>inner`` when a task runs another (``wtcheck>calversion``)."""
    return ">".join(_task_chain.get()) or "almatools"


def casalog():
    """CASA's shared ``casalog`` (``casatasks.casalog``), or None without CASA.

    Imported on first use, never at import time (a bare ``import casatools``
    writes a log file into the working directory).
    """
    global _casalog
    if _casalog is None and sys.flags.optimize:
        _casalog = False  # casatools cannot even be imported under python -O
    if _casalog is None:
        from . import casaenv
        try:
            casaenv.ensure_configured()
            from casatasks import casalog as _cl
        except Exception:  # CASA missing or unusable: fall back to logging
            _casalog = False
        else:
            _casalog = _cl
    return _casalog or None


def logfile() -> str | None:
    """The CASA log file this process writes (``None`` without CASA or without a log file)."""
    cl = casalog()
    return (cl.logfile() or None) if cl is not None else None


def post(message: str, priority: str = "INFO", origin: str | None = None) -> None:
    """Post *message* with CASA priority ``DEBUG|INFO|WARN|SEVERE``."""
    where = origin or task_origin()
    cl = casalog()
    if cl is not None:
        with _casalog_lock:
            cl.origin(where)
            for line in str(message).splitlines() or [""]:
                cl.post(line, priority)
    else:
        logging.getLogger(f"almatools.{where}").log(_PRIORITY.get(priority, logging.INFO), message)


def info(message: str) -> None:
    post(message, "INFO")


def warn(message: str) -> None:
    post(message, "WARN")


def severe(message: str) -> None:
    post(message, "SEVERE")


def debug(message: str) -> None:
    post(message, "DEBUG1")


class progress:
    """Report progress of long work; use as a context manager.

    >>> with progress(total=nbytes, desc="download", unit="B") as bar:
    ...     bar.update(len(chunk))

    Logs a line at every 10 % step; on a terminal also redraws one line on
    stderr with percentage, rate and ETA.  Thread-safe enough for counters
    updated from worker threads (updates are additions under the GIL).
    """

    def __init__(self, total: float, desc: str = "", unit: str = "", stream=None):
        self.total = float(total) if total else 0.0
        self.desc, self.unit = desc or current_task(), unit
        self.done = 0.0
        self._start = time.monotonic()
        self._next_log = 10
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_draw = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._tty:
            self._draw(final=True)
        if exc[0] is None and self.total and self._next_log <= 100:
            post(f"{self.desc}: 100% ({self._fmt(self.done)}{self.unit})")
        return False

    def _fmt(self, x: float) -> str:
        if self.unit == "B":
            for scale, prefix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
                if x >= scale:
                    return f"{x / scale:.1f}{prefix}"
            return f"{x:.0f} "
        return f"{x:g} "

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self._start, 1e-9)

    def update(self, amount: float = 1) -> None:
        self.done += amount
        if not self.total:
            return
        pct = 100.0 * self.done / self.total
        if pct >= self._next_log and self._next_log <= 100:
            step = min(100, int(pct // 10) * 10)  # one line however many 10 % steps this update crossed
            rate = self.rate()
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            post(f"{self.desc}: {step}% ({self._fmt(self.done)}{self.unit} of "
                 f"{self._fmt(self.total)}{self.unit}, {self._fmt(rate)}{self.unit}/s, ETA {eta:.0f} s)")
            self._next_log = step + 10
        if self._tty and time.monotonic() - self._last_draw > 0.2:
            self._draw()

    def _draw(self, final: bool = False) -> None:
        self._last_draw = time.monotonic()
        frac = min(self.done / self.total, 1.0) if self.total else 0.0
        rate = self.rate()
        eta = (self.total - self.done) / rate if rate > 0 and self.total else 0.0
        bar = "#" * int(frac * 30)
        self._stream.write(f"\r{self.desc} [{bar:<30}] {frac:6.1%} {self._fmt(rate)}{self.unit}/s ETA {eta:5.0f}s")
        if final:
            self._stream.write("\n")
        self._stream.flush()
