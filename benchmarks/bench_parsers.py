"""Text parsers grow linearly: each parser's time on an input 8x larger, against 8x its time on the smaller one.

Every reader of text that a user, a file or a server controls is listed in ``TARGETS`` as
``(name, make_input(n) -> input, parse(input))``; ``make_input`` builds a realistic input of
about *n* units (lines, items).  The anchor is eight times the time for *n* units, measured in
the same run, so the ratio is 1 for a linear parser and 8 for a quadratic one.  Target <= 2.
``benchmarks/fuzz.py`` runs this after the long fuzz run; add a row whenever you add a reader.
"""

from __future__ import annotations

import time


def _contdat(n: int) -> str:
    spws = "\n".join(f"SpectralWindow: {k} ALMA_RB_06#BB_{k % 4 + 1}#SW-01#FULL_RES\n"
                     + "\n".join(f"{230 + k * 0.01 + j * 1e-4:.10f}~{230 + k * 0.01 + (j + 0.5) * 1e-4:.10f}GHz LSRK"
                                 for j in range(4)) + "\n"
                     for k in range(max(1, n // 5)))
    return "Field: TW_Hya\n\n" + spws


def _parse_contdat(text: str):
    from almatools.plugins.frames.contdat import parse_contdat
    return parse_contdat(text)


def _selection(n: int) -> str:
    return ",".join(f"{k}:{k * 10}~{k * 10 + 5}" for k in range(n))


def _parse_selection(text: str):
    from almatools.plugins.frames.selection import parse_selection
    return parse_selection(text)


_LAST_NAMES = [f"param{k}" for k in range(16)]


def _inputs_file(n: int) -> str:
    """A .last file of n lines (CASA's `name = repr` lines, long lists among them), written to a temp file."""
    import atexit
    import os
    import tempfile
    values = ["'uid___A002_Xf1e1d3_X1a2b.ms'", "[0, 1, 2, 3]", "230.538e9", "True", "{'a': [1.5, 2.5]}",
              repr([f"field{j}" for j in range(8)])]
    lines = [f"{_LAST_NAMES[k % 16]:<12} = {values[k % len(values)]}" for k in range(n)]
    fd, path = tempfile.mkstemp(suffix=".last")
    atexit.register(os.unlink, path)
    with open(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n#task( ... )\n")
    return path


def _parse_inputs_file(path: str):
    from almatools.casa_tasks.shell import read_inputs_file
    return read_inputs_file(path, _LAST_NAMES)


def _cli_values(n: int) -> str:
    return ",".join(f"{230 + k * 1e-3:.6f}" for k in range(n))


def _parse_cli_values(text: str):
    from almatools.params import from_cli_text
    from almatools.taskxml import ParamSpec
    return from_cli_text(ParamSpec("values", "doubleVec", []), text), \
        from_cli_text(ParamSpec("values", "doubleVec", []), "[" + text + "]")


def _batch_table(suffix: str):
    """An input table of the batch engine: n rows of tbconv calls (lists, quoted cells), as a temp file."""
    def make(n: int) -> str:
        import atexit
        import os
        import tempfile
        rows = [{"values": [1.0 + k, 2.5], "freq": f"{230 + k % 7}GHz", "beam": ["1arcsec", "0.5arcsec"],
                 "approximation": "rj"} for k in range(n)]
        fd, path = tempfile.mkstemp(suffix=suffix)
        atexit.register(os.unlink, path)
        with open(fd, "w") as fh:
            if suffix == ".json":
                import json
                fh.write(json.dumps(rows))
            else:
                fh.write("values,freq,beam,approximation\n" + "".join(
                    f'"{r["values"][0]},2.5",{r["freq"]},"1arcsec,0.5arcsec",rj\n' for r in rows))
        return path
    return make


def _parse_batch_table(path: str):
    from almatools.batch import inputs
    from almatools.registry import get_registry
    return inputs.read_inputs(path, get_registry().get("tbconv"))


#: (name, make_input(n), parse(input)); n is the size of the small input
TARGETS = [
    ("cont.dat reader", _contdat, _parse_contdat),
    ("spw:channel selection parser", _selection, _parse_selection),
    (".last/.saved inputs file reader", _inputs_file, _parse_inputs_file),
    ("command-line value parser (doubleVec)", _cli_values, _parse_cli_values),
    ("batch input table reader (.csv)", _batch_table(".csv"), _parse_batch_table),
    ("batch input table reader (.json)", _batch_table(".json"), _parse_batch_table),
]


def _best_time(parse, data, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        parse(data)
        best = min(best, time.perf_counter() - t0)
    return best


def run(quick: bool = False) -> list[dict]:
    n = 500 if quick else 5000
    rows = []
    for name, make, parse in TARGETS:
        small, large = make(n), make(8 * n)
        parse(small)  # imports and caches outside the timing
        t_small, t_large = _best_time(parse, small), _best_time(parse, large)
        anchor = 8 * t_small
        rows.append(dict(metric=f"{name}: 8x input vs 8 x time of 1x (s)", value=t_large, anchor=anchor,
                         ratio=t_large / anchor, target="<= 2 (linear)", ok=t_large / anchor <= 2))
    return rows
