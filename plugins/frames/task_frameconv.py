"""The ``frameconv`` task: spectral frames for values, MSs, cont.dat files and channel selections."""

from __future__ import annotations

import numpy as np

from almatools import log
from almatools.errors import TaskParameterError
from almatools.freshness import result_entry as casa_data_entry

from . import convert as cv
from .chansel import channels_to_ranges, range_to_channels
from .contdat import ContDat, ContDatError, ContField, ContRange, ContSpw, read_contdat, write_contdat
from .selection import check_fitspec_dict, check_selection, format_channel_ranges, parse_selection

__all__ = ["frameconv"]

TASK = "frameconv"


def frameconv(mode="values", values=None, unit="GHz", inframe="TOPO", doppler="RADIO", restfreq="", outunit="",
              epoch="", ntimes=11, direction="", observatory="ALMA", sysvel="", vis=None, field="", spw="",
              contfile="", fitspec="", partial="overlap", freqstep=100.0, fitorder=1, outframe="LSRK",
              outfile="", plotfile="", overwrite=False):
    """Convert frequencies, velocities, channel selections and cont.dat ranges between spectral frames.

    See ``xml/frameconv.xml`` for the parameters; returns a dictionary whose
    content depends on *mode*.
    """
    vis = [v for v in (vis or []) if v]
    inframe, outframe, doppler = str(inframe).upper(), str(outframe).upper(), str(doppler).upper()
    if mode == "values":
        result = _values(values or [], unit, inframe, outframe, doppler, restfreq, outunit, epoch, ntimes,
                         direction, observatory, sysvel)
    elif mode == "ms":
        result = _ms(_one_vis(vis), field, spw, outframe, outfile, plotfile, overwrite)
    elif mode == "contdat":
        result = _contdat(contfile, vis, partial, freqstep, fitorder)
    elif mode == "tocontdat":
        result = _tocontdat(_one_vis(vis), field, fitspec, outframe, outfile, overwrite)
    elif mode == "selection":
        result = _selection(fitspec, vis)
    else:
        raise TaskParameterError(TASK, "mode", mode, "must be one of values, ms, contdat, tocontdat, selection")
    times = result.get("times", [])
    result["casa_data"] = casa_data_entry(
        vis=vis, epochs=[f"{times[0]}~{times[-1]}"] if times else [], freqs_hz=result.get("input_frequency_hz", []),
        directions=[direction] if direction else [],
        depends="nothing in this mode" if mode == "selection" else "frequencies converted to or from TOPO")
    return result


def _one_vis(vis):
    if len(vis) != 1:
        raise TaskParameterError(TASK, "vis", vis, "must name exactly one MeasurementSet in this mode")
    return vis[0]


def _info(vis):
    from .msinfo import read_msinfo
    try:
        return read_msinfo(vis)
    except (FileNotFoundError, RuntimeError) as exc:
        raise TaskParameterError(TASK, "vis", vis, f"must be a readable MeasurementSet ({exc})") from None


def _measures():
    from almatools.casaenv import casatools
    return casatools().measures()


# --------------------------------------------------------------------------- values

