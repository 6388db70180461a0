"""The batch engine: input tables, validation before anything runs, the ledger, the local process pool,
casampi's MPI client and servers under a real `mpirun -n 3`, faults and reruns, Multi-MS parallelism,
almafetch's shared budget, the command line and the casa% prompt face.

Reference results come from a plain loop of the same task calls in this process; the engines must give
exactly the same result dictionaries (and output files).
"""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

import almatools
from almatools.batch import Ledger, LedgerBusyError, downloads, engine as batch_engine, inputs, ledger as ledgermod
from almatools.batch.engine import BatchInputError, Job
from almatools.batch.ledger import to_json
from almatools.errors import InputFileError, ResourceLimitError, TaskParameterError
from almatools.registry import get_registry

ROOT = Path(__file__).resolve().parents[1]
ALMATOOLS = Path(sys.executable).with_name("almatools")
MPIRUN = ["mpirun", "-n", "3", "--allow-run-as-root", "--oversubscribe"]
DIRECTION = "J2000 11h01m51.9s -34d42m17.0s"


def frameconv_rows(n, ntimes=11):
    """n distinct CPU-bound frameconv calls (CASA measures over ntimes epochs); no files needed."""
    return [{"mode": "values", "values": [230.0 + 0.25 * i], "unit": "GHz", "inframe": "LSRK", "outframe": "TOPO",
             "epoch": "2024/11/15/00:00:00~2024/11/16/00:00:00", "ntimes": ntimes, "direction": DIRECTION}
            for i in range(n)]


def loop(task, rows, shared=None):
    """The reference: the same calls one after another in this process."""
    from almatools import casa_tasks
    return [to_json(getattr(casa_tasks, task)(**{**(shared or {}), **row})) for row in rows]


