"""The batch engine: one call of a task per input row, on a local process pool or casampi's MPI servers.

See :func:`batch`.  The pieces: :mod:`.inputs` reads input tables,
:mod:`.ledger` remembers what each input became, :mod:`.local` and
:mod:`.mpi` are the two back ends, :mod:`.worker` runs one call wherever it
runs, :mod:`.results` writes the gathered table, :mod:`.downloads` is the
shared download budget of almafetch batches, :mod:`.mms` runs per-sub-MS work
of a Multi-MS on the MPI servers.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .. import log
from ..errors import AlmatoolsError, TaskParameterError
from .inputs import InputRow, rows_from
from .ledger import DONE, FAILED, Ledger, to_json

__all__ = ["batch", "BatchInputError", "Job", "ENGINES", "call_key", "run_jobs"]

ENGINES = ("local", "mpi")
TASK_TARGET = "almatools.batch.worker:call_task"
_SHOWN_PROBLEMS = 20


class BatchInputError(TaskParameterError):
    """Rows of a batch's inputs that the task would refuse; nothing has run.  Names every bad row."""

    def __init__(self, task: str, problems: list[str]):
        self.problems = problems
        shown = problems[:_SHOWN_PROBLEMS]
        more = f"\n  … and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        AlmatoolsError.__init__(self, f"batch of {task}: {len(problems)} input row(s) would be refused; nothing was "
                                f"run:\n  " + "\n  ".join(shown) + more)
        self.task, self.param, self.value, self.rule = task, "inputs", None, "has rows the task refuses"

    def __str__(self) -> str:
        return self.args[0]


@dataclass
class Job:
    """One call to run: where it came from, its ledger key, and what the worker calls."""

    row: InputRow
    key: str
    params: dict
    target: str = TASK_TARGET
    kwargs: dict | None = None


