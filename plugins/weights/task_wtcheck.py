"""wtcheck: are the visibility weights of MSs to be combined consistent? And a reversible fix."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from almatools import log
from almatools.batch import mms
from almatools.errors import TaskParameterError
from almatools.freshness import result_entry as casa_data_entry

from . import fix as fixes
from .provenance import provenance
from .stats import GroupStats, format_channels, measure, spw_layout

__all__ = ["wtcheck"]

TASK = "wtcheck"
SIGNIFICANCE = 3.0  # an offender's deviation beyond the tolerance, in standard errors


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
    leftovers = _clean_leftovers(vislist)
    if restore:
        restored = {}
        for v in vislist:
            restored[v] = fixes.restore_columns(ct, v)
            log.info(f"{v}: restored {', '.join(restored[v])} from the copies saved by wtcheck(fix=True); "
                     "the saved copies are removed")
        return {"restored": restored, "leftovers_removed": leftovers}

    channels = {v: _channel_selection(v, spw) for v in vislist}
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
            groups += _measure(ct, v, columns[v], channels[v], fields, intent, perscan, bar)
    verdict = _verdict(groups, prov, tolerance, columns, spw)
    backups = {v: info for v in vislist if (info := fixes.backup_info(v)) is not None}
    result = {"vis": vislist, "datacolumn": columns, "provenance": prov, "groups": [g.as_dict() for g in groups],
              "backups": backups, "leftovers_removed": leftovers, **verdict}
    # an MS without rows has no observation date to check the tables against
    result["casa_data"] = casa_data_entry(vis=[v for v in vislist if nrows[v]],
                                          depends="nothing wtcheck computes (weights and variances need no time or "
                                          "frame conversion); later frame conversions do")
    result["plotfile"] = _plot(groups, plotfile or "", verdict, tolerance) if plotfile else ""
    _log_report(result)
    for v, info in backups.items():
        log.warn(f"{v} holds the original weights saved by wtcheck(fix=True, method={info['method']!r}) on "
                 f"{info['time']}: the weights measured are the fixed ones; wtcheck(vis=..., restore=True) puts "
                 "the originals back")
    if fix:
        result["fix"] = _fix(ct, vislist, groups, method, columns, verdict["fitspw"])
    return result


def _measure(ct, vis: str, column: str, channels, fields, intent, perscan, bar) -> list:
    """:func:`measure` of one MS; a Multi-MS's sub-MSs run on the MPI servers in parallel (CASA's own way for
    statwt) when each (spw, field[, scan]) group lies in one sub-MS, so the merged groups equal the serial run."""
    parts = mms.parallel_parts(vis, ("DATA_DESC_ID", "FIELD_ID") + (("SCAN_NUMBER",) if perscan else ()))
    if parts is None:
        return measure(ct, vis, column, channels, fields, intent, perscan, bar)
    found = mms.map_parts("almatools.plugins.weights.stats:measure_path", parts, column=column, channels=channels,
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


def _clean_leftovers(vislist) -> dict:
    """Remove what killed fix/restore runs left behind in writable MSs (read-only ones are only reported)."""
    out = {}
    for v in vislist:
        try:
            removed = fixes.clean_leftovers(v)
        except OSError as exc:
            log.warn(f"{v}: leftovers of a killed wtcheck run could not be removed ({exc})")
            continue
        if removed:
            out[v] = removed
            log.info(f"{v}: removed {', '.join(removed)} left by a killed wtcheck run (the weights in the MS were "
                     "not touched by it, or were already restored)")
    return out


def _channel_selection(vis: str, spw: str) -> dict[int, np.ndarray] | None:
    """spw id → channel mask for a CASA spw selection (``'0~3'``, ``'1:100~200'``); None: everything.

    The frames plugin's selection parser checks it (bounded sizes, reversed ranges, spws or channels
    the MS lacks: refused, where CASA would clip silently), and CASA's MSSelection says what it selects.
    """
    if not str(spw).strip():
        return None
    from almatools.plugins.frames.msinfo import read_msinfo
    from almatools.plugins.frames.selection import casa_ms_select, channel_mask, check_selection
    info = read_msinfo(vis)
    rep = check_selection(spw, info, casa_ms_select(vis))
    if rep.problems:
        raise TaskParameterError(TASK, "spw", spw, f"cannot be used with {vis}: " + "; ".join(rep.problems))
    return {sid: channel_mask(ranges, info.spws[sid].nchan) for sid, ranges in rep.selected.items()}


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


def _label(g) -> str:
    return f"{Path(g.vis).name} spw {g.spw} field {g.field}" + (f" scan {g.scan}" if g.scan is not None else "")


def _evidence(g, factor: float, factor_err: float) -> str:
    """What a group's comparison rests on, in one line."""
    parts = [f"weight x variance {g.ratio:.4g} (±{g.ratio_err:.1%}) from {g.nsamples:,} third differences of "
             f"{g.nrows:,} rows, channels {g.channels.split(':', 1)[-1] or 'all'}"]
    if g.excluded:
        parts.append("excluded as a line: " + ", ".join(f"{e['channels']} (scatter x{1 + e['excess']:.2f})"
                                                        for e in g.excluded))
    if g.slope.get("first", {}).get("significant"):
        parts.append(f"continuum slope cancelled (first differences read {g.slope['first']['excess']:+.0%})")
    return f"{_label(g)}: weights off by x{factor:.4g} ± {factor_err:.2g}; " + "; ".join(parts)


