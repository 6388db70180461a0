"""calflux: calibrator flux densities from the ALMA Calibrator Source Catalogue, and a delivery's flux scale checked."""

from __future__ import annotations

import math
from pathlib import Path

from almatools import limits, log
from almatools.delivery import DeliveryError
from almatools.errors import TaskParameterError

from .archival import collect
from .catalogue import Catalogue, CatalogueError
from .compare import compare_rows, plan_requests, verdicts
from .dates import mjd_to_iso, to_mjd, today_mjd
from .estimate import EstimateOptions, Estimator
from .service import SourceCatalogueService

__all__ = ["calflux"]

TASK = "calflux"
#: most (source, frequency, date) estimates one call makes
MAX_REQUESTS = 100_000
#: most Monte Carlo draws in one call (requests x trials): about a minute of work
MAX_DRAWS = 2_000_000_000


def calflux(mode="estimate", source=None, freq=None, date=None, path="", method="getalmaflux", pairing="closest",
            lowband=3, highband=7, daywindow=1800, trials=10000, seed=0, catalogue="", service="", savecatalogue="",
            outfile="", plotfile="", outdir="", inplace=False, overwrite=False, workers=8):
    """Estimate calibrator flux densities, or check a Member OUS's; see ``xml/calflux.xml``."""
    options = EstimateOptions(lowband=lowband, highband=highband, pairing=pairing, daywindow=daywindow,
                              trials=trials, seed=seed)
    _check_outputs(outfile=outfile, plotfile=plotfile, savecatalogue=savecatalogue, overwrite=overwrite)
    ctx = _Context(method, catalogue, service, workers, options)
    if mode == "estimate":
        result = _estimate_mode(ctx, source or [], freq or [], date or [])
    else:
        if not str(path).strip():
            raise TaskParameterError(TASK, "path", path, f"is needed in mode '{mode}': a Member OUS directory or file")
        if not Path(path).exists():
            raise TaskParameterError(TASK, "path", path, "does not exist")
        result = _mous_mode(ctx, path, date or [])
        if mode == "setjy":
            from .setjy_mode import write_setjy
            result["setjy"] = write_setjy(result, ctx.arch, outdir, inplace, overwrite, ctx.value_key)
    if outfile:
        result["outfile"] = _write_table(outfile, result)
        log.info(f"table written to {outfile}")
    if plotfile:
        from .plot import plot_sources
        result["plotfile"] = plot_sources(plotfile, ctx.history, result.get("estimates", []), result.get("rows"),
                                          title=f"calflux {mode}: {Path(result.get('path', '')).name}".strip(": "))
        log.info(f"plot written to {plotfile}")
    if savecatalogue:
        if ctx.history is None:
            raise TaskParameterError(TASK, "savecatalogue", savecatalogue,
                                     "needs the measurement histories: use method 'getalmaflux' or 'both'")
        ctx.history.write(savecatalogue)
        result["savecatalogue"] = str(savecatalogue)
        log.info(f"catalogue measurements of {len(ctx.history.sources)} source(s) written to {savecatalogue}")
    result["ok"] = not result["failed"]
    return result


# ---------------------------------------------------------------------------------------- common
def _check_outputs(overwrite: bool, **paths) -> None:
    for param, value in paths.items():
        if value and Path(value).exists() and not overwrite:
            raise TaskParameterError(TASK, param, value, "exists; set overwrite=True to replace it")
        if value and param == "plotfile" and not str(value).lower().endswith(".png"):
            raise TaskParameterError(TASK, param, value, "must name a .png file")
        if value and param in ("outfile", "savecatalogue") and not str(value).lower().endswith((".ecsv", ".csv")):
            raise TaskParameterError(TASK, param, value, "must name an .ecsv or .csv file")


