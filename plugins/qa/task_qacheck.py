"""qacheck: what a Member OUS delivery contains and how good its images are, in a report people look at."""

from __future__ import annotations

import fnmatch
import math
from pathlib import Path

import numpy as np

from almatools import limits, log
from almatools.delivery import (DeliveryError, MemberOUS, missing_companions, parse_product_name, read_aqua,
                                read_qa2_text, read_readme)
from almatools.errors import TaskParameterError

from .images import ImageReadError, open_image
from .report import plot_spectrum, plot_thumbnail, safe_name, write_html, write_tables
from .stats import measure_image
from .verdict import expected_dr, expected_rms, verdict

__all__ = ["qacheck"]

TASK = "qacheck"
#: one plane's pixels may take this many times their size in memory (the planes queued for and held by the
#: measuring threads, each with its pb and flat-noise copy, and their work arrays)
PLANE_WORK_FACTOR = 20
_MEASURED_KINDS = ("pbcor", "image")


def qacheck(path="", outdir="qacheck", report=True, include=None, pbmin=0.5, clip=3.0, noisyfactor=1.5,
            overwrite=False):
    """Inventory, QA reports and measured image quality of a Member OUS; see ``xml/qacheck.xml``."""
    root = Path(path)
    if not root.is_dir():
        raise TaskParameterError(TASK, "path", path, "must be a Member OUS directory (member.uid___...)")
    out = Path(outdir)
    _check_outdir(out, overwrite)
    mous = MemberOUS(root)
    result = {"path": str(root), "mous": "", "project": "", "outdir": str(out), "calibration": {}, "readme": None,
              "aqua": [], "qa2": [], "inventory": [], "missing": [], "images": [], "not_read": [], "failed": [],
              "tables": [], "report": "", "plots": []}
    _calibration(root, result)
    aquas, qa2s = _qa_reports(mous, result)
    contdat = _contdat(mous, result)
    products = _inventory(mous, result)
    selected = [p for p in products if p[0].kind in _MEASURED_KINDS and p[0].term in ("", "tt0")
                and (not include or any(fnmatch.fnmatch(p[1].name, pat) for pat in include))]
    cards = []
    out.mkdir(parents=True, exist_ok=True)
    for product, file, image in selected:
        if image is None:
            continue
        card = _check_image(product, file, image, products, aquas, qa2s, contdat, result, out, report, pbmin, clip,
                            noisyfactor)
        if card:
            cards.append(card)
    result["tables"] = write_tables(out, _tables(result, cards))
    if report:
        result["report"] = write_html(out / "index.html", result, cards)
        log.info(f"report: {result['report']}")
    result["ok"] = not result["failed"]
    _log_summary(result)
    return result


def _check_outdir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TaskParameterError(TASK, "outdir", str(out), "exists and is not a directory")
    if out.is_dir() and (out / "index.html").exists() and not overwrite:
        raise TaskParameterError(TASK, "outdir", str(out), "already holds a qacheck report (index.html); "
                                 "set overwrite=True to replace it")


# ---------------------------------------------------------------------------------------- sources
def _calibration(root: Path, result: dict) -> None:
    """Calibration type and CASA version from calversion (the one reader of version statements)."""
    from almatools.casa_tasks import calversion
    try:
        cv = calversion(path=str(root))
    except Exception as exc:  # calversion's own refusal must not stop the image checks
        result["not_read"].append({"file": str(root), "why": f"calversion: {exc}"})
        return
    result["calibration"] = {"type": cv["calibration_type"], "casa_version": cv["casa_version"],
                             "pipeline_version": cv["pipeline_version"], "imaging_version": cv["imaging_version"],
                             "from": cv["calibration"].get("file", "") if cv["calibration"] else ""}


def _qa_reports(mous: MemberOUS, result: dict):
    aquas, qa2s = [], []
    for reader, key, texts in ((read_aqua, "aqua", _safe(mous.aqua_reports, result)),
                               (read_qa2_text, "qa2", _safe(mous.qa2_texts, result))):
        for t in texts:
            try:
                parsed = reader(t.text, t.label)
            except DeliveryError as exc:
                result["not_read"].append({"file": t.label, "why": str(exc).removeprefix(f"{t.label}: ")})
                continue
            if key == "qa2" and parsed.not_read:
                result["not_read"].append({"file": t.label, "why": parsed.not_read})
                continue
            for why in getattr(parsed, "not_read", []) if key == "aqua" else []:
                result["not_read"].append({"file": t.label, "why": why})
            (aquas if key == "aqua" else qa2s).append(parsed)
            result[key].append(parsed.as_dict())
    readmes = _safe(mous.readmes, result)
    if readmes:
        rd = read_readme(readmes[0].text, readmes[0].label)
        result["readme"] = rd.as_dict()
        result["mous"], result["project"] = rd.mous, rd.project
    for aq in aquas:
        result["mous"] = result["mous"] or aq.ous
        result["project"] = result["project"] or aq.proposal
    return aquas, qa2s