def _verdict(groups, prov, tolerance: float, columns, spw: str) -> dict:
    measurable = [g for g in groups if np.isfinite(g.ratio) and g.ratio > 0]  # 0: a column of zeros
    good = [g for g in measurable if g.reliable]
    unreliable = [{"vis": g.vis, "spw": g.spw, "field": g.field, "scan": g.scan, "why": g.note or "not measured"}
                  for g in groups if g not in good]
    fitspw = _fitspw(groups, spw)
    if not good:
        return {"consistent": None, "reference_ratio": math.nan, "reference": "", "offenders": [], "uncertain": [],
                "unreliable": unreliable, "evidence": [], "remedy": "", "commands": [], "fitspw": fitspw,
                "verdict": "no group could be measured reliably (see 'unreliable' and the groups' notes)"}
    reference, ref_err, ref_from = _reference_ratio(good, prov, tolerance)
    offenders, uncertain, evidence = [], [], []
    for g in good:
        factor = g.ratio / reference
        err = factor * math.hypot(g.ratio_err, ref_err)
        if abs(factor - 1) <= tolerance:
            continue
        entry = {"vis": g.vis, "spw": g.spw, "field": g.field, "scan": g.scan, "factor": factor, "factor_err": err,
                 "nsamples": g.nsamples, "channels": g.channels, "excluded": g.excluded,
                 "evidence": _evidence(g, factor, err)}
        if abs(factor - 1) - tolerance > SIGNIFICANCE * err:
            offenders.append(entry)
            evidence.append(entry["evidence"])
        else:
            entry["why"] = (f"off by x{factor:.3g} but only {(abs(factor - 1) - tolerance) / err:.1f} standard errors "
                            "beyond the tolerance")
            uncertain.append(entry)
    consistent = False if offenders else (True if not uncertain else None)
    remedy, commands = _remedy(offenders, prov, columns, fitspw, tolerance)
    n = len(good)
    ref_text = f"reference {reference:.4g} ± {ref_err:.1%} ({ref_from})"
    if consistent:
        text = (f"consistent: all {n} (MS, spw, field) groups have weight x variance within {tolerance:.0%} of the "
                f"{ref_text}")
    elif consistent is None:
        text = (f"undecided: {len(uncertain)} of {n} groups differ from the {ref_text} by more than {tolerance:.0%} "
                "but not significantly (too few samples); none is significantly off")
    else:
        text = (f"NOT consistent: {len(offenders)} of {n} (MS, spw, field) groups differ from the {ref_text} by more "
                f"than {tolerance:.0%}, each by more than {SIGNIFICANCE:.0f} standard errors beyond it. Evidence: "
                + " | ".join(evidence))
    if unreliable:
        text += f" ({len(unreliable)} group(s) left out as unreliable: see 'unreliable')"
    excluded = [f"{_label(g)} channels {', '.join(e['channels'] for e in g.excluded)}" for g in good if g.excluded]
    if excluded:
        text += ". Channels standing out were left out (lines): " + "; ".join(excluded)
    return {"consistent": consistent, "reference_ratio": reference, "reference_err": ref_err, "reference": ref_from,
            "offenders": offenders, "uncertain": uncertain, "unreliable": unreliable, "evidence": evidence,
            "remedy": remedy, "commands": commands, "fitspw": fitspw, "verdict": text}