_TABLE_COLUMNS = {
    "estimate": ["source", "date", "frequency_hz", "fluxDensity", "fluxDensityUncertainty", "monteCarloFluxDensity",
                 "spectralIndex", "spectralIndexUncertainty", "referenceFluxDensity", "referenceFrequency", "meanAge",
                 "ageDifference", "spectralIndexAgeSeparation", "service_flux", "service_error", "service_status",
                 "error"],
    "mous": ["field", "ms", "spw", "frequency_ghz", "date", "kind", "origin", "archival_jy", "archival_error_jy",
             "estimate_jy", "estimate_error_jy", "difference_percent", "service_jy", "service_error_jy",
             "service_difference_percent", "where"],
}


def _write_table(path, result: dict) -> str:
    """The estimates (estimate mode) or the comparison rows (mous, setjy) as ECSV or CSV, atomically."""
    from astropy.table import Table
    from almatools.io import atomic_path
    kind = "estimate" if result["mode"] == "estimate" else "mous"
    records = result["estimates"] if kind == "estimate" else result["rows"]
    columns = {c: [] for c in _TABLE_COLUMNS[kind]}
    for r in records:
        svc = r.get("service") or {}
        extra = {"service_flux": svc.get("flux_density") if svc.get("valid") else None,
                 "service_error": svc.get("flux_density_error") if svc.get("valid") else None,
                 "service_status": svc.get("status_code")}
        for c in columns:
            value = extra[c] if c in extra and kind == "estimate" else r.get(c)
            columns[c].append(value)
    table = Table()
    for c, values in columns.items():
        numeric = all(v is None or isinstance(v, (int, float)) for v in values)
        table[c] = [math.nan if v is None else float(v) for v in values] if numeric else \
            ["" if v is None else str(v) for v in values]
    with atomic_path(path) as tmp:
        table.write(tmp, format="ascii.ecsv" if str(path).lower().endswith(".ecsv") else "ascii.csv", overwrite=True)
    return str(path)


class _Context:
    """Where measurements come from (file or service) and how to estimate, for one call."""

    def __init__(self, method, catalogue_file, service, workers, options: EstimateOptions):
        self.method, self.options = method, options
        self.catalogue_file = catalogue_file
        self.value_key = "service_jy" if method == "service" else "estimate_jy"
        try:
            self.client = SourceCatalogueService(service, workers=workers)
        except ValueError as exc:
            raise TaskParameterError(TASK, "service", service, str(exc)) from None
        self.history: Catalogue | None = None
        self.arch = None
        self.failed: list[dict] = []
        if catalogue_file and method == "service":
            raise TaskParameterError(TASK, "catalogue", catalogue_file,
                                     "is an offline measurement file; method 'service' asks the flux service instead")

    @property
    def wants_history(self) -> bool:
        return self.method in ("getalmaflux", "both")

    @property
    def wants_service(self) -> bool:
        return self.method in ("service", "both")

    def load_history(self, names) -> Catalogue:
        if self.catalogue_file:
            try:
                self.history = Catalogue.read(self.catalogue_file)
            except CatalogueError as exc:
                raise TaskParameterError(TASK, "catalogue", self.catalogue_file, str(exc)) from None
            log.info(f"catalogue file {self.catalogue_file}: {len(self.history.sources)} source(s)")
        else:
            names = sorted(set(names))
            log.info(f"fetching the measurement histories of {len(names)} source(s) from the calibrator catalogue")
            self.history = self.client.catalogue(names)
            log.info(f"catalogue service: {self.history.origin}")
        return self.history

    def estimates(self, requests) -> list[dict] | None:
        """getALMAFlux-style estimates for ``(name, freq_hz, mjd)`` requests (None unless the method wants them)."""
        if not self.wants_history:
            return None
        if self.history is None:
            self.load_history(name for name, _, _ in requests)
        return Estimator(self.history, self.options).estimate(requests)

    def services(self, requests) -> list[dict] | None:
        if not self.wants_service:
            return None
        log.info(f"asking the flux service for {len(requests)} value(s) ({self.client.workers} in parallel)")
        try:
            return self.client.fluxes([(name, mjd, freq) for name, freq, mjd in requests])
        except CatalogueError as exc:
            self.failed.append({"what": "flux service", "error": str(exc)})
            log.severe(str(exc))
            return [{"valid": False, "error": str(exc)} for _ in requests]


