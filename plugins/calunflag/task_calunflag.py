"""calunflag: find and remove calibrators' spectral-line flags, safely."""

from __future__ import annotations

import difflib
import itertools
import os
import re
import shutil
import stat
from pathlib import Path

from almatools import log
from almatools import limits
from almatools.errors import InputFileError, ResourceLimitError, TaskParameterError
from almatools.io import atomic_path
from almatools.limits import file_kind

from .edit import Finding, apply_edits, scan_script, scan_template, template_tokens
from .ppr import scan_ppr
from .roles import (ROLES, FieldRoles, decide, roles_from_ms, roles_from_names, roles_from_script)
from .scan import MAX_SCRIPT_BYTES, ScriptError, Source, find_calls, read_source, step_titles

__all__ = ["calunflag"]

TASK = "calunflag"
SUFFIX = ".calunflag"
#: calls whose field selections (and comments) tell which field is which
_ROLE_CALLS = ("setjy", "bandpass", "gaincal", "fluxscale", "flagdata", "applycal")
_PATTERNS = ("*scriptForCalibration*.py", "*scriptForFluxCalibration*.py", "*casa_pipescript.py",
             "*flagtemplate.txt", "*flagtargetstemplate.txt", "PPR*.xml")
_UID = re.compile(r"uid___[A-Za-z0-9]+_X[0-9a-fA-F]+_X[0-9a-fA-F]+")


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
    files, skipped = _input_files(root)
    if not files:
        raise TaskParameterError(TASK, "path", str(root), "holds no calibration script, pipeline script, PPR or "
                                 "flag template" + (f" that is a regular file ({skipped[0]['why']})" if skipped else ""))
    sources = {}
    for f in files:
        try:
            sources[f] = read_source(f)
        except ScriptError as exc:
            raise TaskParameterError(TASK, "path", str(f), str(exc)) from None
    try:
        base, per_script = _field_roles(root, files, sources, vis)
    except ScriptError as exc:
        raise TaskParameterError(TASK, "path", str(root), str(exc)) from None

    findings: list[Finding] = []
    edited: dict[Path, str] = {}
    for f in files:
        text = sources[f].text
        field_roles = per_script.get(f, base)
        chosen = {field_roles.name_of(x) for x in want_fields}  # fields by name or by index: compare names
        try:
            if _kind(f) == "template":
                found, calls = scan_template(str(f), text, field_roles, want_roles, chosen), None
            elif _kind(f) == "ppr":
                found, calls = scan_ppr(str(f), text, fluxcalflag), None
            else:
                found, calls = scan_script(str(f), text, field_roles, want_roles, chosen, keepatmospheric,
                                           fluxcalflag)
        except ScriptError as exc:
            raise TaskParameterError(TASK, "path", str(f), str(exc)) from None
        findings += found
        new = apply_edits(text, found, calls, sources[f].newline)
        if new != text:
            edited[f] = new
    summary = _summary(base, per_script)
    _report(findings, summary, skipped)
    result = {"path": str(root), "findings": [x.as_dict() for x in findings],
              "changes": sum(1 for x in findings if x.action in ("comment", "applyflags")),
              **summary,
              "field_names": {f.name: dict(r.names) for f, r in per_script.items() if r.names},
              "skipped": skipped, "dryrun": bool(dryrun), "files": {},
              "command": _command(files, sources, edited, findings)}
    if dryrun:
        log.info("dryrun: nothing written")
        return result
    for f, new in edited.items():
        result["files"][str(f)] = _write(f, sources[f], new, outdir, inplace, overwrite)
    if not edited:
        log.info("nothing to change: no active calibrator line flags found")
    return result


def _kind(f: Path) -> str:
    if f.name.endswith(".txt"):
        return "template"
    if f.name.lower().endswith(".xml"):
        return "ppr"
    return "script"


def _input_files(root: Path) -> tuple[list[Path], list[dict]]:
    """The regular files to read, and the matching paths that are not regular files (never opened)."""
    mode = root.stat().st_mode
    if not stat.S_ISDIR(mode):
        if not stat.S_ISREG(mode):
            raise TaskParameterError(TASK, "path", str(root), f"is {file_kind(mode)}, not a regular file or "
                                     "directory: not opened (reading it could block or never end)")
        return [root], []
    candidates = set()
    for pattern in _PATTERNS:
        for sub in ("", "script", "calibration"):
            candidates |= set((root / sub).glob(pattern)) if (root / sub).is_dir() else set()
    files, skipped = [], []
    for p in sorted(candidates):
        if SUFFIX in p.name:
            continue
        try:
            mode = p.stat().st_mode
        except OSError as exc:  # a dangling symbolic link
            skipped.append({"file": str(p), "why": f"cannot be read: {exc.strerror}"})
            continue
        if stat.S_ISREG(mode):
            files.append(p)
        elif not stat.S_ISDIR(mode):
            skipped.append({"file": str(p), "why": f"is {file_kind(mode)}, not a regular file: not opened"})
    return files, skipped


