"""imadvise: re-imaging parameters for archival ALMA data, from the data themselves.

Three steps:

1. **plan** (metadata only): the selection in every MS, the image's field of
   view (primary beam of the smallest dish out to ``pblimit``, or the mosaic's
   extent), hence the uv grid tclean will weight on;
2. **survey** (:func:`.survey.survey_ms`, one pass over UVW/FLAG/WEIGHT per MS,
   mergeable per sub-MS);
3. **advise** (merged surveys): beams and noise for natural/Briggs/uniform
   weighting (:mod:`.psf`), MRS, cell and imsize, averaging limits, gridder,
   deconvolver, phase centre, Stokes, threshold, and the tclean call
   (:mod:`.rules` holds the rules of thumb).
"""

from __future__ import annotations

import glob
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from almatools import limits, log
from almatools.errors import TaskParameterError
from almatools.io import check_output_file

from . import rules
from .msmeta import format_direction, from_tangent, read_meta, select, tangent_offsets
from .psf import GridGeometry, fit_beam, imaging_grid, noise_factor
from .survey import (MsSurvey, SurveyPlan, baseline_classes, density_units, longest_length, percentile_length,
                     survey_ms)

__all__ = ["imadvise"]

TASK = "imadvise"
GRID_BUDGET_BYTES = 384 * 2 ** 20  # all weight grids together; coarser cells beyond (noted in the result)
LONG_BASELINE_M = 500.0  # the seed's chanbin rule holds for baselines up to this
MAX_EXECUTE_PIXELS = 8192  # per axis: tclean's images of this size already take gigabytes
WEIGHTINGS = ("natural", "briggs", "uniform")


def imadvise(vis, field="", spw="", specmode="mfs", robust=0.5, sourcesize="", pixelsperbeam=5, pblimit=0.2,
             mous="", imagename="", niter=1000, plotfile="", execute=False):
    """Advise tclean parameters for the MSs; see ``xml/imadvise.xml``."""
    from almatools.casaenv import casatools
    ct = casatools()
    vislist = _check_vis(vis)
    extent = _source_extent(sourcesize)
    if plotfile:
        check_output_file(plotfile)  # before the pass, not after it
    metas = [read_meta(ct, v) for v in vislist]
    provenance = _mous_provenance(mous) if mous else {}
    spw_texts, continuum = _continuum_channels(vislist, spw, specmode, provenance)
    selections = [_select(ct, m, field, s) for m, s in zip(metas, spw_texts)]
    imagename = imagename or _default_imagename(metas[0], selections[0], specmode)
    if execute:
        _check_imagename_free(imagename)
    plan = _plan(metas, selections, pblimit)
    plan.notes.extend(continuum["warnings"])
    for note in plan.notes:
        log.info(note)
    with log.progress(total=sum(m.nrows for m in metas), desc=TASK, unit="row") as bar:
        surveys = [_survey(ct, meta, sel, plan.survey, bar) for meta, sel in zip(metas, selections)]
    if not any(s.total_weight > 0 for s in surveys):
        raise TaskParameterError(TASK, "vis", vislist, "has no unflagged data with positive weights in the selection")
    result = _advise(metas, selections, surveys, plan, specmode, robust, extent, int(pixelsperbeam), pblimit,
                     provenance, imagename, int(niter))
    result["continuum"] = continuum
    if plotfile:
        from .plot import plot_uv
        result["plotfile"] = plot_uv(plotfile, surveys, plan, result)
    else:
        result["plotfile"] = ""
    _log_report(result)
    if execute:
        from .execute import run_and_compare
        limits.check_count(max(result["imsize"]["value"]), MAX_EXECUTE_PIXELS, subject=limits.parameter("execute"),
                           unit="pixels per image axis", hint="run the returned tclean call where the memory is, "
                                                              "or image a smaller field")
        result["execute"] = run_and_compare(result)
        result["ok"] = result["execute"].get("ok", False)
    return result


# --------------------------------------------------------------------------- inputs

def _check_vis(vis) -> list[str]:
    from almatools.plugins.weights.fix import check_not_held
    vislist = [str(Path(v)) for v in (vis if isinstance(vis, (list, tuple)) else [vis])]
    if not vislist:
        raise TaskParameterError(TASK, "vis", vis, "must name at least one MeasurementSet")
    for v in vislist:
        if not (Path(v) / "table.dat").is_file() or not (Path(v) / "SPECTRAL_WINDOW").is_dir():
            raise TaskParameterError(TASK, "vis", v, "is not a MeasurementSet (no table.dat / SPECTRAL_WINDOW)")
        try:  # casacore would wait forever for a write lock held elsewhere
            check_not_held(v)
        except TaskParameterError as exc:
            raise TaskParameterError(TASK, "vis", v, exc.rule) from None
    return vislist


def _source_extent(sourcesize: str) -> float | None:
    if not str(sourcesize).strip():
        return None
    try:
        return rules.parse_angle(str(sourcesize))
    except ValueError as exc:
        raise TaskParameterError(TASK, "sourcesize", sourcesize, str(exc)) from None


