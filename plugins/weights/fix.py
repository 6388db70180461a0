"""Reversible weight fixes: the original columns are kept beside the data and put back bit for bit.

Before anything changes, WEIGHT and SIGMA (and WEIGHT_SPECTRUM, SIGMA_SPECTRUM
when present; FLAG too when statwt may flag) are copied into a separate table
inside the MS directory, ``<vis>/WTCHECK_BACKUP``.  It is written as
``WTCHECK_BACKUP.incomplete`` and renamed when complete, and only then are the
weights changed; ``restore`` copies the columns back, removes columns the fix
added, and deletes the backup table — so the MS returns to its original size
(columns added to the main table would leave their storage behind: casacore
does not shrink a storage file when a column is removed).  Leftovers of killed
runs (``*.incomplete``, ``*.restored``) are removed by the next run.

MSs fixed by earlier versions keep their originals in ``WTCHECK_ORIG_*``
columns of the main table; ``restore`` still puts those back.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time

import numpy as np

from almatools import limits
from almatools.errors import TaskParameterError

from .stats import spw_layout

__all__ = ["check_writable", "check_not_held", "backup_columns", "restore_columns", "scale_weights",
           "backup_info", "clean_leftovers", "check_space", "BACKUP_NAME", "LEGACY_PREFIX"]

BACKUP_NAME = "WTCHECK_BACKUP"
LEGACY_PREFIX = "WTCHECK_ORIG_"
_INCOMPLETE, _RESTORED = ".incomplete", ".restored"
_INFO = "wtcheck.json"
ROWS_PER_CHUNK = 20000
SPACE_MARGIN = 1.1  # the backup table's own overhead (limits keeps a reserve for the disk's other users)
_ADDED_BY_FIXES = ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM")  # columns statwt may create; removed again on restore


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


def _backup_path(vis: str) -> str:
    return os.path.join(vis, BACKUP_NAME)


def backup_info(vis: str) -> dict | None:
    """What the complete backup of an earlier ``fix=True`` holds (None: there is none)."""
    path = os.path.join(_backup_path(vis), _INFO)
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def clean_leftovers(vis: str) -> list[str]:
    """Remove what killed runs left in *vis* (half-written or already restored backups); return their names.

    A half-written backup means the weights were never changed (they change only after the backup is
    complete); a restored one means they are back.  Neither holds anything to keep.
    """
    removed = []
    for name in sorted(os.listdir(vis)):
        if name.startswith(BACKUP_NAME) and name.endswith((_INCOMPLETE, _RESTORED)):
            shutil.rmtree(os.path.join(vis, name), ignore_errors=True)
            removed.append(name)
    # a complete backup whose info file is missing was cut off while being renamed or removed
    path = _backup_path(vis)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, _INFO)):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(BACKUP_NAME)
    return removed


def _columns(tb, with_flag: bool) -> list[str]:
    names = tb.colnames()
    cols = ["WEIGHT", "SIGMA"] + [c for c in ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM") if c in names
                                  and tb.nrows() > 0 and tb.iscelldefined(c, 0)]
    return cols + (["FLAG"] if with_flag else [])


def check_space(ct, vis: str, with_flag: bool) -> int:
    """Refuse a fix whose backup would not fit on the disk; return the bytes it needs."""
    tb = ct.table()
    try:
        tb.open(vis)
        need = 0
        for col in _columns(tb, with_flag) if tb.nrows() else []:
            cell = tb.getcell(col, 0)
            # FLAG is stored as bits; the others as floats (4 bytes, though getcell returns them as float64);
            # every row has the first row's shape or one like it
            per_cell = (np.asarray(cell).size + 7) // 8 if col == "FLAG" else np.asarray(cell).size * 4
            need += per_cell * tb.nrows()
    finally:
        tb.done()
    need = int(need * SPACE_MARGIN)
    limits.check_disk_space(vis, need, subject=limits.parameter("fix"))
    return need


def _legacy_columns(tb) -> list[str]:
    return [c for c in tb.colnames() if c.startswith(LEGACY_PREFIX)]


def backup_columns(ct, vis: str, with_flag: bool, method: str) -> list[str]:
    """Save the weight columns in ``<vis>/WTCHECK_BACKUP``; refuse when a backup is already there."""
    tb = ct.table()
    try:
        tb.open(vis)
        if backup_info(vis) is not None or _legacy_columns(tb):
            raise TaskParameterError("wtcheck", "fix", True, f"{vis} already holds original weights from an earlier "
                                     "fix; run wtcheck(restore=True) first, so the originals are never lost")
        cols = _columns(tb, with_flag)
        before = list(tb.colnames())
        tmp = _backup_path(vis) + _INCOMPLETE
        shutil.rmtree(tmp, ignore_errors=True)
        sub = tb.query("", columns=",".join(["DATA_DESC_ID"] + cols))
        try:
            copy = sub.copy(tmp, deep=True, valuecopy=True, returnobject=True)
            copy.done()
        finally:
            sub.done()
        info = {"method": method, "columns": cols, "columns_before": before, "nrows": int(tb.nrows()),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(os.path.join(tmp, _INFO), "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, _backup_path(vis))  # complete: only now may the weights change
        return cols
    finally:
        tb.done()


def _copy_rows(src, dst, columns) -> None:
    """Copy *columns* from table *src* into *dst* row for row, one data description at a time
    (cell shapes differ between spws); both hold the same rows in the same order."""
    for dd in np.unique(src.getcol("DATA_DESC_ID")):
        a, b = src.query(f"DATA_DESC_ID=={int(dd)}"), dst.query(f"DATA_DESC_ID=={int(dd)}")
        try:
            if a.nrows() != b.nrows():
                raise RuntimeError(f"data description {dd}: {a.nrows()} saved rows against {b.nrows()} in the MS")
            for first in range(0, a.nrows(), ROWS_PER_CHUNK):
                count = min(ROWS_PER_CHUNK, a.nrows() - first)
                for col in columns:
                    b.putcol(col, a.getcol(col, first, count), first, count)
        finally:
            a.done()
            b.done()


def restore_columns(ct, vis: str) -> list[str]:
    """Put the saved columns back, remove what the fix added and delete the backup; returns the columns."""
    tb, bk = ct.table(), ct.table()
    try:
        tb.open(vis, nomodify=False)
        legacy = _legacy_columns(tb)
        if legacy:
            return _restore_legacy(tb, legacy)
        info = backup_info(vis)
        if info is None:
            raise TaskParameterError("wtcheck", "restore", True, f"{vis} holds no weights saved by wtcheck(fix=True)")
        bk.open(_backup_path(vis))
        if bk.nrows() != tb.nrows():
            raise TaskParameterError("wtcheck", "restore", True, f"{vis} has {tb.nrows()} rows but its saved weights "
                                     f"{bk.nrows()}: rows were added or removed since the fix; nothing restored")
        _copy_rows(bk, tb, info["columns"])
        bk.done()
        added = [c for c in _ADDED_BY_FIXES if c in tb.colnames() and c not in info["columns_before"]]
        if added:
            tb.removecols(added)
        tb.flush()
    finally:
        bk.done()
        tb.done()
    gone = _backup_path(vis) + _RESTORED
    os.replace(_backup_path(vis), gone)  # restored: a kill from here on leaves only a leftover to clean up
    shutil.rmtree(gone)
    return list(info["columns"])


def _restore_legacy(tb, backups: list[str]) -> list[str]:
    """Backups of earlier versions: columns ``WTCHECK_ORIG_<column>`` of the main table."""
    for dd in np.unique(tb.getcol("DATA_DESC_ID")):
        sub = tb.query(f"DATA_DESC_ID=={int(dd)}")
        try:
            for first in range(0, sub.nrows(), ROWS_PER_CHUNK):
                count = min(ROWS_PER_CHUNK, sub.nrows() - first)
                for b in backups:
                    sub.putcol(b[len(LEGACY_PREFIX):], sub.getcol(b, first, count), first, count)
        finally:
            sub.done()
    tb.removecols(backups)
    tb.flush()
    return [b[len(LEGACY_PREFIX):] for b in backups]


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