def _field_roles(root: Path, files, sources: dict[Path, Source], vis: str) -> tuple[FieldRoles, dict]:
    """Evidence shared by all files (by field name), and per script (its field indices are its own EB's)."""
    base = FieldRoles()
    ms = None
    if vis:
        if not Path(vis).is_dir():
            raise TaskParameterError(TASK, "vis", vis, "is not a MeasurementSet directory")
        ms = roles_from_ms(vis, FieldRoles())
        base.merge_names(ms)
    scripts = [f for f in files if _kind(f) == "script"]
    per_script = {}
    for f in scripts:
        r = FieldRoles()
        if ms is not None and _ms_is_this_eb(vis, f, scripts):
            for index, name in ms.names.items():
                r.set_name(index, name, ms.name_sources[index])
        r.merge_names(base)
        calls = find_calls(sources[f].text, _ROLE_CALLS, str(f))
        per_script[f] = roles_from_script(f.name, sources[f].text, calls, r)
    if ms is not None and scripts and not any(_ms_is_this_eb(vis, f, scripts) for f in scripts):
        base.conflicts.append(f"vis={vis} is none of the scripts' execution blocks: its field names and intents "
                              "are used, its field indices are not")
    for r in per_script.values():  # a role learned for a field NAME holds in every file
        base.merge_names(r)
    named = set()
    for f in files:
        if _kind(f) == "template":
            for number, line in enumerate(sources[f].text.split("\n"), 1):
                if line.strip() and not line.lstrip().startswith("#"):
                    named.add(template_tokens(line.strip(), str(f), number).get("field", ""))
    targets, where = _contdat_fields(root)
    roles_from_names(sorted(n.strip() for name in named for n in name.split(",")), targets, base, where)
    for r in per_script.values():
        r.merge_names(base)
    return base, per_script


def _ms_is_this_eb(vis: str, script: Path, scripts: list[Path]) -> bool:
    """Whether the MS's field indices are those of *script*: same EB uid, or the only script."""
    uid = _UID.search(Path(vis).name)
    if uid:
        return uid.group(0) in script.name or (len(scripts) == 1 and not _UID.search(script.name))
    return len(scripts) == 1


def _contdat_fields(root: Path) -> tuple[set[str], str]:
    """The Field: names of the MOUS's cont.dat files (science targets), and which files they came from."""
    base = root if root.is_dir() else root.parent.parent
    fields, names = set(), []
    for f in sorted(set(base.glob("calibration/*cont.dat")) | set(base.glob("*cont.dat"))):
        try:
            data = limits.read_bytes(f, 4 * limits.MiB)
        except (InputFileError, ResourceLimitError) as exc:
            log.warn(f"{f} not read: {exc}")
            continue
        fields |= set(re.findall(r"^Field:[ \t]*(\S+)", data.decode("utf-8", "replace"), re.M))
        names.append(f.name)
    return fields, ", ".join(names)


def _summary(base: FieldRoles, per_script: dict[Path, FieldRoles]) -> dict:
    """calibrators, targets, the evidence for every field's roles, conflicts, values not read."""
    evidence: dict[str, list] = {}
    conflicts = dict.fromkeys(base.conflicts)  # in order, without repeats
    not_read = list(base.not_read)
    for key, ev in base.evidence.items():
        evidence.setdefault(key, {}).update(ev)
    for f, r in per_script.items():
        for key, ev in r.evidence.items():
            name = r.name_of(key)
            display = f"{f.name}:field {key}" if name == key and key.isdigit() else name
            evidence.setdefault(display, {}).update(ev)
        conflicts.update(dict.fromkeys(r.conflicts))
        not_read += r.not_read
    verdicts = {k: decide(k, list(ev)) for k, ev in sorted(evidence.items())}
    for v in verdicts.values():
        conflicts.update(dict.fromkeys(v.conflicts))
    return {"calibrators": {k: sorted(v.roles) for k, v in verdicts.items() if v.roles and not v.is_target},
            "targets": sorted(k for k, v in verdicts.items() if v.is_target),
            "fields": {k: {"roles": sorted(v.roles), "source": v.source, "evidence": [str(e) for e in v.evidence]}
                       for k, v in verdicts.items() if v.roles},
            "conflicts": list(conflicts), "not_read": not_read}