def _check_imagename_free(imagename: str) -> None:
    taken = sorted(str(p) for p in Path(imagename).parent.glob(glob.escape(Path(imagename).name) + ".*"))
    if taken:
        raise TaskParameterError(TASK, "imagename", imagename, f"already has images ({', '.join(taken[:3])}"
                                 f"{' …' if len(taken) > 3 else ''}); tclean would continue from them — remove "
                                 "them or choose another imagename")


def _select(ct, meta, field, spw):
    try:
        return select(ct, meta, field, spw)
    except ValueError as exc:
        param, _, rule = str(exc).partition(": ")
        raise TaskParameterError(TASK, param if param in ("field", "spw") else "vis",
                                 field if param == "field" else spw, rule) from None


def _mous_provenance(mous: str) -> dict:
    """The calibration type (pipeline or manual) of a Member OUS, from calversion, and its cont.dat."""
    from almatools.casa_tasks import calversion
    if not Path(mous).is_dir():
        raise TaskParameterError(TASK, "mous", mous, "must be a Member OUS directory")
    r = calversion(path=mous)
    contdat = sorted(str(p) for p in Path(mous).rglob("*cont.dat") if p.is_file())
    return {"calibration_type": r.get("calibration_type", ""), "casa_version": r.get("casa_version", ""),
            "source": mous, "contdat": contdat[0] if contdat else ""}


def _continuum_channels(vislist, spw: str, specmode: str, provenance: dict):
    """The spw selection for each MS: the user's, or for specmode='cont' without one, the line-free
    channels of the Member OUS's cont.dat in each MS's own frame and numbering (frameconv)."""
    info = {"source": "", "per_ms": {}, "warnings": []}
    if specmode != "cont" or spw.strip():
        return [spw] * len(vislist), info
    if not provenance.get("contdat"):
        info["warnings"].append("specmode='cont' without line-free channels (give spw with channel ranges, or mous "
                                "with a cont.dat): every channel is used")
        return [spw] * len(vislist), info
    from almatools.casa_tasks import frameconv
    r = frameconv(mode="contdat", contfile=provenance["contdat"], vis=list(vislist))
    texts = []
    for v in vislist:
        fitspec = r["ms"].get(v, {}).get("fitspec", "")
        if not fitspec:
            info["warnings"].append(f"{v}: the cont.dat gives no single channel selection for it; every channel used")
        texts.append(fitspec)
        info["per_ms"][v] = fitspec
    info["source"] = provenance["contdat"]
    return texts, info


def _survey(ct, meta, sel, plan: SurveyPlan, bar) -> MsSurvey:
    """The survey of one MS; a Multi-MS's sub-MSs are surveyed on casampi's MPI servers in parallel when
    this process is their client (the partial results add up, whatever the partition)."""
    from almatools.batch import mms
    parts = mms.parallel_parts(meta.path)
    if parts is None:
        survey = survey_ms(ct, meta.path, sel, meta, plan, bar)
        bar.update(meta.nrows - survey.rows_read)  # rows outside the selection were never read
        return survey
    merged = MsSurvey(vis=meta.path)
    for part in mms.map_parts("almatools.plugins.imaging.survey:survey_path", parts, as_json=False,
                              selection=sel, plan=plan):
        merged.merge(part)
    bar.update(meta.nrows)
    log.info(f"{meta.path}: {len(parts)} sub-MSs surveyed on the MPI servers")
    return merged


# --------------------------------------------------------------------------- the plan

@dataclass
class Plan:
    survey: SurveyPlan
    fov: tuple[float, float]  # radians, x (RA) and y (Dec)
    centre: tuple[float, float]  # ra, dec
    frame: str
    pointings: list[tuple[float, float]]  # (l, m) of the distinct pointings from the centre
    pointing_fields: list[list[tuple[int, int]]]  # (ms index, field id) of each pointing
    pb_fwhm: float  # of the smallest dish at the lowest frequency
    pb_radius: float
    dish_min: float
    freq_min: float
    freq_max: float
    max_baseline: float
    coarsened: int
    notes: list[str]