def _values(values, unit, inframe, outframe, doppler, restfreq, outunit, epoch, ntimes, direction, observatory,
            sysvel):
    try:
        kind = cv.unit_kind(unit)
    except cv.FrameError as exc:
        raise TaskParameterError(TASK, "unit", unit, str(exc)) from None
    outunit = outunit or unit
    try:
        outkind = cv.unit_kind(outunit)
    except cv.FrameError as exc:
        raise TaskParameterError(TASK, "outunit", outunit, str(exc)) from None
    if not len(values):
        raise TaskParameterError(TASK, "values", values, "must hold at least one value")
    f0 = None
    if kind != "frequency" or outkind != "frequency":
        if not restfreq:
            raise TaskParameterError(TASK, "restfreq", restfreq, "is needed to convert velocities (e.g. '230.538GHz')")
        f0 = _quantity("restfreq", restfreq, "frequency")
        if f0 <= 0:
            raise TaskParameterError(TASK, "restfreq", restfreq, "must be positive")
    if not epoch:
        raise TaskParameterError(TASK, "epoch", epoch, "must give the time of the observation "
                                 "('2024/11/15/05:33:44', or 'start~stop' for a range)")
    try:
        times = cv.parse_epochs(epoch, ntimes)
    except cv.FrameError as exc:
        raise TaskParameterError(TASK, "epoch", epoch, str(exc)) from None
    sv = _sysvel(sysvel) if sysvel else None
    v = np.asarray(values, float)
    freqs = v * cv.freq_unit_scale(unit) if kind == "frequency" else cv.velocity_to_frequency(v, doppler, f0, unit)
    me = _measures()
    try:
        try:
            dirm = cv.parse_direction(me, direction) if direction else None
        except cv.FrameError as exc:
            raise TaskParameterError(TASK, "direction", direction, str(exc)) from None
        if dirm is None and inframe != outframe:
            raise TaskParameterError(TASK, "direction", direction, "must give the source direction, e.g. "
                                     "'J2000 04h33m52.0s 22d50m30.0s'")
        try:
            fac = cv.frame_factors(inframe, outframe, times, dirm or me.direction("J2000", "0deg", "90deg"),
                                   cv.Site.parse(observatory), me=me, sysvel=sv)
        except cv.FrameError as exc:
            param = "observatory" if "observatory" in str(exc) else "sysvel" if "sysvel" in str(exc) else "outframe"
            raise TaskParameterError(TASK, param, {"observatory": observatory, "sysvel": sysvel}.get(param, outframe),
                                     str(exc)) from None
    finally:
        me.done()
    out_f = cv.convert_frequencies(freqs, fac)
    out = out_f / cv.freq_unit_scale(outunit) if outkind == "frequency" else \
        cv.frequency_to_velocity(out_f, doppler, f0, outunit)
    iso = cv.mjd_seconds_to_iso(times)
    log.info(f"{len(v)} value(s) × {len(times)} time(s) {inframe} → {outframe}; factor "
             f"{fac.min():.12f}…{fac.max():.12f} ({iso[0]} … {iso[-1]})")
    return {"mode": "values", "inframe": inframe, "outframe": outframe, "unit": outunit, "doppler": doppler,
            "times": iso, "factor": fac.tolist(), "values": out.tolist(), "frequency_hz": out_f.tolist(),
            "min": out.min(axis=0).tolist(), "max": out.max(axis=0).tolist(),
            "input_frequency_hz": np.atleast_1d(freqs).tolist()}


def _quantity(param, text, kind):
    try:
        return cv.parse_quantity(text, kind)
    except cv.FrameError as exc:
        raise TaskParameterError(TASK, param, text, str(exc)) from None


def _sysvel(text):
    parts = str(text).split()
    frame = "LSRK"
    if len(parts) == 2:
        frame, parts = parts[0].upper(), parts[1:]
    if len(parts) != 1 or frame not in cv.FRAMES or frame == "REST":
        raise TaskParameterError(TASK, "sysvel", text, "must be a radial velocity with an optional frame, "
                                 "e.g. '25km/s' or 'BARY 25km/s'")
    return frame, _quantity("sysvel", parts[0], "velocity")


# --------------------------------------------------------------------------- ms

def _pick_fields(info, field, required=True):
    if not str(field).strip():  # the science target(s), by intent when the MS records intents
        ids = info.target_fields()
        return ids[:1] if required else ids
    out = []
    for tok in str(field).split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) in info.fields:
            out.append(int(tok))
        elif info.field_ids_named(tok):
            out += info.field_ids_named(tok)
        else:
            raise TaskParameterError(TASK, "field", field, f"must name fields of {info.path} (no field {tok!r}; "
                                     f"it has {', '.join(f.name for f in info.fields.values())})")
    return out


def _pick_spws(info, spw):
    if not str(spw).strip():
        return info.observed_spws()
    out = []
    for tok in str(spw).split(","):
        tok = tok.strip()
        if tok.isdigit() and int(tok) in info.spws:
            out.append(int(tok))
        elif info.spw_ids_named(tok):
            out += info.spw_ids_named(tok)
        else:
            raise TaskParameterError(TASK, "spw", spw, f"must be spw ids or names of {info.path} (no spw {tok!r}; "
                                     f"ids 0~{len(info.spws) - 1})")
    return out


