"""calunflag: find and remove calibrators' spectral-line flags, safely."""

from __future__ import annotations

import copy
import difflib
import re
import shutil
from pathlib import Path

from almatools import log
from almatools.errors import TaskParameterError
from almatools.io import atomic_write

from .edit import Finding, apply_edits, scan_script, scan_template, template_tokens
from .roles import ROLES, FieldRoles, roles_from_ms, roles_from_names, roles_from_script
from .scan import ScriptError, find_calls, read_text, step_titles

__all__ = ["calunflag"]

TASK = "calunflag"
SUFFIX = ".calunflag"


def calunflag(path, vis="", roles=None, fields=None, keepatmospheric=False, fluxcalflag="applyflags", dryrun=False,
              outdir="", inplace=False, overwrite=False):
    """Find and remove spectral-line flags on calibrators; see ``xml/calunflag.xml``."""
    root = Path(path).expanduser().resolve()
    want_roles = {"polarization" if r.strip().lower() == "polarisation" else r.strip().lower() for r in roles or ROLES}
    unknown = want_roles - set(ROLES)
    if unknown:
        raise TaskParameterError(TASK, "roles", roles, f"unknown role(s) {sorted(unknown)}; known: {', '.join(ROLES)}")
    want_fields = set(fields or [])
    if inplace and outdir:
        raise TaskParameterError(TASK, "outdir", outdir, "inplace=True edits the files themselves; leave outdir empty")
    files = _input_files(root)
    if not files:
        raise TaskParameterError(TASK, "path", str(root),
                                 "holds no calibration script, pipeline script or flag template")
    texts = {}
    for f in files:
        try:
            texts[f] = read_text(f)
        except ScriptError as exc:
            raise TaskParameterError(TASK, "path", str(f), str(exc)) from None
    try:
        base, per_script = _field_roles(root, files, texts, vis)
    except ScriptError as exc:
        raise TaskParameterError(TASK, "path", str(root), str(exc)) from None

    findings: list[Finding] = []
    edited: dict[Path, str] = {}
    for f in files:
        text = texts[f]
        field_roles = per_script.get(f, base)
        chosen = {field_roles.name_of(x) for x in want_fields}  # fields by name or by index: compare names
        try:
            if f.name.endswith(".txt"):
                found, calls = scan_template(str(f), text, field_roles, want_roles, chosen), None
            else:
                found, calls = scan_script(str(f), text, field_roles, want_roles, chosen, keepatmospheric,
                                           fluxcalflag)
        except ScriptError as exc:
            raise TaskParameterError(TASK, "path", str(f), str(exc)) from None
        findings += found
        new = apply_edits(text, found, calls)
        if new != text:
            edited[f] = new
    calibrators = {k: set(v) for k, v in base.roles.items()}
    for f, r in per_script.items():  # field indices are per execution block: resolve them per script
        for key, roles_of in r.roles.items():
            name = r.name_of(key)
            calibrators.setdefault(name if not name.isdigit() else f"{f.name}:field {key}", set()).update(roles_of)
    _report(findings, calibrators)
    result = {"path": str(root), "findings": [x.as_dict() for x in findings],
              "changes": sum(1 for x in findings if x.action in ("comment", "applyflags")),
              "calibrators": {k: sorted(v) for k, v in sorted(calibrators.items())},
              "field_names": {f.name: dict(r.names) for f, r in per_script.items() if r.names},
              "dryrun": bool(dryrun), "files": {},
              "command": _command(root, files, texts, edited, findings)}
    if dryrun:
        log.info("dryrun: nothing written")
        return result
    for f, new in edited.items():
        result["files"][str(f)] = _write(f, texts[f], new, outdir, inplace, overwrite)
    if not edited:
        log.info("nothing to change: no active calibrator line flags found")
    return result


def _input_files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    candidates = []
    for pattern in ("*scriptForCalibration*.py", "*scriptForFluxCalibration*.py", "*casa_pipescript.py",
                    "*flagtemplate.txt", "*flagtargetstemplate.txt"):
        for sub in ("", "script", "calibration"):
            candidates += (root / sub).glob(pattern) if (root / sub).is_dir() else []
    return sorted({p for p in candidates if SUFFIX not in p.name and p.is_file()})


