"""wtcheck's reversible fixes (plugins/weights/fix.py): the checks before a fix, the backup table, restore,
scaling, and the leftovers of killed runs.

Expected values are read off what the test writes (the columns' values and shapes, the files it creates, the
locks another process holds), compared with CASA's own table tool; the disk space a backup needs is counted by
hand from the column shapes (floats four bytes, FLAG one bit).
"""

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
from test_wtcheck import columns, copy, first_row_copy, ms_files

from almatools.casaenv import casatools
from almatools.errors import TaskParameterError
from almatools.plugins.weights import fix
from almatools.plugins.weights.fix import (backup_columns, backup_info, check_not_held, check_space,
                                           check_writable, clean_leftovers, restore_columns, scale_weights)

pytestmark = pytest.mark.casa

ALL = ("WEIGHT", "SIGMA", "FLAG", "WEIGHT_SPECTRUM", "SIGMA_SPECTRUM")


# --------------------------------------------------------------------------- checks on the MS directory

def fake_ms(path, files=("table.dat", "table.f0", "table.lock", "SPECTRAL_WINDOW")):
    path.mkdir()
    for f in files:
        (path / f).write_text("x")
    return str(path)


def test_a_writable_ms_passes(tmp_path):
    check_writable(fake_ms(tmp_path / "w.ms"))
    check_writable(fake_ms(tmp_path / "nolock.ms", files=("table.dat",)))


def test_read_only_ms_directories_and_table_files_are_refused(tmp_path):
    v = fake_ms(tmp_path / "ro.ms")
    os.chmod(v, 0o555)
    try:
        with pytest.raises(TaskParameterError, match=r"wtcheck: parameter 'vis' is read-only: copy it \(or change "
                                                     r"its permissions\) first") as err:
            check_writable(v)
        assert err.value.value == v
    finally:
        os.chmod(v, 0o755)
    for name in ("table.f0", "table.dat"):
        os.chmod(os.path.join(v, name), 0o444)
        with pytest.raises(TaskParameterError, match="parameter 'myvis' is read-only"):
            check_writable(v, param="myvis")
        os.chmod(os.path.join(v, name), 0o644)
    os.chmod(os.path.join(v, "SPECTRAL_WINDOW"), 0o444)  # not a file of the main table
    check_writable(v)