def _plan(metas, selections, pblimit: float) -> Plan:
    notes = [n for s in selections for n in s.notes]
    dirs, owners = [], []
    for k, (meta, sel) in enumerate(zip(metas, selections)):
        for f in sel.field_ids:
            dirs.append((meta.fields[f].ra, meta.fields[f].dec))
            owners.append((k, f))
    frames = {metas[k].fields[f].frame for k, f in owners}
    frame = sorted(frames)[0]
    if len(frames) > 1:
        notes.append(f"fields are given in several frames ({', '.join(sorted(frames))}); {frame} assumed for all")
    ra, dec = np.array(dirs).T
    vec = np.array([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]).sum(axis=1)
    ra0, dec0 = math.atan2(vec[1], vec[0]) % (2 * math.pi), math.asin(vec[2] / np.linalg.norm(vec))
    l, m = tangent_offsets(ra, dec, ra0, dec0)
    ra0, dec0 = from_tangent(0.5 * (l.max() + l.min()), 0.5 * (m.max() + m.min()), ra0, dec0)  # box centre
    l, m = tangent_offsets(ra, dec, ra0, dec0)
    pointings, pointing_fields = _group_pointings(l, m, owners)
    freqs = [s.freqs[sel.spws[s.id].mask(s.nchan)] for meta, sel in zip(metas, selections)
             for s in (meta.spws[i] for i in sel.spws)]
    fmin, fmax = min(float(f.min()) for f in freqs), max(float(f.max()) for f in freqs)
    dish_min = min(float(meta.dish.min()) for meta in metas)
    fwhm = rules.pb_fwhm(fmin, dish_min)
    radius = rules.pb_radius(fwhm, pblimit)
    fov = (2 * (float(np.abs(l).max()) + radius), 2 * (float(np.abs(m).max()) + radius))
    bmax = max(meta.max_baseline() for meta in metas)
    umax = bmax * fmax / rules.C
    dishes = {round(float(d), 1) for meta in metas for d in meta.dish}
    per_field = len(pointings) > 1 or len(dishes) > 1  # mosaic gridding, mosweight=True
    ngrids = sum(len(baseline_classes(meta.dish)[1]) * (len(sel.field_ids) if per_field else 1)
                 for meta, sel in zip(metas, selections))
    coarsen = 1
    while True:
        du, dv = coarsen / fov[0], coarsen / fov[1]
        geometry = GridGeometry(du=du, dv=dv, nu=2 * math.ceil(umax / du) + 4, nv=2 * math.ceil(umax / dv) + 4)
        if geometry.nbytes() * ngrids <= GRID_BUDGET_BYTES:
            break
        coarsen += 1
    limits.check_memory(geometry.nbytes() * ngrids, subject=limits.parameter("vis"))
    if coarsen > 1:
        notes.append(f"weight grids use {coarsen}x the image's uv cell (memory bound of "
                     f"{GRID_BUDGET_BYTES // 2 ** 20} MB); Briggs/uniform predictions are approximate")
    return Plan(survey=SurveyPlan(geometry=geometry, longest_m=bmax, per_field=per_field), fov=fov,
                centre=(ra0, dec0), frame=frame, pointings=pointings, pointing_fields=pointing_fields, pb_fwhm=fwhm, pb_radius=radius,
                dish_min=dish_min, freq_min=fmin, freq_max=fmax, max_baseline=bmax, coarsened=coarsen, notes=notes)


def _group_pointings(l, m, owners, tolerance=rules.ARCSEC):
    """Fields of several MSs at the same position (within 1 arcsec) are one pointing."""
    pointings, members = [], []
    for x, y, owner in zip(l, m, owners):
        for k, (px, py) in enumerate(pointings):
            if math.hypot(x - px, y - py) < tolerance:
                members[k].append(owner)
                break
        else:
            pointings.append((float(x), float(y)))
            members.append([owner])
    return pointings, members


# --------------------------------------------------------------------------- the advice

