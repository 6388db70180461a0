"""Which CASA version and which kind of calibration produced an MS, and the weight scheme that implies."""

from __future__ import annotations

import os
import re

from almatools.plugins.calversion.sources import version_key

__all__ = ["provenance", "scheme_for"]

_VERSION = re.compile(r"(?:CASA\s+Version|version:?)\s+(?:[A-Z]+\s+)?(\d+\.\d+\.\d+)", re.I)


def scheme_for(version: str, pipeline: bool | None, has_spectrum: bool) -> str:
    """The weight scheme (DOMAIN.md §3.1) a calibration in *version* leaves."""
    if not version:
        return "unknown" + (" (WEIGHT_SPECTRUM present: CASA >= 4.3)" if has_spectrum else "")
    key = version_key(version)[:3]
    if key <= (4, 2, 1):
        return "<=4.2.1: weights without 2*dnu*dt, per spw (inconsistent between spws)"
    if key < (4, 4, 0):
        if key < (4, 3, 0) and pipeline is False:
            return "4.2.2 manual: weights from 2*dnu*dt but manual data before 4.3 may be inconsistent"
        return "4.2.2-4.3: weights from 2*dnu*dt" + (", WEIGHT_SPECTRUM" if has_spectrum else "")
    return ">=4.4: weights from 2*dnu*dt" + (", WEIGHT_SPECTRUM" if has_spectrum else "")


def provenance(ct, vis: str, mous: str = "") -> dict:
    """CASA version and calibration type of *vis* from its HISTORY and PROCESSOR tables and the MOUS."""
    out = {"casa_version": "", "pipeline": None, "source": "", "has_weight_spectrum": False}
    tb = ct.table()
    try:
        tb.open(vis)
        out["has_weight_spectrum"] = "WEIGHT_SPECTRUM" in tb.colnames() and tb.nrows() > 0 and \
            tb.iscelldefined("WEIGHT_SPECTRUM", 0)
        tb.close()
        history = os.path.join(vis, "HISTORY")
        if os.path.isdir(history):
            tb.open(history)
            messages = list(tb.getcol("MESSAGE")) if tb.nrows() else []
            apps = list(tb.getcol("APPLICATION")) if tb.nrows() else []
            tb.close()
            text = "\n".join(messages)
            versions = [m.group(1) for m in _VERSION.finditer(text)]
            if versions:
                out["casa_version"], out["source"] = versions[-1], f"{vis}/HISTORY"
            if ".hifa_" in text or any("pipeline" in str(a).lower() for a in apps):
                out["pipeline"] = True
        processor = os.path.join(vis, "PROCESSOR")
        if os.path.isdir(processor):
            tb.open(processor)
            out["processor_types"] = sorted(set(tb.getcol("TYPE"))) if tb.nrows() else []
            tb.close()
    finally:
        tb.done()
    if mous:
        from almatools.casa_tasks import calversion
        r = calversion(path=mous)
        if r["casa_version"]:
            out["casa_version"] = r["casa_version"].lstrip(">=")
            out["pipeline"] = r["pipeline"]
            out["source"] = f"calversion({mous})"
    out["scheme"] = scheme_for(out["casa_version"], out["pipeline"], out["has_weight_spectrum"])
    return out