def test_only_write_bits_of_some_class_count(tmp_path):
    v = fake_ms(tmp_path / "g.ms")
    for mode in (0o404 | stat.S_IWGRP, 0o444 | stat.S_IWOTH, 0o444 | stat.S_IWUSR):
        os.chmod(os.path.join(v, "table.dat"), mode)  # writable by someone: not made read-only on purpose
        check_writable(v)


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX if sys.argv[2] == "write" else fcntl.LOCK_SH)
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds table.lock of a fake MS (read or write lock) until the test ends."""
    procs = []

    def hold(how):
        v = fake_ms(tmp_path / f"{how}.ms")
        p = subprocess.Popen([sys.executable, "-c", HOLD, os.path.join(v, "table.lock"), how], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return v
    yield hold
    for p in procs:
        p.communicate("\n", timeout=10)


def test_a_read_lock_of_another_process_allows_reading_not_writing(holder):
    v = holder("read")
    check_not_held(v)  # reading with others: fine
    with pytest.raises(TaskParameterError, match=r"parameter 'vis' is held open by another process \(close it "
                                                 r"there, e\.g\. tb\.close\(\) or quit that CASA, then try again\)"):
        check_not_held(v, exclusive=True)
    with pytest.raises(TaskParameterError, match="parameter 'vis' is held open by another"):
        check_writable(v)


def test_a_write_lock_of_another_process_blocks_reading(holder):
    v = holder("write")
    with pytest.raises(TaskParameterError, match="parameter 'x' is held open for writing by another process"):
        check_not_held(v, "x")
    with pytest.raises(TaskParameterError, match="parameter 'vis' is held open by another"):
        check_not_held(v, exclusive=True)


def test_no_lock_file_no_lock_and_own_locks_are_fine(tmp_path):
    check_not_held(fake_ms(tmp_path / "a.ms", files=("table.dat",)), exclusive=True)
    v = fake_ms(tmp_path / "b.ms")
    check_not_held(v, exclusive=True)
    check_not_held(v, exclusive=True)  # and the check let go of its own lock again
    check_not_held(v)


# --------------------------------------------------------------------------- leftovers and backup_info

def test_leftovers_of_killed_runs_are_removed(tmp_path):
    v = fake_ms(tmp_path / "l.ms")
    for name in ("WTCHECK_BACKUP.incomplete", "WTCHECK_BACKUP.restored", "WTCHECK_BACKUP", "WTCHECK_BACKUPS",
                 "OTHER.incomplete"):
        os.mkdir(os.path.join(v, name))
    assert backup_info(v) is None  # a backup without its info file is not complete
    assert clean_leftovers(v) == ["WTCHECK_BACKUP.incomplete", "WTCHECK_BACKUP.restored", "WTCHECK_BACKUP"]
    assert sorted(os.listdir(v)) == sorted(["OTHER.incomplete", "WTCHECK_BACKUPS", "SPECTRAL_WINDOW", "table.dat",
                                            "table.f0", "table.lock"])
    assert clean_leftovers(v) == []


def test_a_complete_backup_is_kept_and_described(tmp_path):
    v = fake_ms(tmp_path / "c.ms")
    os.mkdir(os.path.join(v, "WTCHECK_BACKUP"))
    info = {"method": "scale", "columns": ["WEIGHT", "SIGMA"]}
    with open(os.path.join(v, "WTCHECK_BACKUP", "wtcheck.json"), "w") as fh:
        json.dump(info, fh)
    assert clean_leftovers(v) == [] and backup_info(v) == info


# --------------------------------------------------------------------------- an MS to back up and restore

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Two spws of different shapes (13 and 8 channels), fields TGT and CAL, every weight, sigma and flag distinct."""
    from almatools.testing import simulate_ms
    vis = simulate_ms(tmp_path_factory.mktemp("wtfix") / "base.ms", [("A", 230e9, 1e6, 13), ("B", 231e9, 1e6, 8)],
                      nant=3, duration_s=48, integration_s=6, weights="modern",
                      pointings=[("J2000", "11h01m51.9s", "-34d42m17.0s"), ("J2000", "11h01m53.9s", "-34d42m17.0s")])
    rng = np.random.default_rng(5)
    tb = casatools().table()
    try:
        tb.open(f"{vis}/FIELD", nomodify=False)
        tb.putcol("NAME", np.array(["TGT", "CAL"]))
        tb.close()
        tb.open(vis, nomodify=False)
        n = tb.nrows()
        tb.putcol("WEIGHT", rng.uniform(0.5, 2.0, (2, n)))
        tb.putcol("SIGMA", rng.uniform(0.5, 2.0, (2, n)))
        for dd in (0, 1):
            sub = tb.query(f"DATA_DESC_ID=={dd}")
            sub.putcol("FLAG", rng.random(sub.getcol("FLAG").shape) < 0.3)
            sub.done()
    finally:
        tb.done()
    return vis


def main_table(vis, names=ALL):
    """Each column of *vis* as a list of cells (cell shapes differ between spws)."""
    tb = casatools().table()
    try:
        tb.open(vis)
        return {c: [tb.getcell(c, r) for r in range(tb.nrows())] for c in names
                if c in tb.colnames() and tb.nrows() and tb.iscelldefined(c, 0)}
    finally:
        tb.done()


def files_of(vis):
    """ms_files without table.lock (its size depends on who opened the table last)."""
    return {k: n for k, n in ms_files(vis).items() if not k.endswith("table.lock")}


def same(a, b):
    return a.keys() == b.keys() and all(len(a[c]) == len(b[c]) and all(np.array_equal(x, y) for x, y in
                                                                      zip(a[c], b[c])) for c in a)


def nrows(vis):
    tb = casatools().table()
    try:
        tb.open(vis)
        return tb.nrows()
    finally:
        tb.done()


def test_backup_and_restore_bit_for_bit(base, tmp_path, monkeypatch):
    v = copy(base, tmp_path / "b.ms")
    original, files = main_table(v), files_of(v)
    monkeypatch.setattr(fix, "ROWS_PER_CHUNK", 4)  # spw rows in several chunks, the last one short
    assert backup_columns(casatools(), v, with_flag=True, method="statwt") == ["WEIGHT", "SIGMA", "FLAG"]
    info = backup_info(v)
    assert info["method"] == "statwt" and info["columns"] == ["WEIGHT", "SIGMA", "FLAG"]
    assert info["nrows"] == nrows(v) and "WEIGHT" in info["columns_before"] and len(info["time"]) == 19
    saved = main_table(os.path.join(v, "WTCHECK_BACKUP"), ("WEIGHT", "SIGMA", "FLAG", "DATA_DESC_ID"))
    assert same({c: saved[c] for c in ("WEIGHT", "SIGMA", "FLAG")}, {c: original[c] for c in ("WEIGHT", "SIGMA",
                                                                                              "FLAG")})
    assert not os.path.exists(os.path.join(v, "WTCHECK_BACKUP.incomplete"))
    tb = casatools().table()
    try:  # what a fix does: every weight, sigma and flag changed
        tb.open(v, nomodify=False)
        tb.putcol("WEIGHT", tb.getcol("WEIGHT") * 3)
        tb.putcol("SIGMA", tb.getcol("SIGMA") + 1)
        for dd in (0, 1):
            sub = tb.query(f"DATA_DESC_ID=={dd}")
            sub.putcol("FLAG", ~sub.getcol("FLAG"))
            sub.done()
    finally:
        tb.done()
    assert restore_columns(casatools(), v) == ["WEIGHT", "SIGMA", "FLAG"]
    assert same(main_table(v), original) and files_of(v) == files and backup_info(v) is None


