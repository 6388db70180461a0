"""Recalibration inputs with catalogue flux densities: setjy commands and a rewritten flux.csv.

``setjy`` commands (one per MS, field and spw: ``standard='manual'``, the catalogue flux
density at the spw's frequency, its spectral index and that frequency as ``reffreq``)
for manual recalibration; a flux.csv with the same rows for a pipeline re-run.  The
flux.csv comment follows the pipeline's template (``# field=... intents=... origin=...
age=... queried_at=...``) and adds analysisUtils' ``+-<unc>Jy, freq=<GHz>GHz`` part, so the
pipeline reads the row as a user-supplied (``analysisUtils``) value with its age.
Nothing is written in place unless asked, and then only after a byte-identical backup
(``flux.csv.original``, as analysisUtils names it; an existing backup is never replaced).
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

from almatools.delivery.fluxcsv import FluxCsv, pipeline_comment, render
from almatools.io import atomic_write

__all__ = ["setjy_commands", "fluxcsv_replacements", "write_fluxcsv", "backup_path"]


def _num(x: float) -> str:
    return f"{x:.6g}"


def setjy_commands(rows: list[dict], value_key: str = "estimate_jy", fields=None) -> list[str]:
    """``setjy(...)`` lines for the model rows of *fields* (all when None) with a catalogue value, one per MS,
    field and spw."""
    out, seen = [], set()
    for r in rows:
        flux = r.get(value_key)
        if flux is None or r.get("kind") != "model" or (fields is not None and r["field"] not in fields):
            continue
        key = (r["ms"], r["field"], r["spw"])
        if key in seen:
            continue
        seen.add(key)
        spix = r.get("spectral_index")
        vis = r["ms"] or "<your MS>"
        out.append(f"setjy(vis={vis!r}, field={r['field']!r}, spw={str(r['spw'])!r}, standard='manual', "
                   f"fluxdensity=[{_num(flux)}, 0, 0, 0], spix={_num(spix if spix is not None else 0.0)}, "
                   f"reffreq='{r['frequency_ghz']:.6f}GHz', usescratch=True)")
    return out


def fluxcsv_replacements(table: FluxCsv, rows: list[dict], estimates_by_where: dict, value_key: str = "estimate_jy",
                         now: datetime | None = None) -> dict[int, dict]:
    """New I, spix and comment for the flux.csv rows the comparison has a catalogue value for."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = {}
    for r in rows:
        where = r["where"]
        if not where.startswith(table.label + ":") or r.get(value_key) is None:
            continue
        line = int(where.rsplit(":", 1)[1])
        row = next((x for x in table.rows if x.line == line), None)
        if row is None:
            continue
        est = estimates_by_where.get(where, {})
        age = est.get("meanAge")
        extra = (f"+-{(r.get('estimate_error_jy') or r.get('service_error_jy') or 0.0):.6f}Jy, "
                 f"freq={r['frequency_ghz']:.6f}GHz, spec_index={(r.get('spectral_index') or 0.0):.6f}, "
                 f"Band3age={'N/A' if age is None else f'{age:+.0f}'}")
        intents = _intents(row.comment)
        out[line] = {"I": _num(r[value_key]), "spix": _num(r.get("spectral_index") or 0.0),
                     "comment": pipeline_comment(r["field"], intents, "calflux",
                                                 "N/A" if age is None else f"{round(age):d}", stamp, extra)}
    return out


def _intents(comment: str) -> list[str]:
    from almatools.delivery.fluxcsv import parse_comment
    return parse_comment(comment).get("intents", [])


def backup_path(path: Path) -> Path:
    """``flux.csv.original``, or the first free ``flux.csv.original.N``: an existing backup is never replaced."""
    candidate = path.with_name(path.name + ".original")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.original.{n}")
    return candidate


def write_fluxcsv(table: FluxCsv, replacements: dict[int, dict], target: Path, inplace_source: Path | None = None
                  ) -> dict:
    """Write the rewritten table to *target*; with *inplace_source*, back the original up first."""
    text = render(table, replacements)
    result = {"file": str(target), "rows_changed": len(replacements), "backup": None}
    if inplace_source is not None:
        backup = backup_path(inplace_source)
        shutil.copy2(inplace_source, backup)
        result["backup"] = str(backup)
    atomic_write(target, text)
    return result