def _fitspw(groups, spw: str) -> dict[str, str]:
    """Per MS: the channels statwt should compute weights from (a CASA selection), when not every channel.

    Each spw's channels are those selected by *spw* minus every channel excluded as a line in any field.
    """
    out = {}
    for v in dict.fromkeys(g.vis for g in groups):
        per_spw = {}
        for g in (g for g in groups if g.vis == v and hasattr(g, "used_mask")):
            per_spw[g.spw] = per_spw[g.spw] & g.used_mask if g.spw in per_spw else g.used_mask
        if str(spw).strip() or any(g.excluded for g in groups if g.vis == v):
            out[v] = ",".join(format_channels(s, np.nonzero(m)[0]) for s, m in sorted(per_spw.items()) if m.any())
    return out


def _remedy(offenders, prov, columns, fitspw, tolerance: float) -> tuple[str, list[str]]:
    if not offenders:
        return "", []
    by_ms = {}
    for o in offenders:
        by_ms.setdefault(o["vis"], []).append(o["factor"])
    commands, remedies = [], []
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
        for v in columns:
            extra = f", fitspw={fitspw[v]!r}" if fitspw.get(v) else ""
            commands.append(f"statwt(vis={v!r}, datacolumn={_statwt_datacolumn(columns[v])!r}{extra})")
        if old:
            remedies.append(f"or recalibrate {', '.join(old)} in CASA >= 4.2.2 (pipeline) / >= 4.3 (manual)")
    if any(fitspw.values()):
        remedies.append("statwt's fitspw leaves out the channels excluded here (lines) and those not selected")
    return "; ".join(remedies), commands


def _reference_ratio(good, prov, tolerance: float) -> tuple[float, float, str]:
    """The weight x variance the others are compared with, its relative error and where it comes from.

    That of MSs calibrated in CASA >= 4.4; without provenance, that of the MS whose spws agree
    best (weights carrying 2 dnu dt agree), ties going to the one nearest 1.
    """
    modern = [g for g in good if prov[g.vis]["scheme"].startswith(">=4.4")]
    if modern:
        chosen, origin = modern, "median of the MSs calibrated in CASA >= 4.4: " + ", ".join(
            sorted({Path(g.vis).name for g in modern}))
    else:
        by_ms = {}
        for g in good:
            by_ms.setdefault(g.vis, []).append(g)
        spread = {v: max(g.ratio for g in gs) / min(g.ratio for g in gs) for v, gs in by_ms.items()}
        least = min(spread.values())
        # among equally self-consistent MSs, the one nearest weight x variance = 1 (absolute inverse variances)
        best = min((v for v in by_ms if spread[v] <= least * (1 + tolerance)),
                   key=lambda v: abs(math.log(np.median([g.ratio for g in by_ms[v]]))))
        chosen = by_ms[best]
        origin = (f"{Path(best).name}, the MS whose spws agree best (no CASA version found to prefer one)"
                  if len(by_ms) > 1 else f"{Path(best).name}")
    ratios = np.array([g.ratio for g in chosen])
    errs = np.array([g.ratio_err for g in chosen])
    return float(np.median(ratios)), float(np.median(errs) / math.sqrt(len(chosen))), origin


def _log_report(result: dict) -> None:
    log.info(f"{'MS':<28} {'spw':>3} {'field':<12} {'w x var':>10} {'error':>7} {'spread':>7} {'W*SIGMA^2':>10} "
             f"{'W/(2 dnu dt)':>13}")
    for g in result["groups"]:
        log.info(f"{Path(g['vis']).name[:28]:<28} {g['spw']:>3} {g['field'][:12]:<12} {g['ratio']:>10.4g} "
                 f"{g['ratio_err']:>7.2%} {g['spread']:>7.2%} {g['weight_sigma2']:>10.4g} {g['radiometer']:>13.4g} "
                 f"{g['note']}")
    (log.info if result["consistent"] else log.warn)(result["verdict"])
    for o in result["uncertain"]:
        log.warn(f"  uncertain: {o['vis']} spw {o['spw']} field {o['field']}: {o['why']}")
    if result["remedy"]:
        log.info(f"remedy: {result['remedy']}")
        for c in result["commands"]:
            log.info(f"  {c}")


