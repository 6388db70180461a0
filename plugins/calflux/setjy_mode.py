"""mode='setjy': write the setjy commands and the rewritten flux.csv for a recalibration with catalogue values."""

from __future__ import annotations

from pathlib import Path

from almatools import log
from almatools.errors import TaskParameterError
from almatools.io import atomic_write

from .setjyout import fluxcsv_replacements, setjy_commands, write_fluxcsv

__all__ = ["write_setjy"]

TASK = "calflux"
SCRIPT_NAME = "calflux.setjy.py"
FLUXCSV_NAME = "flux.calflux.csv"


def _default_dir(arch, table_label: str | None) -> Path:
    """Next to a loose flux.csv; the Member OUS's calibration/ for one inside a tar; else the input's folder."""
    if table_label and ".tgz:" not in table_label and ".tar:" not in table_label and ".tar.gz:" not in table_label:
        return Path(table_label).parent
    root = Path(arch.path)
    if root.is_dir():
        return root / "calibration" if (root / "calibration").is_dir() else root
    return root.parent


def write_setjy(result: dict, arch, outdir: str, inplace: bool, overwrite: bool, value_key: str) -> dict:
    """Write ``calflux.setjy.py`` and, per flux.csv, ``flux.calflux.csv`` (or the file itself after a backup)."""
    rows = result["rows"]
    # only the flux calibrator's model sets the scale: setjy for it (for every calibrator when none is known)
    flux_cals = set(arch.flux_calibrators) or None
    if flux_cals is None:
        log.warn("the delivery does not say which field is the flux calibrator: setjy commands for every calibrator")
    commands = setjy_commands(rows, value_key, flux_cals)
    out = {"commands": commands, "fluxcsv": [], "script": None}
    if not commands:
        log.warn("no archival model value has a catalogue estimate: nothing to write")
        return out
    by_where = {}
    for r in rows:
        if r.get("estimate"):
            by_where[r["where"]] = r["estimate"]
    for table in arch.fluxcsv:
        if table.problems:
            raise TaskParameterError(TASK, "path", table.label,
                                     f"has unreadable lines ({'; '.join(table.problems[:3])}); rewriting it would "
                                     "lose them, fix them first")
        replacements = fluxcsv_replacements(table, rows, by_where, value_key)
        if not replacements:
            continue
        in_tar = any(s in table.label for s in (".tgz:", ".tar:", ".tar.gz:"))
        if inplace:
            if in_tar:
                raise TaskParameterError(TASK, "inplace", inplace,
                                         f"{table.label} is inside a tar archive and cannot be edited in place; "
                                         "leave inplace=False to get flux.calflux.csv")
            target = Path(table.label)
            info = write_fluxcsv(table, replacements, target, inplace_source=target)
            log.info(f"{target}: {len(replacements)} row(s) rewritten; the original is kept as {info['backup']}")
        else:
            target = Path(outdir) / FLUXCSV_NAME if outdir else _default_dir(arch, table.label) / FLUXCSV_NAME
            if len(arch.fluxcsv) > 1:
                target = target.with_name(f"{Path(table.label.split(':')[0]).stem}.{FLUXCSV_NAME}")
            if target.exists() and not overwrite:
                raise TaskParameterError(TASK, "outdir", str(target.parent),
                                         f"already holds {target.name}; set overwrite=True to replace it")
            info = write_fluxcsv(table, replacements, target)
            log.info(f"{target}: flux.csv with {len(replacements)} catalogue value(s) (copy this file as flux.csv "
                     "into the pipeline's working directory before hifa_importdata)")
        out["fluxcsv"].append(info)
    script = (Path(outdir) if outdir else _default_dir(arch, arch.fluxcsv[0].label if arch.fluxcsv else None)) \
        / SCRIPT_NAME
    if script.exists() and not overwrite:
        raise TaskParameterError(TASK, "outdir", str(script.parent),
                                 f"already holds {script.name}; set overwrite=True to replace it")
    header = ("# setjy commands with flux densities from the ALMA Calibrator Source Catalogue, written by calflux.\n"
              "# Only the flux calibrator's model sets the flux scale; run these before the gain calibration\n"
              "# (manual scripts: in place of the step 'Putting a model for the flux calibrator(s)').\n")
    atomic_write(script, header + "\n".join(commands) + "\n")
    out["script"] = str(script)
    log.info(f"{len(commands)} setjy command(s) written to {script}")
    return out
