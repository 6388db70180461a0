"""A Member OUS README: the QA2 status and the notes people wrote about the data.

READMEs have had several shapes:

* Cycle 0–4 (QA2 team, by hand): a few ``key: value`` lines — ``Cycle: 2``, ``QA2 Result: PASS``,
  ``CASA version used for reduction: 4.2.2`` — and free text, often under ``Comments from the
  reducer:`` or ``Notes:``;
* Cycle 5 on (generated): ``ALMA Member ObsUnitSet README`` with ``====``-underlined sections
  (``HOW TO``, ``DATA CATEGORIES``, ``FILES`` …); the QA2 outcome as ``QA2 Status: PASS`` or
  ``QA2 Result: SEMIPASS``, notes under a heading containing *note* or *comment*
  (``NOTES``, ``QA NOTES``, ``Notes from the data reducer``).

The CASA version is not read here: :mod:`almatools.plugins.calversion` reads it (and weighs it
against the scripts and logs).  One pass over the lines; a note is kept to :data:`MAX_NOTE` characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Readme", "read_readme", "QA2_STATES"]

QA2_STATES = ("PASS", "SEMIPASS", "FAIL")
#: the most characters of one note section kept (a README is a few kB; this bounds a hostile one)
MAX_NOTE = 20_000

_STATUS = re.compile(r"\bQA2?\s*(?:result|status|outcome|state)?\s*[:=]\s*\"?(semi[- ]?pass|pass|fail)(?:ed)?\b(.*)$",
                     re.I)
_KEY = re.compile(r"^\s*(cycle|project(?:\s+code)?|proposal\s+code|member\s+ous(?:\s+uid)?|"
                  r"member\s+obsunitset|ous(?:\s+status)?(?:\s+entity)?(?:\s+id)?)\s*[:=]\s*(\S.*?)\s*$", re.I)
_UID = re.compile(r"uid://A\d+/X[0-9a-z]+/X[0-9a-z]+", re.I)
_RULE = re.compile(r"^\s*([=\-~*#_])\1{2,}\s*$")
_BANNER = re.compile(r"^\s*[-=*#]{2,}\s*(\S.*?)\s*[-=*#]{2,}\s*$")
_COLON_HEAD = re.compile(r"^\s*([A-Za-z][^:]{0,60}?):\s*(.*)$")
_NOTE_HEAD = re.compile(r"note|comment|remark|caveat|known issue|issues", re.I)


@dataclass
class Readme:
    """What a README says about the delivery's QA.

    :param qa2_status: ``PASS``, ``SEMIPASS``, ``FAIL`` or ``""`` when not stated.
    :param qa2_line: where it was read (``file:line``).
    :param notes: ``[{"heading", "text", "where"}]`` — the note sections, in file order.
    """

    label: str
    qa2_status: str = ""
    qa2_detail: str = ""
    qa2_line: str = ""
    cycle: str = ""
    project: str = ""
    mous: str = ""
    notes: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"file": self.label, "qa2_status": self.qa2_status, "qa2_detail": self.qa2_detail,
                "qa2_where": self.qa2_line, "cycle": self.cycle, "project": self.project, "mous": self.mous,
                "notes": list(self.notes)}


def _heading(lines: list[str], i: int) -> tuple[str, str] | None:
    """``(heading, text after a colon)`` when line *i* starts a section, else None."""
    line = lines[i]
    if not line.strip() or _RULE.match(line):
        return None
    if i + 1 < len(lines) and _RULE.match(lines[i + 1]) and len(line.strip()) <= 80:
        return line.strip(), ""
    m = _BANNER.match(line)
    if m:
        return m.group(1), ""
    m = _COLON_HEAD.match(line)
    if m and (not m.group(2) or _NOTE_HEAD.search(m.group(1))):
        return m.group(1).strip(), m.group(2).strip()
    return None


def read_readme(text: str, label: str = "README") -> Readme:
    """The QA2 status, project keys and note sections of a README's text."""
    out = Readme(label)
    lines = text.splitlines()
    note: dict | None = None
    for i, line in enumerate(lines):
        where = f"{label}:{i + 1}"
        if not out.qa2_status:
            m = _STATUS.search(line)
            if m:
                word = re.sub(r"[- ]", "", m.group(1)).upper()
                out.qa2_status, out.qa2_line = word, where
                out.qa2_detail = m.group(2).strip(" .:-()")
        m = _KEY.match(line)
        if m:
            key, value = m.group(1).lower(), m.group(2)
            if key == "cycle" and not out.cycle:
                out.cycle = value.split()[0]
            elif key.startswith(("project", "proposal")) and not out.project:
                out.project = value.split()[0]
            elif not out.mous and _UID.search(value):
                out.mous = _UID.search(value).group(0)
        if not out.mous and "member" in line.lower() and _UID.search(line):
            out.mous = _UID.search(line).group(0)
        head = _heading(lines, i)
        if head is not None:
            title, rest = head
            if note is not None:
                _close(out, note)
            note = {"heading": title, "lines": [rest] if rest else [], "size": len(rest), "where": where} \
                if _NOTE_HEAD.search(title) else None
            continue
        if note is not None and not _RULE.match(line) and note["size"] < MAX_NOTE:
            note["lines"].append(line.strip())
            note["size"] += len(line) + 1
    if note is not None:
        _close(out, note)
    return out


def _close(out: Readme, note: dict) -> None:
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(note["lines"]).strip())[:MAX_NOTE]
    if text:
        out.notes.append({"heading": note["heading"], "text": text, "where": note["where"]})
