"""What a Member OUS says about its calibrators' flux densities, from every delivery file that says it.

Gathers, through :mod:`almatools.delivery`: flux.csv (loose or in ``*.auxproducts.tgz``),
``setjy`` calls of manual calibration scripts, fluxscale/setjy lines of QA2 text files and
logs, the AQUA report's ``hifa_importdata``/``hifa_gfluxscale`` values, and the listobs
summaries (weblog, QA2 text) that give the observation dates, field names, intents and
spw frequencies the other files leave out.  Each value ends up with a field name, a
frequency and a date when the delivery holds them; what it cannot resolve is reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from almatools.delivery import (CalibratorFlux, DeliveryError, MemberOUS, header_intents, read_aqua, read_fluxcsv,
                                read_fluxscale_text, read_listobs, read_text, setjy_calls, setjy_fluxes)
from almatools.delivery.fluxcsv import FluxCsv
from almatools.delivery.fluxes import MODEL
from almatools.delivery.listobs import Listobs

from .dates import to_mjd

__all__ = ["ArchivalFluxes", "collect", "SOLAR_SYSTEM", "FLUX_INTENTS"]

SOLAR_SYSTEM = {"mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune", "titan", "io", "europa",
                "ganymede", "callisto", "ceres", "pallas", "vesta", "juno", "moon", "sun"}
#: intents that make a field the flux calibrator (pipeline short names and the ASDM's)
FLUX_INTENTS = {"AMPLITUDE", "CALIBRATE_FLUX", "CALIBRATE_AMPLI"}
_LOG_DATE = re.compile(r"casa-(\d{4})(\d{2})(\d{2})-\d{6}\.log")


@dataclass
class ArchivalFluxes:
    """Calibrator flux densities of a delivery and what is needed to compare them.

    :param fluxes: every value found (:class:`~almatools.delivery.CalibratorFlux`), names and
        frequencies filled in where the delivery allows.
    :param intents: field name → intents (from flux.csv comments, listobs, script headers).
    :param flux_calibrators: names that set the flux scale (flux intent, setjy targets, fluxscale reference).
    :param dates: MS name → observation start (MJD); ``""`` → the earliest of them.
    :param models: setjy calls with a model standard (solar-system bodies): no catalogue value.
    :param processed: MJD the delivery was calibrated (queried_at of flux.csv, else the CASA log's date).
    """

    path: str
    fluxes: list = field(default_factory=list)
    intents: dict = field(default_factory=dict)
    flux_calibrators: set = field(default_factory=set)
    dates: dict = field(default_factory=dict)
    models: list = field(default_factory=list)
    fluxcsv: list = field(default_factory=list)
    listobs: list = field(default_factory=list)
    files: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    processed: float | None = None

    def date_of(self, ms: str) -> float | None:
        if ms and ms in self.dates:
            return self.dates[ms]
        base = ms.split(".ms")[0] if ms else ""
        for name, mjd in self.dates.items():
            if base and name.split(".ms")[0] == base:
                return mjd
        return min(self.dates.values()) if self.dates else None


def _kind_of(path: Path) -> str:
    low = path.name.lower()
    if low.endswith("flux.csv"):
        return "fluxcsv"
    if low.endswith(".py"):
        return "script"
    if "aquareport" in low and low.endswith(".xml"):
        return "aqua"
    if low.endswith((".tgz", ".tar.gz", ".tar")):
        return "archive"
    if "listobs" in low:
        return "listobs"
    return "text"


def collect(path: str) -> ArchivalFluxes:
    """Everything the Member OUS directory (or single delivery file) *path* says about calibrator fluxes."""
    root = Path(path)
    out = ArchivalFluxes(str(root))
    texts: list[tuple[str, object]] = []  # (kind, TextFile)
    if root.is_dir():
        mous = MemberOUS(root)
        texts += [("fluxcsv", t) for t in mous.flux_csvs()]
        texts += [("script", read_text(p)) for p in mous.calibration_scripts()]
        texts += [("aqua", t) for t in mous.aqua_reports()]
        texts += [("listobs", t) for t in mous.listobs_texts()]
        texts += [("text", t) for t in mous.qa_texts() if "listobs" not in t.label.lower()]
        for log_file in sorted((root / "log").glob("casa-*.log")) if (root / "log").is_dir() else []:
            m = _LOG_DATE.search(log_file.name)
            if m:
                mjd = to_mjd(f"{m.group(1)}-{m.group(2)}-{m.group(3)}")
                out.processed = mjd if out.processed is None else min(out.processed, mjd)
    else:
        kind = _kind_of(root)
        if kind == "archive":
            from almatools.delivery import tar_texts
            texts += [("fluxcsv" if t.label.lower().endswith("flux.csv") else "aqua" if "aquareport" in t.label.lower()
                       else "listobs", t)
                      for t in tar_texts(root, lambda n: n.lower().endswith(("flux.csv", "listobs.txt"))
                                         or "aquareport" in n.lower())]
        else:
            texts.append((kind, read_text(root)))
    for kind, t in texts:
        out.files.append(t.label)
        try:
            _read(kind, t, out)
        except DeliveryError as exc:
            out.problems.append(str(exc))
    _resolve(out)
    return out


def _read(kind: str, t, out: ArchivalFluxes) -> None:
    if kind == "fluxcsv":
        table: FluxCsv = read_fluxcsv(t.text, t.label)
        out.fluxcsv.append(table)
        out.problems += table.problems
        for f in table.fluxes():
            out.fluxes.append(f)
            if f.field and f.intents:
                out.intents.setdefault(f.field, set()).update(f.intents)
            queried = f.extra.get("queried_at")
            if queried:
                mjd = to_mjd(queried.replace(" UTC", ""))
                out.processed = mjd if out.processed is None else min(out.processed, mjd)
    elif kind == "script":
        calls = setjy_calls(t.text, t.label)
        for c in calls:
            out.problems += [f"{c.where}: {p}" for p in c.problems]
            if c.active and c.fluxdensity is None:
                out.models.append(c)
            if c.active:
                out.flux_calibrators.update(n for n in c.names if not n.isdigit())
        out.fluxes += setjy_fluxes(calls)
        for name, intents in header_intents(t.text).items():
            out.intents.setdefault(name, set()).update(intents)
    elif kind == "aqua":
        report = read_aqua(t.text, t.label)
        out.fluxes += report.fluxes
        out.problems += report.problems
    elif kind == "listobs":
        _add_listobs(read_listobs(t.text, t.label), t.label, out)
    else:
        found = read_fluxscale_text(t.text, t.label)
        out.fluxes += found.fluxes
        out.flux_calibrators.update(found.reference)
        if found.listobs and (found.listobs.spws or found.listobs.start):
            _add_listobs(found.listobs, t.label, out)


def _add_listobs(lo: Listobs, label: str, out: ArchivalFluxes) -> None:
    if not lo.ms:  # the weblog keeps each listobs.txt in a folder named after its MS
        parts = label.replace("\\", "/").split("/")
        lo.ms = next((p for p in reversed(parts[:-1]) if ".ms" in p), "")
    out.listobs.append(lo)
    if lo.start:
        out.dates[lo.ms] = to_mjd(lo.start)
    for name, intents in lo.intents.items():
        out.intents.setdefault(name, set()).update(intents)


def _listobs_for(ms: str, out: ArchivalFluxes) -> Listobs | None:
    if not out.listobs:
        return None
    base = ms.split(".ms")[0] if ms else ""
    exact = [lo for lo in out.listobs if lo.ms == ms]
    same_eb = [lo for lo in out.listobs if base and lo.ms.split(".ms")[0] == base]
    return (exact or same_eb or (out.listobs if len(out.listobs) == 1 else [None]))[0]


def _resolve(out: ArchivalFluxes) -> None:
    """Fill in field names, spw frequencies (setjy values per spw) and flux-calibrator roles."""
    resolved = []
    for f in out.fluxes:
        lo = _listobs_for(f.ms, out)
        if not f.field and f.field_id and lo and f.field_id in lo.fields:
            f.field = lo.fields[f.field_id]
        if f.origin.startswith("setjy standard=") and lo and lo.spws:
            resolved += _setjy_per_spw(f, lo)  # the model evaluated at each spw it applies to
            continue
        if f.freq_hz is None and lo and f.spw in lo.spws:
            f.freq_hz = lo.spws[f.spw].centre_hz
        resolved.append(f)
    out.fluxes = resolved
    for name, intents in out.intents.items():
        if intents & FLUX_INTENTS:
            out.flux_calibrators.add(name)


def _setjy_per_spw(f: CalibratorFlux, lo: Listobs) -> list[CalibratorFlux]:
    """A setjy model (S at reffreq, spix) at the centre of each selected spw."""
    wanted = [s.strip() for s in f.spw.replace(";", ",").split(",") if s.strip()]
    ids = []
    for w in wanted or list(lo.spws):
        if "~" in w and all(p.isdigit() for p in w.split("~")):
            a, b = (int(p) for p in w.split("~"))
            ids += [str(i) for i in range(a, b + 1)]
        else:
            ids.append(w)
    out = []
    ref = f.extra.get("reffreq_hz") or 1e9
    for spw in ids:
        if spw not in lo.spws:
            continue
        nu = lo.spws[spw].centre_hz
        flux = f.flux_jy * (nu / ref) ** (f.spix or 0.0)
        out.append(CalibratorFlux(field=f.field, field_id=f.field_id, spw=spw, flux_jy=flux, error_jy=None,
                                  freq_hz=nu, spix=f.spix, ms=f.ms or lo.ms, kind=MODEL, origin=f.origin,
                                  intents=f.intents, where=f.where, extra=dict(f.extra)))
    return out or [f]
