"""calversion: which CASA calibrated (and imaged) a Member OUS, and how to redo it."""

from __future__ import annotations

import importlib.metadata
import os
import shlex
import stat
import tarfile
import zlib
from pathlib import Path

from almatools import log
from almatools.errors import InputFileError, TaskParameterError
from almatools.freshness import find_measurement_sets, result_entry as casa_data_entry
from almatools.limits import file_kind

from .sources import VersionStatement, classify, normalise, read_head, read_statements, version_key

__all__ = ["calversion"]

TASK = "calversion"

#: Which statement wins, best first, and why.  A log or weblog records the
#: version that actually ran; a README states what the analyst used; a
#: script's pin states what it was generated for (and a commented-out pin
#: still names it, but no longer guards it).
RANKING = [
    ("casa-log", "a CASA log records the version that actually ran"),
    ("weblog", "the pipeline weblog records the version that actually ran"),
    ("readme", "the README states the version used for the reduction"),
    ("calibration-script", "the calibration script pins the version it was generated for"),
    ("fluxcal-script", "the flux-calibration script pins the version it was generated for"),
    ("imaging-script", "the imaging script pins the version it was written for"),
]
_RANK = {source: i for i, (source, _) in enumerate(RANKING)}


def calversion(path, casaversion=""):
    """Report the CASA version an ALMA Member OUS was calibrated and imaged with.

    See ``xml/calversion.xml`` for the parameters; returns a dictionary (see
    its ``<returns>``).
    """
    root = Path(path).expanduser().resolve()
    running = casaversion or _running_version()
    if not version_key(running):
        raise TaskParameterError(TASK, "casaversion", casaversion, "must look like 6.7.0 or 4.7.2")
    mode = root.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise TaskParameterError(TASK, "path", str(root), f"is {file_kind(mode)}, not a regular file or directory: "
                                 "not opened (reading it could block or never end)")
    unread: list[dict] = []
    files = _delivery_files(root, unread)
    if root.is_file() and not any(kind for _, kind in files):
        raise TaskParameterError(
            TASK, "path", str(root),
            "is not a file that can state a CASA version (a README, a *.scriptForCalibration.py, "
            "scriptForFluxCalibration.py, scriptForImaging*.py, casa_pipescript.py, CASA log or weblog)")

    statements: list[VersionStatement] = []
    for file, kind in files:
        if kind is None:
            continue
        try:
            statements.extend(read_statements(file, kind, _label(root, file)))
        except InputFileError as exc:  # replaced by a FIFO since the walk: still never opened
            unread.append({"file": _label(root, file), "why": exc.problem})
        except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
            # a corrupt log or weblog archive must not hide the other sources
            unread.append({"file": _label(root, file), "why": f"could not be read: {exc}"})

    calibration_type = _calibration_type(root, files, statements)
    calibration = _winner(statements, "calibration")
    imaging = _winner(statements, "imaging")
    if imaging is None and calibration is not None and calibration_type == "pipeline" and _pipeline_images(files):
        imaging = dict(calibration, reason="the pipeline run that calibrated the data also made the images")
    pipeline_version = next((s.pipeline_version for s in sorted(statements, key=_order)
                             if s.pipeline_version and s.pipeline_version != "unknown"), "")

    version = calibration["version"] if calibration else ""  # bare, for comparisons and commands
    matches = bool(version) and _same_release(version, running)
    if matches and calibration_type == "pipeline" and not casaversion:
        match_note = ("same CASA version, but the pipeline is not part of modular CASA: "
                      "use the CASA release with the pipeline")
    elif matches:
        match_note = f"CASA {running} matches {version}"
    elif version:
        match_note = f"CASA {running} is not {version}: recreate the calibrated data with CASA {version}"
    else:
        match_note = "no CASA version found"

    result = {
        "path": str(root),
        "casa_version": _stated(calibration),
        "imaging_version": _stated(imaging),
        "calibration": calibration or {},
        "imaging": imaging or {},
        "calibration_type": calibration_type,
        "pipeline": calibration_type == "pipeline",
        "pipeline_version": pipeline_version,
        "running_version": running,
        "matches": matches,
        "match_note": match_note,
        "sources": [s.as_dict() for s in sorted(statements, key=_order)],
        "disagreements": _disagreements(statements),
        "command": _command(root, calibration_type, version, pipeline_version),
        "pitfalls": _pitfalls(root, statements),
        "unread": unread,
    }
    result["casa_data"] = casa_data_entry(vis=find_measurement_sets(root), depends="nothing calversion reports; "
                                          "recalibrating with this CASA does (UVW, frame conversions)")
    _report(result)
    return result


