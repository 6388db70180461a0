"""almaquery: the ALMA Science Archive's search box as a CASA task (TAP on ``ivoa.obscore``)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from almatools import log
from almatools.errors import TaskParameterError
from almatools.io import atomic_path

from . import adql
from .service import run_with_failover

TASK = "almaquery"

#: the archive's Projects and Publications views, as distinct rows of the same search
PROJECT_COLUMNS = "proposal_id, obs_title, obs_creator_name, proposal_abstract, science_keyword, scientific_category"
PUBLICATION_COLUMNS = "bib_reference, pub_title, first_author, publication_year, proposal_id"
FORMATS = {".xml": "votable", ".vot": "votable", ".votable": "votable", ".csv": "csv", ".tsv": "tsv"}


def almaquery(source_name="", position="", radius="10arcmin", project_code="", mous="", gous="", target_name="", pi_name="",
              band="", frequency="", spatial_resolution="", spectral_resolution="", line_sensitivity="",
              continuum_sensitivity="", polarisation="", observation_date="", release_date="", public="any",
              science="science", qa2="any", adql_where="", adql_query="", service="", maxrec=20000,
              outfile="", outformat="", overwrite=False, plotfile=""):
    """Search the ALMA Science Archive; see ``xml/almaquery.xml``."""
    query = adql_query.strip() or _build(locals())
    log.info(f"ADQL: {query}")
    table, base = run_with_failover(service, lambda b: _tap(b, query, maxrec))
    log.info(f"{len(table)} row(s) from {base}/tap")
    result = {"adql": query, "service": f"{base}/tap", "nrows": len(table), "observations": table}
    if "member_ous_uid" in table.colnames:
        result["nmous"] = len(set(str(u) for u in table["member_ous_uid"]))
    # the archive page's Projects and Publications views: distinct rows of the same constraints
    if not adql_query.strip():
        where = query.partition(" WHERE ")[2]
        for name, cols in (("projects", PROJECT_COLUMNS), ("publications", PUBLICATION_COLUMNS)):
            extra = "bib_reference IS NOT NULL" if name == "publications" else ""
            q = f"select distinct {cols} from ivoa.obscore" + (
                " WHERE " + " AND ".join(w for w in (where, extra) if w) if where or extra else "")
            rows = run_with_failover(base, lambda b: _tap(b, q, maxrec))[0]
            if name == "publications":  # rows of unpublished projects carry an empty bibcode
                rows = rows[[bool(str(b).strip()) and str(b) != "--" for b in rows["bib_reference"]]]
            result[name] = rows
            result[f"n{name}"] = len(result[name])
    truncated = len(table) >= maxrec
    if truncated:
        log.warn(f"the result reached maxrec={maxrec}: there may be more rows; narrow the search or raise maxrec")
    result["truncated"] = truncated
    if outfile:
        result["outfiles"] = _write_tables(result, outfile, outformat, overwrite)
    if plotfile:
        result["plotfile"] = _plot(table, plotfile)
    for name in ("observations", "projects", "publications"):
        if name in result:
            log.info(f"{name}: {len(result[name])} row(s)")
    return result


def _tap(base, query, maxrec):
    import pyvo
    return pyvo.dal.TAPService(f"{base}/tap").run_sync(query, maxrec=maxrec).to_table()


def _build(p: dict) -> str:
    """The WHERE clauses of the search box's fields, in the order of the archive page."""
    clauses = []
    try:
        if p["source_name"] and p["position"]:
            raise TaskParameterError(TASK, "position", p["position"], "cannot be combined with source_name")
        if p["source_name"] or p["position"]:
            ra, dec, r = _cone(p["source_name"], p["position"], p["radius"])
            clauses.append(adql.cone_clause(ra, dec, r))
        if p["project_code"]:
            clauses.append(adql.string_clause("proposal_id", p["project_code"]))
        if p["mous"]:
            clauses.append(adql.uid_clause("member_ous_uid", p["mous"]))
        if p["gous"]:
            clauses.append(adql.uid_clause("group_ous_uid", p["gous"]))
        if p["target_name"]:
            clauses.append(adql.string_clause("target_name", p["target_name"]))
        if p["pi_name"]:
            clauses.append(adql.string_clause("obs_creator_name", p["pi_name"]))
        if p["band"]:
            clauses.append(adql.band_clause(p["band"]))
        for name, column, scale in (("frequency", "frequency", 1.0),
                                    ("spatial_resolution", "spatial_resolution", 1.0),
                                    ("spectral_resolution", "spectral_resolution", 1e3),  # kHz as in the box; Hz column
                                    ("line_sensitivity", "sensitivity_10kms", 1.0),
                                    ("continuum_sensitivity", "cont_sensitivity_bandwidth", 1.0)):
            if str(p[name]).strip():
                clauses.append(adql.numeric_clause(column, p[name], scale))
        if p["polarisation"]:
            clauses.append(adql.polarisation_clause(p["polarisation"]))
        if p["observation_date"]:
            clauses.append(adql.date_clause("t_min", p["observation_date"]))
        if p["release_date"]:
            clauses.append(adql.release_clause(p["release_date"]))
    except adql.QueryError as exc:
        raise TaskParameterError(TASK, exc.field if exc.field in p else _param_of(exc.field), exc.value,
                                 f"cannot be read: {exc.why}") from None
    clauses.append({"any": "", "public": "data_rights='Public'", "proprietary": "data_rights='Proprietary'"}[
        p["public"].lower()])
    clauses.append({"any": "", "science": "science_observation='T'", "calibration": "science_observation='F'"}[
        p["science"].lower()])
    clauses.append({"any": "", "pass": "qa2_passed='T'", "fail": "qa2_passed='F'"}[p["qa2"].lower()])
    if p["adql_where"].strip():
        clauses.append(f"({p['adql_where'].strip()})")  # the escape hatch: the user's own ADQL, verbatim
    return adql.build_query(clauses)