def call_key(task: str, params: dict) -> str:
    """The ledger key of a call: a hash of the task and its resolved parameters (the same call, the same key)."""
    text = json.dumps([task, to_json(params)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _task_of(task):
    """An :class:`almatools.task.Task` from a name, a Task, or a task at the casa prompt."""
    from ..task import Task
    if isinstance(task, Task):
        return task
    inner = getattr(task, "task", None)
    if isinstance(inner, Task):  # casa_tasks.shell.ShellTask
        return inner
    if isinstance(task, str):
        from ..registry import get_registry
        try:
            return get_registry().get(task)
        except KeyError as exc:
            raise TaskParameterError("batch", "task", task, exc.args[0].replace("no almatools task named", "names "
                                     "no almatools task:")) from None
    raise TaskParameterError("batch", "task", task, "must be an almatools task or its name")


def _default_paths(inputs, task: str, ledger, outtable) -> tuple[Path, Path]:
    if isinstance(inputs, (str, bytes)) or hasattr(inputs, "__fspath__"):
        src = Path(inputs)
        base = src.with_name(f"{src.stem}.{task}")
    else:
        base = Path(f"batch-{task}")
    table = Path(outtable) if outtable else base.with_name(base.name + ".results.ecsv")
    return (Path(ledger) if ledger else base.with_name(base.name + ".ledger")), table


def prepare_jobs(task, rows: list[InputRow], shared: dict) -> list[Job]:
    """Validate every row (shared values, then the row's own) and key it; refuse all bad rows at once."""
    problems, jobs, seen = [], [], {}
    for row in rows:
        if row.problems:
            problems += [f"{row.where}: {p}" for p in row.problems]
            continue
        try:
            params = task.resolve({**shared, **row.given})
        except (TaskParameterError, ValueError) as exc:
            problems.append(f"{row.where}: {exc}")
            continue
        key = call_key(task.name, params)
        if key in seen:
            problems.append(f"{row.where}: the same call as {seen[key].where} (every parameter equal); give each "
                            "call once")
            continue
        seen[key] = row
        jobs.append(Job(row, key, params, kwargs={"task": task.name, "params": params}))
    if problems:
        raise BatchInputError(task.name, problems)
    return jobs


def make_backend(engine: str, nworkers: int | None):
    if engine == "mpi":
        from .mpi import MPIServers
        if nworkers is not None:
            log.warn("batch: nworkers is set by the MPI job (mpirun -n N gives N-1 servers); ignored")
        return MPIServers()
    from .local import LocalPool
    return LocalPool(nworkers)


def run_jobs(jobs: list[Job], backend, ledger: Ledger | None = None, desc: str = "batch") -> dict[str, dict]:
    """Run *jobs* on *backend*, recording each in *ledger*; the outcomes by key.  Progress is logged."""
    outcomes: dict[str, dict] = {}

    with log.progress(total=len(jobs), desc=desc, unit="calls") as bar:
        def started(job: Job) -> None:
            if ledger is not None:
                ledger.record(job.key, "running", row=job.row.index)

        def finished(job: Job, outcome: dict) -> None:
            outcomes[job.key] = outcome
            if ledger is not None:
                _record(ledger, job, outcome)
            if not outcome["ok"]:
                log.post(f"{desc}: {job.row.where} failed: {outcome['error']}", "WARN", origin="batch")
            bar.update(1)

        backend.run(jobs, started, finished)
    return outcomes


def _record(ledger: Ledger, job: Job, outcome: dict) -> None:
    from ..cli import reported_failures
    # results come through to_json in every back end (worker.invoke), the rest is made so here: JSON types only
    fields = dict(row=job.row.index, seconds=round(outcome["seconds"], 4), json_types=True,
                  cpu_seconds=round(outcome.get("cpu_seconds", 0.0), 4), worker=str(outcome["worker"]),
                  params=to_json(job.params))
    if outcome["ok"]:
        why = reported_failures(outcome["result"])
        if why:  # the task finished but says parts failed (files not fetched …): a rerun should try again
            ledger.record(job.key, FAILED, result=outcome["result"], error=f"the task reported failures ({why})",
                          **fields)
        else:
            ledger.record(job.key, DONE, result=outcome["result"], **fields)
    else:
        ledger.record(job.key, FAILED, error=outcome["error"], **fields)


def batch(task, inputs, *, shared: dict | None = None, engine: str = "local", nworkers: int | None = None,
          ledger=None, outtable=None, retry_failed: bool = True, disk_budget=None,
          host_connections: int | None = None) -> dict:
    """Run *task* once per row of *inputs*, resumably, on a local process pool or casampi's MPI servers.

    :param task: an almatools task or its name (built-in or from a third-party plugin).
    :param inputs: an input table (``.csv``, ``.ecsv``, ``.json``; see :mod:`almatools.batch.inputs`),
        a list of dicts, or an astropy table: one call per row, parameters from its columns.
    :param shared: parameter values of every call (a row's own value wins).
    :param engine: ``'local'`` (worker processes on this machine) or ``'mpi'`` (casampi's servers, under
        ``mpirun -n N`` / ``mpicasa``; the servers may be on other nodes sharing the file system).
    :param nworkers: local workers (default: one per core, fewer when memory is short); MPI: N-1 servers.
    :param ledger: the ledger file (default ``<inputs>.<task>.ledger`` beside the input table).  Inputs done
        in it are not run again; failed ones are, unless ``retry_failed=False``.
    :param outtable: the gathered results table, ECSV (default ``<inputs>.<task>.results.ecsv``); the
        per-call result dicts go beside it as ``….json``.
    :param disk_budget: almafetch batches: the most the whole batch may download (e.g. ``'500GB'``), checked
        with the free space of each output file system before anything is fetched.
    :param host_connections: almafetch batches: connections to the archive shared by all running calls.
    :return: ``{"task", "engine", "nworkers", "ninputs", "done", "failed", "ran", "skipped", "table",
        "resultsfile", "ledger", "results", "ok", "seconds"}`` — ``failed`` lists each failed row with its
        error, ``results`` holds each row's result dict (None where it failed).
    """
    started_at = time.perf_counter()
    if engine not in ENGINES:
        raise TaskParameterError("batch", "engine", engine, f"must be one of {', '.join(ENGINES)}")
    if nworkers is not None and (isinstance(nworkers, bool) or not isinstance(nworkers, int) or nworkers < 1):
        raise TaskParameterError("batch", "nworkers", nworkers, "must be a whole number >= 1")
    backend = make_backend(engine, nworkers) if engine == "mpi" else None  # MPI servers stop here, first
    task = _task_of(task)
    shared = dict(shared or {})
    unknown = sorted(set(shared) - set(task.spec.names))
    if unknown:
        raise TaskParameterError(task.name, unknown[0], shared[unknown[0]],
                                 f"is not a parameter of this task (parameters: {', '.join(task.spec.names)})")
    from . import downloads
    downloads.check_options(task.name, disk_budget=disk_budget, host_connections=host_connections)
    jobs = prepare_jobs(task, rows_from(inputs, task), shared)
    ledger_path, table_path = _default_paths(inputs, task.name, ledger, outtable)
    from ..io import check_output_file
    check_output_file(table_path)

    with Ledger(ledger_path, task.name) as book:
        skipped = [j for j in jobs if book.is_done(j.key) or (not retry_failed and book.state(j.key) and
                                                               book.state(j.key)["status"] == FAILED)]
        todo = [j for j in jobs if j not in skipped]
        log.post(f"batch {task.name}: {len(jobs)} input(s); {len(skipped)} already in the ledger {ledger_path}, "
                 f"{len(todo)} to run", origin="batch")
        if todo:
            if backend is None:
                backend = make_backend(engine, nworkers)
            downloads.preflight(task.name, todo, backend, disk_budget=disk_budget,
                                host_connections=host_connections)
            log.post(f"batch {task.name}: engine {engine}, {_workers(backend, len(todo))} worker(s)", origin="batch")
            run_jobs(todo, backend, book, desc=f"batch {task.name}")
        states = {j.key: book.state(j.key) for j in jobs}
    from .results import write_results
    resultsfile = write_results(table_path, task, jobs, states)
    failed = [{"row": j.row.index, "where": j.row.where, "error": states[j.key].get("error", "")}
              for j in jobs if states[j.key] is None or states[j.key]["status"] != DONE]
    summary = {
        "task": task.name, "engine": engine, "nworkers": _workers(backend, len(todo)) if todo else 0,
        "ninputs": len(jobs), "done": sum(1 for j in jobs if states[j.key] and states[j.key]["status"] == DONE),
        "failed": failed, "ran": [j.row.index for j in todo], "skipped": [j.row.index for j in skipped],
        "table": str(table_path), "resultsfile": str(resultsfile), "ledger": str(ledger_path),
        "results": [states[j.key].get("result") if states[j.key] and states[j.key]["status"] == DONE else None
                    for j in jobs],
        "ok": not failed, "seconds": time.perf_counter() - started_at,
    }
    log.post(f"batch {task.name}: {summary['done']} of {len(jobs)} done, {len(failed)} failed; table {table_path}",
             "WARN" if failed else "INFO", origin="batch")
    return summary


def _workers(backend, njobs: int) -> int:
    if backend is None:
        return 0
    if backend.name == "local":
        from .local import default_workers
        return min(backend.nworkers or default_workers(njobs), njobs)
    return backend.nworkers