def assert_same_numbers(a, b, rtol=1e-12, where="result"):
    """Equal structures, strings and integers; floats within *rtol*.

    For frameconv: CASA's measures give last-digit differences (~1e-14) between a fresh process and one that
    has converted before (its caches), whatever runs the call; wtcheck and tbconv compare exactly (rtol=0;
    NaN equals NaN here, where ``==`` on lists that went through JSON would not).
    """
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for k in a:
            assert_same_numbers(a[k], b[k], rtol, f"{where}[{k!r}]")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_numbers(x, y, rtol, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or abs(a - b) <= rtol * max(abs(a), abs(b)) or (a != a and b != b), (where, a, b)
    else:
        assert a == b, (where, a, b)


# --------------------------------------------------------------------------- data

def make_cube(path, seed, nchan=6, n=20):
    from astropy.io import fits
    rng = np.random.default_rng(seed)
    data = rng.normal(0.01, 0.002, (1, nchan, n, n)).astype(np.float32)
    h = fits.Header()
    for k, v in dict(CTYPE1="RA---SIN", CRVAL1=165.466, CDELT1=-1e-4, CRPIX1=n / 2, CUNIT1="deg",
                     CTYPE2="DEC--SIN", CRVAL2=-34.7, CDELT2=1e-4, CRPIX2=n / 2, CUNIT2="deg",
                     CTYPE3="FREQ", CRVAL3=100e9 + 20e9 * seed, CDELT3=1e6, CRPIX3=1, CUNIT3="Hz",
                     CTYPE4="STOKES", CRVAL4=1, CDELT4=1, CRPIX4=1, BUNIT="Jy/beam",
                     BMAJ=(1.0 + 0.1 * seed) / 3600, BMIN=0.6 / 3600, BPA=30.0, SPECSYS="LSRK").items():
        h[k] = v
    fits.PrimaryHDU(data, h).writeto(path, overwrite=True)
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """8 simulated MSs (modern and CASA 4.2.1 weights), a Multi-MS of the first, 12 FITS cubes."""
    from almatools.testing import simulate_ms
    root = tmp_path_factory.mktemp("batch-data")
    spws = [("spw0", 230e9, 1e6, 32), ("spw1", 232e9, 2e6, 16)]
    mss = [simulate_ms(root / f"ms{i}.ms", spws, nant=4, duration_s=600, integration_s=30, noise_k=1.0, seed=i,
                       weights="modern" if i % 2 == 0 else "casa421") for i in range(8)]
    from casatasks import partition
    mms = str(root / "ms0.mms")
    partition(vis=mss[0], outputvis=mms, createmms=True, separationaxis="spw", numsubms=2, flagbackup=False)
    cubes = [make_cube(root / f"cube{i:02d}.fits", i) for i in range(12)]
    return {"root": root, "ms": mss, "mms": mms, "cubes": cubes}


def tb_rows(cubes, outdir):
    return [{"imagename": c, "outfile": str(Path(outdir) / (Path(c).stem + ".K.fits"))} for c in cubes]


def without_dir(results, outdir):
    """Results with the output directory taken out of every path (engines write to different directories)."""
    return json.loads(json.dumps(results).replace(str(outdir), "OUT"))


def fits_data(path):
    from astropy.io import fits
    with fits.open(path) as hdul:
        return hdul[0].data.copy()


# --------------------------------------------------------------------------- input tables

def _task(name):
    return get_registry().get(name)


def test_csv_ecsv_json_and_python_rows_give_the_same_calls(tmp_path):
    from astropy.table import Table
    rows = [{"values": [1.0, 2.0], "freq": "230GHz", "beam": ["1arcsec", "0.5arcsec"], "inplace": False},
            {"values": [3.5], "freq": "100GHz", "beam": ["2arcsec", "2arcsec"], "inplace": True}]
    (tmp_path / "t.csv").write_text('values,freq,beam,inplace\n"1,2",230GHz,"1arcsec,0.5arcsec",false\n'
                                    '[3.5],100GHz,"[""2arcsec"", ""2arcsec""]",true\n')
    (tmp_path / "t.json").write_text(json.dumps(rows))
    t = Table()
    t["values"] = ["1,2", "[3.5]"]
    t["freq"] = ["230GHz", "100GHz"]
    t["beam"] = ["1arcsec,0.5arcsec", "2arcsec,2arcsec"]
    t["inplace"] = [False, True]
    t.write(tmp_path / "t.ecsv", format="ascii.ecsv")
    task = _task("tbconv")
    expected = [task.resolve(r) for r in rows]
    for source in (tmp_path / "t.csv", tmp_path / "t.json", tmp_path / "t.ecsv", rows):
        jobs = batch_engine.prepare_jobs(task, inputs.rows_from(source, task), {})
        assert [j.params for j in jobs] == expected, source
    # an empty CSV cell and a masked ECSV cell mean "not given": the shared value or the default applies
    (tmp_path / "e.csv").write_text("values,freq\n1,230GHz\n2,\n")
    jobs = batch_engine.prepare_jobs(task, inputs.read_inputs(tmp_path / "e.csv", task), {"freq": "345GHz"})
    assert [j.params["freq"] for j in jobs] == ["230GHz", "345GHz"]
    assert [j.row.where for j in jobs] == ["e.csv line 2", "e.csv line 3"]


def test_input_tables_are_refused_with_the_file_and_line(tmp_path):
    task = _task("tbconv")
    cases = {"a.csv": ("values,nosuchparam\n1,2\n", "column 'nosuchparam' is not a parameter of tbconv"),
             "b.csv": ("values,freq\n1,230GHz\n2\n", "line 3: has 1 cells where the header names 2"),
             "c.json": ('{"values": 1}', "must hold a JSON list"),
             "d.json": ('[{"values": [1]}, 7]', "item 1 is a int"),
             "e.ecsv": ("# %ECSV 1.0\n# ---\nnot a table", "is not a valid ECSV table"),
             "f.csv": ("", "is empty"),
             "g.txt": ("values\n1\n", "is not an input table")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(InputFileError) as err:
            inputs.read_inputs(tmp_path / name, task)
        assert name in str(err.value) and message in str(err.value), (name, str(err.value))
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="FIFO"):
        inputs.read_inputs(fifo, task)


def test_input_size_and_row_bounds_are_checked_before_reading(tmp_path, monkeypatch):
    task = _task("tbconv")
    path = tmp_path / "many.csv"
    path.write_text("values\n" + "".join(f"{i}\n" for i in range(50)))
    monkeypatch.setattr(inputs, "MAX_ROWS", 20)
    with pytest.raises(ResourceLimitError, match="50 rows|21 rows"):
        inputs.read_inputs(path, task)
    monkeypatch.setattr(inputs, "MAX_BYTES", 64)
    with pytest.raises(ResourceLimitError, match="many.csv"):
        inputs.read_inputs(path, task)


@pytest.mark.fuzz
@given(st.text(alphabet=st.sampled_from(list('values,freq,beam\n"[]12.GHz \t\r;x')), max_size=300))
def test_csv_reader_gives_rows_or_a_clear_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "in.csv"
    path.write_text(text)
    task = _task("tbconv")
    try:
        rows = inputs.read_inputs(path, task)
    except InputFileError as exc:
        assert "in.csv" in str(exc)
        return
    for row in rows:
        assert set(row.given) <= set(task.spec.names)


# --------------------------------------------------------------------------- validation

def test_every_bad_row_is_named_and_nothing_runs(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("mode,values,unit,ntimes,epoch\nvalues,230,GHz,11,2024/11/15/00:00:00~2024/11/16/00:00:00\n"
                    "values,abc,GHz,11,2024/11/15\nvalues,nan,GHz,11,2024/11/15\nvalues,230,GHz,1,2024/11/15\n"
                    "values,230,GHz,11,2024/11/15/00:00:00~2024/11/16/00:00:00\n")
    with pytest.raises(BatchInputError) as err:
        almatools.batch("frameconv", path, shared={"direction": DIRECTION, "outframe": "TOPO"})
    text = str(err.value)
    assert "4 input row(s) would be refused; nothing was run" in text
    for line, what in ((3, "'values' cannot be read from 'abc'"), (4, "finite"), (5, "'ntimes'"), (6, "the same call as in.csv line 2")):
        assert f"in.csv line {line}:" in text and what in text, (line, text)
    assert not list(tmp_path.glob("*.ledger")) and not list(tmp_path.glob("*.ecsv"))
    with pytest.raises(TaskParameterError, match="'nosuch' is not a parameter"):
        almatools.batch("frameconv", path, shared={"nosuch": 1})
    with pytest.raises(TaskParameterError, match="engine"):
        almatools.batch("frameconv", path, engine="threads")


# --------------------------------------------------------------------------- the ledger

def _events(n):
    return [(f"k{i % 7}", ("running", "done", "failed")[i % 3], {"row": i % 7, "result": {"x": i, "nan": float("nan")}})
            for i in range(n)]


def test_ledger_read_after_a_cut_at_every_byte_keeps_every_complete_event(tmp_path):
    path = tmp_path / "l.ledger"
    with Ledger(path, "frameconv") as book:
        for key, status, fields in _events(20):
            book.record(key, status, **fields)
    full = path.read_bytes()
    lines = full.split(b"\n")[:-1]
    for cut in range(len(full) + 1):
        path.write_bytes(full[:cut])
        header, states = ledgermod.read_ledger(path)
        complete = full[:cut].count(b"\n")
        expected = {}
        for raw in lines[1:complete]:  # the test's own reading: the last complete line of each key wins
            record = json.loads(raw)
            expected[record["key"]] = record
        assert states.keys() == expected.keys(), cut
        assert json.dumps(states, sort_keys=True) == json.dumps(expected, sort_keys=True)
        assert (header != {}) == (complete >= 1)
    path.write_bytes(full[:len(full) // 2])
    with Ledger(path, "frameconv") as book:  # a run after the crash compacts away the torn line
        pass
    assert path.read_bytes().endswith(b"\n") and all(json.loads(x) for x in path.read_bytes().splitlines())


@given(st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.tuples(kids, kids),
                           st.dictionaries(st.one_of(st.text(max_size=3), st.integers(), st.booleans()), kids,
                                           max_size=3),
                           kids.map(lambda v: np.array([1.5, 2.5]) if isinstance(v, bool) else v)),
    max_leaves=12))
def test_ledger_states_are_what_a_later_run_reads_back(tmp_path_factory, value):
    """The state kept in memory after a record equals the ledger line read back, whatever the result holds
    (numpy arrays, tuples, non-string keys, NaN): the writer keeps its own copy only when they agree."""
    path = tmp_path_factory.mktemp("l") / "x.ledger"
    with Ledger(path, "frameconv") as book:
        kept = book.record("k", "done", row=1, result=value)
        kept_as_is = book.record("j", "done", row=2, result=to_json(value), json_types=True)  # as the engine does
    read = ledgermod.read_ledger(path)[1]
    assert _identical(kept, read["k"]), (kept, read["k"])
    assert _identical(kept_as_is, read["j"]), (kept_as_is, read["j"])


def _identical(a, b) -> bool:
    """Equal with the same types all the way down (a tuple is not a list, 1 is not '1'); NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


WRITER = """
import sys, time
from almatools.batch import Ledger
with Ledger(sys.argv[1], "frameconv") as book:
    i = 0
    while True:
        book.record(f"k{i % 50}", ("running", "done")[i % 2], row=i % 50, result={"blob": "x" * (i % 5000)})
        i += 1
"""


def test_ledger_stays_readable_when_its_writer_is_killed_at_random_moments(tmp_path):
    path = tmp_path / "kill.ledger"
    rng = np.random.default_rng(3)
    seen = 0
    for attempt in range(4):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        deadline = time.time() + 60
        while not path.exists() or path.stat().st_size < 2000 * (attempt + 1):
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.3))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        header, states = ledgermod.read_ledger(path)
        assert header["task"] == "frameconv" and len(states) >= seen
        seen = len(states)
        for record in states.values():
            assert record["status"] in ("running", "done") and len(record["result"]["blob"]) < 5000
    assert seen == 50


def test_ledger_is_locked_and_belongs_to_one_task(tmp_path):
    path = tmp_path / "a.ledger"
    with Ledger(path, "frameconv"):
        with pytest.raises(LedgerBusyError, match=f"pid {os.getpid()}"):
            Ledger(path, "frameconv").open()
    with pytest.raises(InputFileError, match="ledger of a batch of task 'frameconv', not 'tbconv'"):
        Ledger(path, "tbconv").open()
    (tmp_path / "b.ledger").write_text('{"not": "a ledger"}\n')
    with pytest.raises(InputFileError, match="line 1"):
        Ledger(tmp_path / "b.ledger", "tbconv").open()


# --------------------------------------------------------------------------- the local engine

def test_local_pool_equals_a_plain_loop_for_tbconv_and_wtcheck(data, tmp_path):
    rows = tb_rows(data["cubes"], tmp_path / "pool")
    reference = loop("tbconv", tb_rows(data["cubes"], tmp_path / "loop"))
    r = almatools.batch("tbconv", rows, nworkers=2, ledger=tmp_path / "tb.ledger", outtable=tmp_path / "tb.ecsv")
    assert r["ok"] and r["done"] == 12 and r["ran"] == list(range(12)) and r["nworkers"] == 2
    assert without_dir(r["results"], tmp_path / "pool") == without_dir(reference, tmp_path / "loop")
    for row in rows:  # the output cubes too, bit for bit
        name = Path(row["outfile"]).name
        assert np.array_equal(fits_data(row["outfile"]), fits_data(tmp_path / "loop" / name))
    # and one cube against astropy's Rayleigh-Jeans equivalency (independent of CASA and of tbconv)
    import astropy.units as u
    from astropy.io import fits
    with fits.open(data["cubes"][3]) as hdul:
        h, jy = hdul[0].header, hdul[0].data[0, 2]
    beam = 2 * np.pi * (h["BMAJ"] * u.deg) * (h["BMIN"] * u.deg) / (8 * np.log(2))
    freq = (h["CRVAL3"] + 2 * h["CDELT3"]) * u.Hz
    kelvin = (jy * u.Jy / beam).to(u.K, u.brightness_temperature(freq)).value
    np.testing.assert_allclose(fits_data(rows[3]["outfile"])[0, 2], kelvin, rtol=1e-5)
    from astropy.table import Table
    table = Table.read(tmp_path / "tb.ecsv")
    assert list(table["status"]) == ["done"] * 12 and list(table["imagename"]) == data["cubes"]
    calls = json.loads((tmp_path / "tb.json").read_text())["calls"]
    assert [c["result"] for c in calls] == r["results"]

    wt_rows = [{"vis": [v]} for v in data["ms"]]
    r = almatools.batch("wtcheck", wt_rows, nworkers=2, ledger=tmp_path / "wt.ledger", outtable=tmp_path / "wt.ecsv")
    assert r["ok"]
    assert_same_numbers(r["results"], loop("wtcheck", wt_rows), rtol=0)  # exactly (NaN where a group is unmeasured)
    table = Table.read(tmp_path / "wt.ecsv")
    assert list(table["consistent"]) == [res["consistent"] for res in r["results"]]


def _worker_pids():
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"almatools.batch.worker" in cmd:
            found.append(int(entry.name))
    return found


def test_a_bad_input_and_a_killed_worker_fail_alone_and_a_rerun_does_only_them(data, tmp_path):
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"SIMPLE  =                    T" + b"\0" * 3000)  # a FITS file cut short
    rows = tb_rows(data["cubes"][:4], tmp_path / "out") + [{"imagename": str(bad), "outfile": str(tmp_path / "b.K.fits")}]
    slow = [dict(r, ntimes=3000) for r in frameconv_rows(6)]
    ledger = tmp_path / "f.ledger"
    box = {}
    runner = threading.Thread(target=lambda: box.update(r=almatools.batch(
        "frameconv", slow, nworkers=2, ledger=ledger, outtable=tmp_path / "f.ecsv")))
    runner.start()
    deadline = time.time() + 240
    while True:  # kill a worker while it runs a call
        assert time.time() < deadline and runner.is_alive()
        states = ledgermod.read_ledger(ledger)[1] if ledger.exists() else {}
        pids = _worker_pids()
        if pids and any(s["status"] == "running" for s in states.values()) and \
                sum(s["status"] == "done" for s in states.values()) >= 1:
            os.kill(pids[0], signal.SIGKILL)
            break
        time.sleep(0.05)
    runner.join()
    r = box["r"]
    assert len(r["failed"]) == 1 and r["done"] == 5
    assert "WorkerDied" in r["failed"][0]["error"] and "SIGKILL" in r["failed"][0]["error"]
    again = almatools.batch("frameconv", slow, nworkers=2, ledger=ledger, outtable=tmp_path / "f.ecsv")
    assert again["ran"] == [r["failed"][0]["row"]] and again["ok"]
    lost = r["failed"][0]["row"]
    assert_same_numbers(again["results"][lost], loop("frameconv", [slow[lost]])[0])

    r = almatools.batch("tbconv", rows, nworkers=2, ledger=tmp_path / "t.ledger", outtable=tmp_path / "t.ecsv")
    assert r["done"] == 4 and [f["row"] for f in r["failed"]] == [4] and "broken.fits" in r["failed"][0]["error"]
    state = ledgermod.read_ledger(tmp_path / "t.ledger")[1]
    assert sorted(s["status"] for s in state.values()) == ["done"] * 4 + ["failed"]
    rerun = almatools.batch("tbconv", rows, nworkers=2, ledger=tmp_path / "t.ledger", outtable=tmp_path / "t.ecsv")
    assert rerun["ran"] == [4] and rerun["skipped"] == [0, 1, 2, 3] and not rerun["ok"]
    none = almatools.batch("tbconv", rows, ledger=tmp_path / "t.ledger", outtable=tmp_path / "t.ecsv",
                           retry_failed=False)
    assert none["ran"] == [] and none["failed"] == rerun["failed"]


# --------------------------------------------------------------------------- the faces

def test_command_line_batch_exit_statuses(tmp_path):
    good = tmp_path / "good.csv"
    good.write_text("values\n230.1\n230.2\n")
    common = ["--mode", "values", "--unit", "GHz", "--inframe", "LSRK", "--outframe", "TOPO",
              "--epoch", "2024/11/15/00:00:00", "--direction", DIRECTION]
    out = subprocess.run([str(ALMATOOLS), "batch", "frameconv", "--inputs", str(good), "--nworkers", "1", *common],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout)
    assert summary["done"] == 2 and Path(summary["table"]).exists() and summary["ledger"].endswith(".ledger")
    bad = tmp_path / "bad.csv"
    bad.write_text("values,ntimes\n230.1,5\n230.2,1\n")
    out = subprocess.run([str(ALMATOOLS), "batch", "frameconv", "--inputs", str(bad), *common],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "bad.csv line 3" in out.stderr and "ntimes" in out.stderr
    failing = tmp_path / "failing.csv"
    failing.write_text("values,epoch\n230.1,2024/11/15/00:00:00\n230.2,not a time\n")
    out = subprocess.run([str(ALMATOOLS), "batch", "frameconv", "--inputs", str(failing), "--nworkers", "1",
                          *common[:-4], "--direction", DIRECTION], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 3, out.stderr[-2000:]
    assert "failing.csv line 3" in out.stderr and "1 of 2 input(s) failed" in out.stderr


def test_batch_at_the_casa_prompt_takes_the_prompt_task(tmp_path):
    from almatools.casa_tasks import shell
    ns = {}
    shell.install(ns)
    assert ns["batch"] is almatools.batch
    from almatools.casa_tasks import batch as modular_batch
    assert modular_batch is almatools.batch
    rows = frameconv_rows(2)
    r = ns["batch"](ns["frameconv"], rows, nworkers=1, ledger=tmp_path / "p.ledger", outtable=tmp_path / "p.ecsv")
    assert r["ok"]
    assert_same_numbers(r["results"], loop("frameconv", rows))


# --------------------------------------------------------------------------- almafetch's shared budget

def test_almafetch_batches_share_connections_and_are_refused_over_budget_before_any_download(archive, tmp_path):
    task = _task("almafetch")
    rows = [{"uid": ["uid://A001/X1465/X3"], "outdir": str(tmp_path / "a")},
            {"uid": ["uid://A001/X1295/X35"], "outdir": str(tmp_path / "b")}]
    jobs = batch_engine.prepare_jobs(task, inputs.rows_from(rows, task), {"service": archive.url})
    downloads._share_connections(jobs, 5, 2)
    assert [j.kwargs["params"]["nstreams"] for j in jobs] == [2, 2]
    assert [j.params["nstreams"] for j in jobs] == [5, 5]  # the ledger keys keep the user's values
    with pytest.raises(TaskParameterError, match="less than the 2 calls"):
        downloads._share_connections(jobs, 1, 2)
    with pytest.raises(ResourceLimitError, match="disk_budget") as err:
        almatools.batch("almafetch", rows, shared={"service": archive.url}, nworkers=2, disk_budget="1kB",
                        ledger=tmp_path / "f.ledger", outtable=tmp_path / "f.ecsv")
    assert "nothing was fetched" in str(err.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert ledgermod.read_ledger(tmp_path / "f.ledger")[1] == {}
    with pytest.raises(TaskParameterError, match="applies to batches of almafetch only"):
        almatools.batch("frameconv", frameconv_rows(1), host_connections=4, ledger=tmp_path / "x.ledger")
    assert not (tmp_path / "x.ledger").exists()  # refused before the ledger is opened
    with pytest.raises(TaskParameterError, match="not a size"):
        almatools.batch("almafetch", rows, disk_budget="lots", ledger=tmp_path / "y.ledger")
    assert downloads.parse_size("2GiB", "x") == 2 * 1024 ** 3 and downloads.parse_size("500GB", "x") == 5e11


# --------------------------------------------------------------------------- MPI: casampi under mpirun

MPI_JOB = """
import json, sys
from almatools.batch import mpi
mpi.start()                      # the servers serve from here and never come back
import almatools
from almatools.casa_tasks import wtcheck
args = json.load(open(sys.argv[1]))
out = {}
for name, rows in args["batches"].items():
    r = almatools.batch(name, rows, engine="mpi", ledger=args["dir"] + f"/{name}.ledger",
                        outtable=args["dir"] + f"/{name}.ecsv")
    out[name] = {"results": r["results"], "nworkers": r["nworkers"], "ok": r["ok"],
                 "workers": sorted({c["worker"] for c in json.load(open(r["resultsfile"]))["calls"]})}
out["mms"] = wtcheck(vis=[args["mms"]])
json.dump(out, open(args["out"], "w"), default=str)
"""


def _mpirun(args, cwd, **kw):
    return subprocess.Popen([*MPIRUN, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, **kw)


def _finish(proc, timeout):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the process group this test started
        out, _ = proc.communicate()
        pytest.fail(f"mpirun did not finish in {timeout} s:\n{out[-3000:]}")
    return out


@pytest.mark.slow
def test_mpi_servers_give_the_plain_loop_results_and_a_multims_is_read_on_the_servers(data, tmp_path, casa_log_file):
    from almatools.casa_tasks import wtcheck
    wt_rows = [{"vis": [v]} for v in data["ms"]]
    args = {"batches": {"wtcheck": wt_rows, "tbconv": tb_rows(data["cubes"], tmp_path / "mpi")},
            "mms": data["mms"], "dir": str(tmp_path), "out": str(tmp_path / "out.json")}
    (tmp_path / "args.json").write_text(json.dumps(args))
    (tmp_path / "job.py").write_text(MPI_JOB)
    out = _finish(_mpirun([sys.executable, "job.py", "args.json"], tmp_path), 600)
    assert (tmp_path / "out.json").exists(), out[-4000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["wtcheck"]["ok"] and got["wtcheck"]["nworkers"] == 2
    assert_same_numbers(got["wtcheck"]["results"], loop("wtcheck", wt_rows), rtol=0)
    assert len(got["wtcheck"]["workers"]) == 2  # both servers worked
    reference = loop("tbconv", tb_rows(data["cubes"], tmp_path / "loop"))
    assert without_dir(got["tbconv"]["results"], tmp_path / "mpi") == without_dir(reference, tmp_path / "loop")
    for cube in data["cubes"]:
        name = Path(cube).stem + ".K.fits"
        assert np.array_equal(fits_data(tmp_path / "mpi" / name), fits_data(tmp_path / "loop" / name))
    # the Multi-MS: its two sub-MSs measured on the servers, merged, equal to the serial run of the same MMS
    serial = to_json(wtcheck(vis=[data["mms"]]))
    assert_same_numbers(got["mms"]["groups"], serial["groups"], rtol=0) and got["mms"]["verdict"] == serial["verdict"]
    plain = to_json(wtcheck(vis=[data["ms"][0]]))
    assert_same_numbers([g["ratio"] for g in got["mms"]["groups"]], [g["ratio"] for g in plain["groups"]], rtol=0)
    assert f"{data['mms']}: 2 sub-MSs measured on the MPI servers" in casa_log_file.read_text()


def _ledger_states(path):
    return ledgermod.read_ledger(path)[1] if Path(path).exists() else {}


def _wait_for_done(path, count, proc, timeout=400):
    deadline = time.time() + timeout
    while True:
        states = _ledger_states(path)
        done = [s for s in states.values() if s["status"] == "done"]
        if len(done) >= count:
            return states
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"the batch ended or stalled with {len(done)} done:\n{proc.communicate()[0][-3000:]}")
        time.sleep(0.1)


@pytest.mark.slow
def test_mpi_kill_a_server_then_the_client_and_the_reruns_do_exactly_what_is_missing(tmp_path):
    rows = [dict(r, ntimes=2500) for r in frameconv_rows(12)]
    (tmp_path / "in.json").write_text(json.dumps(rows))
    ledger = tmp_path / "in.frameconv.ledger"
    cmd = [str(ALMATOOLS), "batch", "frameconv", "--inputs", "in.json", "--engine", "mpi"]

    first = _mpirun(cmd, tmp_path)
    states = _wait_for_done(ledger, 2, first)
    server = int(next(s for s in states.values() if s["status"] == "done")["worker"].split(":")[1])
    os.kill(server, signal.SIGKILL)  # one MPI server dies mid-batch: Open MPI ends the job
    out = _finish(first, 300)
    assert first.returncode != 0, out[-2000:]
    after_first = _ledger_states(ledger)
    done_first = {s["row"] for s in after_first.values() if s["status"] == "done"}
    assert 2 <= len(done_first) < 12

    second = _mpirun(cmd, tmp_path)
    _wait_for_done(ledger, len(done_first) + 2, second)
    client = int((tmp_path / "in.frameconv.ledger.lock").read_text().split("pid")[1])
    os.kill(client, signal.SIGKILL)  # the client (rank 0) dies: the ledger says what was done
    _finish(second, 300)
    after_second = _ledger_states(ledger)
    done_second = {s["row"] for s in after_second.values() if s["status"] == "done"}
    assert done_first < done_second and len(done_second) < 12, (done_first, done_second)
    ran_second = {s["row"] for s in after_second.values() if s["time"] > max(x["time"] for x in after_first.values())}
    assert not ran_second & done_first  # nothing done was run again

    final = almatools.batch("frameconv", tmp_path / "in.json", nworkers=2)
    assert sorted(final["ran"]) == sorted(set(range(12)) - done_second)
    assert final["ok"] and final["done"] == 12
    sample = [0, 5, 11]
    assert_same_numbers([final["results"][i] for i in sample], loop("frameconv", [rows[i] for i in sample]))