def _stated(statement: dict | None) -> str:
    """The version as a requirement: ``4.7.2``, or ``>=4.7.2`` for a script's minimum."""
    if not statement:
        return ""
    return (">=" if statement["meaning"] == "minimum" else "") + statement["version"]


def _running_version() -> str:
    try:
        return importlib.metadata.version("casatasks")
    except importlib.metadata.PackageNotFoundError:
        return "0"


def _label(root: Path, file: Path) -> str:
    return str(file.relative_to(root)) if root.is_dir() else file.name


def _delivery_files(root: Path, unread: list[dict]) -> list[tuple[Path, str | None]]:
    """(file, kind) for the given file, or every regular file of a Member OUS tree.

    FIFOs, devices and sockets are listed in *unread* and never opened.
    """
    if root.is_file():
        return [(root, classify(root, _peek(root)))]
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        # calibrated MSs and raw ASDMs are large directories with nothing to read here
        dirnames[:] = sorted(d for d in dirnames if not d.endswith((".ms", ".asdm.sdm", ".ms.split", ".cal"))
                             and d != "calibrated")
        for name in sorted(filenames):
            file = Path(dirpath) / name
            try:
                mode = file.stat().st_mode
            except OSError as exc:  # a dangling symbolic link
                unread.append({"file": _label(root, file), "why": f"could not be read: {exc.strerror}"})
                continue
            if not stat.S_ISREG(mode):
                if classify(file) or name.endswith((".py", ".txt")):
                    unread.append({"file": _label(root, file), "why": f"is {file_kind(mode)}: not opened"})
                continue
            kind = classify(file)
            if kind is None and name.endswith((".py", ".txt")):
                kind = classify(file, _peek(file))
            out.append((file, kind))
    return out


def _peek(file: Path, size: int = 65536) -> str:
    """The start of a regular file as text ('' for anything that cannot or must not be read)."""
    try:
        return read_head(file, size).decode("utf-8", "replace")
    except (OSError, InputFileError):
        return ""


def _order(s: VersionStatement):
    return (_RANK.get(s.source, len(RANKING)), not s.active, s.meaning != "pin", s.file, s.line)


def _winner(statements: list[VersionStatement], purpose: str) -> dict | None:
    candidates = [s for s in statements if s.purpose == purpose]
    if purpose == "calibration":
        candidates += [s for s in statements if s.purpose == "unknown"]
    if not candidates:
        return None
    best = min(candidates, key=_order)
    reason = dict(RANKING).get(best.source, "")
    if best.meaning == "minimum":
        reason += " (as a minimum: the script requires at least this version)"
    if not best.active:
        reason += " (its check is commented out, so it no longer guards the version)"
    others = {normalise(s.version) for s in candidates if not _same_release(s.version, best.version)}
    if others:
        reason += f"; it wins over {', '.join(sorted(others))} from lower-ranked sources"
    return {**best.as_dict(), "reason": reason}


def _disagreements(statements: list[VersionStatement]) -> list[dict]:
    out = []
    for purpose in ("calibration", "imaging"):
        group = [s for s in statements if s.purpose == purpose and s.meaning != "minimum"]
        versions = sorted({normalise(s.version) for s in group}, key=version_key)
        distinct = _most_precise(versions)
        if len(distinct) > 1:
            where: dict[str, list[str]] = {}
            for s in group:
                where.setdefault(normalise(s.version), []).append(f"{s.file}:{s.line}")
            out.append({"purpose": purpose, "versions": distinct, "where": {v: where[v] for v in versions}})
    return out


def _most_precise(versions: list[str]) -> list[str]:
    """*versions* without those a longer one refines (a README's 4.6 agrees with 4.6.0; see _same_release)."""
    longest: dict[tuple, int] = {}  # (prefix length, prefix) → the most parts of a version with that prefix
    for v in versions:
        key = version_key(v)
        for n in (2, 3):
            if len(key) >= n:
                longest[(n, key[:n])] = max(longest.get((n, key[:n]), 0), len(key))
    out = []
    for v in versions:
        key = version_key(v)
        n = min(len(key), 3)
        if n < 2 or longest.get((n, key[:n]), 0) <= len(key):
            out.append(v)
    return out


def _same_release(recorded: str, other: str) -> bool:
    """True when *other* is (a build of) the release *recorded* names: 4.6 ~ 4.6.0 ~ 4.6.0.12."""
    a, b = version_key(recorded), version_key(other)
    n = min(len(a), len(b), 3)
    return n >= 2 and a[:n] == b[:n]