def test_without_flag_only_weights_are_saved(base, tmp_path):
    v = copy(base, tmp_path / "w.ms")
    assert backup_columns(casatools(), v, with_flag=False, method="scale") == ["WEIGHT", "SIGMA"]
    assert backup_info(v)["method"] == "scale"
    tb = casatools().table()
    try:
        tb.open(os.path.join(v, "WTCHECK_BACKUP"))
        assert sorted(tb.colnames()) == ["DATA_DESC_ID", "SIGMA", "WEIGHT"]
    finally:
        tb.done()


def test_a_second_backup_is_refused_and_a_half_written_one_replaced(base, tmp_path):
    v = copy(base, tmp_path / "twice.ms")
    os.mkdir(os.path.join(v, "WTCHECK_BACKUP.incomplete"))  # a killed run's half-written backup
    (tmp_path / "twice.ms" / "WTCHECK_BACKUP.incomplete" / "junk").write_text("x")
    backup_columns(casatools(), v, with_flag=False, method="scale")
    assert not os.path.exists(os.path.join(v, "WTCHECK_BACKUP", "junk"))
    with pytest.raises(TaskParameterError, match=r"wtcheck: parameter 'fix' .* already holds original weights from "
                                                 r"an earlier fix; run wtcheck\(restore=True\) first, so the "
                                                 r"originals are never lost") as err:
        backup_columns(casatools(), v, with_flag=True, method="statwt")
    assert err.value.value is True and v in str(err.value)
    assert backup_info(v)["method"] == "scale"  # the first backup untouched


def test_restore_without_a_backup_is_refused(base, tmp_path):
    v = copy(base, tmp_path / "none.ms")
    with pytest.raises(TaskParameterError, match=r"wtcheck: parameter 'restore' .* holds no weights saved by "
                                                 r"wtcheck\(fix=True\)") as err:
        restore_columns(casatools(), v)
    assert err.value.value is True


def test_restore_refuses_when_rows_were_added(base, tmp_path):
    v = copy(base, tmp_path / "rows.ms")
    backup_columns(casatools(), v, with_flag=False, method="scale")
    n = nrows(v)
    tb = casatools().table()
    try:
        tb.open(v, nomodify=False)
        tb.addrows(1)
    finally:
        tb.done()
    with pytest.raises(TaskParameterError, match=f"parameter 'restore' .* has {n + 1} rows but its saved weights "
                                                 f"{n}: rows were added or removed since the fix; nothing restored") as err:
        restore_columns(casatools(), v)
    assert err.value.value is True
    assert backup_info(v) is not None  # kept


def test_restore_refuses_rows_moved_between_spws(base, tmp_path):
    v = copy(base, tmp_path / "moved.ms")
    backup_columns(casatools(), v, with_flag=False, method="scale")
    tb = casatools().table()
    try:  # the same number of rows, but one of spw 0 now says spw 1
        tb.open(v, nomodify=False)
        dd = tb.getcol("DATA_DESC_ID")
        tb.putcell("DATA_DESC_ID", int(np.nonzero(dd == 0)[0][-1]), 1)
    finally:
        tb.done()
    k = int((dd == 0).sum())
    with pytest.raises(RuntimeError, match=f"data description 0: {k} saved rows against {k - 1} in the MS"):
        restore_columns(casatools(), v)


