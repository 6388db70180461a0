"""almafetch throughput and resume cost against the local archive emulator, all in one run.

Every connection is capped at 20 MiB/s by the emulator's pacing proxy (an even per-connection
rate, like a network path; nginx's own ``limit_rate`` lets every request send its first second
at once, which would reward many short requests).  Measured, with anchors from the same run:

* sequential: one connection streaming files one after the other (what astroquery does): the
  anchor rate;
* many files: almafetch (5 streams) on 10 x 200 MB raw-data tars; target >= 4x the sequential
  rate and >= 90 % of the aggregate cap (5 x 20 MiB/s);
* one file: almafetch on a single 2 GB tar, fetched as byte ranges over the 5 streams;
  target >= 4x sequential and >= 90 % of the aggregate cap;
* resume: almafetch on the 2 GB tar killed (SIGKILL) at 50 %, then run again; the bytes the
  server sent in both runs beyond the file's size, against the size; target <= 1 %.

The bytes are counted by the proxy (what the server sent), not by the client.
``--quick``: 10 x 20 MB, one 200 MB file.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import casa_env

HERE = Path(__file__).resolve().parent
RATE = 20 << 20  # bytes/s per connection
STREAMS = 5
MANY, ONE = "uid://A001/Xbench/X1", "uid://A001/Xbench/X2"


def _sequential(urls: list[str], outdir: Path) -> tuple[int, float]:
    """Stream *urls* one after the other over one connection; (bytes, seconds)."""
    import requests
    outdir.mkdir(parents=True, exist_ok=True)
    total, start = 0, time.perf_counter()
    with requests.Session() as s:
        for url in urls:
            with s.get(url, stream=True, timeout=60) as r, open(outdir / url.rsplit("/", 1)[-1], "wb") as fh:
                r.raise_for_status()
                for chunk in r.iter_content(1 << 20):
                    fh.write(chunk)
                    total += len(chunk)
    return total, time.perf_counter() - start


def _served(proxy, name: str, since: float) -> int:
    """Body bytes the proxy sent for *name* in requests begun after *since*."""
    return sum(q.body_bytes for q in list(proxy.requests)
               if q.method == "GET" and q.path == f"/dataPortal/{name}" and q.start >= since)


def _fetch(almafetch, mous: str, url: str, outdir: Path) -> tuple[int, float]:
    r = almafetch(uid=[mous], raw=True, service=url, outdir=str(outdir), reserve="0B")
    assert r["ok"] and r["nfailed"] == 0, r["failed"]
    return r["bytes_downloaded"], r["elapsed_s"]


def _killed_half_way(emu, name: str, size: int, out: Path) -> float:
    """Start almafetch in a child, SIGKILL it once the server has sent half the file; return when it started."""
    since = time.monotonic()
    code = (f"from almatools.casa_tasks import almafetch; almafetch(uid=['{ONE}'], raw=True, "
            f"service='{emu.slow_url}', outdir='{out}', reserve='0B')")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    deadline = time.monotonic() + 600
    while _served(emu.slow, name, since) < size // 2 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    return since


def run(quick: bool) -> list[dict]:
    os.environ.update(casa_env())
    from almatools.casa_tasks import almafetch
    from almatools.plugins.archive.emulator import ArchiveEmulator
    each, single = (20 if quick else 200) * 10**6, (200 if quick else 2000) * 10**6
    work = HERE / "_work" / "almafetch"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cap = STREAMS * RATE
    try:
        with ArchiveEmulator(work / "emulator", slow_rate=RATE) as emu:
            many = emu.add_bulk_mous(MANY, 10, each)
            one, = emu.add_bulk_mous(ONE, 1, single)
            size = emu.file_path(one).stat().st_size
            # the anchor: one connection, file after file, for two of the ten files
            got, t = _sequential([f"{emu.slow_url}/dataPortal/{n}" for n in many[:2]], work / "sequential")
            sequential = got / t
            shutil.rmtree(work / "sequential")
            got, t = _fetch(almafetch, MANY, emu.slow_url, work / "many")
            assert got == sum(emu.file_path(n).stat().st_size for n in many)
            rate_many = got / t
            shutil.rmtree(work / "many")
            got, t = _fetch(almafetch, ONE, emu.slow_url, work / "one")
            assert got == size
            rate_one = got / t
            shutil.rmtree(work / "one")
            # resume: killed at half, run again; what the server sent beyond the file is what was sent twice
            out = work / "resume"
            since = _killed_half_way(emu, one, size, out)
            at_kill = _served(emu.slow, one, since)
            _fetch(almafetch, ONE, emu.slow_url, out)
            twice = _served(emu.slow, one, since) - size
            assert (out / one).stat().st_size == size
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mb = 1e6
    return [
        {"metric": "10 files: almafetch vs sequential (MB/s)", "value": rate_many / mb, "anchor": sequential / mb,
         "ratio": rate_many / sequential, "target": ">= 4x", "ok": rate_many / sequential >= 4},
        {"metric": "10 files: almafetch vs 5 x per-connection cap (MB/s)", "value": rate_many / mb,
         "anchor": cap / mb, "ratio": rate_many / cap, "target": ">= 0.9", "ok": rate_many / cap >= 0.9},
        {"metric": "1 file in ranges: almafetch vs sequential (MB/s)", "value": rate_one / mb,
         "anchor": sequential / mb, "ratio": rate_one / sequential, "target": ">= 4x",
         "ok": rate_one / sequential >= 4},
        {"metric": "1 file in ranges: almafetch vs 5 x cap (MB/s)", "value": rate_one / mb, "anchor": cap / mb,
         "ratio": rate_one / cap, "target": ">= 0.9", "ok": rate_one / cap >= 0.9},
        {"metric": f"re-sent after a kill at {at_kill / size:.0%} (MB)", "value": max(twice, 0) / mb,
         "anchor": size / mb, "ratio": max(twice, 0) / size, "target": "<= 0.01", "ok": twice <= 0.01 * size},
    ]
