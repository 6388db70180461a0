"""almafetch at scale: one download budget shared by every call of a batch.

A batch of many Member OUS runs several almafetch calls at once, each with its
own streams and its own disk check.  Checked one by one, calls that each fit
can together overfill a disk, and together they open ``nstreams`` × workers
connections to one archive host.  Before anything is fetched, :func:`preflight`

* runs every call as ``dryrun=True`` (on the same back end, in parallel): each
  resolves its files and says how many bytes it still needs;
* adds them up per output file system and refuses the batch — before a single
  byte is written — when the sum plus a reserve exceeds the free space there,
  or exceeds ``disk_budget``;
* shares ``host_connections`` among the calls that run at the same time: each
  call gets ``nstreams = host_connections // concurrent calls`` (its own
  ``nstreams`` if that is smaller), so the archive never sees more than
  ``host_connections`` connections from the batch — across nodes too, with no
  shared state.

Other tasks take neither option.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

from .. import limits, log
from ..errors import ResourceLimitError, TaskParameterError

__all__ = ["preflight", "check_options", "parse_size", "FETCH_TASK"]

FETCH_TASK = "almafetch"
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([kKMGTP]?)(i?)[bB]?\s*$")


def parse_size(text, name: str) -> int:
    """Bytes from ``'500GB'``, ``'2TiB'``, ``'100 MB'`` or a number; a clear error naming *name* otherwise."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text >= 0:
        return int(text)
    m = _SIZE.match(str(text))
    if not m:
        raise TaskParameterError("batch", name, text, "is not a size such as '500GB', '2TiB' or a number of bytes")
    number, prefix, binary = m.groups()
    power = " kMGTP".index(prefix.upper() if prefix.upper() != "K" else "k") if prefix else 0
    return int(float(number) * (1024 if binary else 1000) ** power)


def _filesystem(path: Path) -> tuple[int, Path]:
    """(device, nearest existing directory) of *path*: calls writing to one device share its free space."""
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    return os.stat(p).st_dev, p


def check_options(task: str, *, disk_budget=None, host_connections=None) -> None:
    """Refuse the download options for other tasks, and malformed values, before anything is opened."""
    if task != FETCH_TASK:
        for name, value in (("disk_budget", disk_budget), ("host_connections", host_connections)):
            if value is not None:
                raise TaskParameterError("batch", name, value, f"applies to batches of {FETCH_TASK} only")
        return
    if disk_budget is not None:
        parse_size(disk_budget, "disk_budget")
    if host_connections is not None and (isinstance(host_connections, bool) or not isinstance(host_connections, int)
                                         or host_connections < 1):
        raise TaskParameterError("batch", "host_connections", host_connections, "must be a whole number >= 1")


def preflight(task: str, jobs, backend, *, disk_budget=None, host_connections=None) -> None:
    """Check and share the download budget of an almafetch batch (see the module docstring).

    Modifies the jobs' call parameters (``nstreams``), never the parameters that key them in the ledger.
    """
    if task != FETCH_TASK:
        return
    jobs = list(jobs)
    concurrent = min(getattr(backend, "nworkers", None) or _local_workers(len(jobs)), len(jobs))
    if host_connections is not None:
        _share_connections(jobs, int(host_connections), concurrent)
    _check_disk(jobs, backend, disk_budget)


def _local_workers(njobs: int) -> int:
    from .local import default_workers
    return default_workers(njobs)


def _share_connections(jobs, host_connections: int, concurrent: int) -> None:
    if host_connections < concurrent:
        raise TaskParameterError("batch", "host_connections", host_connections,
                                 f"is less than the {concurrent} calls running at once (each needs a connection): "
                                 "raise it or run fewer workers")
    share = host_connections // concurrent
    for job in jobs:
        params = dict(job.kwargs["params"])
        params["nstreams"] = max(1, min(int(params.get("nstreams") or share), share))
        job.kwargs = {**job.kwargs, "params": params}
    log.post(f"batch {FETCH_TASK}: {concurrent} call(s) at once share {host_connections} connections per host: "
             f"{share} stream(s) each", origin="batch")


def _check_disk(jobs, backend, disk_budget) -> None:
    from .engine import Job, run_jobs
    dry = [Job(j.row, j.key, j.params, target=j.target,
               kwargs={**j.kwargs, "params": {**j.kwargs["params"], "dryrun": True}}) for j in jobs]
    outcomes = run_jobs(dry, backend, ledger=None, desc=f"batch {FETCH_TASK} (dry run: sizes)")
    need_by_fs: dict[int, int] = defaultdict(int)
    where: dict[int, Path] = {}
    reserve = 0
    total = 0
    for job in dry:
        outcome = outcomes[job.key]
        if not outcome["ok"]:
            continue  # this call fails on its own in the real run; it downloads nothing
        needed = int((outcome["result"] or {}).get("bytes_needed") or 0)
        device, existing = _filesystem(Path(job.params.get("outdir") or "."))
        need_by_fs[device] += needed
        where.setdefault(device, existing)
        total += needed
        reserve = max(reserve, parse_size(job.params.get("reserve") or 0, "reserve"))
    if disk_budget is not None:
        budget = parse_size(disk_budget, "disk_budget")
        if total > budget:
            raise ResourceLimitError("batch of almafetch: parameter 'disk_budget'",
                                     f"{limits.format_bytes(total)} for {len(jobs)} call(s)",
                                     f"{limits.format_bytes(budget)} (disk_budget={disk_budget!r})",
                                     "nothing was fetched; select fewer files or raise the budget")
    for device, needed in need_by_fs.items():
        free = shutil.disk_usage(where[device]).free
        if needed + reserve > free:
            raise ResourceLimitError(f"batch of almafetch into {where[device]}",
                                     f"{limits.format_bytes(needed)} of disk space for the calls writing there",
                                     f"{limits.format_bytes(max(free - reserve, 0))} (free space minus the calls' "
                                     f"reserve)", "nothing was fetched; free space, spread outdir over other disks "
                                     "or select fewer files")
    log.post(f"batch {FETCH_TASK}: {limits.format_bytes(total)} to fetch, fits the disk"
             + (f" and disk_budget={disk_budget!r}" if disk_budget is not None else ""), origin="batch")