def _ms(vis, field, spw, outframe, outfile, plotfile, overwrite):
    from .msmode import plot_tracks, track_spw, write_track_table
    info = _info(vis)
    fid = _pick_fields(info, field)[0]
    spws = _pick_spws(info, spw)
    empty = [s for s in spws if not info.times(fid, s).size]
    if empty and str(spw).strip():
        log.warn(f"spw(s) {empty} have no data for field {info.fields[fid].name} in {vis}: left out")
    me = _measures()
    try:
        tracks = [track_spw(info, fid, s, outframe, me) for s in spws if s not in empty]
    finally:
        me.done()
    if not tracks:
        raise TaskParameterError(TASK, "spw", spw, f"selects no data of field {fid} in {vis}")
    result = {"mode": "ms", "vis": vis, "field": info.fields[fid].name, "field_id": fid, "frame": outframe,
              "observatory": info.telescope, "spws": {str(t.spw.id): t.summary() for t in tracks}}
    for t in tracks:
        log.info(f"spw {t.spw.id} ({t.spw.nchan} ch, {t.spw.frame}) in {outframe} over {t.times.size} times: "
                 f"drift {t.drift_hz.max():.1f} Hz = {t.drift_channels.max():.4f} channels")
    try:
        if outfile:
            result["outfile"], result["timesfile"] = write_track_table(tracks, outfile, overwrite, vis=vis)
        if plotfile:
            result["plotfile"] = plot_tracks(tracks, plotfile, overwrite=overwrite)
    except FileExistsError as exc:
        raise TaskParameterError(TASK, "overwrite", overwrite, str(exc)) from None
    return result


# --------------------------------------------------------------------------- cont.dat → selections

def _contdat(contfile, vis, partial, freqstep, fitorder):
    if not contfile:
        raise TaskParameterError(TASK, "contfile", contfile, "must name a cont.dat file")
    try:
        cd = read_contdat(contfile)
    except ContDatError:  # names the file and line: the user's own error, passed on as it is
        raise
    except OSError as exc:
        raise TaskParameterError(TASK, "contfile", contfile, f"must be readable ({exc})") from None
    result = {"mode": "contdat", "contfile": contfile, "version": cd.version, "partial": partial,
              "contdat": cd.to_dict(), "ms": {}, "missing": []}
    if not vis:
        log.info(f"{contfile}: cont.dat version {cd.version}, {len(cd.fields)} field(s); no vis given, "
                 "nothing converted")
        return result
    me = _measures()
    try:
        for v in vis:
            res = _contdat_one(cd, _info(v), partial, freqstep, fitorder, me)
            result["ms"][v] = res
            result["missing"] += [f"{v}: {m}" for m in res["missing"]]
    finally:
        me.done()
    for m in result["missing"]:
        log.warn(m)
    return result


def _match_spw(info, cspw, field_ids):
    """Real spw ids of a cont.dat spw block in this MS, and why there are none.

    By name when the file gives one (a concatenated MS can hold the same spw name
    once per execution block: every one observed for the field is used), else by id.
    """
    if cspw.name:
        ids = info.spw_ids_named(cspw.name)
        if not ids:
            return [], f"no spw named {cspw.name!r} (cont.dat spw {cspw.spw_id})"
        observed = [i for i in ids if any(info.times(f, i).size for f in field_ids)]
        return observed, "" if observed else f"spw {ids} named {cspw.name!r} has no data for the field"
    if cspw.spw_id in info.spws:
        return [cspw.spw_id], ""
    return [], f"no spw {cspw.spw_id} (the MS has 0~{len(info.spws) - 1})"


