"""Input tables of a batch: one row per task call, one column per parameter.

Three formats, chosen by the file's suffix:

* ``.csv`` — a header line of parameter names, then one line per call; each
  cell is read like the command line reads a value (``almatools run``:
  numbers, ``true``/``false``, lists as ``a,b`` or ``[1, 2]``, records as
  JSON); an empty cell means "not given in this row" (the shared value or the
  task's default applies);
* ``.ecsv`` — astropy's typed text table; a masked cell means "not given";
* ``.json`` — a list of objects ``[{"vis": "a.ms"}, {"vis": "b.ms", "spw": "1"}]``.

Readers are linear in the file's size, open regular files only (never a FIFO
or a device) and refuse files larger than :data:`MAX_BYTES` or with more than
:data:`MAX_ROWS` rows before reading them into memory; every refusal names the
file and, where there is one, the line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import limits, params
from ..errors import InputFileError

__all__ = ["InputRow", "read_inputs", "rows_from", "MAX_BYTES", "MAX_ROWS", "SUFFIXES"]

MAX_BYTES = 64 * limits.MiB
MAX_ROWS = 100_000
SUFFIXES = (".csv", ".ecsv", ".json")


@dataclass
class InputRow:
    """One call of a batch: its position, where it came from, and the parameters it sets."""

    index: int
    where: str  # "inputs.csv line 4", "row 3"
    given: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # cells that could not be read as their parameter


def read_inputs(path, task) -> list[InputRow]:
    """The rows of the input table *path* for *task* (an :class:`almatools.task.Task`)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputFileError(path, f"is not an input table: name a {', '.join(SUFFIXES)} file")
    text = limits.read_text(path, MAX_BYTES)
    reader = {".csv": _read_csv, ".ecsv": _read_ecsv, ".json": _read_json}[suffix]
    rows = reader(path, text, task)
    if not rows:
        raise InputFileError(path, "has no rows: a batch needs at least one input")
    return rows


def rows_from(inputs, task) -> list[InputRow]:
    """Rows from what Python code passes: a path, a list of dicts, or an astropy table."""
    if isinstance(inputs, (str, bytes)) or hasattr(inputs, "__fspath__"):
        return read_inputs(inputs, task)
    if hasattr(inputs, "colnames"):  # an astropy Table (or a row-wise equivalent)
        return _table_rows("table", inputs, task, lambda i: f"row {i}")
    rows = []
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise TypeError(f"batch inputs: row {index} is a {type(item).__name__}, not a dict of parameters")
        _check_count(index + 1, "the inputs")
        rows.append(InputRow(index, f"row {index}", dict(item)))
    if not rows:
        raise ValueError("batch inputs: no rows; a batch needs at least one input")
    return rows


def _check_count(n: int, subject) -> None:
    limits.check_count(n, MAX_ROWS, subject=str(subject), unit="rows",
                       hint="split the batch into several input tables")


def _check_columns(path, names, task) -> None:
    known = set(task.spec.names)
    for name in names:
        if name not in known:
            raise InputFileError(path, f"column {name!r} is not a parameter of {task.name} (parameters: "
                                 f"{', '.join(task.spec.names)})", 1)
    seen = set()
    for name in names:
        if name in seen:
            raise InputFileError(path, f"column {name!r} appears twice", 1)
        seen.add(name)


def _read_csv(path, text: str, task) -> list[InputRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise InputFileError(path, "is empty: the first line must name the parameters")
        header = [h.strip() for h in header]
        _check_columns(path, header, task)
        rows = []
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # blank lines separate nothing
            if len(cells) != len(header):
                raise InputFileError(path, f"has {len(cells)} cells where the header names {len(header)}", line)
            _check_count(len(rows) + 1, f"file {str(path)!r}")
            row = InputRow(len(rows), f"{path.name} line {line}")
            for name, cell in zip(header, cells):
                if cell.strip() == "":
                    continue
                try:
                    row.given[name] = params.from_cli_text(task.spec.param(name), cell.strip())
                except ValueError as exc:
                    row.problems.append(f"{task.name}: parameter {name!r} cannot be read from {cell!r}: {exc}")
            rows.append(row)
    except csv.Error as exc:
        raise InputFileError(path, f"is not valid CSV ({exc})", reader.line_num) from None
    return rows


def _read_ecsv(path, text: str, task) -> list[InputRow]:
    from astropy.table import Table
    try:
        table = Table.read(text, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many kinds for malformed headers and bodies
        raise InputFileError(path, f"is not a valid ECSV table ({type(exc).__name__}: {exc})") from None
    _check_count(len(table), f"file {str(path)!r}")
    _check_columns(path, table.colnames, task)
    return _table_rows(path, table, task, lambda i: f"{Path(path).name} row {i}")


def _table_rows(path, table, task, where) -> list[InputRow]:
    import numpy as np
    _check_columns(path, list(table.colnames), task)
    _check_count(len(table), str(path))
    rows = []
    for index in range(len(table)):
        row = InputRow(index, where(index))
        for name in table.colnames:
            column = table[name]
            mask = getattr(column, "mask", None)
            if mask is not None and bool(np.any(mask[index])):
                continue  # a masked cell: not given in this row
            value = column[index]
            _give(row, task, name, value.tolist() if hasattr(value, "tolist") else value)
        rows.append(row)
    return rows


def _read_json(path, text: str, task) -> list[InputRow]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InputFileError(path, f"is not valid JSON ({getattr(exc, 'msg', exc)})", line) from None
    except RecursionError:
        raise InputFileError(path, "is nested too deeply to be an input table") from None
    if not isinstance(data, list):
        raise InputFileError(path, "must hold a JSON list of objects, one per call "
                             "([{\"vis\": \"a.ms\"}, {\"vis\": \"b.ms\"}])")
    _check_count(len(data), f"file {str(path)!r}")
    rows = []
    names: list[str] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise InputFileError(path, f"item {index} is a {type(item).__name__}, not an object of parameters")
        names.extend(n for n in item if n not in names)
        _check_columns(path, names, task)
        row = InputRow(index, f"{Path(path).name} item {index}")
        for name, value in item.items():
            _give(row, task, name, value)
        rows.append(row)
    return rows


def _give(row: InputRow, task, name: str, value) -> None:
    """Set a cell of a typed table (ECSV, JSON): a string where the parameter is not one is read like a CSV cell."""
    spec = task.spec.param(name)
    if isinstance(value, str) and spec.type not in ("string", "path", "any"):
        try:
            value = params.from_cli_text(spec, value.strip())
        except ValueError as exc:
            row.problems.append(f"{task.name}: parameter {name!r} cannot be read from {value!r}: {exc}")
            return
    row.given[name] = value