def _frequency_hz(text) -> float:
    """'230GHz', '230.5 GHz', '2.3e11Hz', 230 (GHz below 2000, else Hz, as analysisUtils)."""
    from almatools.delivery.scripts import parse_frequency
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
        hz = value * 1e9 if value < 2000 else value
    else:
        s = str(text).strip()
        bare = s.replace(".", "", 1).replace("e", "", 1).replace("E", "", 1).lstrip("+").isdigit()
        hz = parse_frequency(s) if not bare else (float(s) * 1e9 if float(s) < 2000 else float(s))
    if hz is None or not math.isfinite(hz) or hz <= 0:
        raise ValueError(f"{text!r} is not a frequency (e.g. '230GHz', 230 for GHz, 2.3e11 for Hz)")
    if not 30e9 <= hz <= 1000e9:
        raise ValueError(f"{text!r} = {hz / 1e9:g} GHz is outside ALMA's 30-1000 GHz")
    return hz


# ---------------------------------------------------------------------------------------- estimate
def _estimate_mode(ctx: _Context, sources, freqs, dates) -> dict:
    sources = [s for s in (sources if isinstance(sources, list) else [sources]) if str(s).strip()]
    if not sources:
        raise TaskParameterError(TASK, "source", sources, "needs at least one calibrator name in mode 'estimate'")
    if not freqs:
        raise TaskParameterError(TASK, "freq", freqs, "needs at least one frequency in mode 'estimate'")
    freq_hz = []
    for f in freqs:
        try:
            freq_hz.append(_frequency_hz(f))
        except ValueError as exc:
            raise TaskParameterError(TASK, "freq", f, str(exc)) from None
    mjds = []
    for d in dates or [""]:
        try:
            mjds.append(today_mjd() if not str(d).strip() else to_mjd(d))
        except ValueError as exc:
            raise TaskParameterError(TASK, "date", d, str(exc)) from None
    n = len(sources) * len(freq_hz) * len(mjds)
    limits.check_count(n, MAX_REQUESTS, subject=limits.parameter("source"), unit="estimates",
                       hint="every source is estimated at every freq and date")
    if ctx.wants_history:
        limits.check_count(n * ctx.options.trials, MAX_DRAWS, subject=limits.parameter("trials"),
                           unit="Monte Carlo draws", hint=f"{n} estimates x trials; lower trials")
    requests = [(s, f, m) for s in sources for m in mjds for f in freq_hz]
    estimates = ctx.estimates(requests)
    if estimates is not None:
        unknown = {e["source"]: e for e in estimates if "error" in e and "close_names" in e}
        if unknown:
            raise TaskParameterError(TASK, "source", sorted(unknown), "; ".join(e["error"] for e in unknown.values()))
    services = ctx.services(requests)
    results = []
    for k, (name, f, m) in enumerate(requests):
        if estimates is not None:
            r = estimates[k]
        else:
            r = {"source": name, "frequency_hz": f, "mjd": m, "date": mjd_to_iso(m), "method": "service",
                 "warnings": []}
        if services is not None:
            svc = services[k]
            r["service"] = svc
            if estimates is None:
                if svc.get("valid"):
                    r.update(fluxDensity=svc["flux_density"], fluxDensityUncertainty=svc["flux_density_error"],
                             spectralIndex=svc["spectral_index"], spectralIndexUncertainty=svc["spectral_index_error"])
                else:
                    r["error"] = svc.get("error") or (f"the flux service has no valid value for {name} "
                                                      f"(status {svc.get('status_code')}: {svc.get('status', '')}"
                                                      f"{'; ' + svc['clarification'] if svc.get('clarification') else ''})")
            elif svc.get("valid") and "fluxDensity" in r:
                r["service_difference_percent"] = 100.0 * (r["fluxDensity"] / svc["flux_density"] - 1)
        results.append(r)
        _log_estimate(r)
    failed = ctx.failed + [{"source": r["source"], "date": r.get("date"), "error": r["error"]}
                           for r in results if "error" in r]
    return {"mode": "estimate", "method": ctx.method, "estimates": results, "failed": failed,
            "catalogue": ctx.history.origin if ctx.history is not None else ctx.client.bases[0],
            "warnings": sorted({w for r in results for w in r.get("warnings", [])})}


