"""Which fields are calibrators, in which role, and on what evidence.

Evidence, strongest first (:data:`SOURCES`):

``ms``
    the MeasurementSet given as ``vis=``: FIELD names and STATE intents;
``header``
    what the script declares: its header lines (``# CALIBRATE_PHASE: J0336-3616``,
    ``# OBSERVE_TARGET: NGC1387``), and for pipeline files the MOUS's cont.dat
    (its fields are the science targets);
``call``
    the calibration calls: ``setjy`` → flux, ``bandpass`` → bandpass,
    ``fluxscale`` reference → flux, ``gaincal`` and ``fluxscale`` transfer → a
    calibrator of unknown role;
``comment``
    a comment naming the fields of a call (``field = '0~1', # J1256-0547,J1504+1029``),
    which links indices to names;
``name``
    the usual calibrator names (solar-system bodies, quasar J-names), for
    templates that name fields no script declares.

A field's roles are those of its strongest evidence; weaker evidence that
disagrees is reported as a conflict and not used, and a science target is a
target whatever weaker (or equally strong) evidence says.  Only literal field
names and indices are read: a Python expression (``phaseCalName``), a pattern
(``J*``) or an empty header line gives no field.  Comments are the weakest
evidence: a comment naming a field the header does not declare, a field the MS
calls otherwise, or a field whose calibration calls contradict the header is
ignored and reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .scan import Call, Expr

__all__ = ["FieldRoles", "Evidence", "Verdict", "ROLES", "SOURCES", "MAX_FIELD_RANGE", "MAX_FIELD_WORK", "parse_field_selection",
           "roles_from_script", "roles_from_ms", "roles_from_names", "header_lines", "decide"]

ROLES = ("flux", "bandpass", "phase", "check", "polarization")
SOURCES = ("ms", "header", "call", "comment", "name")
_RANK = {s: i for i, s in enumerate(SOURCES)}
#: a field range wider than this in a script (``'0~3000000000'``) is not read
MAX_FIELD_RANGE = 10_000
#: the most field indices all the selections of one file may name together (bounds the work per file)
MAX_FIELD_WORK = 100_000

#: ALMA scan intents → role (``calibrator``: a calibrator of no role the task selects by)
INTENT_ROLES = {"CALIBRATE_FLUX": "flux", "CALIBRATE_AMPLI": "flux", "CALIBRATE_BANDPASS": "bandpass",
                "CALIBRATE_PHASE": "phase", "OBSERVE_CHECK": "check", "OBSERVE_CHECK_SOURCE": "check",
                "CALIBRATE_POLARIZATION": "polarization", "CALIBRATE_POL_ANGLE": "polarization",
                "CALIBRATE_POL_LEAKAGE": "polarization", "CALIBRATE_DIFFGAIN": "calibrator",
                "OBSERVE_TARGET": "target"}
SOLAR_SYSTEM = {"mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune", "titan", "io", "europa",
                "ganymede", "callisto", "ceres", "pallas", "vesta", "juno", "moon", "sun"}
_J_NAME = re.compile(r"J\d{4}[+-]\d{2,4}")
#: a literal field name: letters, digits and the punctuation ALMA source names use; no spaces, quotes,
#: brackets, wildcards or operators
_FIELD_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+\-]{0,63}")
_INDEX = re.compile(r"[0-9]{1,9}")
_RANGE = re.compile(r"([0-9]{1,12})[ \t]*~[ \t]*([0-9]{1,12})")
#: a header line: '# CALIBRATE_PHASE: J0336-3616' (the value may be empty)
_HEADER_LINE = re.compile(r"#[ \t]*((?:CALIBRATE|OBSERVE)_[A-Z_]{2,40})[ \t]*:([^\n]*)")
_CALL_ROLES = {"setjy": ("field", "flux"), "bandpass": ("field", "bandpass"), "gaincal": ("field", "calibrator")}


@dataclass(frozen=True)
class Evidence:
    """One statement about a field's role: *role* from *source* (one of :data:`SOURCES`) at *where*."""

    role: str
    source: str
    where: str

    def __str__(self) -> str:
        return f"{self.role} ({self.source}: {self.where})"


@dataclass
class Verdict:
    """What a field is: its roles (``{'target'}`` for a science target), the source they come from, why."""

    name: str
    roles: set
    source: str = ""
    evidence: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)

    @property
    def is_target(self) -> bool:
        return "target" in self.roles


@dataclass
class Selection:
    """A literal field selection: names, indices (as strings), or why it cannot be read."""

    names: list
    indices: list
    problem: str = ""


