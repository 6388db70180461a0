"""Read and write the pipeline's ``cont.dat`` (continuum frequency ranges).

Every version the ALMA pipeline has written is read:

* **v1** — a bare field-name line, ``SPW<id>`` lines, ranges ``a~bGHz``
  without a frame (TOPO);
* **v2** — ``Field: <name>``, ``SpectralWindow: <id>``, ranges
  ``a~bGHz LSRK``, the keywords ``NONE`` (no continuum found) and ``ALL``;
* **v3** — ``SpectralWindow: <id> <spw name>``, optional
  ``Flags: ALLCONT LOWBANDWIDTH …`` lines.

Blank lines, unsorted spws, any number of decimals, several ranges on one
line separated by ``;``, ``#`` comment lines and CRLF line ends are
accepted.  Anything else raises :class:`ContDatError` naming the file, the
line number and the line.  :func:`write_contdat` writes v3 (v2 when no spw
names are known) exactly as the pipeline does (``%.10f~%.10fGHz LSRK``).

The reader takes linear time (fields and spws are found through dictionaries,
and every pattern matches each character one way only), reads regular files
only (a FIFO or a device named cont.dat would block or never end; through
:func:`almatools.limits.read_text`) and refuses files larger than
:data:`MAX_CONTDAT_BYTES` before reading them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from almatools import limits
from almatools.errors import AlmatoolsError
from almatools.io import atomic_write

__all__ = ["ContDatError", "ContRange", "ContSpw", "ContField", "ContDat", "parse_contdat", "read_contdat",
           "write_contdat", "format_contdat", "MAX_CONTDAT_BYTES"]

#: real cont.dat files are a few kilobytes (a dozen fields, a few spws, tens of ranges each)
MAX_CONTDAT_BYTES = 16 * 2**20

_FRAMES = {"REST", "LSRK", "LSRD", "BARY", "GEO", "TOPO", "GALACTO", "LGROUP", "CMB", "SOURCE"}
_UNITS = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}
# possessive quantifiers (Python >= 3.11): a run of digits or blanks is never given back, so a line that fails
# costs one pass instead of a backtracking search
_NUM = r"(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?"
_RANGE_RE = re.compile(rf"^({_NUM})\s*+~\s*+({_NUM})(.*)$")
_FIELD_RE = re.compile(r"^Field\s*:\s*(.*)$", re.I)
_SPW_RE = re.compile(r"^SpectralWindow\s*:\s*(\d+)(?:\s+(\S.*))?$", re.I)
_SPW_V1_RE = re.compile(r"^SPW\s*(\d+)$", re.I)
_FLAGS_RE = re.compile(r"^Flags\s*:\s*(.*)$", re.I)


class ContDatError(AlmatoolsError, ValueError):
    """A cont.dat line that cannot be read; names the file, line number and text."""

    def __init__(self, path: str, lineno: int, line: str, problem: str):
        self.path, self.lineno, self.line, self.problem = path, lineno, line, problem
        super().__init__(f"{path}, line {lineno}: {problem}: {line!r}")


@dataclass
class ContRange:
    """One continuum range, Hz, in *frame*."""

    lo_hz: float
    hi_hz: float
    frame: str = "LSRK"
    lineno: int = 0

    def as_text(self) -> str:
        return f"{self.lo_hz / 1e9:.10f}~{self.hi_hz / 1e9:.10f}GHz {self.frame}"


@dataclass
class ContSpw:
    """One ``SpectralWindow:`` block.

    :ivar keyword: ``'NONE'`` (findcont found no continuum), ``'ALL'`` (all
        channels are continuum) or None (ranges given).
    """

    spw_id: int
    name: str = ""
    ranges: list[ContRange] = field(default_factory=list)
    keyword: str | None = None
    flags: list[str] = field(default_factory=list)
    lineno: int = 0


@dataclass
class ContField:
    name: str
    spws: list[ContSpw] = field(default_factory=list)
    lineno: int = 0

    def spw(self, spw_id: int) -> ContSpw | None:
        return next((s for s in self.spws if s.spw_id == spw_id), None)


@dataclass
class ContDat:
    fields: list[ContField] = field(default_factory=list)
    version: int = 3
    path: str = "<string>"

    def field(self, name: str) -> ContField | None:
        return next((f for f in self.fields if f.name == name), None)

    def to_dict(self) -> dict:
        """JSON-friendly form: ``{field: {spw: {'name', 'ranges': [[lo_GHz, hi_GHz, frame]], ...}}}``."""
        out = {}
        for f in self.fields:
            out[f.name] = {str(s.spw_id): {"name": s.name, "keyword": s.keyword, "flags": list(s.flags),
                                           "ranges": [[r.lo_hz / 1e9, r.hi_hz / 1e9, r.frame] for r in s.ranges]}
                           for s in f.spws}
        return out


def _dequote(name: str) -> str:
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1]
    return name


def parse_contdat(text: str, path: str = "<string>") -> ContDat:
    """Parse the text of a cont.dat (any version); see the module docstring."""
    cd = ContDat(path=path)
    fields: dict[str, ContField] = {}  # by name, and spws by (field name, id): linear time in the file size
    spws: dict[tuple[str, int], ContSpw] = {}
    field_: ContField | None = None
    spw: ContSpw | None = None
    saw_v1 = saw_v3 = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().replace("\t", " ")
        if not line or line.startswith("#"):
            continue
        m = _FIELD_RE.match(line)
        if m:
            name = _dequote(m.group(1))
            if not name:
                raise ContDatError(path, lineno, raw, "a Field line without a field name")
            field_, spw = _get_field(cd, fields, name, lineno), None
            continue
        m = _SPW_RE.match(line) or _SPW_V1_RE.match(line)
        if m:
            if field_ is None:
                raise ContDatError(path, lineno, raw, "a spectral window line before any Field line")
            saw_v1 |= bool(_SPW_V1_RE.match(line))
            spw_id = int(m.group(1))
            name = (m.group(2) or "").strip() if m.re is _SPW_RE else ""
            saw_v3 |= bool(name)
            spw = spws.get((field_.name, spw_id))
            if spw is None:
                spw = spws[(field_.name, spw_id)] = ContSpw(spw_id=spw_id, name=name, lineno=lineno)
                field_.spws.append(spw)
            elif name and spw.name and name != spw.name:
                raise ContDatError(path, lineno, raw, f"spw {spw_id} of field {field_.name!r} was named "
                                   f"{spw.name!r} on line {spw.lineno}")
            continue
        m = _FLAGS_RE.match(line)
        if m:
            if spw is None:
                raise ContDatError(path, lineno, raw, "a Flags line outside a SpectralWindow block")
            spw.flags += [f for f in re.split(r"[\s,]+", m.group(1).strip()) if f]
            saw_v3 = True
            continue
        if line.upper() in ("NONE", "ALL", "ALLCONT"):
            if spw is None:
                raise ContDatError(path, lineno, raw, f"{line} outside a SpectralWindow block")
            if spw.ranges:
                raise ContDatError(path, lineno, raw, f"{line} in a spw block that already has ranges")
            spw.keyword = "ALL" if line.upper() == "ALLCONT" else line.upper()
            continue
        if "~" in line or re.match(r"^[\d.]", line) and re.search(r"[hH][zZ]", line):
            if spw is None:
                raise ContDatError(path, lineno, raw, "a frequency range outside a SpectralWindow block")
            if spw.keyword:
                raise ContDatError(path, lineno, raw, f"a range in a spw block marked {spw.keyword}")
            spw.ranges += _parse_ranges(line, raw, path, lineno)
            continue
        if " " not in line and ":" not in line and not re.fullmatch(_NUM + r"\s*[a-zA-Z/]*", line):
            field_, spw = _get_field(cd, fields, _dequote(line), lineno), None  # v1: a bare field name
            saw_v1 = True
            continue
        raise ContDatError(path, lineno, raw, "not a Field, SpectralWindow, Flags, NONE/ALL or range line")
    cd.version = 1 if saw_v1 else 3 if saw_v3 else 2
    return cd


def _get_field(cd: ContDat, fields: dict, name: str, lineno: int) -> ContField:
    f = fields.get(name)
    if f is None:
        f = fields[name] = ContField(name=name, lineno=lineno)
        cd.fields.append(f)
    return f


def _parse_ranges(line: str, raw: str, path: str, lineno: int) -> list[ContRange]:
    parts = [p.strip() for p in line.split(";") if p.strip()]
    # the frame may be written once at the end: 'a~bGHz;c~dGHz LSRK'
    frame_all = None
    last = parts[-1].split()
    if len(last) == 2 and last[1].upper() in _FRAMES:
        frame_all = last[1].upper()
    out = []
    for p in parts:
        m = _RANGE_RE.match(p)
        tail = m.group(3).split() if m else []
        if not m or len(tail) > 2 or not all(t.isascii() and t.isalpha() for t in tail):
            raise ContDatError(path, lineno, raw, f"{p[:60]!r} is not a range 'a~bGHz [frame]'")
        lo, hi = m.group(1), m.group(2)
        unit = tail[0] if tail and tail[0].lower().endswith("hz") else ""
        frame = tail[-1] if tail and (len(tail) == 2 or not unit) else None
        if len(tail) == 2 and not unit:
            raise ContDatError(path, lineno, raw, f"unknown frequency unit {tail[0]!r}")
        unit = (unit or "GHz").lower()
        if unit not in _UNITS:
            raise ContDatError(path, lineno, raw, f"unknown frequency unit {tail[0]!r}")
        frame = (frame or frame_all or "TOPO").upper()
        if frame not in _FRAMES:
            raise ContDatError(path, lineno, raw, f"unknown spectral frame {frame!r}")
        lo_hz, hi_hz = float(lo) * _UNITS[unit], float(hi) * _UNITS[unit]
        if not (math.isfinite(lo_hz) and math.isfinite(hi_hz)):
            raise ContDatError(path, lineno, raw, "a frequency too large to be one")
        if hi_hz < lo_hz:
            raise ContDatError(path, lineno, raw, "the range ends below its start")
        out.append(ContRange(lo_hz, hi_hz, frame, lineno))
    return out


def read_contdat(path: str) -> ContDat:
    """Read a cont.dat file: a regular file (never a FIFO or device) of at most :data:`MAX_CONTDAT_BYTES`.

    Raises :class:`~almatools.errors.InputFileError` or :class:`~almatools.errors.ResourceLimitError`
    naming the file when it is not one, and :class:`ContDatError` for a line that cannot be read.
    """
    return parse_contdat(limits.read_text(path, MAX_CONTDAT_BYTES), path=str(path))


def format_contdat(cd: ContDat) -> str:
    """cont.dat text as the pipeline writes it (v3 when spw names are known, else v2)."""
    out = []
    for f in cd.fields:
        out.append(f"Field: {f.name}")
        out.append("")
        for s in f.spws:
            out.append(f"SpectralWindow: {s.spw_id} {s.name}" if s.name else f"SpectralWindow: {s.spw_id}")
            if s.flags:
                out.append("Flags: " + " ".join(s.flags))
            if s.keyword:
                out.append(s.keyword)
            out += [r.as_text() for r in s.ranges]
            out.append("")
    return "\n".join(out) + ("\n" if out else "")


def write_contdat(cd: ContDat, path: str, overwrite: bool = False) -> str:
    """Write *cd* atomically to *path*; refuse to replace a file unless *overwrite*."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    atomic_write(path, format_contdat(cd))
    return path
