"""Find calibrator line flags in scripts and flag templates, and edit copies reversibly.

Every edit is line based and marked so that it can be undone exactly
(:func:`restore_original`): commented lines get the prefix :data:`PREFIX` at
column 0, inserted lines carry :data:`MARK` (a ``pass`` statement keeps
Python blocks valid) or end with :data:`ADDED`.  Everything else is kept
byte for byte, so Python 2 stays Python 2.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass

from .roles import FieldRoles
from .scan import Call, ScriptError, find_calls, step_of_lines, step_titles

__all__ = ["Finding", "scan_script", "scan_template", "template_tokens", "apply_edits", "restore_original",
           "PREFIX", "MARK"]

PREFIX = "#calunflag# "
MARK = "#calunflag: "
ADDED = "#calunflag+"
CALL_NAMES = ("flagdata", "setjy", "bandpass", "gaincal", "fluxscale", "hifa_fluxcalflag", "hif_fluxcalflag")
_CHANNELS = re.compile(r":\s*[\d.]")


@dataclass
class Finding:
    """One candidate and what calunflag does with it."""

    file: str
    line: int  # 1-based
    end: int
    kind: str  # flagdata, hifa_fluxcalflag, template
    step: str
    field: str
    role: str
    spw: str
    action: str  # comment, applyflags, keep
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)


def _role_text(roles: set) -> str:
    return ",".join(sorted(roles)) if roles else "unknown"


def _decide(fields: list[tuple[str, set]], spw: str, want_roles: set, want_fields: set):
    """(action, role text, reason) for a flag on these fields and spws."""
    if not fields:
        return "keep", "", "applies to all fields (field='')"
    if not _CHANNELS.search(spw or ""):
        return "keep", "", "no channel or frequency range (whole spws or none)"
    chosen = []
    for name, roles in fields:
        if "target" in roles and not roles & (set(want_roles) | {"calibrator"}):
            return "keep", "target", f"field {name} is a science target"
        cal_roles = roles - {"target"}
        if not cal_roles:
            return "keep", "unknown", f"field {name}: not known as a calibrator (give vis= or fields=)"
        if want_fields and name not in want_fields:
            return "keep", _role_text(cal_roles), f"field {name} not among fields={sorted(want_fields)}"
        if not (cal_roles & want_roles or ("calibrator" in cal_roles and want_roles >= set(_ALL_ROLES))):
            return "keep", _role_text(cal_roles), f"role {_role_text(cal_roles)} not among roles={sorted(want_roles)}"
        chosen.append(_role_text(cal_roles))
    return "comment", ";".join(chosen), "spectral-line flag on a calibrator"


_ALL_ROLES = ("flux", "bandpass", "phase", "check", "polarization")
_INTENT_WORDS = {"AMPLI": "flux", "FLUX": "flux", "BANDPASS": "bandpass", "PHASE": "phase", "CHECK": "check",
                 "POL": "polarization"}


def _decide_intent(intent: str, spw: str, want_roles: set, want_fields: set):
    """(action, role text, reason) for a flag selecting by intent only (``intent='*AMPLI*'``)."""
    if not _CHANNELS.search(spw or ""):
        return "keep", "", "a priori intent flag (no channel or frequency range)"
    up = intent.upper()
    if "TARGET" in up:
        return "keep", "target", f"intent {intent!r} selects science targets"
    found = {role for word, role in _INTENT_WORDS.items() if word in up}
    if not found:
        return "keep", "", f"intent {intent!r} is not a calibrator intent (pointing, atmosphere, ...)"
    if want_fields:
        return "keep", _role_text(found), f"selects by intent, not by field; fields={sorted(want_fields)} given"
    if not found & want_roles:
        return "keep", _role_text(found), f"role {_role_text(found)} not among roles={sorted(want_roles)}"
    return "comment", _role_text(found), f"spectral-line flag on calibrators by intent {intent!r}"


def scan_script(path: str, text: str, roles: FieldRoles, want_roles: set, want_fields: set,
                keep_atmospheric: bool, fluxcalflag: str) -> tuple[list[Finding], list[Call]]:
    """Findings for a calibration or pipeline script (and the calls found)."""
    calls = find_calls(text, CALL_NAMES, path)
    titles = step_titles(text)
    steps = step_of_lines(text)
    lines = text.split("\n")
    findings = []
    for call in calls:
        step_no = steps[call.start] if call.start < len(steps) else None
        step = f"{step_no} {titles.get(step_no, '')}".strip() if step_no is not None else ""
        if call.name in ("hifa_fluxcalflag", "hif_fluxcalflag"):
            if not call.active:
                action, reason = "keep", "already commented out (inactive)"
            elif call.args.get("applyflags") is False:
                action, reason = "keep", "already applyflags=False"
            elif "flux" not in want_roles:
                action, reason = "keep", f"flags flux calibrators only; role flux not among roles={sorted(want_roles)}"
            elif want_fields and not any("flux" in r for _, r in roles.lookup(",".join(sorted(want_fields)))):
                action, reason = "keep", f"flags flux calibrators only; none among fields={sorted(want_fields)}"
            else:
                action, reason = fluxcalflag, "pipeline flagging of solar-system flux-calibrator lines"
            findings.append(Finding(path, call.start + 1, call.end + 1, call.name, step, "", "flux", "", action,
                                    reason))
            continue
        if call.name != "flagdata":
            continue
        vis = str(call.args.get("vis", ""))
        field = str(call.args.get("field", ""))
        spw = str(call.args.get("spw", ""))
        mode = str(call.args.get("mode", "manual")).strip().lower()
        if not call.active:
            action, role, reason = "keep", "", "already commented out (inactive)"
        elif vis.rstrip("'\"").endswith(".tsys"):
            action, role, reason = "keep", "", "flags a Tsys table (edge channels), not visibilities"
        elif mode != "manual":
            action, role, reason = "keep", "", f"mode={mode!r} flag (not a channel selection)"
        elif call.args.get("autocorr") is True:
            action, role, reason = "keep", "", "a priori flag (autocorrelations)"
        elif str(call.args.get("intent", "")).strip() and not field.strip():
            action, role, reason = _decide_intent(str(call.args["intent"]), spw, want_roles, want_fields)
        elif str(call.args.get("antenna", "")).strip():
            action, role, reason = "keep", "", "antenna-specific flag"
        else:
            action, role, reason = _decide(roles.lookup(field) if field.strip() else [], spw, want_roles, want_fields)
            if action == "comment" and keep_atmospheric and _says_atmospheric(lines, call):
                action, reason = "keep", "its comment says atmospheric and keepatmospheric=True"
            if action == "comment" and not _own_lines(lines, call):
                action, reason = "keep", "shares its lines with other code: edit it by hand"
        findings.append(Finding(path, call.start + 1, call.end + 1, "flagdata", step,
                                ",".join(n for n, _ in roles.lookup(field)) if field.strip() else "", role, spw,
                                action, reason))
    return findings, calls


def _says_atmospheric(lines: list[str], call: Call) -> bool:
    above = " ".join(lines[max(0, call.start - 3):call.start]).lower()
    return "atmospher" in above or any("atmospher" in c.lower() for c in call.comments)


def _own_lines(lines: list[str], call: Call) -> bool:
    """The call starts its first line and nothing but a comment follows it on its last."""
    first = lines[call.start]
    if first[:call.column].strip():
        return False
    tail = lines[call.end]
    close = tail.rfind(")")
    return not tail[close + 1:].strip() or tail[close + 1:].strip().startswith("#")


def template_tokens(line: str, path: str, number: int) -> dict:
    try:
        tokens = shlex.split(line, comments=False, posix=True)
    except ValueError as exc:
        raise ScriptError(f"{path}:{number}: cannot read this flag command: {exc}") from None
    out = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if sep:
            out[key.strip()] = value
    return out


def scan_template(path: str, text: str, roles: FieldRoles, want_roles: set, want_fields: set) -> list[Finding]:
    """Findings for a pipeline flag template (one flagdata command per line)."""
    findings = []
    for i, line in enumerate(text.split("\n")):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        tokens = template_tokens(stripped, path, i + 1)
        field, spw = tokens.get("field", ""), tokens.get("spw", "")
        if tokens.get("mode", "manual") != "manual" or tokens.get("antenna", "").strip():
            action, role, reason = "keep", "", "not a field/channel flag (antenna or other mode)"
        elif tokens.get("intent", "").strip() and not field.strip():
            action, role, reason = _decide_intent(tokens["intent"], spw, want_roles, want_fields)
        else:
            action, role, reason = _decide(roles.lookup(field) if field.strip() else [], spw, want_roles,
                                           want_fields)
        if tokens.get("reason"):
            reason += f" (reason={tokens['reason']!r})"
        findings.append(Finding(path, i + 1, i + 1, "template", "", field, role, spw, action, reason))
    return findings


def apply_edits(text: str, findings: list[Finding], calls: list[Call] | None = None) -> str:
    """The text with the findings marked ``comment``/``applyflags`` edited; other bytes unchanged."""
    lines = text.split("\n")
    by_start = {c.start: c for c in calls or ()}
    for f in sorted((f for f in findings if f.action in ("comment", "applyflags")), key=lambda f: -f.line):
        start, end = f.line - 1, f.end - 1
        indent = re.match(r"[ \t]*", lines[start]).group(0)
        what = f"{f.kind} on {f.field} ({f.role}) spw {f.spw}" if f.kind != "hifa_fluxcalflag" and f.field else f.kind
        note = (f"{MARK}removed {what}: {f.reason}; to undo delete this line and the '{PREFIX.strip()}' "
                "prefixes below")
        block = [PREFIX + lines[k] for k in range(start, end + 1)]
        if f.kind == "template":
            new = [note] + block
        elif f.action == "applyflags":
            call = by_start[start]
            new = [indent + note.replace("removed", "switched to applyflags=False:", 1)] + block + [
                indent + _with_applyflags_false(call) + "  " + ADDED]
        else:
            new = [indent + "pass  " + note] + block
        lines[start:end + 1] = new
    return "\n".join(lines)


def _with_applyflags_false(call: Call) -> str:
    from .scan import _split_args
    inner = call.text[call.text.index("(") + 1:call.text.rindex(")")]
    pieces = [p for p in _split_args(inner, "<call>") if not re.match(r"^applyflags\s*=", p)]
    return f"{call.name}({', '.join(pieces + ['applyflags=False'])})"


def restore_original(text: str) -> str:
    """Undo every calunflag edit in *text* (the exact original bytes)."""
    out = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        if body.startswith(MARK) or body.startswith("pass  " + MARK) or line.endswith(ADDED):
            continue
        out.append(line[len(PREFIX):] if line.startswith(PREFIX) else line)
    return "\n".join(out)