def _field_roles(root: Path, files, texts, vis: str) -> tuple[FieldRoles, dict]:
    """Roles shared by all files (by name), and per script (its field indices are its own EB's)."""
    base = FieldRoles()
    if vis:
        if not Path(vis).is_dir():
            raise TaskParameterError(TASK, "vis", vis, "is not a MeasurementSet directory")
        roles_from_ms(vis, base)
    per_script = {}
    for f in files:
        if f.suffix == ".py":
            calls = find_calls(texts[f], ("setjy", "bandpass", "gaincal", "fluxscale", "flagdata"), str(f))
            per_script[f] = roles_from_script(texts[f], calls, copy.deepcopy(base))
    for r in per_script.values():  # a role learned for a field NAME holds in every file
        base.merge(r, names_only=True)
    named = set()
    for f in files:
        if f.name.endswith(".txt"):
            for number, line in enumerate(texts[f].split("\n"), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    named.add(template_tokens(line.strip(), str(f), number).get("field", ""))
    roles_from_names(sorted(n for name in named for n in name.split(",")), _contdat_fields(root), base)
    for r in per_script.values():
        r.merge(base)
    return base, per_script


def _contdat_fields(root: Path) -> set[str]:
    base = root if root.is_dir() else root.parent.parent
    fields = set()
    for f in list(base.glob("calibration/*cont.dat")) + list(base.glob("*cont.dat")):
        fields |= set(re.findall(r"^Field:\s*(\S+)", f.read_text(errors="replace"), re.M))
    return fields


def _report(findings: list[Finding], calibrators: dict) -> None:
    """The findings as a table in the CASA log."""
    log.info(f"{len(findings)} candidate flag(s); fields and roles: "
             + (", ".join(f"{k} ({','.join(sorted(v))})" for k, v in sorted(calibrators.items())) or "none known"))
    if not findings:
        return
    log.info(f"  {'file:line':<48} {'step':<28} {'field':<12} {'role':<16} {'spw:channels':<24} action: why")
    for x in findings:
        where = f"{Path(x.file).name}:{x.line}"
        log.info(f"  {where:<48} {x.step[:28]:<28} {x.field or '-':<12} {x.role or '-':<16} {x.spw or '-':<24} "
                 f"{x.action}: {x.reason}")


def _output_path(f: Path, outdir: str) -> Path:
    name = f.name
    stem, dot, ext = name.rpartition(".")
    new = f"{stem}{SUFFIX}.{ext}" if dot else name + SUFFIX
    return (Path(outdir) if outdir else f.parent) / new


def _write(f: Path, old: str, new: str, outdir: str, inplace: bool, overwrite: bool) -> dict:
    """Write the edited text (copy, or in place with a backup) and a unified diff beside it."""
    target = f if inplace else _output_path(f, outdir)
    if not inplace and target.exists() and target.read_text(errors="replace") != new and not overwrite:
        raise TaskParameterError(TASK, "overwrite", overwrite, f"{target} exists and differs; set overwrite=True")
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = ""
    if inplace:
        backup_path = f.with_name(f.name + SUFFIX + ".bak")
        if backup_path.exists() and backup_path.read_bytes() != f.read_bytes() and not overwrite:
            raise TaskParameterError(TASK, "inplace", True, f"{backup_path} exists and differs from {f}; "
                                     "move it away or set overwrite=True")
        shutil.copy2(f, backup_path)  # byte-identical, before anything changes
        backup = str(backup_path)
    atomic_write(target, new)
    diff = target.with_name(target.name + ".diff")
    atomic_write(diff, "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                     fromfile=str(f), tofile=str(target))))
    log.info(f"wrote {target} (diff: {diff})")
    return {"edited": str(target), "diff": str(diff), "backup": backup}




def _command(root: Path, files, texts, edited, findings) -> dict:
    """How to re-run the calibration from the edited files (one recipe per manual script)."""
    manual = [f for f in files if "scriptForCalibration" in f.name and "FluxCalibration" not in f.name]
    pipeline = [f for f in files if f.name.endswith("casa_pipescript.py")]
    out = {}
    recipes = []
    for f in manual:
        titles = step_titles(texts[f])
        first = next((k for k, t in sorted(titles.items()) if "initial flagging" in t.lower()), None)
        changed = [int(x.step.split()[0]) for x in findings if x.file == str(f) and x.action == "comment"
                   and x.step[:1].isdigit()]
        name = _output_path(f, "").name if f in edited else f.name
        vis = re.search(r"(uid___\w+)\.ms\.scriptForCalibration", f.name)
        split = f"{vis.group(1)}.ms.split" if vis else "<uid>.ms.split"
        if first is not None and changed and min(changed) < first:
            step = min(changed)
            recipes.append(f"# {f.name}: a removed flag sits in step {step} '{titles.get(step, '')}', before the "
                           "'Original' flag version is saved, so restoring it cannot undo that flag: re-import from "
                           "the ASDM and run every step, in the CASA version of the script (see calversion):\n"
                           f"mysteps = []\nexecfile('{name}')")
        else:
            steps = [k for k in sorted(titles) if first is not None and k >= first]
            recipes.append(f"# {f.name}: in the CASA version of the script (see calversion), where {split} is:\n"
                           f"flagmanager(vis='{split}', mode='restore', versionname='Original')\n"
                           f"mysteps = {steps}\n"
                           f"execfile('{name}')")
    if recipes:
        out["manual"] = "\n".join(recipes)
    if pipeline:
        f = pipeline[0]
        out["pipeline"] = ("a full recalibration from the ASDMs is needed: scriptForPI.py's restore path "
                           "re-applies the saved Pipeline_Final flags, so it cannot drop these. In a directory "
                           "holding the ASDMs and the edited templates renamed to <asdm>.flagtemplate.txt: "
                           f"casa --pipeline -c {_output_path(f, '').name if f in edited else f.name}")
    return out