def _advise(metas, selections, surveys, plan, specmode, robust, extent, ppb, pblimit, provenance, imagename,
            niter) -> dict:
    geometry = plan.survey.geometry
    classes = sorted({c for s in surveys for (c, _), g in s.grids.items() if g.data.any()}, key=_class_order)
    arrays = [c for c in classes if "+" not in c]
    mosaic = len(plan.pointings) > 1
    mixed = len({c.split("+")[0] for c in classes} | {c.split("+")[-1] for c in classes}) > 1
    gridder = "mosaic" if (mosaic or mixed) else "standard"
    per_ms = gridder == "mosaic"  # tclean's mosweight=True: every MS and field weighted on its own density

    comb_units = density_units(surveys, classes, per_ms)
    beams = {"combined": _beams(comb_units, geometry, robust, surveys, classes)}
    for a in arrays if len(arrays) > 1 or len(classes) > 1 else []:
        beams[a] = _beams(density_units(surveys, [a], per_ms), geometry, robust, surveys, [a])
    scales = {name: _scales(surveys, [name] if name != "combined" else classes, beams[name]["freq_hz"])
              for name in beams}
    chosen = beams["combined"]["briggs"]
    cube = specmode == "cube"
    ref_freq = beams["combined"]["freq_hz"]
    cell = rules.round_cell(chosen["minor_rad"] * (ref_freq / plan.freq_max if cube else 1.0) / ppb)
    imsize = [rules.optimum_size(math.ceil(plan.fov[0] / cell)), rules.optimum_size(math.ceil(plan.fov[1] / cell))]
    eta = {w: noise_factor(comb_units, w, robust) / noise_factor(comb_units, "natural") for w in WEIGHTINGS}
    averaging = _averaging(metas, selections, surveys, plan, chosen, ref_freq, specmode)
    noise = _noise(metas, selections, surveys, plan, eta, averaging, ref_freq, classes, mosaic)
    datacolumn = _datacolumn(metas, provenance)
    stokes = _stokes(metas, selections)
    deconv = _deconvolver(specmode, plan, chosen, scales["combined"], extent, cell)
    phasecenter = _phasecenter(plan, mosaic)
    threshold_jy = 3.0 * (noise["combined"]["briggs_jy"] if not cube else noise["cube_channel_jy"])
    params = _tclean_params(metas, selections, datacolumn, imagename, imsize, cell, phasecenter, stokes, specmode,
                            gridder, deconv, robust, pblimit, niter, threshold_jy, averaging)
    warnings = list(plan.notes) + datacolumn["warnings"] + averaging["warnings"] + deconv["warnings"]
    if max(imsize) > MAX_EXECUTE_PIXELS:
        warnings.append(f"the image needs {imsize} pixels: tclean needs several GB for it (a coarser cell, a "
                        "higher pblimit or fewer fields make it smaller)")
    result = {
        "vis": [m.path for m in metas],
        "field": {m.path: s.field_ids for m, s in zip(metas, selections)},
        "spw": {m.path: sorted(s.spws) for m, s in zip(metas, selections)},
        "source": metas[0].fields[selections[0].field_ids[0]].name,
        "mosaic": mosaic, "npointings": len(plan.pointings), "arrays": arrays, "baseline_classes": classes,
        "specmode": specmode, "robust": robust,
        "datacolumn": datacolumn,
        "beam": {**beams, "reason": ("the PSF of the data's own uv coverage: natural weights summed on the image's "
                                     "uv grid, weighted as tclean weights (Briggs 'norm', "
                                     f"{'per MS and field (mosweight=True)' if per_ms else 'one density'}), Fourier "
                                     "summed and fitted above psfcutoff=0.35 like tclean's restoring beam")},
        "mrs": {**scales, "reason": "Technical Handbook: MRS = 0.983 lambda/L5, resolution = 0.574 lambda/L80 "
                                    "(L5, L80: 5th/80th percentile of the projected baselines)"},
        "cell": {"value": rules.format_angle(cell, 6), "arcsec": cell / rules.ARCSEC,
                 "pixels_per_beam": chosen["minor_rad"] / cell,
                 "reason": (f"the Briggs(robust={robust:g}) beam's minor axis {chosen['minor_arcsec']:.4g} arcsec"
                            + (f" scaled to the highest frequency {plan.freq_max / 1e9:.4g} GHz" if cube else "")
                            + f" / {ppb} pixels (seed §8.5: 5-8 pixels per beam), rounded down to 2 digits")},
        "imsize": {"value": imsize, "fov_arcsec": [f / rules.ARCSEC for f in plan.fov],
                   "reason": _imsize_reason(plan, pblimit, mosaic)},
        "averaging": averaging,
        "gridder": {"value": gridder, "mosweight": per_ms, "reason": _gridder_reason(plan, arrays, mosaic, mixed)},
        "deconvolver": deconv,
        "phasecenter": phasecenter,
        "stokes": stokes,
        "noise": noise,
        "threshold": {"value": f"{threshold_jy * 1e3:.4g}mJy", "jy": threshold_jy,
                      "reason": "3 x the expected noise (DOMAIN §11)" + (" per channel" if cube else "")},
        "tclean": {"params": params, "call": _call_text(params)},
        "survey": {"rows": sum(s.rows for s in surveys), "grid": [geometry.nu, geometry.nv],
                   "grid_cell_lambda": [geometry.du, geometry.dv], "coarsened": plan.coarsened},
        "warnings": warnings,
        "ok": True,
    }
    return result


def _gridder_reason(plan, arrays, mosaic: bool, mixed: bool) -> str:
    why = (f"a mosaic of {len(plan.pointings)} pointings" if mosaic else
           f"mixed dish sizes ({', '.join(arrays)})" if mixed else "one pointing, one dish size")
    if mosaic or mixed:
        why += ("; mosaic gridding applies each dish's primary beam (seed §8.5); mosweight=True (each MS and field "
                "weighted on its own density) as the ALMA pipeline uses")
    return why


def _class_order(name: str):
    sizes = [float(x[:-1]) for x in name.split("+")]
    return (len(sizes), [-s for s in sizes])


def _beams(units, geometry, robust, surveys, classes) -> dict:
    weight = sum(s.class_weight.get(c, 0.0) for s in surveys for c in classes)
    wfreq = sum(s.class_wfreq.get(c, 0.0) for s in surveys for c in classes)
    out = {"freq_hz": wfreq / weight if weight else math.nan, "robust": robust}
    for scheme in WEIGHTINGS:
        beam = fit_beam(imaging_grid(units, scheme, robust), geometry)
        out[scheme] = {**beam.as_dict(), "major_rad": beam.major, "minor_rad": beam.minor}
    return out


