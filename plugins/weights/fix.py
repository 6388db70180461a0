"""Reversible weight fixes: the original columns are kept in the MS and put back bit for bit.

Before anything changes, WEIGHT and SIGMA (and WEIGHT_SPECTRUM, SIGMA_SPECTRUM
when present; FLAG too when statwt may flag) are copied into columns named
``WTCHECK_ORIG_<column>``.  ``restore`` copies them back and removes them.
"""

from __future__ import annotations

import fcntl
import os

import numpy as np

from almatools.errors import TaskParameterError

from .stats import spw_layout

__all__ = ["check_writable", "check_not_held", "backup_columns", "restore_columns", "scale_weights", "BACKUP_PREFIX"]

BACKUP_PREFIX = "WTCHECK_ORIG_"
ROWS_PER_CHUNK = 20000


def check_writable(vis: str, param: str = "vis") -> None:
    """Refuse read-only MSs and MSs another process holds open (a lock on table.lock)."""
    paths = [vis] + [os.path.join(vis, f) for f in os.listdir(vis) if f.startswith("table.")]
    # write bits as well as access(): root may write anything, but a user who made an MS read-only meant it
    if not all(os.access(p, os.W_OK) and os.stat(p).st_mode & 0o222 for p in paths):
        raise TaskParameterError("wtcheck", param, vis, "is read-only: copy it (or change its permissions) first")
    check_not_held(vis, param, exclusive=True)


def check_not_held(vis: str, param: str = "vis", exclusive: bool = False) -> None:
    """Refuse an MS whose table lock another process holds (casacore would wait for it forever).

    Reading needs only that nobody holds a write lock; writing needs that nobody holds any lock.
    """
    lock = os.path.join(vis, "table.lock")
    if not os.path.exists(lock):
        return
    fd = os.open(lock, os.O_RDWR if os.access(lock, os.W_OK) else os.O_RDONLY)
    try:
        fcntl.lockf(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except OSError:
        how = "open" if exclusive else "open for writing"
        raise TaskParameterError("wtcheck", param, vis, f"is held {how} by another process (close it there, "
                                 "e.g. tb.close() or quit that CASA, then try again)") from None
    else:
        fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _columns(tb, with_flag: bool) -> list[str]:
    names = tb.colnames()
    cols = ["WEIGHT", "SIGMA"] + [c for c in ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM") if c in names
                                  and tb.iscelldefined(c, 0)]
    return cols + (["FLAG"] if with_flag else [])


def _copy(tb, src: str, dst: str) -> None:
    """Copy column *src* into *dst*, one data description at a time (cell shapes differ between spws)."""
    for dd in np.unique(tb.getcol("DATA_DESC_ID")):
        sub = tb.query(f"DATA_DESC_ID=={int(dd)}")
        try:
            for first in range(0, sub.nrows(), ROWS_PER_CHUNK):
                count = min(ROWS_PER_CHUNK, sub.nrows() - first)
                sub.putcol(dst, sub.getcol(src, first, count), first, count)
        finally:
            sub.done()


def backup_columns(ct, vis: str, with_flag: bool) -> list[str]:
    """Copy the weight columns to WTCHECK_ORIG_*; refuse when a backup is already there."""
    tb = ct.table()
    try:
        tb.open(vis, nomodify=False)
        existing = [c for c in tb.colnames() if c.startswith(BACKUP_PREFIX)]
        if existing:
            raise TaskParameterError("wtcheck", "fix", True, f"{vis} already holds original weights from an earlier "
                                     "fix; run wtcheck(restore=True) first, so the originals are never lost")
        cols = _columns(tb, with_flag)
        for col in cols:
            desc = tb.getcoldesc(col)
            desc.pop("dataManagerGroup", None)  # its own storage, not the original's tiles
            desc["dataManagerType"] = "StandardStMan" if col != "FLAG" else desc["dataManagerType"]
            tb.addcols({BACKUP_PREFIX + col: desc})
            _copy(tb, col, BACKUP_PREFIX + col)
        tb.flush()
        return cols
    finally:
        tb.done()


def restore_columns(ct, vis: str) -> list[str]:
    """Copy WTCHECK_ORIG_* back and remove them; returns the restored columns."""
    tb = ct.table()
    try:
        tb.open(vis, nomodify=False)
        backups = [c for c in tb.colnames() if c.startswith(BACKUP_PREFIX)]
        if not backups:
            raise TaskParameterError("wtcheck", "restore", True, f"{vis} holds no weights saved by wtcheck(fix=True)")
        for b in backups:
            _copy(tb, b, b[len(BACKUP_PREFIX):])
        tb.removecols(backups)
        tb.flush()
        return [b[len(BACKUP_PREFIX):] for b in backups]
    finally:
        tb.done()


def scale_weights(ct, vis: str, factors: dict[tuple[int, str], float]) -> None:
    """Divide WEIGHT (and WEIGHT_SPECTRUM) of each (spw, field) by its factor; SIGMA follows (1/sqrt(W))."""
    dd_spw, _, names = spw_layout(ct, vis)
    tb = ct.table()
    try:
        tb.open(vis, nomodify=False)
        cols = _columns(tb, False)
        for dd, spw in enumerate(dd_spw):
            for fid, name in enumerate(names):
                factor = factors.get((int(spw), name))
                if not factor or not np.isfinite(factor):
                    continue
                sub = tb.query(f"DATA_DESC_ID=={dd} && FIELD_ID=={fid}")
                try:
                    for first in range(0, sub.nrows(), ROWS_PER_CHUNK):
                        count = min(ROWS_PER_CHUNK, sub.nrows() - first)
                        for wcol, scol in (("WEIGHT", "SIGMA"), ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM")):
                            if wcol not in cols:
                                continue
                            w = sub.getcol(wcol, first, count) / factor
                            sub.putcol(wcol, w, first, count)
                            if scol in cols:
                                with np.errstate(divide="ignore"):
                                    sub.putcol(scol, np.where(w > 0, 1 / np.sqrt(w), -1.0), first, count)
                finally:
                    sub.done()
    finally:
        tb.done()