def test_restore_removes_weight_spectra_a_fix_added_and_keeps_earlier_ones(base, tmp_path):
    from casatasks import initweights
    v = copy(base, tmp_path / "added.ms")
    original, files = main_table(v), files_of(v)
    backup_columns(casatools(), v, with_flag=False, method="statwt")
    initweights(vis=v, wtmode="weight", dowtsp=True)  # adds WEIGHT_SPECTRUM (and SIGMA_SPECTRUM), as statwt may
    assert "WEIGHT_SPECTRUM" in main_table(v)
    restore_columns(casatools(), v)
    assert same(main_table(v), original) and files_of(v) == files
    # with the spectra there before the fix, they are saved, restored and kept
    initweights(vis=v, wtmode="weight", dowtsp=True)
    spectra = main_table(v)
    cols = [c for c in ALL if c in spectra and c != "FLAG"]
    assert "WEIGHT_SPECTRUM" in cols
    assert backup_columns(casatools(), v, with_flag=False, method="scale") == cols
    scale_weights(casatools(), v, {(0, "TGT"): 4.0, (1, "TGT"): 4.0, (0, "CAL"): 4.0, (1, "CAL"): 4.0})
    assert not same(main_table(v), spectra)
    assert restore_columns(casatools(), v) == cols
    assert same(main_table(v), spectra)


def test_weights_saved_as_columns_by_earlier_versions_are_restored_in_chunks(base, tmp_path, monkeypatch):
    v = copy(base, tmp_path / "legacy.ms")
    original = main_table(v)
    tb = casatools().table()
    try:
        tb.open(v, nomodify=False)
        for col in ("WEIGHT", "FLAG"):
            desc = tb.getcoldesc(col)
            desc.pop("dataManagerGroup", None)
            desc["dataManagerType"] = "StandardStMan"
            tb.addcols({f"WTCHECK_ORIG_{col}": desc})
            for dd in (0, 1):
                sub = tb.query(f"DATA_DESC_ID=={dd}")
                sub.putcol(f"WTCHECK_ORIG_{col}", sub.getcol(col))
                sub.putcol(col, sub.getcol(col) * 2 if col == "WEIGHT" else ~sub.getcol(col))
                sub.done()
    finally:
        tb.done()
    with pytest.raises(TaskParameterError, match="already holds original weights"):
        backup_columns(casatools(), v, with_flag=False, method="scale")
    monkeypatch.setattr(fix, "ROWS_PER_CHUNK", 3)
    assert restore_columns(casatools(), v) == ["WEIGHT", "FLAG"]
    assert same(main_table(v), original)
    tb = casatools().table()
    try:
        tb.open(v)
        assert not [c for c in tb.colnames() if c.startswith("WTCHECK_ORIG_")]
    finally:
        tb.done()


# --------------------------------------------------------------------------- scaling

def test_scale_divides_the_weights_of_each_spw_and_field(base, tmp_path, monkeypatch):
    v = copy(base, tmp_path / "scale.ms")
    tb = casatools().table()
    try:
        tb.open(v, nomodify=False)
        w = tb.getcol("WEIGHT")
        w[:, 0] = 0.0  # a row without weight: SIGMA -1
        tb.putcol("WEIGHT", w)
        dd, fid = tb.getcol("DATA_DESC_ID"), tb.getcol("FIELD_ID")
    finally:
        tb.done()
    before = columns(v)
    monkeypatch.setattr(fix, "ROWS_PER_CHUNK", 2)
    scale_weights(casatools(), v, {(0, "TGT"): 4.0, (1, "TGT"): float("nan"), (0, "CAL"): 0.0, (1, "CAL"): 0.5,
                                   (7, "TGT"): 3.0})
    after = columns(v)
    factor = np.where((dd == 0) & (fid == 0), 4.0, np.where((dd == 1) & (fid == 1), 0.5, 1.0))
    changed = factor != 1.0
    assert np.allclose(after["WEIGHT"], before["WEIGHT"] / factor, rtol=1e-6)
    w = after["WEIGHT"][:, changed]
    assert np.allclose(after["SIGMA"][:, changed], np.where(w > 0, 1 / np.sqrt(np.where(w > 0, w, 1)), -1.0),
                       rtol=1e-6)
    assert after["SIGMA"][0, 0] == -1.0 and changed[0]
    assert np.array_equal(after["SIGMA"][:, ~changed], before["SIGMA"][:, ~changed])  # untouched rows keep SIGMA
    assert np.array_equal(after["FLAG"], before["FLAG"])


def test_scale_of_weight_spectra(base, tmp_path):
    from casatasks import initweights
    v = copy(base, tmp_path / "spectra.ms")
    initweights(vis=v, wtmode="weight", dowtsp=True)
    before = main_table(v)
    scale_weights(casatools(), v, {(0, "TGT"): 2.0, (1, "TGT"): 2.0, (0, "CAL"): 2.0, (1, "CAL"): 2.0})
    after = main_table(v)
    for r in range(len(before["WEIGHT"])):
        assert np.allclose(after["WEIGHT_SPECTRUM"][r], before["WEIGHT_SPECTRUM"][r] / 2, rtol=1e-6)
        assert np.allclose(after["WEIGHT"][r], before["WEIGHT"][r] / 2, rtol=1e-6)
        if "SIGMA_SPECTRUM" in after:
            assert np.allclose(after["SIGMA_SPECTRUM"][r], 1 / np.sqrt(after["WEIGHT_SPECTRUM"][r]), rtol=1e-6)


