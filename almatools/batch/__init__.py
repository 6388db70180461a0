"""Many calls of one task: ``almatools.batch(task, inputs, engine='local'|'mpi', nworkers=..., ledger=...)``.

One call of the task per input row (a ``.csv``/``.ecsv``/``.json`` table, a
list of dicts or an astropy table), every row validated before anything
runs, run on worker processes of this machine (``engine='local'``) or on
casampi's MPI servers (``engine='mpi'`` under ``mpirun``/``mpicasa``), each
input's fate recorded in a crash-safe ledger so that a rerun runs only what is
not done, results gathered into one ECSV table and the per-call result dicts.

``almatools.batch`` is the function; its parts are modules of this package,
imported with ``from almatools.batch import ledger, mms`` (``import
almatools.batch.ledger as m`` would find the function first).
"""

from .engine import BatchInputError, batch
from .ledger import Ledger, LedgerBusyError
from .mpi import MPIUnavailable

__all__ = ["batch", "BatchInputError", "Ledger", "LedgerBusyError", "MPIUnavailable"]
