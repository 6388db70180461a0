"""calflux speed: catalogue estimates in bulk, and the flux service in parallel.

1. 1,000 (source, frequency, date) estimates (analysisUtils' getALMAFlux algorithm, 10,000 Monte
   Carlo trials each) from a local catalogue of 40 grid sources x 10 years of Band 3/6/7
   monitoring (the emulator's generator, read from a CSV file beforehand): the vectorised batch
   against the per-request loop (the same estimator called once per request, as scripts call
   aU.getALMAFlux), measured in the same run.  Targets: the batch <= 2 s, and faster than the loop.
   Both give identical numbers (checked before timing counts).
2. 64 flux-service queries against the emulator's catalogue server with 50 ms latency per answer
   (a distant server): 8 parallel workers against one at a time.  Target: <= 0.35 of the sequential time.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def run(quick: bool) -> list[dict]:
    sys.path.insert(0, str(HERE.parent))
    from almatools.plugins.archive.emulator.sourcecat import SourceCatalogue, SourceCatalogueServer
    from almatools.plugins.archive.emulator.sourcecat_data import generate, write_csv
    from almatools.plugins.calflux.catalogue import Catalogue
    from almatools.plugins.calflux.estimate import EstimateOptions, Estimator
    from almatools.plugins.calflux.service import SourceCatalogueService

    work = HERE / "_work" / "calflux"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    rows = []
    try:
        sources = generate("2014-01-01", "2023-12-31", nsources=40)
        write_csv(work / "catalogue.csv", sources)
        cat = Catalogue.read(work / "catalogue.csv")
        n = 100 if quick else 1000
        rng = np.random.default_rng(1)
        names = sorted(cat.sources)
        requests = [(names[i % len(names)], float(rng.uniform(90e9, 900e9)), float(rng.uniform(56700, 60300)))
                    for i in range(n)]
        est = Estimator(cat, EstimateOptions(trials=10000))
        est.estimate(requests[:5])  # warm-up outside the timing
        t0 = time.perf_counter()
        batch = est.estimate(requests)
        t_batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        loop = [est.estimate([r])[0] for r in requests]
        t_loop = time.perf_counter() - t0
        same = all(a["fluxDensity"] == b["fluxDensity"] and a["fluxDensityUncertainty"] == b["fluxDensityUncertainty"]
                   for a, b in zip(batch, loop))
        rows.append({"metric": f"{n} estimates, 40 sources x 10 years: batch vs per-request loop (s)",
                     "value": t_batch, "anchor": t_loop, "ratio": t_batch / t_loop,
                     "target": "batch <= 2 s, < loop", "ok": same and t_batch <= 2.0 and t_batch < t_loop})

        nq = 16 if quick else 64
        with SourceCatalogueServer(SourceCatalogue(sources), latency=0.05) as server:
            queries = [(names[i % len(names)], 58000.0 + 17 * i, 100e9 + 5e9 * i) for i in range(nq)]
            t0 = time.perf_counter()
            seq = SourceCatalogueService(server.url, workers=1).fluxes(queries)
            t_seq = time.perf_counter() - t0
            t0 = time.perf_counter()
            par = SourceCatalogueService(server.url, workers=8).fluxes(queries)
            t_par = time.perf_counter() - t0
        same = [a["flux_density"] for a in seq] == [b["flux_density"] for b in par]
        rows.append({"metric": f"{nq} flux-service queries (50 ms latency): 8 workers vs 1 (s)",
                     "value": t_par, "anchor": t_seq, "ratio": t_par / t_seq, "target": "<= 0.35",
                     "ok": same and t_par / t_seq <= 0.35})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        try:
            work.parent.rmdir()
        except OSError:
            pass
    return rows
