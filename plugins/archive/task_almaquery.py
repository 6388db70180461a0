"""almaquery: the ALMA Science Archive's search box as a CASA task (TAP on ``ivoa.obscore``)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from almatools import log
from almatools.errors import TaskParameterError
from almatools.io import atomic_path, check_output_file

from . import adql, coverage, pictures, search
from .service import run_with_failover

TASK = "almaquery"

#: the archive page's Projects and Publications views: distinct rows of these columns of the Observations
PROJECT_COLUMNS = ["proposal_id", "obs_title", "pi_name", "proposal_authors", "proposal_abstract", "science_keyword",
                   "scientific_category", "type"]
PUBLICATION_COLUMNS = ["bib_reference", "pub_title", "first_author", "authors", "publication_year", "pub_abstract",
                       "proposal_id"]
FORMATS = {".xml": "votable", ".vot": "votable", ".votable": "votable", ".csv": "csv", ".tsv": "tsv"}
#: rows asked per TAP request; larger results are read page by page (ORDER BY … OFFSET)
PAGE_ROWS = 10_000
#: a total order of ivoa.obscore rows, so pages neither overlap nor skip rows
PAGE_ORDER = "member_ous_uid, obs_id, target_name, em_min, em_max, asdm_uid"


def almaquery(source_name="", position="", radius="10arcmin", target_name="", spatial_resolution="",
              largest_angular_scale="", field_of_view="", frequency="", frequency_mode="coverage", bandwidth="",
              spectral_resolution="", band="", observation_date="", integration_time="", polarisation="",
              line_sensitivity="", continuum_sensitivity="", water_vapour="", project_code="", project_title="",
              pi_name="", proposal_authors="", project_abstract="", science_keyword="", scientific_category="",
              project_type="", bibcode="", pub_title="", first_author="", authors="", pub_abstract="",
              publication_year="", mous="", gous="", array="", mosaic="any", release_date="", public="any",
              science="science", qa2="any", adql_where="", adql_query="", service="", maxrec=20000, outfile="",
              outformat="", overwrite=False, plotfile="", vsys=0.0, z=0.0):
    """Search the ALMA Science Archive; see ``xml/almaquery.xml``."""
    params = dict(locals())
    redshift = _redshift(vsys, z)
    if plotfile:
        plotfiles = _plot_names(plotfile, overwrite)
    custom = isinstance(adql_query, str) and adql_query.strip()
    if custom:
        query, wanted = adql_query.strip(), None
    else:
        wanted = _plan(params)
        query = adql.build_query(wanted.clauses)
    log.info(f"ADQL: {query}")
    (table, complete, scanned), base = run_with_failover(
        service, lambda b: _fetch(b, query, maxrec, paged=not custom))
    log.info(f"{scanned} row(s) from {base}/tap" + ("" if complete else f" (stopped at maxrec={maxrec})"))
    result = {"adql": query, "service": f"{base}/tap", "nscanned": scanned}
    for check in wanted.text_checks if wanted is not None else []:
        before = len(table)
        table = _text_matching(table, check)
        log.info(f"{check.param}: '_' and '%' are matched exactly by almatools after the query (ADQL LIKE cannot "
                 f"escape them portably): {len(table)} of {before} row(s) kept")
    if wanted is not None and wanted.coverage is not None:
        before_coverage = len(table)
        table, unreadable = _covering(table, wanted.coverage)
        log.info(f"frequency coverage: {len(table)} of {before_coverage} row(s) have a spectral window matching "
                 f"{frequency!r}" + (f"; {unreadable} row(s) without a readable frequency_support left out"
                                     if unreadable else ""))
        result["nunreadable"] = unreadable
    result.update(nrows=len(table), observations=table, truncated=not complete)
    if "member_ous_uid" in table.colnames:
        result["nmous"] = len(set(str(u) for u in table["member_ous_uid"]))
    if not custom:
        result["projects"] = _distinct(table, PROJECT_COLUMNS)
        pubs = _distinct(table, PUBLICATION_COLUMNS)
        result["publications"] = pubs[[_filled(b) for b in pubs["bib_reference"]]] if len(pubs) else pubs
        result["nprojects"], result["npublications"] = len(result["projects"]), len(result["publications"])
    if not complete:
        log.warn(f"the archive had more than maxrec={maxrec} row(s) for this search: there may be more; "
                 "narrow the search or raise maxrec")
    if outfile:
        result["outfiles"] = _write_tables(result, outfile, outformat, overwrite)
    gs = pictures.groups(table) if len(table) else []
    result["lines"] = pictures.lines_covered(gs, redshift)
    if plotfile:
        result["plotfiles"] = _plot(gs, plotfiles, wanted, vsys, z)
        result["plotfile"] = result["plotfiles"]["footprints"]
    for name in ("observations", "projects", "publications"):
        if name in result:
            log.info(f"{name}: {len(result[name])} row(s)")
    return result


def _plan(params: dict) -> search.Plan:
    """The search of the parameters; any unreadable value becomes a TaskParameterError naming it."""
    if str(params["frequency_mode"]).lower() not in ("coverage", "central"):
        raise TaskParameterError(TASK, "frequency_mode", params["frequency_mode"], "must be 'coverage' or 'central'")
    if params["source_name"]:
        ra, dec = _resolve(params["source_name"])
        params = dict(params, position=f"{ra} {dec}")
    try:
        wanted = search.plan(params)
    except search.SearchValueError as exc:
        raise TaskParameterError(TASK, exc.param, exc.value, f"cannot be used: {exc.why}") from None
    if isinstance(params["adql_where"], str) and params["adql_where"].strip():
        wanted.clauses.append(f"({params['adql_where'].strip()})")  # the escape hatch: the user's ADQL, verbatim
    return wanted


def _resolve(source_name: str) -> tuple[float, float]:
    from astropy.coordinates import SkyCoord
    try:
        c = SkyCoord.from_name(source_name)
    except Exception as exc:
        raise TaskParameterError(TASK, "source_name", source_name,
                                 "could not be resolved by the name services (offline, or unknown name: give "
                                 f"position= instead, or target_name= for the ALMA source name) ({exc})") from None
    return float(c.icrs.ra.deg), float(c.icrs.dec.deg)


def _fetch(base: str, query: str, maxrec: int, paged: bool = True):
    """Up to *maxrec* rows of *query*, page by page; returns (table, complete, rows read).

    *maxrec* counts the rows the archive returns (``nscanned``), before the tests almatools applies
    to them (frequency coverage, a literal ``%``/``_`` in a text pattern), so a search's cost is
    bounded by maxrec and ``truncated`` says the archive may have more rows for the query.
    """
    import pyvo
    from astropy.table import vstack
    service = pyvo.dal.TAPService(f"{base}/tap")
    if not paged:
        res = service.run_sync(query, maxrec=maxrec)
        table = res.to_table()
        return table, len(table) < maxrec and res.query_status != "OVERFLOW", len(table)
    head, _, where = query.partition(" WHERE ")
    clauses = [where] if where else []
    pages, fetched = [], 0
    while True:
        n = min(PAGE_ROWS, maxrec - fetched)
        q = adql.build_query(clauses, top=n, order=PAGE_ORDER, offset=fetched)
        if fetched:
            log.info(f"next page: {q}")
        page = service.run_sync(q, maxrec=n).to_table()
        pages.append(page)
        fetched += len(page)
        if len(page) < n or len(page) == 0:
            return (vstack(pages, metadata_conflicts="silent") if len(pages) > 1 else pages[0]), True, fetched
        if fetched >= maxrec:
            return vstack(pages, metadata_conflicts="silent") if len(pages) > 1 else pages[0], False, fetched


def _covering(table, term):
    """The rows whose spectral windows satisfy the frequency term, and how many could not be read."""
    keep, unreadable = [], 0
    for row in table:
        try:
            windows = coverage.parse_support(_text(row["frequency_support"]))
        except coverage.SupportError:
            windows = []
        if not windows:
            unreadable += 1
            keep.append(False)
            continue
        keep.append(coverage.matches(term, windows))
    return table[keep] if len(table) else table, unreadable


def _text_matching(table, check: search.TextCheck):
    """The rows whose *check.column* satisfies the text term exactly (a masked value, NULL, never does)."""
    keep = [check.matches(None if _masked(v) else _text(v)) for v in table[check.column]]
    return table[keep] if len(table) else table


def _text(value) -> str:
    if value is None or (hasattr(value, "mask") and bool(getattr(value, "mask", False))):
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _filled(value) -> bool:
    return bool(_text(value).strip()) and _text(value) != "--"


def _distinct(table, columns: list[str]):
    """Distinct rows of *columns* (those the table has), in first-seen order."""
    from astropy.table import Table
    cols = [c for c in columns if c in table.colnames]
    seen, keep = set(), []
    for k, row in enumerate(table):
        key = tuple(_text(row[c]) for c in cols)
        if key not in seen:
            seen.add(key)
            keep.append(k)
    return Table(table[cols][keep] if cols else Table(), copy=True)


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
    """A copy whose region column is STC-S text (as ALMA serves it), so every format can hold it.

    Units, UCDs, utypes, xtypes and descriptions stay, so the VOTable reads like the archive's own.
    """
    from astropy.table import Table
    t = Table(table, copy=True)
    if "s_region" in t.colnames and not all(isinstance(v, str) for v in t["s_region"]):
        col = t["s_region"]
        t["s_region"] = [v if isinstance(v, str) else _stcs(v) for v in col]
        t["s_region"].unit, t["s_region"].description = col.unit, col.description
        t["s_region"].meta.update(col.meta)
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


def _redshift(vsys, z) -> float:
    """The source's redshift for the line markers: from *z*, or from *vsys* (cz, km/s); not both."""
    from almatools.lines import redshift
    if vsys and z:
        raise TaskParameterError(TASK, "z", z, f"give vsys ({vsys} km/s) or z, not both")
    if z <= -1:
        raise TaskParameterError(TASK, "z", z, "must be larger than -1")
    if abs(vsys) >= 299792.458:
        raise TaskParameterError(TASK, "vsys", vsys, "must be below the speed of light (299792.458 km/s)")
    return redshift(vsys, z)


