"""How almafetch moves bytes, seen from the server: parallel streams (five by default, never more per host),
one large file as parallel ranges, resuming a killed run range by range, two runs sharing one outdir,
and files the server cuts short or replaces by an HTML page when neither DataLink nor the server tells
their size or digest."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from almatools.casa_tasks import almafetch
from almatools.plugins.archive.emulator import Fault

# archive.slow_url: the emulator's archive behind a proxy that paces every connection to 1 MiB/s and records
# each request (what the client asked, the bytes it was sent, when): the server's view of the transfer


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _gets(archive, name: str, since: float = 0.0) -> list:
    """The slow proxy's records of GET requests for one dataPortal file, begun after *since* (monotonic)."""
    return [q for q in archive.slow.requests if q.method == "GET" and q.path == f"/dataPortal/{name}"
            and q.start >= since]


#: the proxy stamps a request's end after relaying its last byte; on a loaded machine its thread may run again
#: only after the client has read that byte and begun the next request, so ends are taken this much earlier
END_SLACK_S = 0.3


def _max_overlap(entries: list) -> int:
    """The most requests in flight at once, from their (start, end) times."""
    ends = [max(e.start, e.end - END_SLACK_S) for e in entries]
    events = sorted([(e.start, 1) for e in entries] + [(end, -1) for end in ends], key=lambda t: (t[0], t[1]))
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def _span(q) -> tuple[int, int]:
    a, b = q.headers["range"].removeprefix("bytes=").split("-")
    return int(a), int(b) + 1


def _ranges_cover_exactly(entries: list, size: int) -> bool:
    """The byte ranges served add up to the file once: no gap, no byte twice."""
    spans = sorted(_span(q) for q in entries)
    at = 0
    for a, b in spans:
        if a != at:
            return False
        at = b
    return at == size


def test_one_large_file_comes_as_parallel_ranges_over_five_streams_by_default(archive, tmp_path):
    mous = "uid://A001/Xrange/X1"
    name, = archive.add_bulk_mous(mous, 1, 12_000_000)
    size = archive.file_path(name).stat().st_size
    t0 = time.monotonic()
    r = almafetch(uid=[mous], raw=True, service=archive.slow_url, outdir=str(tmp_path))  # nstreams not given
    assert r["ok"] and r["failed"] == [] and r["ndownloaded"] == 1
    assert sha256(tmp_path / name) == sha256(archive.file_path(name))
    gets = _gets(archive, name, t0)
    assert all(q.status == 206 and q.headers.get("range") for q in gets)
    assert _max_overlap(gets) == 5                     # the default: five streams, and no more to one host
    assert sum(q.body_bytes for q in gets) == size     # assembled in place: no byte fetched twice
    assert _ranges_cover_exactly(gets, size)
    assert not list(tmp_path.glob("*.part*"))


def test_many_files_share_the_streams_and_nstreams_is_respected(archive, tmp_path):
    mous = "uid://A001/Xstreams/X1"
    names = archive.add_bulk_mous(mous, 6, 1_200_000)
    t0 = time.monotonic()
    r = almafetch(uid=[mous], raw=True, service=archive.slow_url, outdir=str(tmp_path / "five"))
    assert r["ok"] and r["ndownloaded"] == 6
    gets = [q for n in names for q in _gets(archive, n, t0)]
    assert _max_overlap(gets) == 5
    t1 = time.monotonic()
    r = almafetch(uid=[mous], raw=True, service=archive.slow_url, outdir=str(tmp_path / "two"), nstreams=2)
    assert r["ok"] and r["ndownloaded"] == 6
    gets = [e for n in names for e in _gets(archive, n, t1)]
    assert _max_overlap(gets) == 2
    for n in names:
        assert sha256(tmp_path / "two" / n) == sha256(archive.file_path(n))


