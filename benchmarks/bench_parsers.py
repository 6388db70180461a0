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


def _angle(n: int) -> list[str]:
    return [f"{(k % 97) * 0.37 + 0.01:.4g}{('arcsec', 'arcmin', 'deg', 'mas')[k % 4]}" for k in range(n)]


def _parse_angles(texts: list[str]):
    from almatools.plugins.imaging.rules import parse_angle
    return [parse_angle(t) for t in texts]


#: (name, make_input(n), parse(input)); n is the size of the small input
TARGETS = [
    ("cont.dat reader", _contdat, _parse_contdat),
    ("spw:channel selection parser", _selection, _parse_selection),
    ("imadvise sourcesize angles", _angle, _parse_angles),
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
