"""wtcheck on a large simulated MS against its two anchors, measured in the same run.

A 12 m MS of >= 5 GB (CORRECTED_DATA and DATA with radiometer noise, one 1920-channel spw),
made on the fly with casatools.simulator:

* read: wtcheck wall time vs reading the data, flag and weight columns with the table
  tool in the same row chunks; target <= 1.2x;
* statwt: wtcheck vs ``statwt(preview=True)``; target <= 1x;
* memory: the peak RSS of the process running wtcheck (CASA included); target <= 2 GB
  whatever the MS size.

``--quick``: about 0.5 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _common import casa_env, tree_bytes

HERE = Path(__file__).resolve().parent

_MEASURE = r"""
import json, resource, sys, time
from almatools.casaenv import casatools
vis, what = sys.argv[1], sys.argv[2]
from almatools.casa_tasks import wtcheck
from casatasks import statwt
tb = casatools().table()
t = time.perf_counter()
if what == "wtcheck":
    wtcheck(vis=[vis])
elif what == "read":
    tb.open(vis)
    n = tb.nrows()
    step = 4000
    for first in range(0, n, step):
        count = min(step, n - first)
        for c in ("CORRECTED_DATA", "FLAG", "WEIGHT"):
            tb.getcol(c, first, count)
    tb.done()
else:
    statwt(vis=vis, preview=True, datacolumn="corrected")
elapsed = time.perf_counter() - t
# the whole process's peak (CASA and Python included): an upper bound on what the task needs
print(json.dumps({"elapsed": elapsed, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _measure(vis: str, what: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEASURE, vis, what], capture_output=True, text=True, env=env,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[dict]:
    env = casa_env()
    os.environ.update(env)
    from almatools.testing import simulate_ms
    work = HERE / "_work" / "wtcheck"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        vis = str(work / "big.ms")
        # 25 antennas (300 baselines) x 200 integrations of 10 s, 1920 channels x 2 correlations: ~5.5 GB
        simulate_ms(vis, [("BIG", 230.0e9, 0.976e6, 1920)], array="12m", nant=25 if not quick else 12,
                    duration_s=2000 if not quick else 1800, integration_s=10, noise_k=2e4, weights="modern")
        size = tree_bytes(Path(vis))
        read = _measure(vis, "read", env)
        stat = _measure(vis, "statwt", env)
        check = _measure(vis, "wtcheck", env)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    gb = size / 1e9
    return [
        {"metric": f"wtcheck vs column read, {gb:.1f} GB MS (s)", "value": check["elapsed"],
         "anchor": read["elapsed"], "ratio": check["elapsed"] / read["elapsed"], "target": "<= 1.2x",
         "ok": check["elapsed"] <= 1.2 * read["elapsed"]},
        {"metric": f"wtcheck vs statwt(preview=True), {gb:.1f} GB (s)", "value": check["elapsed"],
         "anchor": stat["elapsed"], "ratio": check["elapsed"] / stat["elapsed"], "target": "<= 1x",
         "ok": check["elapsed"] <= stat["elapsed"]},
        {"metric": f"wtcheck process peak RSS vs 2 GB, MS {gb:.1f} GB (MB)", "value": check["peak_mb"],
         "anchor": 2048.0, "ratio": check["peak_mb"] / 2048.0, "target": "<= 1", "ok": check["peak_mb"] <= 2048},
    ]