def _safe(method, result):
    try:
        return list(method())
    except DeliveryError as exc:
        result["not_read"].append({"file": str(method.__self__.root), "why": str(exc)})
        return []


def _contdat(mous: MemberOUS, result: dict):
    from almatools.plugins.frames.contdat import ContDatError, parse_contdat
    for t in _safe(mous.contdat_texts, result):
        try:
            return parse_contdat(t.text, t.label)
        except ContDatError as exc:
            result["not_read"].append({"file": t.label, "why": str(exc)})
    return None


def _inventory(mous: MemberOUS, result: dict) -> list:
    """Every product: its name's meaning and, when it opens, its shape, frequencies, beams and size."""
    products = []
    for file in _safe(mous.product_paths, result):
        product = parse_product_name(file.name)
        image, why = None, ""
        try:
            image = open_image(file)
        except ImageReadError as exc:
            why = str(exc)
            result["failed"].append({"file": file.name, "why": why.removeprefix(f"{file}: ")})
        result["inventory"].append(_inventory_row(product, file, image, why))
        products.append((product, file, image))
    result["missing"] = missing_companions([p for p, _, _ in products])
    result["mous"] = result["mous"] or next((f"uid://{p.mous[6:].replace('_', '/')}" for p, _, _ in products
                                             if p.mous), "")
    return products


def _inventory_row(product, file: Path, image, why: str) -> dict:
    row = {"file": file.name, "convention": product.convention, "target": product.target, "intent": product.intent,
           "spws": list(product.spws), "specmode": product.specmode, "stokes": product.stokes, "term": product.term,
           "kind": product.kind, "shape": [], "freq_min_ghz": None, "freq_max_ghz": None, "frame": "",
           "beam_text": "–", "beam_major_arcsec": None, "beam_minor_arcsec": None, "size_mb": None,
           "readable": image is not None, "why": why}
    if image is not None:
        f = image.freqs_hz[np.isfinite(image.freqs_hz)]
        row.update(shape=list(image.shape), frame=image.frame, size_mb=image.size_bytes / 1e6,
                   freq_min_ghz=float(f.min() / 1e9) if f.size else None,
                   freq_max_ghz=float(f.max() / 1e9) if f.size else None)
        if image.beams_arcsec is not None:
            b = image.beams_arcsec
            row.update(beam_major_arcsec=float(np.median(b[:, 0])), beam_minor_arcsec=float(np.median(b[:, 1])),
                       beam_text=_beam_text(b))
    return row


def _beam_text(b: np.ndarray) -> str:
    if np.allclose(b[:, :2], b[0, :2], rtol=1e-6):
        return f"{b[0, 0]:.3f} x {b[0, 1]:.3f}, {b[0, 2]:.1f}"
    return (f"{b[:, 0].min():.3f}-{b[:, 0].max():.3f} x {b[:, 1].min():.3f}-{b[:, 1].max():.3f} "
            f"({len(b)} per-channel beams)")


# ---------------------------------------------------------------------------------------- one image
def _companion(product, products, kind: str):
    for p, file, image in products:
        if p.group == product.group and p.kind == kind and p.term in ("", product.term, "tt0"):
            return p, file, image
    return None


