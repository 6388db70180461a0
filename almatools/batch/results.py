"""The gathered results of a batch: one ECSV row per input, and the per-call result dicts beside it.

Columns of the table: ``row`` (position in the inputs), ``status``
(``done``/``failed``/``not run``), ``error``, ``seconds``, ``worker``
(``host:pid`` that ran it), the parameters the input table set, then every
top-level result value that is a plain number, string or boolean in the
results (named as in the result; ``result_<name>`` where a parameter has that
name).  Lists and records are kept in the JSON file, which holds for every row
its parameters, status, error and whole result dict.  Both are written
atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io import atomic_path, atomic_write
from .ledger import DONE

__all__ = ["write_results", "results_json_path"]


def results_json_path(table: Path) -> Path:
    return table.with_suffix(".json")


def _column_values(values: list):
    """(values, dtype) for a table column, or None when the values are not all plain scalars of one kind."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, bool) for v in present):
        return values, bool
    if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return values, int
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return [None if v is None else float(v) for v in values], float
    if all(isinstance(v, str) for v in present):
        return values, str
    return None


def _param_text(value):
    return value if isinstance(value, (str, int, float, bool)) else json.dumps(value)


def write_results(table_path, task, jobs, states: dict) -> Path:
    """Write the ECSV table and the JSON of per-call results; return the JSON's path."""
    from astropy.table import MaskedColumn, Table
    table_path = Path(table_path)
    given = []
    for job in jobs:
        given += [n for n in job.row.given if n not in given]
    records = []
    for job in jobs:
        state = states.get(job.key) or {}
        status = state.get("status", "not run")
        records.append({"row": job.row.index, "where": job.row.where, "key": job.key, "status": status,
                        "error": state.get("error", ""), "seconds": state.get("seconds"),
                        "worker": state.get("worker", ""), "params": state.get("params", job.params),
                        "result": state.get("result") if status == DONE else None})
    table = Table()
    table["row"] = [r["row"] for r in records]
    table["status"] = [r["status"] for r in records]
    table["error"] = [r["error"] or "" for r in records]
    table["seconds"] = MaskedColumn([r["seconds"] if r["seconds"] is not None else 0.0 for r in records],
                                    mask=[r["seconds"] is None for r in records], dtype=float)
    table["worker"] = [r["worker"] for r in records]
    for name in given:
        table[name] = [_param_text(job.params[name]) for job in jobs]
    keys = []
    for r in records:
        if isinstance(r["result"], dict):
            keys += [k for k in r["result"] if k not in keys]
    for key in keys:
        found = _column_values([r["result"].get(key) if isinstance(r["result"], dict) else None for r in records])
        if found is None:
            continue
        values, dtype = found
        name = key if key not in table.colnames else f"result_{key}"
        filler = {bool: False, int: 0, float: 0.0, str: ""}[dtype]
        table[name] = MaskedColumn([filler if v is None else v for v in values], mask=[v is None for v in values],
                                   dtype=dtype)
    table.meta["task"] = task.name
    table.meta["comments"] = [f"almatools batch of {task.name}: one row per input; per-call results in "
                              f"{results_json_path(table_path).name}"]
    with atomic_path(table_path) as tmp:
        table.write(tmp, format="ascii.ecsv")
    json_path = results_json_path(table_path)
    # one call per line: readable, and written by json's C encoder (indent= would use the pure-Python one,
    # which cost the batch's parent process more CPU than the ledger for results of thousands of numbers)
    atomic_write(json_path, '{"task": ' + json.dumps(task.name) + ', "calls": [\n'
                 + ",\n".join(json.dumps(r) for r in records) + "\n]}\n")
    return json_path
