"""The pipeline's ``flux.csv`` (one per Member OUS, inside ``*.auxproducts.tgz``): every format it has had.

Formats, all read by column name (DOMAIN.md §6.3):

* ``ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment`` — current; the comment is
  ``# field=<name> intents=<A,B> origin=<Source.xml|DB|...> age=<days> queried_at=<YYYY-MM-DD HH:MM:SS UTC>``;
* ``ms,field,spw,I,Q,U,V,spix,comment`` and the oldest ``ms,field,spw,I,Q,U,V,comment``
  (comment ``'<name>' intent=<A,B>``);
* ``ms,field,spw,I,Q,U,V,spix,origin,query_date,age,comment`` (a Cycle 7 draft);
* header-less lines of 7, 8 or 9 values (``ms,field,spw,I,Q,U,V[,spix][,comment]``), which
  analysisUtils' ``getALMAFluxcsv`` accepts;
* comments written by analysisUtils (``# +-0.07Jy, freq=233.0GHz, spec_index=..., Band3age=...``),
  which the pipeline reads as origin ``analysisUtils``.

Each physical line is one row (the pipeline never writes newlines inside a value), so a
reader error names the exact line; unquoted commas in a trailing comment are kept in the
comment.  Rows that cannot be read are reported in :attr:`FluxCsv.problems` (``file:line:
why``) and left out; nothing is guessed.  :func:`render` writes a table back with chosen
rows replaced and every other line byte for byte as it was.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field

from .fluxes import MODEL, CalibratorFlux
from .textfile import DeliveryError

__all__ = ["FluxCsv", "FluxCsvRow", "read_fluxcsv", "render", "parse_comment", "CURRENT_HEADER", "SPIX_HEADER",
           "pipeline_comment"]

CURRENT_HEADER = ["ms", "field", "spw", "I", "Q", "U", "V", "spix", "uvmin", "uvmax", "comment"]
SPIX_HEADER = ["ms", "field", "spw", "I", "Q", "U", "V", "spix", "comment"]
_REQUIRED = ("ms", "field", "spw", "I")
_NUMERIC = ("I", "Q", "U", "V", "spix", "uvmin", "uvmax")
# the pipeline's own patterns for the comment (pipeline/h/tasks/importdata/fluxes.py::import_flux)
_ORIGIN = re.compile(r"origin=(\S+)")
_AGE = re.compile(r"age=(\S+)")
_QUERIED = re.compile(r"queried_at=(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \w{3})")
_FIELD = re.compile(r"field=(\S+)")
_INTENTS = re.compile(r"intents?=(\S+)")
_QUOTED_NAME = re.compile(r"^\s*['\"]([^'\"]+)['\"]")
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"  # parts that cannot overlap: linear on any input
_AU_FREQ = re.compile(r"freq=\s*" + _NUMBER + r"\s*GHz")
_AU_ERROR = re.compile(r"\+-\s*" + _NUMBER + r"\s*Jy")


@dataclass
class FluxCsvRow:
    """One data row: its line number, its cells as written, and their values."""

    line: int
    cells: list
    ms: str
    field: str
    spw: str
    iquv: tuple
    spix: float | None
    comment: str
    columns: dict = field(default_factory=dict)  # column name -> cell text (also uvmin, origin, age, ...)


@dataclass
class FluxCsv:
    """A parsed flux.csv.

    :param label: the file (or ``tar:member``) it came from.
    :param header: the column names (the positional names for a header-less file).
    :param has_header: whether the file has a header line.
    :param layout: ``current``, ``spix``, ``legacy``, ``cycle7-draft``, ``headerless`` or ``other``.
    :param rows: the readable rows.
    :param problems: ``label:line: why`` for every line that could not be read.
    :param lines: the file's lines as written (with their line endings), for :func:`render`.
    """

    label: str
    header: list
    has_header: bool
    layout: str
    rows: list
    problems: list
    lines: list

    def fluxes(self) -> list[CalibratorFlux]:
        """Every row as a :class:`~almatools.delivery.fluxes.CalibratorFlux` (kind ``model``)."""
        out = []
        for r in self.rows:
            info = parse_comment(r.comment)
            for column, key in (("origin", "origin"), ("age", "age"), ("query_date", "queried_at")):
                if r.columns.get(column):  # the Cycle 7 draft has these as columns
                    info.setdefault(key, r.columns[column])
            extra = {k: v for k, v in info.items() if k not in ("field", "intents", "freq_ghz", "error_jy")}
            for key in ("uvmin", "uvmax"):
                if r.columns.get(key):
                    extra[key] = float(r.columns[key])
            out.append(CalibratorFlux(
                field=info.get("field", ""), field_id=r.field, spw=r.spw, flux_jy=r.iquv[0],
                error_jy=info.get("error_jy"), freq_hz=info["freq_ghz"] * 1e9 if "freq_ghz" in info else None,
                spix=r.spix, ms=r.ms, kind=MODEL, origin=f"flux.csv origin={info.get('origin', 'N/A')}",
                intents=tuple(info.get("intents", ())), where=f"{self.label}:{r.line}", extra=extra))
        return out


def parse_comment(comment: str) -> dict:
    """What a flux.csv comment says: field, intents, origin, age, queried_at, and aU's freq and error.

    ``origin`` follows the pipeline: ``analysisUtils`` whenever the comment contains ``Jy, freq=``.
    """
    info: dict = {}
    m = _FIELD.search(comment) or _QUOTED_NAME.search(comment)
    if m:
        info["field"] = m.group(1).strip("'\"")
    m = _INTENTS.search(comment)
    if m:
        info["intents"] = [i for i in m.group(1).strip("'\"").split(",") if i]
    m = _ORIGIN.search(comment)
    if m and m.group(1) != "N/A":
        info["origin"] = m.group(1)
    if "Jy, freq=" in comment:
        info["origin"] = "analysisUtils"
        f = _AU_FREQ.search(comment)
        if f and _finite(f.group(1)):
            info["freq_ghz"] = float(f.group(1))
        e = _AU_ERROR.search(comment)
        if e and _finite(e.group(1)):
            info["error_jy"] = abs(float(e.group(1)))
    m = _AGE.search(comment)
    if m and m.group(1) not in ("N/A", ""):
        info["age"] = m.group(1).rstrip(",")
    m = _QUERIED.search(comment)
    if m:
        info["queried_at"] = m.group(1)
    return info


def _finite(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _layout(header: list) -> str:
    if header == CURRENT_HEADER:
        return "current"
    if header == SPIX_HEADER:
        return "spix"
    if header == ["ms", "field", "spw", "I", "Q", "U", "V", "comment"]:
        return "legacy"
    if header[:8] == ["ms", "field", "spw", "I", "Q", "U", "V", "spix"] and "query_date" in header:
        return "cycle7-draft"
    return "other"


def _cells(line: str) -> list[str]:
    return next(csv.reader([line], skipinitialspace=False))


def _headerless_names(cells: list[str]) -> list[str]:
    """Column names for a header-less row of 7, 8 or 9 values (the 8th is spix when it is a number)."""
    names = ["ms", "field", "spw", "I", "Q", "U", "V"]
    rest = cells[7:]
    if rest and _finite(rest[0].strip()):
        names.append("spix")
        rest = rest[1:]
    if rest:
        names.append("comment")
    return names


def read_fluxcsv(text: str, label: str = "flux.csv") -> FluxCsv:
    """Parse the text of a flux.csv; unreadable lines go to ``problems``, never into ``rows``."""
    lines = text.splitlines(keepends=True)
    header: list = []
    has_header = False
    rows, problems = [], []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cells = _cells(line)
        except csv.Error as exc:
            problems.append(f"{label}:{number}: not a CSV line ({exc})")
            continue
        stripped = [c.strip() for c in cells]
        if not header:
            if {"ms", "field", "spw", "I"} <= set(stripped):
                header, has_header = stripped, True
                if len(set(header)) != len(header):
                    raise DeliveryError(f"{label}:{number}: the header names a column twice: {line!r}")
                continue
            header = ["ms", "field", "spw", "I", "Q", "U", "V", "spix", "comment"]  # header-less file
        names = header if has_header else _headerless_names(stripped)
        row, why = _row(names, cells, number)
        if why:
            problems.append(f"{label}:{number}: {why}")
        else:
            rows.append(row)
    layout = _layout(header) if has_header else ("headerless" if header else "empty")
    return FluxCsv(label, header, has_header, layout, rows, problems, lines)


def _row(names: list[str], cells: list[str], number: int):
    """(row, None) or (None, why not)."""
    if len(cells) < len(_REQUIRED) or len(cells) < min(len(names), 7):
        return None, f"{len(cells)} value(s), fewer than the {min(len(names), 7)} columns ms,field,spw,I,Q,U,V"
    values = dict(zip(names, cells))
    if len(cells) > len(names):
        if "comment" not in names or names[-1] != "comment":
            return None, f"{len(cells)} values for {len(names)} columns ({','.join(names)})"
        values["comment"] = ",".join(cells[len(names) - 1:])  # an unquoted comment with commas
    for key in ("field", "spw"):
        if not values[key].strip().isdigit():
            return None, f"column {key} is {values[key]!r}, not a non-negative integer"
    numbers = {}
    for key in _NUMERIC:
        if key not in values:
            continue
        cell = values[key].strip()
        if cell == "" and key != "I":
            numbers[key] = None
            continue
        try:
            numbers[key] = float(cell)
        except ValueError:
            return None, f"column {key} is {values[key]!r}, not a number"
        if not math.isfinite(numbers[key]):
            return None, f"column {key} is {values[key]!r}, not a finite number"
    if numbers["I"] < 0:
        return None, f"Stokes I is negative ({values['I'].strip()} Jy)"
    if not values["ms"].strip():
        return None, "column ms is empty"
    iquv = tuple(numbers.get(k) or 0.0 for k in ("I", "Q", "U", "V"))
    return FluxCsvRow(line=number, cells=cells, ms=values["ms"].strip(), field=values["field"].strip(),
                      spw=values["spw"].strip(), iquv=iquv, spix=numbers.get("spix"),
                      comment=values.get("comment", "").strip(), columns={k: v.strip() for k, v in values.items()}), None


def pipeline_comment(field_name: str, intents, origin: str, age, queried_at: str, extra: str = "") -> str:
    """A comment in the pipeline's template (the pipeline reads origin, age and queried_at back from it)."""
    text = (f"# field={field_name} intents={','.join(intents) or 'N/A'} origin={origin} age={age} "
            f"queried_at={queried_at}")
    return f"{text} {extra}".rstrip()