def _histogram(surveys, classes) -> np.ndarray:
    return sum(s.hist[c] for s in surveys for c in classes if c in s.hist)


def _scales(surveys, classes, freq_hz) -> dict:
    hist = _histogram(surveys, classes)
    l5, l80 = percentile_length(hist, 5), percentile_length(hist, 80)
    return {"L5_m": l5, "L80_m": l80, "max_baseline_m": longest_length(hist), "freq_hz": freq_hz,
            "mrs_arcsec": rules.mrs(freq_hz, l5) / rules.ARCSEC,
            "resolution_arcsec": rules.handbook_resolution(freq_hz, l80) / rules.ARCSEC}


def _imsize_reason(plan, pblimit, mosaic) -> str:
    pb = (f"primary beam FWHM 1.13 lambda/D = {plan.pb_fwhm / rules.ARCSEC:.4g} arcsec ({plan.dish_min:g} m dish "
          f"at {plan.freq_min / 1e9:.4g} GHz), to pblimit={pblimit:g} at radius {plan.pb_radius / rules.ARCSEC:.4g}"
          " arcsec")
    where = (f"the mosaic's {len(plan.pointings)} pointings plus the {pb}" if mosaic else pb)
    return (f"field of view {plan.fov[0] / rules.ARCSEC:.4g} x {plan.fov[1] / rules.ARCSEC:.4g} arcsec: {where}; "
            "pixels rounded up to sizes CASA's FFT handles fast (even, factors 2, 3, 5: synthesisutils.getOptimumSize)")


def _integration(surveys) -> float:
    counts = sum((s.intervals for s in surveys), start=type(surveys[0].intervals)())
    return counts.most_common(1)[0][0] / 1000.0 if counts else math.nan


