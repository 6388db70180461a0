"""almafetch throughput and resume cost, against the local archive emulator, all in one run.

10 files x 200 MB served by nginx at 20 MB/s per connection (limit_rate 20m):

* parallel: almafetch (5 streams) vs a sequential download of the same files
  (plain streaming, one file after the other, as astroquery does);
  target >= 4x the sequential throughput;
* cap: almafetch's throughput vs the server's aggregate cap (5 x limit_rate); target >= 80 %;
* resume: almafetch killed (SIGKILL) half-way, then run again; bytes transferred twice
  vs the total; target <= 1 %.

``--quick``: 10 x 20 MB.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RATE_MIB = 20
MOUS = "uid://A001/Xbench/X1"


def _env() -> dict:
    from almatools import casaenv
    home = Path(tempfile.mkdtemp(prefix="almatools-bench-home-"))
    site = home / "casasiteconfig.py"
    site.write_text(casaenv.site_config_text(logfile=str(home / "casa.log")))
    return {**os.environ, "HOME": str(home), "CASASITECONFIG": str(site)}


def _sequential(urls: list[str], outdir: Path) -> float:
    import requests
    outdir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with requests.Session() as s:
        for url in urls:
            with s.get(url, stream=True, timeout=60) as r, open(outdir / url.rsplit("/", 1)[-1], "wb") as fh:
                r.raise_for_status()
                for chunk in r.iter_content(1 << 20):
                    fh.write(chunk)
    return time.perf_counter() - start


def _on_disk(outdir: Path) -> int:
    total = 0
    for p in outdir.glob("*") if outdir.exists() else ():
        try:
            total += p.stat().st_size
        except FileNotFoundError:  # a .part renamed meanwhile
            pass
    return total


def run(quick: bool) -> list[dict]:
    os.environ.update(_env())
    from almatools.casa_tasks import almafetch
    from almatools.plugins.archive.emulator import ArchiveEmulator
    size = (20 if quick else 200) * 10**6
    work = HERE / "_work" / "almafetch"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        with ArchiveEmulator(work / "emulator", rate=f"{RATE_MIB}m") as emu:
            names = emu.add_bulk_mous(MOUS, 10, size)
            total = 10 * size
            t_seq = _sequential([f"{emu.url}/dataPortal/{n}" for n in names], work / "sequential")
            shutil.rmtree(work / "sequential")
            r = almafetch(uid=[MOUS], service=emu.url, outdir=str(work / "parallel"), reserve="0B")
            t_par = r["elapsed_s"]
            assert r["nfailed"] == 0 and r["bytes_downloaded"] == total
            shutil.rmtree(work / "parallel")
            cap = 5 * RATE_MIB * 2**20  # bytes/s the server allows five connections
            # resume: kill a fetch half-way through (expected time at the cap), then run it again
            out = work / "resume"
            code = (f"from almatools.casa_tasks import almafetch; almafetch(uid=['{MOUS}'], service='{emu.url}', "
                    f"outdir='{out}', reserve='0B')")
            proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 120
            while _on_disk(out) < 0.5 * total and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            before = _on_disk(out)
            again = almafetch(uid=[MOUS], service=emu.url, outdir=str(out), reserve="0B")
            assert again["nfailed"] == 0 and _on_disk(out) == total
            twice = before + again["bytes_downloaded"] - total
    finally:
        shutil.rmtree(work, ignore_errors=True)
    speedup = t_seq / t_par
    share = (total / t_par) / cap
    return [
        {"metric": "almafetch throughput vs sequential (x)", "value": total / t_par / 1e6,
         "anchor": total / t_seq / 1e6, "ratio": speedup, "target": ">= 4x", "ok": speedup >= 4},
        {"metric": "almafetch throughput vs 5 x limit_rate (MB/s)", "value": total / t_par / 1e6,
         "anchor": cap / 1e6, "ratio": share, "target": ">= 0.8", "ok": share >= 0.8},
        {"metric": f"bytes fetched twice after kill at {before / total:.0%} (MB)", "value": max(twice, 0) / 1e6,
         "anchor": total / 1e6, "ratio": max(twice, 0) / total, "target": "<= 0.01", "ok": twice <= 0.01 * total},
    ]