def _contdat_one(cd, info, partial, freqstep, fitorder, me):
    out = {"fields": {}, "missing": [], "fitspec": "", "fitspec_dict": {}}
    field_strings = {}
    for cfield in cd.fields:
        fids = [f for f in info.field_ids_named(cfield.name) if info.times(f).size]
        if not fids:
            out["missing"].append(f"cont.dat field {cfield.name!r} (line {cfield.lineno}) is not observed in this MS "
                                  f"(fields: {', '.join(sorted({f.name for f in info.fields.values()}))})")
            continue
        fres = {"field_ids": fids, "spws": {}}
        sel_items, fitspw_items, spec = [], [], {}
        matched = []
        for cspw in cfield.spws:
            sids, why = _match_spw(info, cspw, fids)
            if not sids:
                out["missing"].append(f"field {cfield.name!r}: cont.dat spw {cspw.spw_id} (line {cspw.lineno}): {why}")
            matched += [(sid, cspw) for sid in sids]
        for sid, cspw in sorted(matched, key=lambda m: m[0]):
            sres = {"cont_spw": cspw.spw_id, "name": info.spws[sid].name, "keyword": cspw.keyword,
                    "flags": cspw.flags, "ranges": [], "chan": ""}
            if cspw.keyword or not cspw.ranges:
                note = ("findcont found no continuum (NONE)" if cspw.keyword != "ALL" else "all channels are continuum")
                sres["note"] = note + ": every channel is fitted"
                sel_items.append(str(sid))
                fitspw_items.append(str(sid))
                spec[str(sid)] = {"chan": "", "fitorder": int(fitorder)}
                fres["spws"][str(sid)] = sres
                continue
            chans = []
            for r in cspw.ranges:
                got, entry = set(), {"range": r.as_text(), "line": r.lineno, "chans": None}
                for f in fids:  # a mosaic: the union over its pointings
                    try:
                        rr = range_to_channels(info, f, sid, r.lo_hz, r.hi_hz, r.frame, partial, freqstep, me=me)
                    except RuntimeError as exc:  # CASA could not convert (e.g. SOURCE without an ephemeris)
                        entry["error"] = str(exc).splitlines()[0]
                        continue
                    if rr.chans:
                        got.update(range(rr.chans[0], rr.chans[1] + 1))
                    lo_e, hi_e = info.spws[sid].edges
                    if rr.ms_lo_hz is not None and (rr.ms_lo_hz < lo_e.min() or rr.ms_hi_hz > hi_e.max()):
                        entry["partly_outside_spw"] = True
                if got:
                    entry["chans"] = [min(got), max(got)]
                    if (min(got), max(got)) not in chans:
                        chans.append((min(got), max(got)))
                else:
                    why = f" ({entry['error']})" if "error" in entry else ""
                    out["missing"].append(f"field {cfield.name!r} spw {sid}: range {r.as_text()} (line {r.lineno}) "
                                          f"selects no channel of the spw in this MS{why}")
                sres["ranges"].append(entry)
            if not chans:
                fres["spws"][str(sid)] = sres
                continue
            sres["chan"] = format_channel_ranges(chans)
            ms_ranges = channels_to_ranges(info, fids[:1], sid, chans, info.spws[sid].frame, me=me)
            sres["freq_ms_frame"] = ";".join(f"{lo / 1e9:.10f}~{hi / 1e9:.10f}GHz" for lo, hi in ms_ranges) + \
                f" {info.spws[sid].frame}"
            sel_items.append(f"{sid}:{sres['chan']}")
            fitspw_items.append(f"{sid}:" + ";".join(f"{lo / 1e9:.10f}~{hi / 1e9:.10f}GHz" for lo, hi in ms_ranges))
            spec[str(sid)] = {"chan": sres["chan"], "fitorder": int(fitorder)}
            fres["spws"][str(sid)] = sres
        listed = {sid for sid, _ in matched}
        fres["not_in_contdat"] = [f"spw {s} ({info.spws[s].name})" for s in info.observed_spws()
                                  if s not in listed and any(info.times(f, s).size for f in fids)]
        fres["fitspec"] = ",".join(sel_items)
        # uvcontsub_old takes the channel string as fitspw too; the frequency form is given as well, but
        # MSSelection reads frequencies as 32-bit floats (16 kHz steps at 230 GHz): with channels narrower
        # than ~30 kHz it can move a boundary by one channel, so the channel form is the one to use
        fres["fitspw"] = fres["fitspec"]
        fres["fitspw_freq"] = ",".join(fitspw_items)
        out["fields"][cfield.name] = fres
        if spec:
            out["fitspec_dict"][",".join(str(f) for f in fids)] = spec
        field_strings[cfield.name] = fres["fitspec"]
    distinct = set(field_strings.values())
    if len(distinct) == 1:
        out["fitspec"] = distinct.pop()
        first = next(iter(out["fields"].values()))
        out["fitspw"], out["fitspw_freq"] = first["fitspw"], first["fitspw_freq"]
    else:
        out["note"] = ("fields differ: use fitspec_dict (uvcontsub) or each field's fitspec/fitspw "
                       "with field=... (uvcontsub_old)") if distinct else "no field of the cont.dat is in this MS"
    return out