def _run_in_child(code: str) -> subprocess.Popen:
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def test_a_killed_run_resumes_each_range_where_it_stopped(archive, tmp_path):
    mous = "uid://A001/Xkill/X1"
    name, = archive.add_bulk_mous(mous, 1, 16_000_000)
    size = archive.file_path(name).stat().st_size
    state = tmp_path / f"{name}.part.json"
    child = _run_in_child(f"from almatools.casa_tasks import almafetch; almafetch(uid=['{mous}'], raw=True, "
                          f"service='{archive.slow_url}', outdir='{tmp_path}', reserve='0B')")
    deadline = time.monotonic() + 60
    missing = size
    while time.monotonic() < deadline and child.poll() is None:  # kill once about half has arrived
        try:
            recorded = json.loads(state.read_text())
            missing = sum(b - a for a, b in recorded["segments"])
        except (OSError, ValueError):
            pass
        if missing < size * 0.6:
            break
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    recorded = json.loads(state.read_text())
    missing = sum(b - a for a, b in recorded["segments"])
    assert len(recorded["segments"]) > 1 and 0 < missing < size  # split, and killed half-way
    t0 = time.monotonic()
    r = almafetch(uid=[mous], raw=True, service=archive.slow_url, outdir=str(tmp_path), reserve="0B")
    assert r["ok"] and r["ndownloaded"] == 1 and sha256(tmp_path / name) == sha256(archive.file_path(name))
    again = _gets(archive, name, t0)
    assert sum(q.body_bytes for q in again) == missing    # only what the record said was missing
    assert r["bytes_downloaded"] == missing
    for a, b in sorted(_span(q) for q in again):  # every range asked lies in a gap the killed run left
        assert any(lo <= a and b <= hi for lo, hi in recorded["segments"]), (a, b)
    assert not state.exists()


def test_two_runs_into_one_outdir_share_the_work(archive, tmp_path):
    mous = "uid://A001/Xtwice/X1"
    names = archive.add_bulk_mous(mous, 3, 3_000_000)
    out = tmp_path / "out"

    def child(k):  # imports first, then waits for its go file, so the two start when the test says
        return _run_in_child(
            f"import json, os, time; from almatools.casa_tasks import almafetch; import almatools.log as l; "
            f"l.casalog(); open('{tmp_path}/ready{k}', 'w').close()\n"
            f"while not os.path.exists('{tmp_path}/go{k}'): time.sleep(0.02)\n"
            f"r = almafetch(uid=['{mous}'], raw=True, service='{archive.slow_url}', outdir='{out}', reserve='0B', "
            f"nstreams=2); print('RESULT', json.dumps({{k: r[k] for k in ('ok', 'ndownloaded', 'npresent', "
            f"'nfailed')}}))")
    children = [child(1), child(2)]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready{k}").exists() for k in (1, 2)) and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    (tmp_path / "go1").touch()
    while not list(out.glob("*.part")) and time.monotonic() < deadline:
        time.sleep(0.02)
    (tmp_path / "go2").touch()  # the first run is writing: the second starts in the middle of it
    results = []
    for c in children:
        text, _ = c.communicate(timeout=120)
        assert c.returncode == 0, text.decode(errors="replace")[-2000:]
        line = next(line for line in text.decode().splitlines() if line.startswith("RESULT "))
        results.append(json.loads(line[7:]))
    assert all(r["ok"] and r["nfailed"] == 0 for r in results)
    assert sum(r["ndownloaded"] for r in results) == 3       # each file downloaded once, by one of the two
    assert sum(r["npresent"] for r in results) == 3          # ... and found complete by the other
    for n in names:
        assert sha256(out / n) == sha256(archive.file_path(n))
        assert sum(q.body_bytes for q in _gets(archive, n, t0)) == archive.file_path(n).stat().st_size
    assert not list(out.glob("*.part*"))


# ------------------------------------------------- no size from DataLink, no digest from the server

def _unsized(archive, suffix: str) -> str:
    return next(n for n, v in sorted(archive.manifest.items()) if v["public"] and not v["sized"] and n.endswith(suffix))


def _mous_of(archive, name: str) -> str:
    return archive.manifest[name]["mous"]