def _report(findings: list[Finding], summary: dict, skipped: list[dict]) -> None:
    """The findings as a table in the CASA log, then conflicts and files not read."""
    log.info(f"{len(findings)} candidate flag(s); fields and roles: "
             + (", ".join(f"{k} ({','.join(v['roles'])} from {v['source']})" for k, v in summary["fields"].items())
                or "none known"))
    for c in summary["conflicts"]:
        log.warn(f"conflicting evidence: {c}")
    for n in summary["not_read"]:
        log.info(f"not read: {n}")
    for s in skipped:
        log.warn(f"{s['file']} {s['why']}")
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


def _write(f: Path, source: Source, new: str, outdir: str, inplace: bool, overwrite: bool) -> dict:
    """Write the edited text (a copy, or in place after a backup) and a unified diff beside it.

    Files whose bytes would not change are left untouched (not even rewritten).
    """
    new_bytes = source.encode(new)
    target = f if inplace else _output_path(f, outdir)
    backup = ""
    if inplace:
        backup = str(_keep_backup(f, source.encode(source.text)))
    else:
        current = _existing_bytes(target, "overwrite")
        if current is not None and current != new_bytes and not overwrite:
            raise TaskParameterError(TASK, "overwrite", overwrite, f"{target} exists and differs; set overwrite=True")
    written = _write_if_changed(target, new_bytes, mode_from=f)
    diff = target.with_name(target.name + ".diff")
    diff_text = "".join(difflib.unified_diff(source.text.splitlines(True), new.splitlines(True),
                                             fromfile=str(f), tofile=str(target)))
    _write_if_changed(diff, source.encode(diff_text, "backslashreplace"))  # its header names paths in any script
    log.info(f"{'wrote' if written else 'unchanged (identical bytes)'} {target} (diff: {diff})")
    return {"edited": str(target), "diff": str(diff), "backup": backup, "written": written}


def _existing_bytes(path: Path, param: str) -> bytes | None:
    """The bytes of an output that already exists (None if it does not); a non-regular file is refused."""
    if not os.path.lexists(path):
        return None
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise TaskParameterError(TASK, param, str(path), f"is {file_kind(mode)}; calunflag writes only regular files")
    try:
        return limits.read_bytes(path, 4 * MAX_SCRIPT_BYTES)  # an output is its input plus marked lines
    except ResourceLimitError:
        return b""  # larger than anything calunflag writes: it differs


def _write_if_changed(target: Path, data: bytes, mode_from: Path | None = None) -> bool:
    """Write *data* atomically unless *target* already holds exactly these bytes; True if written."""
    if _existing_bytes(target, "outdir") == data:
        return False
    with atomic_path(target) as tmp:
        Path(tmp).write_bytes(data)
        if mode_from is not None:
            shutil.copymode(mode_from, tmp)
    return True


def _keep_backup(f: Path, original: bytes) -> Path:
    """A backup holding *original*: an existing identical one, else a new file — never over another backup.

    The first in-place run keeps ``NAME.calunflag.bak``; a later run on an
    already-edited file writes ``NAME.calunflag.bak.1``, ``.bak.2``, ... so the
    true original is never lost.
    """
    for n in itertools.count():
        candidate = f.with_name(f"{f.name}{SUFFIX}.bak" + (f".{n}" if n else ""))
        existing = _existing_bytes(candidate, "inplace")
        if existing == original:
            return candidate
        if existing is None and _create_exclusively(candidate, original, stat_from=f):
            return candidate
        log.info(f"{candidate} holds another version of {f.name}: kept, trying the next name")
    raise AssertionError("unreachable")  # pragma: no cover


def _create_exclusively(target: Path, data: bytes, stat_from: Path) -> bool:
    """Create *target* holding *data* completely or not at all, never replacing a file; False if one exists."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        shutil.copystat(stat_from, tmp)
        try:
            os.link(tmp, target)  # atomic, and fails rather than replace
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links
            try:
                with open(target, "xb") as fh:
                    fh.write(data)
            except FileExistsError:
                return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _command(files, sources, edited, findings) -> dict:
    """How to re-run the calibration from the edited files (one recipe per manual script)."""
    manual = [f for f in files if "scriptForCalibration" in f.name and "FluxCalibration" not in f.name]
    pipeline = [f for f in files if f.name.endswith("casa_pipescript.py")]
    out = {}
    recipes = []
    for f in manual:
        titles = step_titles(sources[f].text)
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
    ppr = [x for x in findings if x.kind == "ppr" and x.action == "report"]
    if ppr:
        out["ppr"] = "\n".join(
            f"# {Path(x.file).name}:{x.line}: {x.reason.split('in a copy, ')[-1]}; then, in casa --pipeline:\n"
            f"import pipeline.infrastructure.executeppr as eppr; eppr.executeppr('<the edited copy>', "
            "importonly=False)" for x in ppr)
    return out