def _log_estimate(r: dict) -> None:
    if "error" in r:
        log.severe(f"{r['source']}: {r['error']}")
        return
    line = (f"{r['source']} at {r['frequency_hz'] / 1e9:.3f} GHz on {r['date']}: {r['fluxDensity']:.6f} +- "
            f"{r['fluxDensityUncertainty']:.6f} Jy")
    if "referenceFluxDensity" in r:
        line += (f" (spectral index {r['spectralIndex']:+.6f} +- {r['spectralIndexUncertainty']:.6f}, from "
                 f"{r['referenceFluxDensity']:.3f} Jy at {r['referenceFrequency'] / 1e9:.3f} GHz; "
                 f"Monte Carlo median {r['monteCarloFluxDensity']:.6f})")
    if r.get("service", {}).get("valid") and r.get("method") != "service":
        s = r["service"]
        line += f"; flux service {s['flux_density']:.6f} +- {s['flux_density_error']:.6f} Jy (status {s['status_code']})"
    log.info(line)
    for w in r.get("warnings", []):
        log.warn(f"{r['source']}: {w}")


# ---------------------------------------------------------------------------------------- mous
def _mous_mode(ctx: _Context, path: str, dates) -> dict:
    try:
        arch = collect(path)
    except DeliveryError as exc:
        raise TaskParameterError(TASK, "path", path, str(exc)) from None
    ctx.arch = arch
    if not arch.fluxes and not arch.models:
        raise TaskParameterError(TASK, "path", path,
                                 "holds no calibrator flux information (no flux.csv, setjy call, QA2 fluxscale result "
                                 "or AQUA report flux measurement)")
    for p in arch.problems:
        log.warn(p)
    date_mjd = None
    if dates:
        try:
            date_mjd = to_mjd(dates[0])
        except ValueError as exc:
            raise TaskParameterError(TASK, "date", dates[0], str(exc)) from None
    requests, skipped = plan_requests(arch, date_mjd)
    log.info(f"{len(arch.fluxes)} calibrator flux value(s) in {len(arch.files)} file(s); {len(requests)} to compare")
    triples = [(name, freq, mjd) for _, name, freq, mjd in requests]
    estimates = ctx.estimates(triples) if triples else None
    services = ctx.services(triples) if triples else None
    rows = compare_rows(arch, requests, estimates, services)
    calibrators = verdicts(arch, rows, requests, estimates, skipped)
    for v in calibrators:
        role = "flux calibrator" if v["flux_calibrator"] else "calibrator"
        diff = "" if v.get("max_difference_percent") is None else f", largest difference {v['max_difference_percent']:.1f} %"
        (log.warn if v["verdict"] == "differs" else log.info)(f"{v['field']} ({role}): {v['verdict']}{diff}")
        for e in v["explanation"]:
            log.info(f"  {e}")
    if estimates:
        for n, e in enumerate(estimates):
            rows[n]["estimate"] = {k: e.get(k) for k in ("fluxDensity", "fluxDensityUncertainty", "spectralIndex",
                                                         "meanAge", "referenceFluxDensity", "referenceFrequency")}
    return {"mode": "mous", "method": ctx.method, "path": str(path), "files": arch.files, "calibrators": calibrators,
            "rows": rows, "skipped": skipped, "problems": arch.problems, "failed": list(ctx.failed),
            "flux_calibrators": sorted(arch.flux_calibrators),
            "dates": {ms: mjd_to_iso(m) for ms, m in arch.dates.items()},
            "estimates": estimates or [], "catalogue": ctx.history.origin if ctx.history is not None else
            ctx.client.bases[0]}
