"""Archival calibrator fluxes against the catalogue: a row per value, a verdict per calibrator.

ALMA states its flux-scale accuracy per band (5 % in Bands 3–5, 10 % in 6–8, 20 % in
9–10); a calibrator whose archival values are within that of the catalogue estimate at the
observation date and each spw's frequency *agrees*, otherwise it *differs*.  Only the flux
calibrator's model value sets the flux scale of the science data (the pipeline's
``hif_setmodels`` uses the AMPLITUDE calibrator's, manual scripts the ``setjy`` field's);
other calibrators' values are for comparison (``hifa_gfluxscale``) or were derived from
the flux calibrator.  The catalogue keeps growing after a delivery is calibrated, so a
difference can come from measurements added later rather than from a wrong calibration;
the verdict says when that is the case.
"""

from __future__ import annotations

import math

from .archival import SOLAR_SYSTEM, ArchivalFluxes
from .bands import band_of, flux_accuracy
from .dates import mjd_to_iso

__all__ = ["plan_requests", "compare_rows", "verdicts"]


def plan_requests(arch: ArchivalFluxes, date_mjd: float | None) -> tuple[list, list]:
    """``(requests, skipped)``: one ``(index, name, freq_hz, mjd)`` per comparable value, and why others are not."""
    requests, skipped = [], []
    for i, f in enumerate(arch.fluxes):
        why = ""
        mjd = date_mjd if date_mjd is not None else arch.date_of(f.ms)
        if not f.field:
            why = f"field {f.field_id or '?'} of {f.ms or 'its MS'} has no name in the delivery (no listobs)"
        elif f.field.lower() in SOLAR_SYSTEM:
            why = f"{f.field} is a solar-system body: its flux comes from a planetary model, not the quasar catalogue"
        elif f.freq_hz is None:
            why = f"the frequency of spw {f.spw or '?'} of {f.ms or 'its MS'} is not in the delivery (no listobs)"
        elif mjd is None:
            why = "the observation date is not in the delivery: give date="
        if why:
            skipped.append({"field": f.field or f.field_id, "spw": f.spw, "origin": f.origin, "where": f.where,
                            "reason": why})
        else:
            requests.append((i, f.field, float(f.freq_hz), float(mjd)))
    for c in arch.models:
        for name in c.names or [c.field]:
            skipped.append({"field": name, "spw": c.spw, "origin": f"setjy standard={c.standard}", "where": c.where,
                            "reason": f"flux density from the '{c.standard}' model, not a catalogue value"})
    return requests, skipped


def _percent(a, b):
    return None if a is None or b in (None, 0) else 100.0 * (a / b - 1.0)


def compare_rows(arch: ArchivalFluxes, requests, estimates, services) -> list[dict]:
    """One row per compared value: archival, catalogue estimate and/or flux service, differences in %."""
    rows = []
    for n, (i, name, freq, mjd) in enumerate(requests):
        f = arch.fluxes[i]
        est = estimates[n] if estimates else None
        svc = services[n] if services else None
        row = {"field": name, "ms": f.ms, "spw": f.spw, "frequency_ghz": freq / 1e9, "date": mjd_to_iso(mjd),
               "kind": f.kind, "origin": f.origin, "where": f.where, "archival_jy": f.flux_jy,
               "archival_error_jy": f.error_jy, "band": band_of(freq)}
        if est is not None:
            ok = "fluxDensity" in est
            row.update(estimate_jy=est.get("fluxDensity"), estimate_error_jy=est.get("fluxDensityUncertainty"),
                       spectral_index=est.get("spectralIndex"), estimate_error=est.get("error"),
                       difference_percent=_percent(f.flux_jy, est.get("fluxDensity")) if ok else None)
        if svc is not None:
            good = svc.get("valid")
            row.update(service_jy=svc.get("flux_density") if good else None,
                       service_error_jy=svc.get("flux_density_error") if good else None,
                       service_status=svc.get("status_code"), service_clarification=svc.get("clarification", ""),
                       service_difference_percent=_percent(f.flux_jy, svc.get("flux_density")) if good else None)
        rows.append(row)
    return rows