# --------------------------------------------------------------------------- selection → cont.dat

def _tocontdat(vis, field, fitspec, outframe, outfile, overwrite):
    if not isinstance(fitspec, str) or not fitspec.strip():
        raise TaskParameterError(TASK, "fitspec", fitspec, "must be a channel selection string such as '0:10~50;90~120'")
    info = _info(vis)
    rep = check_selection(fitspec, info, _ms_select(vis))
    if rep.problems:
        raise TaskParameterError(TASK, "fitspec", fitspec, "cannot be right: " + "; ".join(rep.problems))
    cd = ContDat(version=3)
    me = _measures()
    try:
        for fid in _pick_fields(info, field, required=False):
            cf = ContField(name=info.fields[fid].name)
            for sid, ranges in sorted(rep.selected.items()):
                if not info.times(fid, sid).size:
                    continue
                chans = [(a, b) for a, b, _ in ranges]
                hz = channels_to_ranges(info, [fid], sid, chans, outframe, me=me)
                cf.spws.append(ContSpw(spw_id=sid, name=info.spws[sid].name,
                                       ranges=[ContRange(lo, hi, outframe) for lo, hi in hz]))
            if cf.spws:
                existing = cd.field(cf.name)
                if existing is None:
                    cd.fields.append(cf)
                else:  # mosaic pointings share a name: widen to the union
                    for s in cf.spws:
                        old = existing.spw(s.spw_id)
                        for ro, rn in zip(old.ranges, s.ranges):
                            ro.lo_hz, ro.hi_hz = min(ro.lo_hz, rn.lo_hz), max(ro.hi_hz, rn.hi_hz)
    finally:
        me.done()
    from .contdat import format_contdat
    result = {"mode": "tocontdat", "vis": vis, "frame": outframe, "contdat": cd.to_dict(), "text": format_contdat(cd)}
    if outfile:
        try:
            result["outfile"] = write_contdat(cd, outfile, overwrite)
        except FileExistsError as exc:
            raise TaskParameterError(TASK, "overwrite", overwrite, str(exc)) from None
    log.info(f"{fitspec!r} in {vis} → {sum(len(s.ranges) for f in cd.fields for s in f.spws)} {outframe} range(s)")
    return result


def _ms_select(vis):
    def run(text):
        from almatools.casaenv import casatools
        ms = casatools().ms()
        try:
            ms.open(vis)
            if not ms.msselect({"spw": text}):
                return []
            return np.asarray(ms.msselectedindices()["channel"]).tolist()
        finally:
            ms.close()
            ms.done()
    return run


# --------------------------------------------------------------------------- selection check

def _selection(fitspec, vis):
    info = _info(vis[0]) if vis else None
    if isinstance(fitspec, dict):
        problems = check_fitspec_dict(fitspec, info)
        if problems:
            raise TaskParameterError(TASK, "fitspec", fitspec, "cannot be right: " + "; ".join(problems))
        log.info("fitspec dictionary: fine")
        return {"mode": "selection", "selection": fitspec, "ok": True, "problems": [], "warnings": []}
    rep = check_selection(fitspec, info, _ms_select(vis[0]) if vis else None)
    if rep.problems:
        raise TaskParameterError(TASK, "fitspec", fitspec, "cannot be right: " + "; ".join(rep.problems))
    for w in rep.warnings:
        log.warn(w)
    out = rep.to_dict()
    out["mode"] = "selection"
    out["normalized"] = ",".join(
        f"{sid}:" + ";".join(f"{a}~{b}" + (f"^{st}" if st > 1 else "") for a, b, st in rs)
        for sid, rs in sorted(rep.selected.items()))
    parsed = parse_selection(fitspec)
    out["description"] = [
        f"spw {it.spw}: " + ("all channels" if it.chans is None and not it.freqs else
                             ", ".join([f"channels {a}~{b}" + (f" every {s}" if s > 1 else "") for a, b, s in it.chans or []] +
                                       [f"{lo / 1e9:.6f}~{hi / 1e9:.6f} GHz (MS frame)" for lo, hi in it.freqs]))
        for it in parsed.items]
    return out