# --------------------------------------------------------------------------- disk space

def test_space_needed_by_the_backup(base, tmp_path, monkeypatch):
    n = nrows(base)
    # the first row's cells: WEIGHT and SIGMA 2 floats each, FLAG 2 x 13 bits in 4 bytes
    assert check_space(casatools(), base, with_flag=False) == int(n * (8 + 8) * 1.1)
    assert check_space(casatools(), base, with_flag=True) == int(n * (8 + 8 + 4) * 1.1)
    from casatasks import initweights
    v = copy(base, tmp_path / "space.ms")
    initweights(vis=v, wtmode="weight", dowtsp=True)
    spectra = [c for c in ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM") if c in main_table(v)]
    assert check_space(casatools(), v, with_flag=False) == int(n * (8 + 8 + len(spectra) * 2 * 13 * 4) * 1.1)
    from almatools.errors import ResourceLimitError
    monkeypatch.setattr(fix, "SPACE_MARGIN", 1e12)
    with pytest.raises(ResourceLimitError, match="parameter 'fix' needs .* of disk space"):
        check_space(casatools(), base, with_flag=False)


def test_flag_bits_are_rounded_up_to_bytes(base, tmp_path):
    v = str(tmp_path / "sorted.ms")
    tb = casatools().table()
    try:  # spw 1 first: the first row's FLAG is 2 x 8 bits, two bytes
        tb.open(base)
        q = tb.query("", sortlist="DATA_DESC_ID DESC")
        q.copy(v, deep=True).done()
        q.done()
    finally:
        tb.done()
    n = nrows(v)
    assert check_space(casatools(), v, with_flag=True) == int(n * (8 + 8 + 2) * 1.1)


def test_an_empty_ms_needs_no_space_and_saves_the_weight_columns(base, tmp_path):
    from casatasks import initweights
    full = copy(base, tmp_path / "full.ms")
    initweights(vis=full, wtmode="weight", dowtsp=True)  # spectra columns, but no cell to read
    v = str(tmp_path / "empty.ms")
    tb = casatools().table()
    try:
        tb.open(full)
        tb.copy(v, deep=True, norows=True)
    finally:
        tb.done()
    assert check_space(casatools(), v, with_flag=True) == 0
    assert backup_columns(casatools(), v, with_flag=True, method="statwt") == ["WEIGHT", "SIGMA", "FLAG"]
    assert backup_info(v)["nrows"] == 0
    assert restore_columns(casatools(), v) == ["WEIGHT", "SIGMA", "FLAG"] and backup_info(v) is None


def test_a_single_row_ms_with_weight_spectra(base, tmp_path):
    from casatasks import initweights
    full = copy(base, tmp_path / "full.ms")
    initweights(vis=full, wtmode="weight", dowtsp=True)
    v = first_row_copy(full, tmp_path / "one.ms")
    original = main_table(v)
    spectra = [c for c in ("WEIGHT_SPECTRUM", "SIGMA_SPECTRUM") if c in original]
    assert spectra and nrows(v) == 1
    # one row of spw 0: WEIGHT, SIGMA 2 floats, the spectra 2 x 13 floats, FLAG 26 bits in 4 bytes
    assert check_space(casatools(), v, with_flag=True) == int((8 + 8 + len(spectra) * 2 * 13 * 4 + 4) * 1.1)
    assert backup_columns(casatools(), v, with_flag=False, method="scale") == ["WEIGHT", "SIGMA"] + spectra
    scale_weights(casatools(), v, {(0, "TGT"): 2.0})
    assert restore_columns(casatools(), v) == ["WEIGHT", "SIGMA"] + spectra and same(main_table(v), original)


def test_flag_bits_of_a_single_correlation(base, tmp_path):
    from casatasks import split
    v = str(tmp_path / "xx.ms")
    split(vis=base, outputvis=v, spw="0:0~8", correlation="XX", datacolumn="data")  # FLAG: 1 x 9 bits, 2 bytes
    assert np.asarray(main_table(v, ("FLAG",))["FLAG"][0]).shape == (1, 9)
    assert check_space(casatools(), v, with_flag=True) == int(nrows(v) * (4 + 4 + 2) * 1.1)
