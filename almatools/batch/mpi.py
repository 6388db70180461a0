"""The MPI back end: CASA's own casampi client and servers.

Run the batch as an MPI program — ``mpirun -n N almatools batch …`` or
``mpicasa -n N casa …`` — and rank 0 becomes casampi's ``MPICommandClient``
while ranks 1 … N-1 are its ``MPICommandServer``s, exactly as for CASA's
parallel tasks: :func:`start` imports casatasks, whose start-up puts every
server into casampi's serve loop (they never return from it: they exit when
the client stops), and only the client goes on.  The client pushes each call
as a command request — casampi evaluates
``almatools.batch.worker.invoke_payload(payload=…)`` on a free server, the
same way ``ParallelTaskHelper`` has servers evaluate ``statwt()`` on a sub-MS
— and collects the responses.  Servers may be on other nodes: inputs must
name paths on a file system all of them share.

At most one call per server is in flight, so the ledger's ``running`` entries
are the calls that really run.  A server that dies takes the whole MPI job
down with it (Open MPI aborts the job when a rank exits); the ledger then says
what was done, and the rerun does the rest.  A server that stops answering
(casampi's heartbeat times out) has its call put back for another server.
"""

from __future__ import annotations

import time
from collections import deque

from ..errors import AlmatoolsError

__all__ = ["start", "under_mpi", "is_client", "MPIServers", "MPIUnavailable", "COMMAND"]

#: the expression casampi's servers evaluate; casampi appends ``(**parameters)`` for a command ending in ``()``
COMMAND = "__import__('almatools.batch.worker', fromlist=['invoke_payload']).invoke_payload()"
_POLL = 0.02  # seconds between looks at casampi's response list


class MPIUnavailable(AlmatoolsError):
    """engine='mpi' outside an MPI job, without casampi, or with too few processes."""


def under_mpi() -> bool:
    """Whether this process was started by an MPI launcher (Open MPI's mpirun/mpiexec, as mpicasa uses)."""
    import os
    return "OMPI_COMM_WORLD_RANK" in os.environ


def start():
    """Start casampi in this process: servers enter their serve loop here (and exit there); the client returns.

    :return: casampi's ``MPIEnvironment`` (on the client).
    :raises MPIUnavailable: not under mpirun, casampi missing, or MPI not usable (the reason from casampi).
    """
    if not under_mpi():
        raise MPIUnavailable("engine='mpi' needs an MPI job: run under `mpirun -n N` (N >= 2: one client and "
                             "N-1 servers) or CASA's `mpicasa -n N`; engine='local' runs on this machine")
    from .. import casaenv
    casaenv.ensure_configured()
    try:
        from casampi.MPIEnvironment import MPIEnvironment
    except ImportError as exc:
        raise MPIUnavailable(f"engine='mpi' needs casampi and mpi4py (pip install casampi mpi4py): {exc}") from None
    import casatasks  # noqa: F401  -- casatasks' start-up runs casampi's start_mpi: servers serve from here on
    if not MPIEnvironment.is_mpi_enabled:
        reason = getattr(MPIEnvironment, "mpi_error_msg", "") or "unknown reason"
        raise MPIUnavailable(f"casampi did not enable MPI: {reason.strip().splitlines()[-1]}")
    if not MPIEnvironment.is_mpi_client:  # a server gets here only if casampi's serve loop returned
        raise SystemExit(0)
    return MPIEnvironment


def is_client() -> bool:
    """Whether this process is a casampi client with servers (an MPI job's rank 0 after :func:`start`)."""
    if not under_mpi():
        return False
    try:
        from casampi.MPIEnvironment import MPIEnvironment
    except ImportError:
        return False
    return bool(MPIEnvironment.is_mpi_enabled and MPIEnvironment.is_mpi_client)


class MPIServers:
    """Run jobs on casampi's MPI servers from the client (rank 0)."""

    name = "mpi"

    def __init__(self):
        env = start()
        from casampi.MPICommandClient import MPICommandClient
        self.client = MPICommandClient()
        self.client.start_services()  # the first time only; later calls are no-ops, as in ParallelTaskHelper
        self.servers = env.mpi_server_rank_list()
        self.nworkers = len(self.servers)

    def _push(self, job) -> int:
        from .worker import encode_payload
        ids = self.client.push_command_request(COMMAND, False, None,
                                               {"payload": encode_payload(job.target, job.kwargs,
                                                                          getattr(job, "as_json", True))})
        if not ids:
            raise MPIUnavailable("casampi refused the command request (its client is stopped or has no servers)")
        return ids[0]

    def _live_servers(self) -> int:
        status = self.client.get_server_status()
        return sum(1 for rank in self.servers if not status.get(rank, {}).get("timeout", False))

    def run(self, jobs, started, finished) -> None:
        """Run every job on the servers; ``started``/``finished`` are called in this thread (see LocalPool)."""
        pending = deque(jobs)
        inflight: dict[int, object] = {}
        while pending or inflight:
            live = self._live_servers()
            if live == 0:
                raise MPIUnavailable(f"every MPI server stopped answering; {len(pending) + len(inflight)} call(s) "
                                     "not run (the ledger has them as not done: run the batch again)")
            while pending and len(inflight) < live:
                job = pending.popleft()
                started(job)
                inflight[self._push(job)] = job
            # casampi's own lists, read directly: its get_command_response() logs a warning for every
            # request not yet assigned to a server, at every poll
            responses = self.client.get_command_response_list()
            requests = self.client.get_command_request_list()
            status = self.client.get_server_status()
            progressed = False
            for rid in list(inflight):
                if rid in responses:
                    finished(inflight.pop(rid), self._outcome(responses[rid]))
                    progressed = True
                    continue
                server = requests[rid].get("server")
                if server is not None and status.get(server, {}).get("timeout"):
                    pending.appendleft(inflight.pop(rid))  # the server stopped answering: another one runs it
                    progressed = True
            if not progressed:
                time.sleep(_POLL)

    @staticmethod
    def _outcome(response: dict) -> dict:
        outcome = response.get("ret")
        if response.get("successful") and isinstance(outcome, dict):
            return outcome
        traceback = (response.get("traceback") or "").strip()
        last = traceback.splitlines()[-1] if traceback else "no response"
        return {"ok": False, "result": None, "seconds": 0.0, "worker": f"MPI server {response.get('server')}",
                "error": f"MPIServerError: {last}"}
