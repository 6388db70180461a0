"""Multi-MS parallelism: per-sub-MS work of a task on casampi's MPI servers, merged on the client.

A Multi-MS (casatasks ``partition`` output, ``createmms=True``) is a reference
MS over sub-MSs in ``SUBMSS/``.  CASA's parallel tasks (statwt, flagdata …
through ``ParallelTaskHelper``) run once per sub-MS on the MPI servers and
merge what comes back; a task here does the same in three steps:

* :func:`submss` — the sub-MSs of an MS (``[]`` for a plain MS), as CASA's
  ``ms.getreferencedtables()`` lists them;
* :func:`parallel_parts` — the sub-MSs to map over, or ``None`` when the work
  should stay serial: not an MPI client with servers, not a Multi-MS, or (for
  statistics that cannot be merged exactly, such as medians) some group of
  rows spread over several sub-MSs;
* :func:`map_parts` — call ``target(vis=sub_ms, **kwargs)`` for every part,
  on the MPI servers when this process is casampi's client (else here, one
  after the other), and return the results in sub-MS order; a part that fails
  raises, naming the sub-MS.

The task merges the results.  wtcheck merges its per-group statistics when
every (spw, field[, scan]) group lies in one sub-MS; imadvise's partial
results (gridded weights) add up whatever the partition.
"""

from __future__ import annotations

from ..errors import AlmatoolsError
from . import mpi

__all__ = ["submss", "parallel_parts", "map_parts", "MultiMSError"]


class MultiMSError(AlmatoolsError):
    """A sub-MS's part of the work failed (the message names the sub-MS and the error)."""


def submss(vis) -> list[str]:
    """The sub-MSs of Multi-MS *vis*, in order; ``[]`` when *vis* is a plain MS."""
    from ..casaenv import casatools
    ms = casatools().ms()
    try:
        ms.open(str(vis))
        parts = [str(p) for p in ms.getreferencedtables()] if ms.ismultims() else []
        ms.close()
    finally:
        ms.done()
    return parts


def _keys(vis: str, columns) -> set[tuple]:
    from ..casaenv import casatools
    tb = casatools().table()
    try:
        tb.open(vis)
        if tb.nrows() == 0:
            return set()
        cols = [tb.getcol(c).tolist() for c in columns]
    finally:
        tb.done()
    return set(zip(*cols))


def parallel_parts(vis, split_by=()) -> list[str] | None:
    """The sub-MSs of *vis* to map over in parallel, or None when the work should stay serial.

    :param split_by: main-table columns (e.g. ``("DATA_DESC_ID", "FIELD_ID")``) whose every combination
        must lie in one sub-MS, for results that cannot be merged across sub-MSs (medians).
    """
    if not mpi.is_client():
        return None
    parts = submss(vis)
    if len(parts) < 2:
        return None
    if split_by:
        owner: dict[tuple, str] = {}
        for part in parts:
            for key in _keys(part, split_by):
                if owner.setdefault(key, part) != part:
                    from .. import log
                    log.info(f"{vis}: {'/'.join(split_by)} {key} is in several sub-MSs; read serially (its "
                             "statistics cannot be merged from per-sub-MS results)")
                    return None
    return parts


class _Part:
    def __init__(self, index: int, target: str, kwargs: dict, as_json: bool):
        self.index, self.target, self.kwargs, self.as_json = index, target, kwargs, as_json


def map_parts(target: str, parts: list[str], *, as_json: bool = True, **kwargs) -> list:
    """``target(vis=part, **kwargs)`` for every part — on the MPI servers when this is casampi's client.

    :param as_json: results as plain JSON types (default); ``False`` returns them as the target made
        them (numpy arrays, objects with a merge method — they travel pickled).
    :return: the results in the order of *parts*.
    :raises MultiMSError: naming the first sub-MS whose part failed and its error.
    """
    jobs = [_Part(i, target, {"vis": part, **kwargs}, as_json) for i, part in enumerate(parts)]
    outcomes: dict[int, dict] = {}
    if mpi.is_client():
        mpi.MPIServers().run(jobs, lambda job: None, lambda job, outcome: outcomes.__setitem__(job.index, outcome))
    else:
        from .worker import invoke
        for job in jobs:
            outcomes[job.index] = invoke(job.target, job.kwargs, as_json)
    from .. import log
    for job in jobs:
        outcome = outcomes[job.index]
        if not outcome["ok"]:
            raise MultiMSError(f"{parts[job.index]}: {outcome['error']}")
        log.debug(f"sub-MS {parts[job.index]} done by {outcome['worker']} in {outcome['seconds']:.2f} s")
    return [outcomes[job.index]["result"] for job in jobs]