def _latest_ingestion(estimates, indices) -> str | None:
    dates = []
    for n in indices:
        est = estimates[n] if estimates else None
        if not est or "closest" not in est:
            continue
        for ms in est["closest"].values():
            dates += [m.get("ingested") for m in ms]
        for p in est.get("pairs", []):
            dates += p.get("ingested", [])
    dates = [d for d in dates if d]
    return max(dates) if dates else None


def verdicts(arch: ArchivalFluxes, rows: list[dict], requests, estimates, skipped) -> list[dict]:
    """Per calibrator: role, band accuracy, largest difference, verdict and the explanation."""
    by_name: dict[str, list[int]] = {}
    for n, row in enumerate(rows):
        by_name.setdefault(row["field"], []).append(n)
    for s in skipped:
        by_name.setdefault(s["field"], [])
    out = []
    processed = mjd_to_iso(arch.processed) if arch.processed is not None else None
    for name, idx in sorted(by_name.items()):
        is_flux = name in arch.flux_calibrators
        intents = sorted(arch.intents.get(name, ()))
        diffs = []
        for n in idx:
            d = rows[n].get("difference_percent")
            if d is None:
                d = rows[n].get("service_difference_percent")
            if d is not None:
                diffs.append((abs(d), rows[n]))
        bands = sorted({rows[n]["band"] for n in idx if rows[n]["band"]})
        accuracy = max((flux_accuracy(b) for b in bands), default=None)
        v = {"field": name, "flux_calibrator": is_flux, "intents": intents, "bands": bands,
             "accuracy_percent": None if accuracy is None else 100 * accuracy, "nvalues": len(idx)}
        explain = []
        if not diffs:
            reasons = sorted({s["reason"] for s in skipped if s["field"] == name} |
                             {rows[n].get("estimate_error") or "" for n in idx} - {""})
            v.update(verdict="not compared", max_difference_percent=None)
            explain += reasons or ["no catalogue value could be computed"]
        else:
            worst, row = max(diffs, key=lambda t: t[0])
            v["max_difference_percent"] = worst
            v["verdict"] = "agrees" if accuracy is not None and worst <= 100 * accuracy else "differs"
            explain.append(f"largest difference {worst:.1f} % ({row['kind']} value {row['archival_jy']:.4g} Jy from "
                           f"{row['origin']}, spw {row['spw']}, {row['frequency_ghz']:.3f} GHz) against ALMA's "
                           f"{100 * accuracy:.0f} % flux accuracy in Band {row['band']}" if accuracy else
                           f"largest difference {worst:.1f} % (outside the ALMA bands)")
        if is_flux:
            explain.append(f"{name} is the flux calibrator: its model value sets the flux scale of every other source, "
                           "so the science fluxes scale by the same factor as this value; to adopt the catalogue's, "
                           "recalibrate with calflux(mode='setjy') or scale the science fluxes by catalogue/archival")
        else:
            explain.append(f"{name} does not set the flux scale: the pipeline keeps its catalogue value only to "
                           "compare with what hifa_gfluxscale derives, and manual calibrations derive its flux from the "
                           "flux calibrator; a difference shows its variability or a problem in the flux transfer")
        latest = _latest_ingestion(estimates, [k for k, r in enumerate(requests) if r[1] == name])
        if processed and latest and latest > processed:
            explain.append(f"measurements behind the estimate entered the catalogue as late as {latest}, after the "
                           f"delivery was calibrated ({processed}): later catalogue updates can explain a difference")
        elif v.get("verdict") == "differs":
            explain.append("the catalogue is updated continually: measurements added or re-reduced after the data "
                           "were calibrated can explain a difference")
        v["explanation"] = explain
        out.append(v)
    return out


def finite(x) -> bool:
    return x is not None and isinstance(x, float) and math.isfinite(x)