def _param_of(column: str) -> str:
    return {"sensitivity_10kms": "line_sensitivity", "cont_sensitivity_bandwidth": "continuum_sensitivity",
            "t_min": "observation_date", "proposal_id": "project_code", "member_ous_uid": "mous",
            "group_ous_uid": "gous"}.get(column, column)


def _cone(source_name: str, position: str, radius: str) -> tuple[float, float, float]:
    import astropy.units as u
    from astropy.coordinates import Angle, SkyCoord
    try:
        r = Angle(radius if re.search(r"[a-z\"']", str(radius)) else f"{radius}deg").to_value(u.deg)
    except Exception:
        raise TaskParameterError(TASK, "radius", radius, "is not an angle (e.g. '10arcmin', '0.5deg')") from None
    if source_name:
        try:
            c = SkyCoord.from_name(source_name)
        except Exception as exc:
            raise TaskParameterError(TASK, "source_name", source_name,
                                     "could not be resolved by the name services (offline, or unknown name: give "
                                     f"position= instead, or target_name= for the ALMA source name) ({exc})") from None
    else:
        c = _parse_position(position)
    return float(c.icrs.ra.deg), float(c.icrs.dec.deg), float(r)


def _parse_position(text: str):
    """``'11h01m51.9s -34d42m17s'``, ``'11:01:51.9 -34:42:17'`` (hours), ``'165.466 -34.705'`` (degrees),
    optionally with a frame first (``'J2000 …'``, ``'ICRS …'``, ``'galactic l b'``)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    parts = str(text).replace(",", " ").split()
    frame = "icrs"
    if parts and parts[0].lower() in ("j2000", "fk5", "icrs", "galactic", "gal"):
        frame = {"j2000": "fk5", "gal": "galactic"}.get(parts[0].lower(), parts[0].lower())
        parts = parts[1:]
    if len(parts) != 2:
        raise TaskParameterError(TASK, "position", text, "needs two coordinates, e.g. '11h01m51.9s -34d42m17s'")
    try:
        if frame == "galactic":
            return SkyCoord(float(parts[0]), float(parts[1]), unit="deg", frame="galactic")
        sexagesimal = any(ch in parts[0] for ch in "h:")
        return SkyCoord(parts[0], parts[1], unit=(u.hourangle if sexagesimal else u.deg, u.deg), frame=frame)
    except (ValueError, TypeError) as exc:
        raise TaskParameterError(TASK, "position", text, f"is not a position ({exc})") from None


def _write_tables(result: dict, outfile: str, outformat: str, overwrite: bool) -> dict:
    fmt = (outformat or FORMATS.get(Path(outfile).suffix.lower(), "")).lower()
    if fmt not in ("votable", "csv", "tsv"):
        raise TaskParameterError(TASK, "outformat", outformat or outfile,
                                 "must be votable, csv or tsv (or given by the extension .xml/.vot/.csv/.tsv)")
    stem, ext = os.path.splitext(outfile)
    written = {}
    for name in ("observations", "projects", "publications"):
        if name not in result:
            continue
        path = outfile if name == "observations" else f"{stem}.{name}{ext}"
        if os.path.exists(path) and not overwrite:
            raise TaskParameterError(TASK, "outfile", path, "exists (set overwrite=True to replace it)")
        table = _plain(result[name])
        with atomic_path(path) as tmp:
            if fmt == "votable":
                table.write(tmp, format="votable")
            else:
                table.write(tmp, format="ascii.csv" if fmt == "csv" else "ascii.tab",
                            **({"delimiter": "\t"} if fmt == "tsv" else {}))
        written[name] = path
        log.info(f"wrote {len(table)} {name} row(s) to {path} ({fmt})")
    return written


def _plain(table):
    """A copy whose region column is STC-S text, so every format can hold it."""
    from astropy.table import Table
    t = Table(table, copy=True)
    if "s_region" in t.colnames and t["s_region"].dtype.kind not in "US":
        t["s_region"] = [_stcs(v) for v in t["s_region"]]
    for c in t.colnames:
        t[c].description = None
    return t


def _stcs(value) -> str:
    polys = footprints(value)
    return " ".join("Polygon ICRS " + " ".join(f"{a:.6f} {b:.6f}" for a, b in p) for p in polys)


def footprints(value) -> list[list[tuple[float, float]]]:
    """Polygons (lists of (ra, dec) in degrees) from an ``s_region``: STC-S text (ALMA) or a DALI array."""
    import numpy as np
    if value is None or (hasattr(value, "mask") and np.all(getattr(value, "mask", False))):
        return []
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        polys = []
        for m in re.finditer(r"(Polygon|Circle)\s+(?:ICRS|J2000|FK5)?\s*([-+0-9.eE\s]+)", value, re.I):
            nums = [float(x) for x in m.group(2).split()]
            if m.group(1).lower() == "circle" and len(nums) >= 3:
                ra, dec, r = nums[:3]
                t = np.linspace(0, 2 * np.pi, 37)
                polys.append([(ra + r * np.cos(a) / max(np.cos(np.radians(dec)), 1e-6), dec + r * np.sin(a))
                              for a in t])
            elif len(nums) >= 6:
                polys.append(list(zip(nums[0::2], nums[1::2])))
        return polys
    arr = np.asarray(value, dtype=float).ravel()
    return [list(zip(arr[0::2], arr[1::2]))] if arr.size >= 6 else []


def _plot(table, plotfile: str) -> str:
    """The two panels of the archive page: footprints on the sky and spectral coverage."""
    # a Figure of its own, not pyplot: the backend of the user's session is left alone
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(12, 5))
    FigureCanvasAgg(fig)
    sky, spec = fig.subplots(1, 2)
    projects = sorted(set(str(p) for p in table["proposal_id"])) if "proposal_id" in table.colnames else [""]
    colours = {p: colormaps["tab10"](i % 10) for i, p in enumerate(projects)}
    for k, row in enumerate(table):
        colour = colours.get(str(row["proposal_id"]) if "proposal_id" in table.colnames else "", "C0")
        for poly in footprints(row["s_region"]) if "s_region" in table.colnames else []:
            xs, ys = zip(*(poly + poly[:1]))
            sky.plot(xs, ys, color=colour, lw=1)
        if "em_min" in table.colnames and not _masked(row["em_min"]):
            lo, hi = 299792458e-9 / float(row["em_max"]), 299792458e-9 / float(row["em_min"])
            spec.plot([lo, hi], [k, k], color=colour, lw=4, solid_capstyle="butt")
    sky.invert_xaxis()  # RA increases to the east (left)
    sky.set_xlabel("RA (deg)")
    sky.set_ylabel("Dec (deg)")
    sky.set_title("footprints")
    spec.set_xlabel("frequency (GHz)")
    spec.set_ylabel("row")
    spec.set_title("spectral coverage")
    for p, c in colours.items():
        sky.plot([], [], color=c, label=p)
    if len(projects) <= 12:
        sky.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(plotfile) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    log.info(f"plot: {plotfile}")
    return plotfile


def _masked(v) -> bool:
    import numpy as np
    return v is None or bool(np.ma.is_masked(v)) or (isinstance(v, float) and math.isnan(v))
