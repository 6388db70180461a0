"""Find calibrator line flags in scripts and flag templates, and edit copies reversibly.

Every edit is line based and marked so that it can be undone exactly
(:func:`restore_original`): commented lines get the prefix :data:`PREFIX` at
column 0, inserted lines carry :data:`MARK` (a ``pass`` statement keeps
Python blocks valid) or end with :data:`ADDED`.  Everything else is kept
byte for byte, so Python 2 stays Python 2 and a Latin-1 or CRLF file stays one.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import asdict, dataclass

from .roles import ROLES, FieldRoles, Verdict
from .scan import Call, Expr, ScriptError, find_calls, step_of_lines, step_titles

__all__ = ["Finding", "scan_script", "scan_template", "template_tokens", "apply_edits", "restore_original",
           "PREFIX", "MARK", "ADDED", "CALL_NAMES"]

PREFIX = "#calunflag# "
MARK = "#calunflag: "
ADDED = "#calunflag+"
CALL_NAMES = ("flagdata", "setjy", "bandpass", "gaincal", "fluxscale", "hifa_fluxcalflag", "hif_fluxcalflag")
_CHANNELS = re.compile(r":[ \t]*[\d.]")
_INTENT_WORDS = {"AMPLI": "flux", "FLUX": "flux", "BANDPASS": "bandpass", "PHASE": "phase", "CHECK": "check",
                 "POL": "polarization"}


@dataclass
class Finding:
    """One candidate and what calunflag does with it.

    :param action: ``comment`` or ``applyflags`` (edited), ``keep`` (left
        alone, *reason* says why) or ``report`` (found in a file calunflag
        does not edit, such as a PPR; *reason* says what to do).
    :param evidence: for a calibrator flag, the evidence its role rests on.
    """

    file: str
    line: int  # 1-based
    end: int
    kind: str  # flagdata, hifa_fluxcalflag, hif_fluxcalflag, template, ppr
    step: str
    field: str
    role: str
    spw: str
    action: str
    reason: str
    evidence: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _role_text(roles: set) -> str:
    return ",".join(sorted(roles)) if roles else "unknown"


def _evidence_text(verdict: Verdict) -> str:
    """The evidence the verdict rests on (the first three statements; the result's 'fields' has them all)."""
    deciding = [e for e in verdict.evidence if e.source == verdict.source]
    return "; ".join(str(e) for e in deciding[:3]) + (f"; and {len(deciding) - 3} more" if len(deciding) > 3 else "")


def _decide(verdicts: list[Verdict], problem: str, spw, want_roles: set, want_fields: set):
    """(action, role text, reason, evidence) for a flag on these fields and spws."""
    if problem:
        return "keep", "", f"field {problem}: edit it by hand if it selects a calibrator", ""
    if not verdicts:
        return "keep", "", "applies to all fields (field='')", ""
    if isinstance(spw, Expr):
        return "keep", "", f"spw is the Python expression {str(spw)[:60]!r}, not read", ""
    if not _CHANNELS.search(str(spw)):
        return "keep", "", "no channel or frequency range (whole spws or none)", ""
    for v in verdicts:  # a science target anywhere in the selection keeps the flag
        if v.is_target:
            return "keep", "target", f"field {v.name} is a science target", _evidence_text(v)
    chosen, evidence = [], []
    for v in verdicts:
        cal_roles = v.roles - {"target"}
        if not cal_roles:
            return "keep", "unknown", f"field {v.name}: not known as a calibrator (give vis= or fields=)", ""
        if want_fields and v.name not in want_fields:
            return ("keep", _role_text(cal_roles), f"field {v.name} not among fields={sorted(want_fields)}",
                    _evidence_text(v))
        if not (cal_roles & want_roles or ("calibrator" in cal_roles and want_roles >= set(ROLES))):
            return ("keep", _role_text(cal_roles),
                    f"role {_role_text(cal_roles)} not among roles={sorted(want_roles)}", _evidence_text(v))
        chosen.append(_role_text(cal_roles))
        evidence.append(_evidence_text(v))
    return "comment", ";".join(chosen), "spectral-line flag on a calibrator", " | ".join(evidence)


def _decide_intent(intent: str, spw, want_roles: set, want_fields: set):
    """(action, role text, reason, evidence) for a flag selecting by intent only (``intent='*AMPLI*'``)."""
    if isinstance(spw, Expr) or not _CHANNELS.search(str(spw)):
        return "keep", "", "a priori intent flag (no channel or frequency range)", ""
    up = intent.upper()
    if "TARGET" in up:
        return "keep", "target", f"intent {intent!r} selects science targets", ""
    found = {role for word, role in _INTENT_WORDS.items() if word in up}
    if not found:
        return "keep", "", f"intent {intent!r} is not a calibrator intent (pointing, atmosphere, ...)", ""
    evidence = f"intent {intent!r}"
    if want_fields:
        return "keep", _role_text(found), f"selects by intent, not by field; fields={sorted(want_fields)} given", ""
    if not found & want_roles:
        return ("keep", _role_text(found), f"role {_role_text(found)} not among roles={sorted(want_roles)}",
                evidence)
    return "comment", _role_text(found), f"spectral-line flag on calibrators by intent {intent!r}", evidence


def _text(value) -> str:
    """A call argument as the text a user would recognise."""
    return str(value) if not isinstance(value, (list, tuple)) else ",".join(str(v) for v in value)


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
            findings.append(_fluxcalflag_finding(path, call, step, roles, want_roles, want_fields, fluxcalflag))
        elif call.name == "flagdata":
            findings.append(_flagdata_finding(path, call, step, lines, roles, want_roles, want_fields,
                                              keep_atmospheric))
    return findings, calls


def _fluxcalflag_finding(path, call, step, roles, want_roles, want_fields, fluxcalflag) -> Finding:
    if not call.active:
        action, reason = "keep", "already commented out (inactive)"
    elif call.args.get("applyflags") is False:
        action, reason = "keep", "already applyflags=False"
    elif "flux" not in want_roles:
        action, reason = "keep", f"flags flux calibrators only; role flux not among roles={sorted(want_roles)}"
    elif want_fields and not any("flux" in v.roles for v in (roles.verdict(f) for f in sorted(want_fields))):
        action, reason = "keep", f"flags flux calibrators only; none among fields={sorted(want_fields)}"
    else:
        action, reason = fluxcalflag, "pipeline flagging of solar-system flux-calibrator lines"
    return Finding(path, call.start + 1, call.end + 1, call.name, step, "", "flux", "", action, reason,
                   "hifa_fluxcalflag flags the AMPLITUDE (flux) calibrators")


def _flagdata_finding(path, call, step, lines, roles, want_roles, want_fields, keep_atmospheric) -> Finding:
    vis, field, spw = call.args.get("vis", ""), call.args.get("field", ""), call.args.get("spw", "")
    mode = call.args.get("mode", "manual")
    intent = call.args.get("intent", "")
    verdicts, problem = roles.lookup(field) if _text(field).strip() else ([], "")
    evidence = ""
    if not call.active:
        action, role, reason = "keep", "", "already commented out (inactive)"
    elif _text(vis).strip().rstrip("'\") ").endswith(".tsys"):  # 'x.ms.tsys', also vis=msName + '.tsys'
        action, role, reason = "keep", "", _tsys_reason(call, lines)
    elif isinstance(mode, Expr) or str(mode).strip().lower() != "manual":
        action, role, reason = "keep", "", f"mode={_text(mode)!r} flag (not a channel selection)"
    elif call.args.get("autocorr") is True:
        action, role, reason = "keep", "", "a priori flag (autocorrelations)"
    elif _text(intent).strip() and not _text(field).strip():
        if isinstance(intent, Expr):
            action, role, reason = "keep", "", f"intent is the Python expression {str(intent)[:60]!r}, not read"
        else:
            action, role, reason, evidence = _decide_intent(str(intent), spw, want_roles, want_fields)
    elif _text(call.args.get("antenna", "")).strip():
        action, role, reason = "keep", "", "antenna-specific flag"
    else:
        action, role, reason, evidence = _decide(verdicts, problem, spw, want_roles, want_fields)
        if action == "comment" and keep_atmospheric and _says_atmospheric(lines, call):
            action, reason = "keep", "its comment says atmospheric and keepatmospheric=True"
        if action == "comment" and not _own_lines(lines, call):
            action, reason = "keep", "shares its lines with other code: edit it by hand"
    names = ",".join(v.name for v in verdicts) if verdicts else (_text(field) if problem else "")
    return Finding(path, call.start + 1, call.end + 1, "flagdata", step, names, role, _text(spw), action, reason,
                   evidence)


def _tsys_reason(call: Call, lines: list[str]) -> str:
    """What a flag on a Tsys table selects, in words (edges, inner channels, antennas, times)."""
    parts = [_channels_text(call.args.get("spw", ""))]
    for key in ("field", "antenna", "timerange", "scan", "correlation", "intent"):
        value = call.args.get(key)
        if value not in (None, "", []) and _text(value).strip():
            parts.append(f"{key} {_text(value)}")
    table = _text(call.args.get("vis", "")).rsplit("/", 1)[-1]
    reason = f"flags the Tsys table {table}, not visibilities: {', '.join(parts)}"
    note = _comment_above(lines, call)
    return reason + (f" (its comment: {note!r})" if note else "")


def _channels_text(spw) -> str:
    """``edge channels 0~3;124~127 of spws 9,11`` / ``channels 94~120 of spw 15`` / ``all of spw 11``."""
    if isinstance(spw, Expr):
        return f"spw {str(spw)[:60]} (a Python expression)"
    spw = _text(spw).strip()
    if not spw:
        return "every channel of every spw"
    groups: dict[str, list[str]] = {}
    for part in spw.split(","):
        ids, sep, channels = part.strip().partition(":")
        groups.setdefault(channels.strip() if sep else "", []).append(ids.strip())
    out = []
    for channels, ids in groups.items():
        which = f"spw{'s' if len(ids) > 1 else ''} {','.join(ids)}"
        if not channels:
            out.append(f"all of {which}")
            continue
        edges = [_is_edge(r) for r in channels.split(";")]
        kind = "edge channels" if all(edges) else "channels" if not any(edges) else "edge and inner channels"
        out.append(f"{kind} {channels} of {which}")
    return "; ".join(out)


def _is_edge(channel_range: str) -> bool:
    """A range at the start of an spw (0~n) or ending on the last channel of a 2^k-channel spw."""
    m = re.fullmatch(r"[ \t]*(\d{1,9})(?:[ \t]*~[ \t]*(\d{1,9}))?[ \t]*", channel_range)
    if not m:
        return False
    first, last = int(m.group(1)), int(m.group(2) or m.group(1))
    return first == 0 or (last + 1 >= 64 and (last + 1) & last == 0)


def _comment_above(lines: list[str], call: Call, reach: int = 3) -> str:
    """The comment lines just above a call (blank lines skipped), joined."""
    notes, k = [], call.start - 1
    while k >= 0 and call.start - k <= reach + 2:
        stripped = lines[k].strip()
        if stripped.startswith("#") and not stripped.startswith((PREFIX.strip(), MARK.strip())):
            notes.insert(0, stripped.lstrip("#").strip())
        elif stripped:
            break
        k -= 1
    return " ".join(n for n in notes[-reach:] if n)


def _says_atmospheric(lines: list[str], call: Call) -> bool:
    return "atmospher" in _comment_above(lines, call).lower() or any("atmospher" in c.lower() for c in call.comments)


def _own_lines(lines: list[str], call: Call) -> bool:
    """The call starts its first line and nothing but a comment follows it on its last."""
    first = lines[call.start]
    if first[:call.column].strip():
        return False
    tail = lines[call.end]
    close = tail.rfind(")")
    rest = tail[close + 1:].strip()
    return not rest or rest.startswith("#")


def template_tokens(line: str, path: str, number: int) -> dict:
    """The ``key='value'`` tokens of one flag-template line."""
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
        verdicts, problem = roles.lookup(field) if field.strip() else ([], "")
        evidence = ""
        if tokens.get("mode", "manual") != "manual" or tokens.get("antenna", "").strip():
            action, role, reason = "keep", "", "not a field/channel flag (antenna or other mode)"
        elif tokens.get("intent", "").strip() and not field.strip():
            action, role, reason, evidence = _decide_intent(tokens["intent"], spw, want_roles, want_fields)
        else:
            action, role, reason, evidence = _decide(verdicts, problem, spw, want_roles, want_fields)
        if tokens.get("reason"):
            reason += f" (reason={tokens['reason']!r})"
        names = ",".join(v.name for v in verdicts) if verdicts else field
        findings.append(Finding(path, i + 1, i + 1, "template", "", names, role, spw, action, reason, evidence))
    return findings


def apply_edits(text: str, findings: list[Finding], calls: list[Call] | None = None, newline: str = "\n") -> str:
    """The text with the findings marked ``comment``/``applyflags`` edited; other bytes unchanged.

    Inserted lines end with *newline* (the file's own line ending).
    """
    lines = text.split("\n")
    cr = "\r" if newline == "\r\n" else ""
    by_start = {c.start: c for c in calls or ()}
    for f in sorted((f for f in findings if f.action in ("comment", "applyflags")), key=lambda f: -f.line):
        start, end = f.line - 1, f.end - 1
        indent = re.match(r"[ \t]*", lines[start]).group(0)
        what = f"{f.kind} on {f.field} ({f.role}) spw {f.spw}" if f.kind in ("flagdata", "template") else f.kind
        note = (f"{MARK}removed {what}: {f.reason}; to undo delete this line and the '{PREFIX.strip()}' "
                "prefixes below")
        block = [PREFIX + lines[k] for k in range(start, end + 1)]
        if f.kind == "template":
            new = [note + cr] + block
        elif f.action == "applyflags":
            new = [indent + note.replace("removed", "switched to applyflags=False:", 1) + cr] + block + [
                indent + _with_applyflags_false(by_start[start]) + "  " + ADDED + cr]
        else:
            new = [indent + "pass  " + note + cr] + block
        lines[start:end + 1] = new
    return "\n".join(lines)


def _with_applyflags_false(call: Call) -> str:
    """The call, on one line, with ``applyflags=False`` (its other arguments as written)."""
    from .scan import LineIndex, _Scanner, _split_args
    scanner = _Scanner(call.text, "<call>", LineIndex(call.text))
    pieces = [p for p, _ in _split_args(scanner, call.text.index("("), len(call.text) - 1)
              if not re.match(r"applyflags\s*=", p)]
    return f"{call.name}({', '.join(pieces + ['applyflags=False'])})"


def restore_original(text: str) -> str:
    """Undo every calunflag edit in *text* (the exact original text)."""
    out = []
    for line in text.split("\n"):
        body = line.lstrip(" \t")
        if body.startswith(MARK) or body.startswith("pass  " + MARK) or line.rstrip("\r").endswith(ADDED):
            continue
        out.append(line[len(PREFIX):] if line.startswith(PREFIX) else line)
    return "\n".join(out)
