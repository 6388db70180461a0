"""The bundled list of common spectral lines (``almatools/data/lines.csv``) and their sky frequencies.

The file documents its sources (Splatalogue as casadata ships it, cross-checked against the
Lovas/NIST recommended frequencies and published line lists); the tests check every value
against both catalogues.

A line at rest frequency ν₀ from a source with systemic velocity ``vsys`` (km/s) or redshift
``z`` is seen at ν = ν₀ / (1 + z), with z = vsys / c when a velocity is given: ``vsys`` is
*cz*, the optical convention catalogues such as NED and SIMBAD use for galaxies (for
Galactic sources, |vsys| < 300 km/s, the radio convention differs by less than 0.3 MHz at
230 GHz — far below a spectral window's width).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from importlib.resources import files

__all__ = ["Line", "lines", "sky_ghz", "redshift", "in_range", "C_KMS"]

C_KMS = 299792.458


@dataclass(frozen=True)
class Line:
    name: str            # as shown on plots: 'CO 2-1', 'N2H+ 3-2', '[CII] 158µm'
    rest_ghz: float
    transition: str      # quantum numbers ('J=2-1', '3(0;3)-2(0;2)')
    tier: int            # 1: labelled first on crowded plots
    splatalogue: str     # the species as Splatalogue names it (the source of rest_ghz)
    lovas: str           # the species in the Lovas/NIST list ('' when it has no entry)
    checked: str         # the second sources checked by hand (see the file's header)


@functools.lru_cache(maxsize=1)
def lines() -> tuple[Line, ...]:
    """Every line of the bundled list, by rest frequency."""
    text = files("almatools").joinpath("data", "lines.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    out = [Line(r["name"], float(r["rest_ghz"]), r["transition"], int(r["tier"]), r["splatalogue"], r["lovas"],
                r["checked"]) for r in rows]
    return tuple(sorted(out, key=lambda ln: ln.rest_ghz))


def redshift(vsys_kms: float = 0.0, z: float = 0.0) -> float:
    """The redshift of a source given by its systemic velocity *cz* (km/s) or its redshift."""
    return z if z else vsys_kms / C_KMS


def sky_ghz(line: Line, z: float) -> float:
    """Where *line* is seen from a source at redshift *z* (GHz)."""
    return line.rest_ghz / (1.0 + z)


def in_range(lo_ghz: float, hi_ghz: float, z: float) -> list[Line]:
    """The lines seen between *lo_ghz* and *hi_ghz* (ends included) from a source at redshift *z*."""
    return [ln for ln in lines() if lo_ghz <= sky_ghz(ln, z) <= hi_ghz]