def _calibration_type(root: Path, files, statements) -> str:
    kinds = {kind for _, kind in files}
    names = [f.name.lower() for f, _ in files]
    if any("pipescript" in n or "piperestorescript" in n for n in names) or "ppr" in kinds:
        return "pipeline"
    if any(s.source == "weblog" or s.pipeline_version for s in statements):
        return "pipeline"
    if "calibration-script" in kinds or "fluxcal-script" in kinds:
        return "manual"
    return "unknown"


def _pipeline_images(files) -> bool:
    """Whether the pipeline script ran the imaging stages (hifa_calimage recipes do)."""
    for file, kind in files:
        if kind == "pipeline-script" and "pipescript" in file.name.lower():
            text = _peek(file, 1 << 20)
            if "hif_makeimages" in text or "hifa_imageprecheck" in text:
                return True
        if kind == "pipeline-script" and "calimage" in file.name.lower():
            return True
    return False


def _command(root: Path, calibration_type: str, version: str, pipeline_version: str) -> dict:
    """How to recreate the calibrated data: run scriptForPI.py in script/ with the right CASA."""
    script_dir = root / "script" if root.is_dir() else root.parent
    pi_scripts = sorted(script_dir.glob("*scriptForPI.py")) if script_dir.is_dir() else []
    casa = f"CASA {version}" if version else "the CASA version named in the QA2 report"
    if calibration_type == "pipeline":
        casa += f" with pipeline {pipeline_version}" if pipeline_version else " with its pipeline"
    if not pi_scripts:
        return {"casa": casa, "shell": "", "prompt": "",
                "note": f"no *scriptForPI.py in {script_dir}: it comes with the delivery's script/ folder"}
    script = pi_scripts[0].name
    flag = "--pipeline " if calibration_type == "pipeline" else ""
    return {"casa": casa,
            "shell": f"cd {shlex.quote(str(script_dir))} && casa {flag}-c {shlex.quote(script)}",
            "prompt": f"execfile({script!r})  # at the casa% prompt of {casa}, started {'with --pipeline ' if flag else ''}in {script_dir}",
            "note": "scriptForPI.py writes the calibrated MSs to ../calibrated/"}


def _pitfalls(root: Path, statements: list[VersionStatement]) -> list[str]:
    out = []
    if root.is_dir():
        if (root / "calibrated").exists():
            out.append(f"{root / 'calibrated'} already exists: scriptForPI.py stops when it finds it; "
                       "move it aside before recreating the calibrated data")
        calibration = root / "calibration"
        if calibration.is_dir():
            for tarball in sorted(calibration.glob("*.tar.gz")):
                tgz = tarball.name[:-len(".tar.gz")] + ".tgz"
                if not (calibration / tgz).exists():
                    out.append(f"{tarball} is named *.tar.gz where newer scriptForPI.py looks for *.tgz: "
                               f"copy it to {tgz} (keep the original)")
        raw = root / "raw"
        if raw.is_dir() and (root / "script").is_dir() and not any(raw.iterdir()):
            out.append(f"{raw} is empty: scriptForPI.py needs the raw ASDMs there "
                       "(almafetch with raw data selected)")
    for s in statements:
        if s.shape in ("version-check", "version-compare") and not s.active:
            out.append(f"{s.file}:{s.line}: the CASA version check is commented out, so the script runs in "
                       f"any CASA without warning; it was made for CASA {s.version}")
    return out


def _report(result: dict) -> None:
    log.info(f"{len(result['sources'])} CASA version statement(s) in {result['path']}")
    for s in result["sources"]:
        state = "" if s["active"] else "  [commented out]"
        log.info(f"  {s['file']}:{s['line']}  {s['source']:<18} {s['purpose']:<11} {s['version']:<10}"
                 f" {s['meaning']}{state}")
    cal = result["calibration"]
    if cal:
        log.info(f"calibration: CASA {cal['version']} ({result['calibration_type']}) from "
                 f"{cal['file']}:{cal['line']} — {cal['reason']}")
    else:
        log.warn(f"no CASA version found for the calibration in {result['path']}")
    if result["imaging"]:
        log.info(f"imaging: CASA {result['imaging']['version']} — {result['imaging']['reason']}")
    for d in result["disagreements"]:
        log.warn(f"sources disagree on the {d['purpose']} version: {d['where']}")
    log.info(result["match_note"])
    if result["command"]["shell"]:
        log.info(f"recreate the calibrated data with {result['command']['casa']}: {result['command']['shell']}")
    for p in result["pitfalls"]:
        log.warn(p)