def parse_field_selection(value, limit: int = MAX_FIELD_WORK) -> Selection:
    """Names and indices of a ``field=`` value; ``problem`` says why a value is not read.

    Literal strings (``'2'``, ``'0~2'``, ``'Titan,J1058+0133'``), integers and
    lists of them are read; expressions, patterns, CASA operators, ranges
    wider than :data:`MAX_FIELD_RANGE` and selections of more than *limit*
    fields are not (nothing is expanded beyond that).
    """
    if isinstance(value, Expr):
        return Selection([], [], f"is the Python expression {str(value)[:60]!r}, not a literal")
    if isinstance(value, bool) or value is None:
        return Selection([], [], f"is {value!r}, not a field selection")
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, (list, tuple)) and all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        value = ",".join(str(v) for v in value)
    if not isinstance(value, str):
        return Selection([], [], f"is {type(value).__name__} {str(value)[:60]!r}, not a field selection")
    names, indices = [], []
    for part in value.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if part.isascii() and part.isdigit():
            if not _INDEX.fullmatch(part):
                return Selection([], [], f"holds {part[:20]!r}..., not a field index")
            indices.append(str(int(part)))
            if len(indices) + len(names) > limit:
                return _TOO_MANY
            continue
        m = _RANGE.fullmatch(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                return Selection([], [], f"holds the reversed range {part!r}")
            if hi - lo + 1 > MAX_FIELD_RANGE:
                return Selection([], [], f"holds the range {part!r}, wider than {MAX_FIELD_RANGE} fields "
                                         "(not read: no MS has that many)")
            if len(indices) + len(names) + hi - lo + 1 > limit:
                return _TOO_MANY
            indices += [str(i) for i in range(lo, hi + 1)]
        elif _FIELD_NAME.fullmatch(part):
            names.append(part)
        else:
            return Selection([], [], f"holds {part[:60]!r}, not a literal field name or index "
                                     "(patterns, operators and expressions are not read)")
    if len(indices) + len(names) > limit:
        return _TOO_MANY
    return Selection(names, indices)


_TOO_MANY = Selection([], [], f"is not read: this file's field selections name more than {MAX_FIELD_WORK} fields "
                              "in all")


def _consistent(roles: set, other: set) -> bool:
    """Whether two role sets describe the same kind of field (``calibrator`` fits every calibrator role)."""
    if not roles or not other:
        return True
    if ("target" in roles) != ("target" in other):
        return False
    if "target" in roles:
        return True
    return "calibrator" in roles or "calibrator" in other or bool(roles & other)


def decide(name: str, evidence: list[Evidence]) -> Verdict:
    """A field's roles: those of its strongest evidence, except that a science target stays a target.

    Any statement that a field is a science target (header, cont.dat, a comment
    naming a declared target) makes it a target, unless the MS, the strongest
    evidence, shows it observed only as a calibrator.  Weaker evidence that
    disagrees with the verdict is returned as conflicts.
    """
    if not evidence:
        return Verdict(name, set())
    best = min(_RANK[e.source] for e in evidence)
    ms_roles = {e.role for e in evidence if e.source == "ms"}
    targets = [e for e in evidence if e.role == "target"]
    if targets and (not ms_roles or "target" in ms_roles):
        roles, source = {"target"}, min((e.source for e in targets), key=_RANK.__getitem__)
    else:
        roles, source = {e.role for e in evidence if _RANK[e.source] == best}, SOURCES[best]
    conflicts = [f"{name}: {e} ignored: {', '.join(sorted(roles))} from {source} wins"
                 + (" (a science target is never a calibrator)" if roles == {"target"} else "")
                 for e in evidence if not _consistent({e.role}, roles)]
    used = [e for e in evidence if _consistent({e.role}, roles)]
    return Verdict(name, roles, source, used, conflicts)


class FieldRoles:
    """Evidence about the fields of one execution block's script (or of a whole MOUS, by name).

    Evidence is kept per key: a field name, or a field index (as a string)
    when the script names a field only by index.  :meth:`verdict` combines a
    field's name and index evidence by the precedence of :data:`SOURCES`.
    The field indices all selections of one script may expand to are capped
    at :data:`MAX_FIELD_WORK` in total, so the work stays linear in the file.
    """

    def __init__(self):
        self.names: dict[str, str] = {}  # index → name
        self.name_sources: dict[str, str] = {}  # index → where the name came from
        self._indices: dict[str, str] = {}  # name → index
        self.evidence: dict[str, dict[Evidence, None]] = {}  # key → evidence, in order, without repeats
        self.declared: set[str] = set()  # names the script's header (or the MS) declares
        self.conflicts: list[str] = []  # disagreements found while reading (names, comments)
        self.not_read: list[str] = []  # values that are not literal field selections
        self.work = 0  # field indices expanded so far
        self._verdicts: dict[str, Verdict] = {}  # key → verdict, until evidence changes

    def add(self, key: str, role: str, source: str, where: str) -> None:
        self.evidence.setdefault(key, {})[Evidence(role, source, where)] = None
        self._verdicts.clear()

    def set_name(self, index: str, name: str, source: str) -> None:
        self._verdicts.clear()
        self.names[index] = name
        self.name_sources[index] = source
        self._indices.setdefault(name, index)

    def merge_names(self, other: "FieldRoles") -> None:
        """Take *other*'s evidence about field names (never its indices: those are per execution block)."""
        for key, evidence in other.evidence.items():
            if not _INDEX.fullmatch(key):
                self.evidence.setdefault(key, {}).update(evidence)
        self.declared |= other.declared
        self._verdicts.clear()

    def name_of(self, key: str) -> str:
        return self.names.get(key, key)

    def index_of(self, name: str) -> str | None:
        return self._indices.get(name)

    def read_selection(self, value) -> Selection:
        """:func:`parse_field_selection`, counted against this script's budget of field indices."""
        selection = parse_field_selection(value, MAX_FIELD_WORK - self.work)
        self.work += len(selection.indices) + len(selection.names)
        return selection

    def verdict(self, key: str) -> Verdict:
        """The roles of one field given by name or index (computed once per field)."""
        if key not in self._verdicts:
            name = self.name_of(key)
            index = key if _INDEX.fullmatch(key) else self.index_of(key)
            evidence = dict(self.evidence.get(name, {}))
            if index is not None and index != name:
                evidence.update(self.evidence.get(index, {}))
            self._verdicts[key] = decide(name, list(evidence))
        return self._verdicts[key]

    def lookup(self, value) -> tuple[list[Verdict], str]:
        """Verdicts for each field of a ``field=`` value, and why the value is not read ('' if it is)."""
        selection = self.read_selection(value)
        if selection.problem:
            return [], selection.problem
        return [self.verdict(k) for k in selection.indices + selection.names], ""


def header_lines(text: str):
    """(0-based line, intent, [names], [values that are not names]) for each header intent line."""
    for number, line in enumerate(text.split("\n")):
        m = _HEADER_LINE.match(line)
        if not m:
            continue
        parts = [p.strip() for p in m.group(2).split(",")]
        yield (number, m.group(1), [p for p in parts if _FIELD_NAME.fullmatch(p)],
               [p for p in parts if p and not _FIELD_NAME.fullmatch(p)])


def roles_from_script(label: str, text: str, calls: list[Call], roles: FieldRoles) -> FieldRoles:
    """Evidence from a manual script: header lines, calibration calls, then comments naming fields."""
    has_header = False
    for number, intent, names, junk in header_lines(text):
        has_header = True
        role = INTENT_ROLES.get(intent)
        roles.declared |= set(names)
        for name in names:
            if role:
                roles.add(name, role, "header", f"{label}:{number + 1} '# {intent}: {name}'")
        for value in junk:
            roles.not_read.append(f"{label}:{number + 1}: {value[:60]!r} in '# {intent}' is not a field name")
    active = [c for c in calls if c.active]
    for call in active:
        _call_evidence(label, call, roles)
    _comment_names(label, active, roles, has_header)
    return roles


def _call_evidence(label: str, call: Call, roles: FieldRoles) -> None:
    where = f"{label}:{call.start + 1} {call.name}"
    if call.name == "fluxscale":
        wanted = [("reference", "flux"), ("transfer", "calibrator")]
    elif call.name in _CALL_ROLES:
        wanted = [_CALL_ROLES[call.name]]
    else:
        return
    for arg, role in wanted:
        if arg not in call.args:
            continue
        selection = roles.read_selection(call.args[arg])
        if selection.problem:
            roles.not_read.append(f"{where}({arg}=...): the value {selection.problem}")
            continue
        for key in selection.indices + selection.names:
            roles.add(key, role, "call", f"{where}({arg}={_short(call.args[arg])})")


def _short(value) -> str:
    text = repr(str(value)) if not isinstance(value, Expr) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _comment_names(label: str, calls: list[Call], roles: FieldRoles, has_header: bool) -> None:
    """Index → name links from comments that list one name per index, checked against stronger evidence.

    A claim is dropped (and reported) when the MS names the index otherwise, when
    the header does not declare the name, or when the header's roles for the name
    contradict the calibration calls on the index.  Of several names for one
    index (or indices for one name), only the one whose calls agree with the
    header's specific role survives; if none or several do, none is used.
    """
    claims: dict[tuple[str, str], list[str]] = {}  # (index, name) → where
    for call in calls:
        for arg in ("field", "reference"):
            comment, value = call.arg_comments.get(arg), call.args.get(arg)
            if not comment or value is None:
                continue
            selection = roles.read_selection(value)
            if selection.problem or selection.names or not selection.indices:
                continue
            words = [w.strip() for w in comment.replace(";", ",").split(",") if w.strip()]
            if len(words) != len(selection.indices) or not all(_FIELD_NAME.fullmatch(w) for w in words):
                continue  # prose, or not one name per index
            for index, word in zip(selection.indices, words):
                claims.setdefault((index, word), []).append(f"{label}:{call.start + 1}")
    valid = {}
    for (index, name), where in sorted(claims.items()):
        why = _comment_problem(index, name, roles, has_header)
        if why:
            roles.conflicts.append(f"field {index}: comment at {_places(where)} names it {name!r}; ignored: {why}")
        else:
            valid[(index, name)] = where
    for (index, name), where in valid.items():
        if "target" in _declared_roles(roles, name):  # even if the link stays ambiguous below: keep its flags
            roles.add(index, "target", "comment", f"{_places(where)}: '# {name}' (declared a science target)")
    for position, other in ((1, 0), (0, 1)):  # first names given to several indices, then indices with several names
        groups: dict[str, list[tuple[str, str]]] = {}
        for pair in valid:
            groups.setdefault(pair[position], []).append(pair)
        for key, pairs in groups.items():
            if len(pairs) < 2:
                continue
            agreeing = [pair for pair in pairs if _agrees_specifically(roles, *pair)]
            kept = agreeing if len(agreeing) == 1 else []
            for pair in pairs:
                if pair not in kept:
                    del valid[pair]
            listed = " and ".join(f"{p[other]!r} ({_places(claims[p])})" for p in pairs)
            subject = f"{key!r}" if position == 1 else f"field {key}"
            roles.conflicts.append(
                f"{subject}: comments pair it with {listed}; "
                + (f"{kept[0][other]!r} kept (its calibration calls agree with the header)" if kept else
                   "none used (nothing stronger tells them apart)"))
    for (index, name), where in valid.items():
        if index not in roles.names:
            roles.set_name(index, name, f"comment {where[0]}")


def _places(where: list[str]) -> str:
    """``file:12, file:40`` — at most three places, then how many more."""
    return ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")


def _agrees_specifically(roles: FieldRoles, index: str, name: str) -> bool:
    """The calls on *index* give it a role the header gives *name* (not just 'a calibrator')."""
    return bool((_call_roles(roles, index) - {"calibrator"}) & (_declared_roles(roles, name) - {"calibrator"}))


def _declared_roles(roles: FieldRoles, name: str) -> set:
    return {e.role for e in roles.evidence.get(name, []) if _RANK[e.source] <= _RANK["header"]}


def _call_roles(roles: FieldRoles, index: str) -> set:
    return {e.role for e in roles.evidence.get(index, []) if e.source == "call"}


def _comment_problem(index: str, name: str, roles: FieldRoles, has_header: bool) -> str:
    """Why a comment's name for a field index cannot be used ('' when it can)."""
    if index in roles.names and roles.names[index] != name:
        return f"{roles.name_sources.get(index, 'the MS')} calls it {roles.names[index]!r}"
    if has_header and name not in roles.declared:
        return "the script's header declares no field of that name (a stale comment?)"
    if not has_header and not (name in roles.declared or name.lower() in SOLAR_SYSTEM or _J_NAME.fullmatch(name)):
        return "not a field the MOUS declares nor a calibrator name"
    if "target" not in _declared_roles(roles, name) and \
            not _consistent(_call_roles(roles, index), _declared_roles(roles, name)):
        return (f"the header makes {name} {', '.join(sorted(_declared_roles(roles, name)))} but the calibration "
                f"calls make field {index} {', '.join(sorted(_call_roles(roles, index)))}")
    return ""


def roles_from_ms(vis: str, roles: FieldRoles) -> FieldRoles:
    """Field names (by index) and intents from the MS (msmetadata)."""
    from almatools.casaenv import casatools
    md = casatools().msmetadata()
    try:
        md.open(vis)
        for fid, name in enumerate(md.fieldnames()):
            roles.set_name(str(fid), name, f"the MS {vis}")
            roles.declared.add(name)
        for intent in md.intents():
            role = INTENT_ROLES.get(intent.split("#")[0])
            if role:
                for fid in md.fieldsforintent(intent):
                    roles.add(roles.names[str(fid)], role, "ms", f"intent {intent} in {vis}")
    finally:
        md.done()
    return roles


def roles_from_names(field_names, targets, roles: FieldRoles, where: str = "") -> FieldRoles:
    """For pipeline files without an MS: targets from cont.dat; calibrators by their usual names."""
    for t in sorted(targets):
        roles.add(t, "target", "header", f"a field of {where or 'the MOUS cont.dat'}")
    for name in field_names:
        if name in targets or not _FIELD_NAME.fullmatch(name):
            continue
        if name.lower() in SOLAR_SYSTEM:
            roles.add(name, "flux", "name", "a solar-system body (flux calibrator)")
        elif _J_NAME.fullmatch(name):
            roles.add(name, "calibrator", "name", "a quasar J-name (calibrator)")
    return roles
