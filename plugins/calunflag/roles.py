"""Which fields are calibrators, and in which role — from the script, the MOUS, or the MS.

Sources, strongest first: the MS (FIELD names and STATE intents), header
comments of manual scripts (``# CALIBRATE_FLUX: Titan``), the calibration calls
(``setjy`` → flux, ``bandpass`` → bandpass, ``fluxscale`` reference/transfer,
``gaincal`` → calibrator), names in inline comments (``field = '2', # Titan``),
and for pipeline files the MOUS's cont.dat (its fields are targets) and the
usual calibrator names (quasar J-names, solar-system bodies).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["FieldRoles", "ROLES", "roles_from_script", "roles_from_ms", "roles_from_names"]

ROLES = ("flux", "bandpass", "phase", "check", "polarization")
_INTENT_ROLES = {"CALIBRATE_FLUX": "flux", "CALIBRATE_AMPLI": "flux", "CALIBRATE_BANDPASS": "bandpass",
                 "CALIBRATE_PHASE": "phase", "OBSERVE_CHECK_SOURCE": "check", "CALIBRATE_POLARIZATION": "polarization",
                 "CALIBRATE_POL_ANGLE": "polarization", "CALIBRATE_POL_LEAKAGE": "polarization"}
SOLAR_SYSTEM = {"mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune", "titan", "io", "europa",
                "ganymede", "callisto", "ceres", "pallas", "vesta", "juno", "moon", "sun"}
_J_NAME = re.compile(r"^J\d{4}[+-]\d{4}$")


@dataclass
class FieldRoles:
    """Field ids and names, their roles, and how each was learned."""

    names: dict = field(default_factory=dict)  # id (str) → name
    roles: dict = field(default_factory=dict)  # name or id → set of roles ("target" too)
    evidence: dict = field(default_factory=dict)  # name or id → list of strings

    def add(self, key: str, role: str, why: str) -> None:
        key = key.strip()
        if not key:
            return
        self.roles.setdefault(key, set()).add(role)
        self.evidence.setdefault(key, []).append(why)

    def merge(self, other: "FieldRoles", names_only: bool = False) -> None:
        """Take the roles *other* knows and this does not (with *names_only*, those of field names, not ids)."""
        for key, roles_of in other.roles.items():
            if names_only and key.isdigit():
                continue
            for role in roles_of - self.roles.get(key, set()):
                self.add(key, role, "; ".join(other.evidence.get(key, [])))

    def name_of(self, key: str) -> str:
        return self.names.get(key.strip(), key.strip())

    def id_of(self, name: str) -> str | None:
        return next((i for i, n in self.names.items() if n == name), None)

    def lookup(self, selection: str) -> list[tuple[str, set]]:
        """(field, roles) for each field in a selection string ('2', 'Titan', '0,1', '0~2')."""
        out = []
        for key in _expand(selection):
            name = self.name_of(key)
            roles = set(self.roles.get(key, set())) | set(self.roles.get(name, set()))
            fid = self.id_of(key)
            if fid is not None:
                roles |= self.roles.get(fid, set())
            out.append((name, roles))
        return out


def _expand(selection: str) -> list[str]:
    keys = []
    for part in str(selection).replace(";", ",").split(","):
        part = part.strip()
        m = re.match(r"^(\d+)~(\d+)$", part)
        if m:
            keys += [str(i) for i in range(int(m.group(1)), int(m.group(2)) + 1)]
        elif part:
            keys.append(part)
    return keys


def roles_from_script(text: str, calls, roles: FieldRoles | None = None) -> FieldRoles:
    """Roles from a manual script's header comments and calibration calls."""
    roles = roles or FieldRoles()
    for m in re.finditer(r"^#\s*([A-Z_]+)\s*:\s*(.+)$", text, re.M):
        intent, fields = m.group(1), [f.strip() for f in m.group(2).split(",")]
        role = _INTENT_ROLES.get(intent) or ("target" if intent == "OBSERVE_TARGET" else None)
        for f in fields if role else ():
            roles.add(f, role, f"header comment '# {intent}'")
    known = {k for k in roles.roles if not k.isdigit()}  # names from the header comments
    for call in (c for c in calls if c.active):
        fields = str(call.args.get("field", "")) if call.name != "fluxscale" else ""
        if fields:
            _learn_names(fields, call.comments, known, roles)
        if call.name == "setjy" and fields:
            for f in _expand(fields):
                roles.add(f, "flux", f"setjy(field={fields!r}) line {call.start + 1}")
        elif call.name == "bandpass" and fields:
            for f in _expand(fields):
                roles.add(f, "bandpass", f"bandpass(field={fields!r}) line {call.start + 1}")
        elif call.name == "fluxscale":
            for f in _expand(str(call.args.get("reference", ""))):
                roles.add(f, "flux", f"fluxscale reference line {call.start + 1}")
            for f in _expand(str(call.args.get("transfer", ""))):
                roles.add(f, "calibrator", f"fluxscale transfer line {call.start + 1}")
        elif call.name == "gaincal" and fields:
            for f in _expand(fields):
                roles.add(f, "calibrator", f"gaincal(field={fields!r}) line {call.start + 1}")
    return roles


def _learn_names(fields: str, comments: list[str], known: set, roles: FieldRoles) -> None:
    """Index → name from an inline comment (``field = '0~2', # J0423-0120,J0334-4008,Titan``).

    Accepted only when the comment is nothing but names, one per index, each a
    solar-system body, a quasar J-name or a field named in the header comments.
    """
    ids = _expand(fields)
    if not ids or not all(i.isdigit() for i in ids):
        return
    for comment in comments:
        names = [w.strip() for w in comment.strip().strip("#").replace(";", ",").split(",") if w.strip()]
        if len(names) == len(ids) and all(_is_name(n, known) for n in names):
            for fid, name in zip(ids, names):
                roles.names.setdefault(fid, name)
            return


def _is_name(word: str, known: set) -> bool:
    return word in known or word.lower() in SOLAR_SYSTEM or bool(_J_NAME.match(word))


def roles_from_ms(vis: str, roles: FieldRoles | None = None) -> FieldRoles:
    """Field names and intents from the MS (msmetadata)."""
    from almatools.casaenv import casatools
    roles = roles or FieldRoles()
    md = casatools().msmetadata()
    try:
        md.open(vis)
        for fid, name in enumerate(md.fieldnames()):
            roles.names[str(fid)] = name
        for intent in md.intents():
            base = intent.split("#")[0]
            role = _INTENT_ROLES.get(base) or ("target" if base == "OBSERVE_TARGET" else None)
            if role:
                for fid in md.fieldsforintent(intent):
                    roles.add(roles.names[str(fid)], role, f"intent {intent} in {vis}")
    finally:
        md.done()
    return roles


def roles_from_names(field_names, targets, roles: FieldRoles | None = None) -> FieldRoles:
    """For pipeline files without an MS: targets from cont.dat; calibrators by their usual names."""
    roles = roles or FieldRoles()
    for t in targets:
        roles.add(t, "target", "a field of the MOUS cont.dat")
    for name in field_names:
        if name in targets:
            continue
        if name.lower() in SOLAR_SYSTEM:
            roles.add(name, "flux", "a solar-system body (flux calibrator)")
        elif _J_NAME.match(name):
            roles.add(name, "calibrator", "a quasar J-name (calibrator)")
    return roles