def _plot_names(plotfile: str, overwrite: bool) -> dict:
    """The two PNGs of plotfile: the footprints (plotfile itself) and the spectral coverage next to it."""
    stem, ext = os.path.splitext(plotfile)
    if ext.lower() not in ("", ".png"):
        raise TaskParameterError(TASK, "plotfile", plotfile, "is written as PNG: name it *.png")
    names = {"footprints": stem + ".png", "spectra": stem + ".spectra.png"}
    for path in names.values():
        check_output_file(path)
        if os.path.exists(path) and not overwrite:
            raise TaskParameterError(TASK, "plotfile", path, "exists (set overwrite=True to replace it)")
    return names


def _plot(gs, names: dict, wanted, vsys: float, z: float) -> dict:
    """The two pictures of the archive page: footprints on the sky and spectral coverage."""
    position = wanted.position if wanted is not None else None
    frequency = wanted.frequency if wanted is not None else None
    pictures.plot_footprints(gs, names["footprints"], position)
    pictures.plot_spectra(gs, names["spectra"], frequency, vsys=vsys, z=z)
    log.info(f"plots: {names['footprints']} (footprints), {names['spectra']} (spectral coverage)")
    return names


def _masked(v) -> bool:
    import numpy as np
    return v is None or bool(np.ma.is_masked(v)) or (isinstance(v, float) and math.isnan(v))
