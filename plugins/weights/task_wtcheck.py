"""wtcheck: are the visibility weights of MSs to be combined consistent? And a reversible fix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from almatools import log
from almatools.batch import mms
from almatools.errors import TaskParameterError
from almatools.freshness import result_entry as casa_data_entry
from almatools.io import atomic_path

from . import fix as fixes
from .provenance import provenance
from .stats import GroupStats, measure, spw_layout

__all__ = ["wtcheck"]

TASK = "wtcheck"


def wtcheck(vis, mous=None, datacolumn="", field="", spw="", intent="", perscan=False, tolerance=0.1,
            plotfile="", fix=False, method="scale", restore=False):
    """Check visibility-weight consistency across MSs; see ``xml/wtcheck.xml``."""
    from almatools.casaenv import casatools
    ct = casatools()
    vislist = [str(Path(v)) for v in (vis if isinstance(vis, (list, tuple)) else [vis])]
    for v in vislist:
        if not (Path(v) / "table.dat").exists():
            raise TaskParameterError(TASK, "vis", v, "is not a MeasurementSet")
        # before any table is opened: casacore waits forever on a lock held elsewhere
        fixes.check_writable(v) if (fix or restore) else fixes.check_not_held(v)
    mous = list(mous or [])
    if mous and len(mous) not in (1, len(vislist)):
        raise TaskParameterError(TASK, "mous", mous, f"give one Member OUS per MS ({len(vislist)}) or one for all")
    if restore:
        restored = {}
        for v in vislist:
            restored[v] = fixes.restore_columns(ct, v)
            log.info(f"{v}: restored {', '.join(restored[v])} from the copies saved by wtcheck(fix=True)")
        return {"restored": restored}

    spws = [int(s) for s in spw.replace(";", ",").split(",") if s.strip()] if spw else None
    fields = [f.strip() for f in field.split(",") if f.strip()] if field else None
    groups, prov = [], {}
    columns, nrows = {}, {}
    for v in vislist:
        columns[v], nrows[v] = _column_and_rows(ct, v, datacolumn)
    with log.progress(total=sum(nrows.values()), desc="wtcheck", unit="row") as bar:
        for k, v in enumerate(vislist):
            prov[v] = provenance(ct, v, mous[k] if len(mous) > 1 else (mous[0] if mous else ""))
            log.info(f"{v}: data column {columns[v]}; calibration {prov[v]['casa_version'] or 'version unknown'}"
                     f" ({prov[v]['source'] or 'no provenance found'}); weight scheme {prov[v]['scheme']}")
            groups += _measure(ct, v, columns[v], spws, fields, intent, perscan, bar)
    verdict = _verdict(groups, prov, tolerance, columns)
    result = {"vis": vislist, "datacolumn": columns, "provenance": prov, "groups": [g.as_dict() for g in groups],
              **verdict}
    result["casa_data"] = casa_data_entry(vis=vislist, depends="nothing wtcheck computes (weights and variances "
                                          "need no time or frame conversion); later frame conversions do")
    result["plotfile"] = _plot(groups, plotfile or "", verdict["reference_ratio"], tolerance) if plotfile else ""
    _log_report(result)
    if fix:
        result["fix"] = _fix(ct, vislist, groups, method, columns)
    return result


def _measure(ct, vis: str, column: str, spws, fields, intent, perscan, bar) -> list:
    """:func:`measure` of one MS; a Multi-MS's sub-MSs run on the MPI servers in parallel (CASA's own way for
    statwt) when each (spw, field[, scan]) group lies in one sub-MS, so the merged groups equal the serial run."""
    parts = mms.parallel_parts(vis, ("DATA_DESC_ID", "FIELD_ID") + (("SCAN_NUMBER",) if perscan else ()))
    if parts is None:
        return measure(ct, vis, column, spws, fields, intent, perscan, bar)
    found = mms.map_parts("almatools.plugins.weights.stats:measure_path", parts, column=column, spws=spws,
                          fields=fields, intent=intent, perscan=perscan)
    groups = [GroupStats(**{**g, "vis": vis}) for part in found for g in part]
    dd_spw, _widths, names = spw_layout(ct, vis)
    first_dd = {}
    for dd, spw in enumerate(dd_spw.tolist()):
        first_dd.setdefault(spw, dd)
    groups.sort(key=lambda g: (first_dd.get(g.spw, g.spw), names.index(g.field), g.scan or 0))  # the serial order
    bar.update(sum(g.nrows for g in groups))
    log.info(f"{vis}: {len(parts)} sub-MSs measured on the MPI servers")
    return groups


def _column_and_rows(ct, vis: str, datacolumn: str) -> tuple[str, int]:
    """The data column to measure (CORRECTED_DATA when there is one, unless *datacolumn* says) and the row count."""
    tb = ct.table()
    try:
        tb.open(vis)
        names, nrows = tb.colnames(), tb.nrows()
    finally:
        tb.done()
    if not datacolumn:
        return ("CORRECTED_DATA" if "CORRECTED_DATA" in names else "DATA"), nrows
    col = {"data": "DATA", "corrected": "CORRECTED_DATA", "model": "MODEL_DATA"}[datacolumn.lower()]
    if col not in names:
        raise TaskParameterError(TASK, "datacolumn", datacolumn, f"{vis} has no {col} column")
    return col, nrows


def _statwt_datacolumn(column: str) -> str:
    return "corrected" if column == "CORRECTED_DATA" else "data"


def _verdict(groups, prov, tolerance: float, columns) -> dict:
    good = [g for g in groups if np.isfinite(g.ratio) and g.ratio > 0]  # 0: a column of zeros
    if not good:
        return {"consistent": None, "reference_ratio": math.nan, "offenders": [], "remedy": "",
                "commands": [], "verdict": "no group could be measured (see the groups' notes)"}
    reference = _reference_ratio(good, prov, tolerance)
    offenders = []
    for g in good:
        factor = g.ratio / reference
        if abs(factor - 1) > tolerance:
            offenders.append({"vis": g.vis, "spw": g.spw, "field": g.field, "scan": g.scan, "factor": factor})
    consistent = not offenders
    by_ms = {}
    for o in offenders:
        by_ms.setdefault(o["vis"], []).append(o["factor"])
    commands, remedies = [], []
    if not consistent:
        uniform = all(max(f) / min(f) - 1 <= tolerance for f in by_ms.values())
        old = [v for v in by_ms if prov[v]["scheme"].startswith("<=4.2.1")]
        if uniform and not old:
            remedies.append("scale: each listed MS is off by one factor; scale its weights")
            commands.append(f"wtcheck(vis={list(by_ms)!r}, fix=True, method='scale')")
            for v, f in by_ms.items():
                commands.append(f"# or by hand: divide WEIGHT (and WEIGHT_SPECTRUM) of {v} by {np.median(f):.6g}")
        else:
            remedies.append("statwt on all MSs: the factors differ between spws (as weights without "
                            "2*dnu*dt do), so one factor per MS cannot fix them")
            commands += [f"statwt(vis={v!r}, datacolumn={_statwt_datacolumn(columns[v])!r})" for v in columns]
            if old:
                remedies.append(f"or recalibrate {', '.join(old)} in CASA >= 4.2.2 (pipeline) / >= 4.3 (manual)")
    text = ("consistent: every spw and MS has weight x variance within "
            f"{tolerance:.0%} of {reference:.4g}") if consistent else (
        f"NOT consistent: {len(offenders)} of {len(good)} (MS, spw, field) groups are off by more than "
        f"{tolerance:.0%}")
    return {"consistent": consistent, "reference_ratio": reference, "offenders": offenders,
            "remedy": "; ".join(remedies), "commands": commands, "verdict": text}


def _reference_ratio(good, prov, tolerance: float) -> float:
    """The weight x variance the others are compared with: that of MSs calibrated in CASA >= 4.4;
    without provenance, that of the MS whose spws agree best (weights carrying 2 dnu dt agree),
    ties going to the one nearest 1."""
    modern = [g.ratio for g in good if prov[g.vis]["scheme"].startswith(">=4.4")]
    if modern:
        return float(np.median(modern))
    by_ms = {}
    for g in good:
        by_ms.setdefault(g.vis, []).append(g.ratio)
    spread = {v: max(r) / min(r) for v, r in by_ms.items()}
    least = min(spread.values())
    # among equally self-consistent MSs, the one nearest weight x variance = 1 (absolute inverse variances)
    best = min((v for v in by_ms if spread[v] <= least * (1 + tolerance)), key=lambda v: abs(math.log(np.median(by_ms[v]))))
    return float(np.median(by_ms[best]))


def _log_report(result: dict) -> None:
    log.info(f"{'MS':<28} {'spw':>3} {'field':<12} {'w x var':>10} {'spread':>7} {'W*SIGMA^2':>10} "
             f"{'W/(2 dnu dt)':>13}")
    for g in result["groups"]:
        log.info(f"{Path(g['vis']).name[:28]:<28} {g['spw']:>3} {g['field'][:12]:<12} {g['ratio']:>10.4g} "
                 f"{g['spread']:>7.2%} {g['weight_sigma2']:>10.4g} {g['radiometer']:>13.4g} {g['note']}")
    (log.info if result["consistent"] else log.warn)(result["verdict"])
    for o in result["offenders"]:
        log.warn(f"  {o['vis']} spw {o['spw']} field {o['field']}: weights off by x{o['factor']:.4g}")
    if result["remedy"]:
        log.info(f"remedy: {result['remedy']}")
        for c in result["commands"]:
            log.info(f"  {c}")


def _plot(groups, plotfile: str, reference: float, tolerance: float) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = [f"{Path(g.vis).name[:18]}\nspw {g.spw} {g.field[:10]}" for g in groups]
    y = np.array([g.ratio / reference for g in groups])
    err = np.array([g.spread * g.ratio / reference if np.isfinite(g.spread) else 0 for g in groups])
    vis_names = sorted({g.vis for g in groups})
    colours = [f"C{vis_names.index(g.vis) % 10}" for g in groups]
    x = np.arange(len(groups))
    ax.errorbar(x, y, yerr=err, fmt="none", ecolor="0.5")
    ax.scatter(x, y, c=colours, zorder=3)
    ax.axhspan(1 - tolerance, 1 + tolerance, color="0.9", zorder=0, label=f"±{tolerance:.0%}")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=6, rotation=60, ha="right")
    ax.set_ylabel("weight x variance / reference")
    ax.set_title("wtcheck: weight consistency per MS and spw")
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    with atomic_path(plotfile) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    log.info(f"plot: {plotfile}")
    return plotfile


def _fix(ct, vislist, groups, method: str, columns) -> dict:
    """Bring every MS to one scheme (weight x variance = 1) after saving the originals.

    wtcheck refused read-only and held MSs before it opened any table.
    """
    done = {}
    for v in vislist:
        saved = fixes.backup_columns(ct, v, with_flag=(method == "statwt"))
        if method == "scale":
            factors = {(g.spw, g.field): g.ratio for g in groups if g.vis == v and np.isfinite(g.ratio)}
            fixes.scale_weights(ct, v, factors)
            done[v] = {"method": "scale", "saved": saved, "factors": {f"{s}:{f}": r for (s, f), r in factors.items()}}
        else:
            from casatasks import statwt
            statwt(vis=v, datacolumn=_statwt_datacolumn(columns[v]), flagbackup=False)
            done[v] = {"method": "statwt", "saved": saved}
        log.info(f"{v}: weights fixed by {method}; originals kept in {fixes.BACKUP_PREFIX}* "
                 "(wtcheck(vis=..., restore=True) puts them back)")
    return done