@pytest.mark.parametrize("suffix, include, fault, why", [
    (".asdm.sdm.tar", [], Fault("truncate", after=30_000, method="GET"), "tar"),
    (".pbcor.fits", ["*.pbcor.fits"], Fault("truncate", after=100_000, method="GET"), "FITS"),
    (".asdm.sdm.tar", [], Fault("html", method="GET"), "HTML"),
    (".README.txt", ["*.README.txt"], Fault("html", method="GET"), "HTML"),
])
def test_a_short_body_or_an_html_page_is_never_reported_as_downloaded(archive, tmp_path, suffix, include, fault, why):
    """DataLink gives no size, nginx no digest, and the HEAD answer hides the length: only the content
    type and the format's own structure can tell; with no retry left the file fails, with one it comes."""
    name = _unsized(archive, suffix)
    path = f"/dataPortal/{name}"
    archive.faults.clear()
    archive.faults.inject(Fault("nolength", method="HEAD", path=path), Fault(fault.kind, fault.after, path=path,
                                                                             method="GET"))
    r = almafetch(uid=[_mous_of(archive, name)], include=include, raw=True, service=archive.faulty_url,
                  outdir=str(tmp_path), retries=0)
    assert archive.faults.pending() == 0
    f = next(f for f in r["files"] if f["name"] == name)
    assert f["status"] == "failed" and why.lower() in f["error"].lower(), f
    assert r["ok"] is False and name in {x["name"] for x in r["failed"]}
    assert not (tmp_path / name).exists()
    archive.faults.inject(Fault("nolength", method="HEAD", path=path), Fault(fault.kind, fault.after, path=path,
                                                                             method="GET"))
    r = almafetch(uid=[_mous_of(archive, name)], include=include, raw=True, service=archive.faulty_url,
                  outdir=str(tmp_path), retries=1)
    f = next(f for f in r["files"] if f["name"] == name)
    assert f["status"] == "downloaded" and f["attempts"] == 2 and sha256(tmp_path / name) == \
        archive.manifest[name]["sha256"]


def test_a_short_body_is_resumed_when_head_gives_the_length(archive, tmp_path):
    name = _unsized(archive, ".asdm.sdm.tar")
    archive.faults.clear()
    archive.faults.inject(Fault("truncate", after=25_000, method="GET", path=f"/dataPortal/{name}"))
    r = almafetch(uid=[_mous_of(archive, name)], raw=True, service=archive.faulty_url, outdir=str(tmp_path))
    f = next(f for f in r["files"] if f["name"] == name)
    assert f["status"] == "downloaded" and f["size_from"] == "HEAD" and "size" in f["verified"]
    assert sha256(tmp_path / name) == archive.manifest[name]["sha256"]
    gets = [q for q in archive.faults.requests if q.method == "GET" and q.path == f"/dataPortal/{name}"]
    assert gets[0].body_bytes == 25_000 and gets[1].headers["range"].startswith("bytes=25000-")
    assert sum(q.body_bytes for q in gets) == archive.manifest[name]["size"]


def test_a_file_nothing_can_vouch_for_is_unverified_not_downloaded(archive, tmp_path):
    """A text file, no size anywhere, no digest, a close-delimited body: complete or not, nobody can tell."""
    name = _unsized(archive, ".README.txt")
    archive.faults.clear()
    archive.faults.inject(Fault("nolength", method="HEAD", path=f"/dataPortal/{name}"),
                          Fault("nolength", method="GET", path=f"/dataPortal/{name}"))
    r = almafetch(uid=[_mous_of(archive, name)], include=["*.README.txt"], service=archive.faulty_url,
                  outdir=str(tmp_path))
    f = r["files"][0]
    assert f["status"] == "unverified" and "nothing could confirm" in f["error"]
    assert r["ok"] is False and r["ndownloaded"] == 0 and not (tmp_path / name).exists()
    assert (tmp_path / f"{name}.part").read_bytes() == archive.file_path(name).read_bytes()