def render(table: FluxCsv, replacements: dict[int, dict], header: list | None = None) -> str:
    """The text of *table* with the rows at the line numbers in *replacements* rewritten.

    ``replacements[line]`` maps column names to new values (others keep theirs). The table's
    own header is kept when it has every replaced column; otherwise (a header-less or spix-less
    file) the whole table is written under ``header`` (default :data:`SPIX_HEADER`), since the
    pipeline reads flux.csv by column name.  Unchanged lines keep their bytes when the header
    is kept.
    """
    needed = {k for r in replacements.values() for k in r}
    keep = table.has_header and needed <= set(table.header)
    out_header = table.header if keep else (header or SPIX_HEADER)
    rows_by_line = {r.line: r for r in table.rows}
    newline = "\r\n" if table.lines and table.lines[0].endswith("\r\n") else "\n"

    def format_row(row: FluxCsvRow, new: dict) -> str:
        values = dict(row.columns)
        values.setdefault("comment", row.comment)
        values.update({k: v for k, v in new.items()})
        for key in ("Q", "U", "V", "spix", "uvmin", "uvmax"):
            if key in out_header and values.get(key, "") == "":
                values[key] = "0.0"
        buf = _Line()
        csv.writer(buf, lineterminator="").writerow([values.get(k, "") for k in out_header])
        return buf.text + newline

    parts = []
    if keep:
        for number, raw in enumerate(table.lines, 1):
            parts.append(format_row(rows_by_line[number], replacements[number]) if number in replacements else raw)
        return "".join(parts)
    buf = _Line()
    csv.writer(buf, lineterminator="").writerow(out_header)
    parts.append(buf.text + newline)
    for row in table.rows:
        parts.append(format_row(row, replacements.get(row.line, {})))
    return "".join(parts)


class _Line:
    """A write-only text sink for csv.writer."""

    def __init__(self):
        self.text = ""

    def write(self, s: str) -> None:
        self.text += s