def _averaging(metas, selections, surveys, plan, beam, ref_freq, specmode) -> dict:
    """Time and channel averaging limits (seed §7.4) for the data as they are."""
    warnings = []
    pb = rules.pb_fwhm(ref_freq, plan.dish_min)
    theta = beam["minor_rad"]
    limit = rules.time_average_limit(theta, pb)
    fraction = rules.max_average_length(theta, pb)
    tmax = fraction / rules.OMEGA_EARTH
    tint = _integration(surveys)
    k = int(tmax // tint) if tint > 0 else 0
    timebin = f"{k * tint:g}s" if k >= 2 else ""
    if tint > limit:
        warnings.append(f"the data are already averaged to {tint:g} s, beyond the time-smearing limit {limit:.3g} s")
    time = {"limit_s": limit, "max_s": tmax, "integration_s": tint, "timebin": timebin,
            "reason": (f"seed §7.4: dt << theta_res/(omega_e theta_FOV) = {theta / rules.ARCSEC:.4g} arcsec / "
                       f"({rules.OMEGA_EARTH:g} rad/s x {pb / rules.ARCSEC:.4g} arcsec) = {limit:.3g} s; "
                       f"<= {tmax:.3g} s keeps 99% of a point source's peak at the primary beam's half-power "
                       f"radius; integrations are {tint:g} s" + (f", so timebin='{timebin}'" if timebin else
                                                                  ", so no time averaging"))}
    longest = longest_length(_histogram(surveys, {c for sv in surveys for c in sv.hist}))
    channels = []
    for meta, sel in zip(metas, selections):
        for sid in sorted(sel.spws):
            channels.append(_chanbin(meta, meta.spws[sid], sel.spws[sid].mask(meta.spws[sid].nchan), longest,
                                     fraction, specmode))
    for c in channels:
        warnings += c.pop("warnings")
    return {"time": time, "channel": channels, "max_baseline_m": longest, "warnings": warnings}


def _chanbin(meta, spw, mask, longest, fraction, specmode) -> dict:
    width = float(np.median(spw.widths))
    effbw = float(np.median(spw.effective_bw))
    n_smooth = rules.online_smoothing(effbw, width)
    band = rules.alma_band(spw.mean_freq, spw.name)
    rule_hz = rules.chanbin_rule_hz(band)
    smear_hz = fraction * spw.mean_freq
    warnings = []
    base = {"vis": meta.path, "spw": spw.id, "name": spw.name, "band": band, "nchan": spw.nchan,
            "width_hz": width, "effective_bw_hz": effbw, "online_smoothing": n_smooth}
    hanning = (f"; channels are Hanning-smoothed online (EFFECTIVE_BW = {effbw / width:.4g} x width"
               f"{'' if n_smooth == 1 else f', {n_smooth}-channel average'}): averaged weights overstate the "
               "sensitivity (statwt after averaging)" if n_smooth else "")
    if specmode == "cube":
        return {**base, "chanbin": 1, "target_hz": width, "warnings": warnings,
                "reason": "cube: the channel width is the science's choice; no averaging advised" + (
                    "; Hanning-smoothed channels: 2 channels per image channel lose little resolution and make "
                    "channels nearly independent" if n_smooth == 1 else "")}
    if longest <= LONG_BASELINE_M:
        target = rule_hz
        why = (f"baselines <= {LONG_BASELINE_M:g} m: the seed's rule of thumb, average to "
               f"{rule_hz / 1e6:g} MHz (Band {band if band else '?'}: "
               f"{'7-10' if rule_hz > 125e6 else '3-6'})")
    else:
        target = min(rule_hz, smear_hz)
        why = (f"baselines to {longest:.0f} m: bandwidth smearing keeps 99% of the peak at the primary beam's "
               f"half-power radius for up to {smear_hz / 1e6:.4g} MHz" + (
                   f", under the compact-array rule's {rule_hz / 1e6:g} MHz" if smear_hz < rule_hz else
                   f"; the compact-array rule's {rule_hz / 1e6:g} MHz is the smaller"))
    nsel = int(mask.sum())
    chanbin = max(1, min(nsel, int(target // width))) if width > 0 else 1
    if width >= target:
        chanbin = 1
        why += f"; the channels are already {width / 1e6:.4g} MHz wide (existing averaging)"
    else:
        rest = nsel % chanbin
        why += (f": chanbin={chanbin} ({chanbin * width / 1e6:.4g} MHz)"
                + (f"; the {nsel} channels leave a last bin of {rest}" if rest else ""))
    return {**base, "chanbin": chanbin, "target_hz": target, "smearing_limit_hz": smear_hz, "rule_hz": rule_hz,
            "reason": why + hanning, "warnings": warnings}


def _noise(metas, selections, surveys, plan, eta, averaging, ref_freq, classes, mosaic) -> dict:
    """Expected rms at the image centre from the weights (inverse variances in Jy^-2 assumed).

    A mosaic's centre sees each pointing p through its primary beam A_p: the weights there add up to
    sum_p A_p^2 W_p instead of sum_p W_p, so every weight sum is scaled by that fraction.
    """
    fraction, gain, gain_note = 1.0, 1.0, ""
    if mosaic:
        weights = np.array([sum(surveys[k].field_weight.get(f, 0.0) for k, f in owners)
                            for owners in plan.pointing_fields])
        offsets = np.array([math.hypot(x, y) for x, y in plan.pointings])
        fwhm = rules.pb_fwhm(ref_freq, _dominant_dish(surveys, classes))
        gain = rules.mosaic_gain(offsets, weights, fwhm)
        fraction = gain ** 2 * float(np.median(weights)) / float(weights.sum())
        gain_note = (f"; mosaic: at its centre the overlapping pointings give sqrt(sum A^2 W / W_pointing) = "
                     f"{gain:.3g} times one pointing's sensitivity (1.58 for a large Nyquist-sampled mosaic, "
                     "seed §6.3.2)")
    per_spw, deflated = [], 0.0
    chanbins = {(c["vis"], c["spw"]): c["chanbin"] for c in averaging["channel"]}
    for meta, sel, survey in zip(metas, selections, surveys):
        for sid in sorted(sel.spws):
            w = survey.spw_weight.get(sid, 0.0) * fraction
            spw = meta.spws[sid]
            nsel = int(sel.spws[sid].mask(spw.nchan).sum())
            n_smooth = rules.online_smoothing(float(np.median(spw.effective_bw)), float(np.median(spw.widths)))
            loss = rules.sensitivity_loss(n_smooth, nsel)
            deflated += w / loss ** 2
            per_chan = w / max(nsel, 1)
            nbin = chanbins[(meta.path, sid)]
            per_spw.append({"vis": meta.path, "spw": sid, "name": spw.name, "freq_hz": spw.mean_freq,
                            "weight_sum": survey.spw_weight.get(sid, 0.0), "online_smoothing": n_smooth,
                            "smoothing_loss": loss, **{f"{k}_jy": eta[k] * _rms(w) * loss for k in WEIGHTINGS},
                            "channel_briggs_jy": eta["briggs"] * _rms(per_chan),
                            "binned_channel_briggs_jy": eta["briggs"] * _rms(per_chan * nbin)
                            * rules.sensitivity_loss(n_smooth, nbin)})
    combined = {f"{k}_jy": eta[k] * _rms(deflated) for k in WEIGHTINGS}
    return {"combined": combined, "per_spw": per_spw, "briggs_efficiency": eta["briggs"],
            "uniform_efficiency": eta["uniform"], "mosaic_gain": gain,
            "cube_channel_jy": max((s["binned_channel_briggs_jy"] for s in per_spw), default=math.nan),
            "reason": ("1/sqrt(sum of the Stokes I weights) for natural weighting (weights must be inverse "
                       "variances in Jy^-2, as statwt or CASA >= 4.2.2 calibration leave them: check with wtcheck), "
                       f"x {eta['briggs']:.3g} for Briggs(robust) and x {eta['uniform']:.3g} for uniform "
                       "(sqrt(sum IW^2/w)/sum IW on the uv grid); channels smoothed online add correlated noise "
                       "(smoothing_loss)" + gain_note)}


def _dominant_dish(surveys, classes) -> float:
    weight = {c: sum(s.class_weight.get(c, 0.0) for s in surveys) for c in classes}
    best = max(weight, key=weight.get)
    return max(float(x[:-1]) for x in best.split("+"))


def _rms(weight_sum: float) -> float:
    return 1.0 / math.sqrt(weight_sum) if weight_sum > 0 else math.nan


def _datacolumn(metas, provenance) -> dict:
    per_ms, warnings = {}, []
    pipeline = provenance.get("calibration_type", "") == "pipeline"
    manual = provenance.get("calibration_type", "") == "manual"
    for meta in metas:
        present = "corrected" if "CORRECTED_DATA" in meta.columns else "data"
        expected, why = rules.datacolumn_rule(meta.path)
        if expected is None and (pipeline or manual):
            expected = "data" if manual else None
            why += f"; {provenance['source']} was calibrated {provenance['calibration_type']}ly"
        value = present
        if expected == "corrected" and present == "data":
            warnings.append(f"{meta.path}: named like a pipeline MS but has no CORRECTED_DATA: tclean falls back "
                            "to DATA, which may be uncalibrated (run the calibration / scriptForPI first)")
        elif expected == "data" and present == "corrected":
            value = "corrected"
            warnings.append(f"{meta.path}: named like a calibrated split but has CORRECTED_DATA (applycal after the "
                            "split, e.g. self-calibration?): tclean's datacolumn='corrected' images that column")
        per_ms[meta.path] = {"present": present, "rule": expected, "value": value, "reason": why}
    values = {v["value"] for v in per_ms.values()}
    value = "corrected" if "corrected" in values else "data"
    reason = "; ".join(f"{os.path.basename(p)}: {'CORRECTED_DATA' if v['present'] == 'corrected' else 'only DATA'}"
                       f" present ({v['reason'].split(': ', 1)[-1]})" for p, v in per_ms.items())
    if len(values) > 1:
        warnings.append("the MSs keep their calibrated data in different columns: tclean's datacolumn='corrected' "
                        "falls back to DATA for MSs without CORRECTED_DATA; split(datacolumn='corrected') the "
                        "others to make this explicit")
    return {"value": value, "per_ms": per_ms, "reason": reason, "warnings": warnings}


def _stokes(metas, selections) -> dict:
    choices = set()
    reason = ""
    for meta, sel in zip(metas, selections):
        for sid in sel.spws:
            for dd in meta.dds_of(sid):
                value, reason = rules.stokes_for(meta.corr_types[int(meta.dd_pol[dd])])
                choices.add(value)
    value = "I" if "I" in choices and len(choices) == 1 else sorted(choices)[0]
    if len(choices) > 1:
        reason = f"the selected data have different correlations ({', '.join(sorted(choices))}); {value} is common"
    return {"value": value, "reason": reason}


def _deconvolver(specmode, plan, beam, scales, extent, cell) -> dict:
    warnings = []
    fbw = rules.fractional_bandwidth(plan.freq_min, plan.freq_max)
    wide = specmode != "cube" and fbw > 0.1
    reasons = [f"fractional bandwidth {fbw:.3g}" + (" > 0.1: mtmfs with nterms=2 models the spectral index "
                                                    "(writes *.alpha)" if wide else " <= 0.1")]
    mrs = scales["mrs_arcsec"] * rules.ARCSEC
    multiscale_scales = []
    if extent is not None:
        beam_px = beam["major_rad"] / cell
        if extent > 3 * beam["major_rad"]:
            top = min(extent, mrs)
            multiscale_scales = [0] + [int(round(f * beam_px)) for f in (1, 3, 10) if f * beam["major_rad"] <= top]
            reasons.append(f"source extent {extent / rules.ARCSEC:.4g} arcsec spans "
                           f"{extent / beam['major_rad']:.3g} beams: multiscale, scales {multiscale_scales} pixels "
                           "(point, 1, 3, 10 beams, up to the MRS)")
        else:
            reasons.append(f"source extent {extent / rules.ARCSEC:.4g} arcsec is within 3 beams: point-like")
        if extent > mrs:
            warnings.append(f"the source ({extent / rules.ARCSEC:.4g} arcsec) is larger than the maximum recoverable "
                            f"scale {scales['mrs_arcsec']:.4g} arcsec: flux on larger scales is resolved out "
                            "(add 7 m / total-power data)")
    value = "mtmfs" if wide else ("multiscale" if multiscale_scales else "hogbom")
    out = {"value": value, "fractional_bandwidth": fbw, "reason": "; ".join(reasons), "warnings": warnings}
    if wide:
        out["nterms"] = 2
    if multiscale_scales:
        out["scales"] = multiscale_scales
    return out


def _phasecenter(plan, mosaic) -> dict:
    text = format_direction(plan.frame, *plan.centre)
    if mosaic or len(plan.pointings) > 1:
        return {"value": text, "reason": f"the centre of the {len(plan.pointings)} pointings' extent"}
    return {"value": "", "direction": text, "reason": "one pointing: tclean centres the image on it"}


def _default_imagename(meta, sel, specmode) -> str:
    stem = Path(meta.path.rstrip("/")).name
    for suffix in (".ms", ".split.cal", ".split"):
        stem = stem[: -len(suffix)] if stem.endswith(suffix) else stem
    source = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in meta.fields[sel.field_ids[0]].name)
    return f"{stem}.{source}.{specmode}"


def _tclean_params(metas, selections, datacolumn, imagename, imsize, cell, phasecenter, stokes, specmode, gridder,
                   deconv, robust, pblimit, niter, threshold_jy, averaging) -> dict:
    fields = [_field_text(m, s) for m, s in zip(metas, selections)]
    spws = [_spw_text(m, s) for m, s in zip(metas, selections)]
    params = {"vis": [m.path for m in metas] if len(metas) > 1 else metas[0].path,
              "field": fields if len(set(fields)) > 1 else fields[0],
              "spw": spws if len(set(spws)) > 1 else spws[0],
              "datacolumn": datacolumn["value"], "imagename": imagename, "imsize": imsize,
              "cell": rules.format_angle(cell, 6), "phasecenter": phasecenter["value"], "stokes": stokes["value"],
              "specmode": "mfs" if specmode == "cont" else specmode, "gridder": gridder,
              "deconvolver": deconv["value"], "weighting": "briggs", "robust": float(robust),
              "pblimit": float(pblimit), "niter": niter, "threshold": f"{threshold_jy * 1e3:.4g}mJy",
              "interactive": False, "pbcor": True}
    if gridder == "mosaic":
        params["mosweight"] = True
    if "nterms" in deconv:
        params["nterms"] = deconv["nterms"]
    if "scales" in deconv:
        params["scales"] = deconv["scales"]
    if specmode == "cube":
        params.update({"outframe": "LSRK", "restoringbeam": "common", "perchanweightdensity": True})
    return params


def _field_text(meta, sel) -> str:
    """The selection as field names when it holds every field of those names (a mosaic's pointings share one),
    else as ids."""
    names = sorted({meta.fields[f].name for f in sel.field_ids})
    complete = all(f.id in sel.field_ids for f in meta.fields.values() if f.name in names)
    if complete and all(n and "," not in n and not n.isdigit() for n in names):
        return ",".join(names)
    return ",".join(str(f) for f in sel.field_ids)


def _spw_text(meta, sel) -> str:
    parts = []
    for sid in sorted(sel.spws):
        mask = sel.spws[sid].chans
        if mask is None:
            parts.append(str(sid))
            continue
        edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
        ranges = ";".join(f"{a}~{b - 1}" for a, b in zip(edges[::2], edges[1::2]))
        parts.append(f"{sid}:{ranges}")
    return ",".join(parts)


def _call_text(params: dict) -> str:
    return "tclean(" + ", ".join(f"{k}={v!r}" for k, v in params.items()) + ")"


def _log_report(r: dict) -> None:
    c = r["beam"]["combined"]
    log.info(f"{r['source']}: {len(r['vis'])} MS, {r['npointings']} pointing(s), arrays {', '.join(r['arrays'])}; "
             f"datacolumn={r['datacolumn']['value']!r}")
    for name, b in ((k, v) for k, v in r["beam"].items() if isinstance(v, dict)):
        log.info(f"beam {name:<10} at {b['freq_hz'] / 1e9:.4g} GHz: " + "; ".join(
            f"{w} {b[w]['major_arcsec']:.4g} x {b[w]['minor_arcsec']:.4g} arcsec PA {b[w]['pa_deg']:.1f}"
            for w in WEIGHTINGS))
    for name, s in ((k, v) for k, v in r["mrs"].items() if isinstance(v, dict)):
        log.info(f"MRS {name:<10} {s['mrs_arcsec']:.4g} arcsec (L5 {s['L5_m']:.4g} m, L80 {s['L80_m']:.4g} m)")
    log.info(f"cell {r['cell']['value']}, imsize {r['imsize']['value']}: {r['imsize']['reason']}")
    n = r["noise"]["combined"]
    log.info(f"expected rms: natural {n['natural_jy'] * 1e3:.4g} mJy, Briggs {n['briggs_jy'] * 1e3:.4g} mJy, "
             f"uniform {n['uniform_jy'] * 1e3:.4g} mJy; threshold {r['threshold']['value']}")
    log.info(f"averaging: {r['averaging']['time']['reason']}")
    for ch in r["averaging"]["channel"]:
        log.info(f"  spw {ch['spw']} ({os.path.basename(ch['vis'])}): chanbin {ch['chanbin']}: {ch['reason']}")
    for key in ("gridder", "deconvolver", "phasecenter", "stokes"):
        log.info(f"{key} {r[key]['value']!r}: {r[key]['reason']}")
    for w in r["warnings"]:
        log.warn(w)
    log.info(r["tclean"]["call"])