def _check_image(product, file, image, products, aquas, qa2s, contdat, result, out, report, pbmin, clip,
                 noisyfactor):
    nx, ny, nchan, _ = image.shape
    limits.check_memory(nx * ny * 4 * PLANE_WORK_FACTOR, subject=f"{TASK}: one plane of {file.name} ({nx} x {ny})")
    pb_entry = _companion(product, products, "pb")
    pb = pb_entry[2] if pb_entry else None
    corrected = product.kind == "pbcor" or (product.convention == "manual" and "pbcor" in file.name.lower())
    log.info(f"measuring {file.name} ({nchan} channel(s){', pb ' + pb.path.name if pb else ', no pb'})")
    try:
        with log.progress(nchan, desc=f"{TASK}: {file.name}", unit="planes") as bar:
            meas = measure_image(image, pb, corrected=corrected, pbmin=pbmin, clip=clip, progress=bar,
                                 keep_map=report)
    except ImageReadError as exc:
        result["failed"].append({"file": file.name, "why": str(exc).removeprefix(f"{file}: ")})
        return None
    linefree, rms_from = _linefree(product, image, contdat, meas)
    valid = np.isfinite(meas.rms_chan)
    use = valid & linefree if (valid & linefree).any() else valid
    rms = float(np.median(meas.rms_chan[use])) if use.any() else math.nan
    noisy = [int(c) for c in np.flatnonzero(valid & (meas.rms_chan > noisyfactor * rms))] if nchan > 1 else []
    blank = [int(c) for c in np.flatnonzero(~valid)]
    peak = float(np.nanmax(meas.peak_chan)) if np.isfinite(meas.peak_chan).any() else math.nan
    centre = float(np.nanmedian(image.freqs_hz))
    band, dr_exp = expected_dr(centre)
    beam = image.beams_arcsec[nchan // 2] if image.beams_arcsec is not None else None
    cell = min(image.cell_arcsec) if image.cell_arcsec else math.nan
    promise = expected_rms(product, image, image.channel_width_hz(), aquas, qa2s)
    qa2 = _qa2_for(qa2s)
    row = {"file": file.name, "target": product.target, "spws": list(product.spws), "specmode": product.specmode,
           "kind": product.kind, "pb": pb.path.name if pb else "", "nchan": nchan, "rms_jy": rms,
           "rms_from": rms_from, "rms_npix_median": int(np.median(meas.npix_chan[use])) if use.any() else 0,
           "theoretical_jy": promise["jy"] if promise else None,
           "theoretical_from": (promise["source"] + (f" ({promise['scaled']})" if promise["scaled"] else "")
                                if promise else "none"),
           "pipeline_observed_jy": (promise or {}).get("pipeline_observed_jy"),
           "qa2_achieved_jy": (promise or {}).get("qa2_achieved_jy"),
           "rms_ratio": rms / promise["jy"] if promise and promise["jy"] else None, "peak_jy": peak,
           "peak_pbcor_jy": meas.peak_pbcor, "peak_xy": list(meas.peak_xy),
           "dr": peak / rms if rms > 0 else math.nan, "band": band, "dr_expected": dr_exp,
           "beam_arcsec": [float(v) for v in beam] if beam is not None else None,
           "beam_text": _beam_text(image.beams_arcsec) if image.beams_arcsec is not None else "none",
           "cell_arcsec": cell, "pixels_per_beam": float(beam[1] / cell) if beam is not None and cell > 0 else None,
           "pixels_per_beam_major": float(beam[0] / cell) if beam is not None and cell > 0 else None,
           "noisy_channels": noisy, "blank_channels": blank, "linefree_channels": int(linefree.sum()),
           "mrs_arcsec": qa2.get("mrs_arcsec"), "ar_goal_arcsec": qa2.get("ar_goal_arcsec"),
           "notes": list(meas.notes), "rms_per_channel_jy": [float(v) for v in meas.rms_chan]}
    row["verdict"], row["reasons"] = verdict(row)
    result["images"].append(row)
    card = {"row": row, "rms_chan": meas.rms_chan, "freqs": image.freqs_hz, "linefree": linefree}
    if report:
        stem = safe_name(file.name)
        card["thumbnail"] = Path(plot_thumbnail(out / f"{stem}.peak.png", image, meas, product, pbmin)).name
        result["plots"].append(str(out / card["thumbnail"]))
        if nchan > 1:
            card["spectrum"] = Path(plot_spectrum(out / f"{stem}.rms.png", image, meas, product, linefree, rms,
                                                  row["theoretical_jy"], noisy,
                                                  from_contdat=not rms_from.startswith("all channels"))).name
            result["plots"].append(str(out / card["spectrum"]))
    return card


def _qa2_for(qa2s) -> dict:
    """MRS and the AR goal from the QA2 texts: the largest MRS of the execution blocks, the goal range."""
    out = {}
    mrs = [eb["mrs_arcsec"] for q in qa2s for eb in q.execution_blocks if isinstance(eb.get("mrs_arcsec"), float)]
    if mrs:
        out["mrs_arcsec"] = max(mrs)
    for q in qa2s:
        if "ar_goal_arcsec" in q.rms:
            out["ar_goal_arcsec"] = q.rms["ar_goal_arcsec"]
        if "mrs_arcsec" not in out and "mrs_arcsec" in q.rms:
            out["mrs_arcsec"] = q.rms["mrs_arcsec"]
    return out


def _linefree(product, image, contdat, meas) -> tuple[np.ndarray, str]:
    """Which channels are line-free: the cont.dat ranges of the product's target and spw in the image's frame."""
    nchan = image.nchan
    everything = np.ones(nchan, dtype=bool)
    if nchan == 1:
        return everything, "the image plane (one channel)"
    if contdat is None:
        return everything, "all channels (no cont.dat in the delivery)"
    field = next((f for f in contdat.fields if _same(f.name, product.target)), None)
    spw = field.spw(int(product.spws[0])) if field and len(product.spws) == 1 and product.spws[0].isdigit() else None
    if spw is None:
        return everything, f"all channels (cont.dat has no block for {product.target} spw {','.join(product.spws)})"
    if spw.keyword == "ALL":
        return everything, "all channels (cont.dat: ALL)"
    if not spw.ranges:
        return everything, "all channels (cont.dat: NONE, findcont found no line-free range)"
    ranges, how = _ranges_in_frame(spw.ranges, image)
    f = image.freqs_hz
    half = image.channel_width_hz() / 2
    free = np.zeros(nchan, dtype=bool)
    for lo, hi in ranges:
        free |= (f - half >= lo - 1e-6 * half) & (f + half <= hi + 1e-6 * half)
    if not free.any():
        return everything, f"all channels (no channel lies wholly inside the cont.dat ranges {how})"
    return free, f"{int(free.sum())} line-free channel(s) from {Path(contdat.path).name} {how}"


def _same(a: str, b: str) -> bool:
    from .verdict import _same_name
    return _same_name(a, b)


def _ranges_in_frame(ranges, image) -> tuple[list[tuple[float, float]], str]:
    """cont.dat ranges converted to the image's spectral frame with the frames plugin (CASA measures)."""
    frames = {r.frame.upper() for r in ranges}
    target = (image.frame or "").upper()
    if not target or frames == {target}:
        return [(r.lo_hz, r.hi_hz) for r in ranges], f"({'/'.join(sorted(frames))}, the image's frame)"
    if image.obs_mjd is None or not all(math.isfinite(v) for v in image.direction_deg):
        return [(r.lo_hz, r.hi_hz) for r in ranges], (f"(in {'/'.join(sorted(frames))}, used unconverted: the image "
                                                      f"({target}) states no observation date or direction)")
    from almatools.casaenv import casatools
    from almatools.plugins.frames.convert import Site, frame_factors
    me = casatools().measures()
    try:
        direction = me.direction(image.direction_frame or "J2000", f"{image.direction_deg[0]}deg",
                                 f"{image.direction_deg[1]}deg")
        out = []
        for r in ranges:
            factor = frame_factors(r.frame, target, [image.obs_mjd * 86400.0], direction, Site("ALMA"), me=me)[0]
            out.append((r.lo_hz * factor, r.hi_hz * factor))
    finally:
        me.done()
    return out, f"(converted from {'/'.join(sorted(frames))} to {target} at the observation date)"


# ---------------------------------------------------------------------------------------- outputs
def _tables(result: dict, cards: list) -> dict:
    inventory = [{k: v for k, v in r.items() if k not in ("why",)} for r in result["inventory"]]
    images = [{k: v for k, v in r.items() if k not in ("rms_per_channel_jy", "notes", "reasons", "peak_xy")}
              | {"reasons": " | ".join(r["reasons"])} for r in result["images"]]
    channels = [{"file": c["row"]["file"], "channel": k, "frequency_hz": float(c["freqs"][k]),
                 "rms_jy": float(c["rms_chan"][k]), "linefree": bool(c["linefree"][k])}
                for c in cards for k in range(len(c["rms_chan"]))]
    scores = [{"file": aq["file"], "stage": s["number"], "task": s["name"], "score": s["score"], "reason": s["reason"]}
              for aq in result["aqua"] for s in aq["stages"]]
    return {"inventory": inventory, "images": images, "channels": channels, "scores": scores}


def _log_summary(result: dict) -> None:
    log.info(f"{len(result['inventory'])} product(s), {len(result['images'])} measured, "
             f"{len(result['missing'])} expected companion(s) missing")
    for r in result["images"]:
        log.info(f"{r['file']}: {r['verdict']} — {'; '.join(r['reasons'])}")
    for n in result["not_read"]:
        log.warn(f"not read: {n['file']}: {n['why']}")
    for f in result["failed"]:
        log.warn(f"failed: {f['file']}: {f['why']}")