def _plot(groups, plotfile: str, verdict: dict, tolerance: float) -> str:
    """PNG: weight × variance of each MS/spw/field relative to the reference, one colour per MS; open markers
    for groups whose estimate is unreliable, * where line channels were excluded."""
    from almatools import plotting
    reference = verdict["reference_ratio"]
    shown = [g for g in groups if np.isfinite(g.ratio) and g.ratio > 0]
    with plotting.style():
        fig = plotting.figure(8, 4.8)
        ax = fig.add_subplot()
        labels = [f"spw {g.spw}\n{g.field[:10]}" + (" *" if g.excluded else "") for g in shown]
        y = np.array([g.ratio / reference for g in shown])
        err = np.array([g.spread * g.ratio / reference if np.isfinite(g.spread) else 0 for g in shown])
        solid = np.array([g.reliable for g in shown], bool)
        vis_names = list(dict.fromkeys(g.vis for g in shown))
        x = np.arange(len(shown))
        ax.axhspan(1 - tolerance, 1 + tolerance, color=plotting.NEUTRAL["shade"], zorder=0,
                   label=f"agreement within ±{tolerance:.0%}")
        ax.axhline(1.0, color=plotting.NEUTRAL["mid"], lw=0.8, zorder=1)
        for k, v in enumerate(vis_names):
            mine = np.array([g.vis == v for g in shown], bool)
            style = plotting.series(k, marker=True)
            ax.errorbar(x[mine], y[mine], yerr=err[mine], fmt="none", ecolor=plotting.NEUTRAL["mid"], capsize=2,
                        zorder=2)
            ax.plot(x[mine & solid], y[mine & solid], style["marker"], color=style["color"], ms=6, zorder=3,
                    label=Path(v).name)
            if (mine & ~solid).any():
                ax.plot(x[mine & ~solid], y[mine & ~solid], style["marker"], color=style["color"], ms=6, zorder=3,
                        markerfacecolor="none", label=f"{Path(v).name} (unreliable)")
        ax.set_yscale("log")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlim(-0.6, max(len(shown), 1) - 0.4)
        ax.set_xlabel("spectral window and field (* line channels excluded)")
        ax.set_ylabel("weight × variance / reference (1 = consistent)")
        ax.set_title("wtcheck: are the visibility weights on one scale?")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="MS")
        plotting.save(fig, plotfile)
    log.info(f"plot: {plotfile}")
    return plotfile


def _fix(ct, vislist, groups, method: str, columns, fitspw) -> dict:
    """Bring every MS to one scheme (weight x variance = 1) after saving the originals.

    wtcheck refused read-only and held MSs before it opened any table.
    """
    for v in vislist:  # every disk checked before any MS is touched
        fixes.check_space(ct, v, with_flag=(method == "statwt"))
    done = {}
    for v in vislist:
        saved = fixes.backup_columns(ct, v, with_flag=(method == "statwt"), method=method)
        if method == "scale":
            factors = {(g.spw, g.field): g.ratio for g in groups if g.vis == v and g.reliable and np.isfinite(g.ratio)}
            fixes.scale_weights(ct, v, factors)
            done[v] = {"method": "scale", "saved": saved, "factors": {f"{s}:{f}": r for (s, f), r in factors.items()}}
        else:
            from casatasks import statwt
            spws = sorted({g.spw for g in groups if g.vis == v})
            extra = {"fitspw": fitspw[v]} if fitspw.get(v) else {}
            statwt(vis=v, datacolumn=_statwt_datacolumn(columns[v]), flagbackup=False,
                   spw=",".join(map(str, spws)), **extra)
            done[v] = {"method": "statwt", "saved": saved, "spw": ",".join(map(str, spws)), **extra}
        log.info(f"{v}: weights fixed by {method}; originals kept in {v}/{fixes.BACKUP_NAME} "
                 "(wtcheck(vis=..., restore=True) puts them back)")
    return done
