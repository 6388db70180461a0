"""qacheck on a 4 GB cube: time against reading it once, and peak memory.

Made on the fly under benchmarks/_work/ (removed afterwards), never committed: a pipeline-named
Member OUS whose product is a 1024 x 1024 x 1024 float32 pbcor cube (4 GiB) with its pb cube (4 GiB,
uncompressed so that the anchor is disk speed, not gunzip), and a cont.dat.  Before each timed run
the files' pages are dropped from the page cache (``posix_fadvise(DONTNEED)``), so both runs read
from disk, as a first look at a fresh download does.  Each run is a child process reporting its wall
time and its peak RSS above its RSS before the work:

* anchor: read the cube and its pb once, plane by plane, with plain ``os.pread`` (nothing computed);
* qacheck (report=False: the numbers and tables; the PNGs add a second or two on top).

Targets: qacheck <= 1.5 x the anchor; extra peak memory <= 1 GB.  ``--quick``: 256 x 256 x 64.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
M = "uid___A001_X9_X1"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {root!r})
op, mous = sys.argv[1:3]
from almatools.casaenv import casatools
casatools()
import numpy as np
from almatools.casa_tasks import qacheck
from almatools.registry import get_registry
get_registry().get("qacheck")
import astropy.io.fits, astropy.wcs, astropy.table, almatools.plugins.qa.task_qacheck
def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
files = sorted(str(p) for p in (os.path.join(mous, "product", n) for n in os.listdir(os.path.join(mous, "product"))))
for f in files:  # start cold: the pages of both files leave the page cache
    fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
base = rss_mb()
start = time.perf_counter()
if op == "read":
    for f in files:
        with astropy.io.fits.open(f, memmap=False, lazy_load_hdus=True) as h:
            loc = h.fileinfo(0)["datLoc"]; n1, n2 = h[0].header["NAXIS1"], h[0].header["NAXIS2"]
            nplanes = int(np.prod([h[0].header[f"NAXIS{{i}}"] for i in range(3, h[0].header["NAXIS"] + 1)]))
        fd = os.open(f, os.O_RDONLY)
        size = 4 * n1 * n2
        for k in range(nplanes):
            data = os.pread(fd, size, loc + k * size)
        os.close(fd)
else:
    r = qacheck(path=mous, outdir=os.path.join(os.path.dirname(mous), "qa"), report=False, overwrite=True)
    assert r["ok"] and len(r["images"]) == 1, r["failed"]
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"seconds": elapsed, "extra_mb": peak - base}}))
"""


def _make(work: Path, nx: int, nchan: int) -> Path:
    """Write the pbcor cube and pb cube plane by plane (a header, then raw big-endian float32 planes)."""
    import numpy as np
    from astropy.io import fits
    mous = work / f"member.{M}"
    (mous / "product").mkdir(parents=True)
    (mous / "calibration").mkdir()
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:nx, 0:nx]
    r2 = (x - nx / 2) ** 2 + (y - nx / 2) ** 2
    pb = np.exp(np.log(0.2) * r2 / (0.45 * nx) ** 2).astype(np.float32)
    pb[r2 > (0.45 * nx) ** 2] = np.nan
    header = fits.Header()
    for key, value in (("SIMPLE", True), ("BITPIX", -32), ("NAXIS", 4), ("NAXIS1", nx), ("NAXIS2", nx),
                       ("NAXIS3", nchan), ("NAXIS4", 1), ("BUNIT", "Jy/beam"), ("BMAJ", 5 * 0.05 / 3600),
                       ("BMIN", 5 * 0.04 / 3600), ("BPA", 30.0), ("CTYPE1", "RA---SIN"), ("CRVAL1", 165.5),
                       ("CDELT1", -0.01 / 3600), ("CRPIX1", nx / 2 + 1), ("CUNIT1", "deg"), ("CTYPE2", "DEC--SIN"),
                       ("CRVAL2", -34.7), ("CDELT2", 0.01 / 3600), ("CRPIX2", nx / 2 + 1), ("CUNIT2", "deg"),
                       ("CTYPE3", "FREQ"), ("CRVAL3", 230.0e9), ("CDELT3", 1.0e6), ("CRPIX3", 1.0), ("CUNIT3", "Hz"),
                       ("CTYPE4", "STOKES"), ("CRVAL4", 1.0), ("CDELT4", 1.0), ("CRPIX4", 1.0), ("SPECSYS", "LSRK"),
                       ("RESTFRQ", 230.538e9), ("DATE-OBS", "2020-01-01T02:24:00"), ("RADESYS", "FK5")):
        header[key] = value
    for kind, make in (("pbcor", lambda k: (rng.standard_normal((nx, nx), dtype=np.float32) * 1e-3) / pb),
                       ("pb", lambda k: pb)):
        path = mous / "product" / f"member.{M}.Bench_sci.spw25.cube.I.{kind}.fits"
        h = header.copy()
        if kind == "pb":
            for key in ("BMAJ", "BMIN", "BPA"):
                del h[key]
            h["BUNIT"] = ""
        with open(path, "wb") as fh:
            fh.write(h.tostring().encode())
            for k in range(nchan):
                fh.write(make(k).astype(">f4").tobytes())
            fh.write(b"\0" * (-(nx * nx * nchan * 4) % 2880))
    (mous / "calibration" / f"member.{M}.cont.dat").write_text(
        "Field: Bench\n\nSpectralWindow: 25\n230.0000000000~230.3000000000GHz LSRK\n")
    return mous


def _child(op: str, mous: Path) -> dict:
    code = CHILD.format(root=str(HERE.parent))
    out = subprocess.run([sys.executable, "-c", code, op, str(mous)], capture_output=True, text=True, env=os.environ)
    if out.returncode:
        raise RuntimeError(f"{op} failed: {out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[dict]:
    work = HERE / "_work" / "qacheck"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    nx, nchan = (256, 64) if quick else (1024, 1024)
    try:
        mous = _make(work, nx, nchan)
        size_gb = sum(p.stat().st_size for p in (mous / "product").iterdir()) / 2**30
        read = min((_child("read", mous) for _ in range(2)), key=lambda r: r["seconds"])
        check = min((_child("qacheck", mous) for _ in range(2)), key=lambda r: r["seconds"])
        return [{"metric": f"qacheck on a {size_gb / 2:.1f} GiB cube + pb vs reading both once, cold (s)",
                 "value": check["seconds"], "anchor": read["seconds"], "ratio": check["seconds"] / read["seconds"],
                 "target": "<= 1.5x", "ok": check["seconds"] / read["seconds"] <= 1.5},
                {"metric": "qacheck extra peak memory (MB) vs 1 GB", "value": check["extra_mb"], "anchor": 1024.0,
                 "ratio": check["extra_mb"] / 1024.0, "target": "<= 1 (1 GB)", "ok": check["extra_mb"] <= 1024.0}]
    finally:
        shutil.rmtree(work, ignore_errors=True)
