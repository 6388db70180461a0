"""Measurement histories of calibrators: the ALMA Calibrator Source Catalogue's content, in memory.

A :class:`Catalogue` maps each source (official name and aliases) to a
:class:`Source`: arrays of its flux-density measurements (day, frequency, flux,
uncertainty, band, ingestion day), sorted by day.  It comes from the catalogue
service (:mod:`.service`) or from an offline file — CSV or ECSV with the columns

    source, aliases, date, frequency, flux, error, band[, ingested]

(``aliases`` separated by ``;``; ``date`` and ``ingested`` in any form
:func:`.dates.to_mjd` reads; ``frequency`` in GHz, or Hz when above 2000 as
analysisUtils reads it; ``flux`` and ``error`` in Jy; ``band`` may be empty).
As analysisUtils does, measurements with flux ≤ 0 are discarded and a missing or
zero uncertainty becomes 10 % of the flux; both are counted and reported.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from almatools.errors import AlmatoolsError

from . import names as _names
from .bands import band_array
from .dates import mjd_to_iso, to_mjd

__all__ = ["Catalogue", "Source", "CatalogueError", "UnknownSource", "MAX_CATALOGUE_BYTES", "COLUMNS"]

#: the largest offline catalogue file read (ALMA's whole catalogue is a few MB)
MAX_CATALOGUE_BYTES = 256 * 2**20
COLUMNS = ("source", "aliases", "date", "frequency", "flux", "error", "band", "ingested")
ASSUMED_FRACTIONAL_ERROR = 0.10


class CatalogueError(AlmatoolsError):
    """A catalogue file or answer that cannot be read; names the file (and line) or the service."""


class UnknownSource(CatalogueError):
    """The catalogue has no source of that name; the message lists the closest names it has."""

    def __init__(self, name: str, close: list[str]):
        self.name, self.close = name, close
        hint = f"; closest names: {', '.join(close)}" if close else ""
        super().__init__(f"source {name!r} is not in the calibrator catalogue{hint}")


@dataclass
class Source:
    """One calibrator: its names and its measurements, sorted by day.

    :param day: integer MJD of each measurement; :param freq_hz:, :param flux:, :param error: in Hz and Jy;
    :param band: ALMA band; :param ingested: MJD the value entered the catalogue (NaN: unknown).
    :param discarded: measurements dropped because flux ≤ 0; :param assumed_errors: uncertainties set to 10 %.
    """

    name: str
    aliases: tuple
    day: np.ndarray
    freq_hz: np.ndarray
    flux: np.ndarray
    error: np.ndarray
    band: np.ndarray
    ingested: np.ndarray
    assumed: np.ndarray | None = None  # True where the uncertainty was missing and 10 % was assumed
    discarded: int = 0
    _bands: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_arrays(cls, name, aliases, day, freq_hz, flux, error, band=None, ingested=None) -> "Source":
        """Clean (as analysisUtils: flux ≤ 0 dropped, missing error → 10 %) and sort by day, then frequency."""
        day = np.floor(np.asarray(day, dtype=float)).astype(np.int64)
        freq_hz, flux = np.asarray(freq_hz, dtype=float), np.asarray(flux, dtype=float)
        error = np.asarray(error, dtype=float)
        band = band_array(freq_hz) if band is None else np.where(np.asarray(band) > 0, band, band_array(freq_hz))
        ingested = np.full(day.shape, np.nan) if ingested is None else np.asarray(ingested, dtype=float)
        keep = np.isfinite(flux) & (flux > 0) & np.isfinite(freq_hz) & (freq_hz > 0)
        missing = keep & ~(np.isfinite(error) & (error > 0))
        error = np.where(missing, ASSUMED_FRACTIONAL_ERROR * flux, np.abs(error))
        order = np.lexsort((-freq_hz[keep], day[keep]))
        pick = lambda a: np.asarray(a)[keep][order]  # noqa: E731
        return cls(name, tuple(dict.fromkeys([name, *aliases])), pick(day), pick(freq_hz), pick(flux), pick(error),
                   pick(band).astype(int), pick(ingested), assumed=pick(missing), discarded=int((~keep).sum()))

    def in_band(self, band: int) -> np.ndarray:
        """Indices of the measurements in *band* (cached)."""
        if band not in self._bands:
            self._bands[band] = np.flatnonzero(self.band == band)
        return self._bands[band]

    def __len__(self) -> int:
        return len(self.day)


class Catalogue:
    """Sources by name; lookups accept every alias, short and long J-names, ``3C 279``, ``QSO ...``."""

    def __init__(self, sources=(), origin: str = ""):
        self.sources: dict[str, Source] = {}
        self._index: dict[str, str] = {}
        self.origin = origin
        self.unknown: dict[str, UnknownSource] = {}  # names asked for that the catalogue does not know
        for s in sources:
            self.add(s)

    def add(self, source: Source) -> None:
        self.sources[source.name] = source
        for alias in source.aliases:
            for key in _names.keys(alias):
                self._index.setdefault(key, source.name)

    def names(self) -> list[str]:
        return sorted({a for s in self.sources.values() for a in s.aliases})

    def lookup(self, name: str) -> Source | None:
        for key in sorted(_names.keys(name), key=len, reverse=True):  # the exact (long) key first
            if key in self._index:
                return self.sources[self._index[key]]
        return None

    def find(self, name: str) -> Source:
        """The source called *name*; :class:`UnknownSource` (with the closest names) when there is none."""
        s = self.lookup(name)
        if s is None:
            raise UnknownSource(name, _names.close_names(name, self.names()))
        return s

    # --------------------------------------------------------------------------------- files
    @classmethod
    def read(cls, path: str | os.PathLike) -> "Catalogue":
        """An offline catalogue file (``.ecsv`` by astropy, anything else as CSV with a header)."""
        from almatools.delivery.textfile import DeliveryError, read_text
        path = Path(path)
        try:
            text = read_text(path, MAX_CATALOGUE_BYTES).text
        except DeliveryError as exc:
            raise CatalogueError(str(exc)) from None
        rows = _ecsv_rows(text, path) if text.lstrip().startswith("# %ECSV") else _csv_rows(text, path)
        return cls.from_rows(rows, origin=str(path))

    @classmethod
    def from_rows(cls, rows, origin: str = "") -> "Catalogue":
        """From (line, source, aliases, mjd, freq_hz, flux, error, band, ingested) tuples."""
        by_source: dict[str, list] = {}
        aliases: dict[str, list] = {}
        for line, source, alias, mjd, freq, flux, error, band, ingested in rows:
            by_source.setdefault(source, []).append((mjd, freq, flux, error, band, ingested))
            aliases.setdefault(source, [])
            aliases[source] += [a for a in alias if a and a not in aliases[source]]
        sources = []
        for name, ms in by_source.items():
            a = np.array(ms, dtype=float).reshape(-1, 6)
            sources.append(Source.from_arrays(name, aliases[name], a[:, 0], a[:, 1], a[:, 2], a[:, 3],
                                              a[:, 4].astype(int), a[:, 5]))
        return cls(sources, origin=origin)

    def write(self, path: str | os.PathLike) -> None:
        """Write every measurement as ECSV (``.ecsv``) or CSV, atomically; readable by :meth:`read`."""
        from astropy.table import Table
        from almatools.io import atomic_path
        cols = {k: [] for k in COLUMNS}
        for s in self.sources.values():
            for i in range(len(s)):
                cols["source"].append(s.name)
                cols["aliases"].append(";".join(a for a in s.aliases if a != s.name))
                cols["date"].append(mjd_to_iso(s.day[i]))
                cols["frequency"].append(s.freq_hz[i] / 1e9)
                cols["flux"].append(s.flux[i])
                cols["error"].append(s.error[i])
                cols["band"].append(int(s.band[i]))
                cols["ingested"].append("" if not np.isfinite(s.ingested[i]) else mjd_to_iso(s.ingested[i]))
        table = Table(cols, names=COLUMNS)
        table["frequency"].unit, table["flux"].unit, table["error"].unit = "GHz", "Jy", "Jy"
        path = Path(path)
        with atomic_path(path) as tmp:
            table.write(tmp, format="ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv", overwrite=True)


def _number(text: str, what: str, where: str, allow_empty: bool = False) -> float:
    text = text.strip()
    if text == "" and allow_empty:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise CatalogueError(f"{where}: {what} is {text!r}, not a number") from None
    if not math.isfinite(value) and not (allow_empty and math.isnan(value)):
        raise CatalogueError(f"{where}: {what} is {text!r}, not a finite number")
    return value


def _row(values: dict, where: str):
    """One measurement from a dict of column texts; CatalogueError naming *where* when it is malformed."""
    source = values.get("source", "").strip()
    if not source:
        raise CatalogueError(f"{where}: the source name is empty")
    try:
        mjd = to_mjd(values.get("date", ""))
    except ValueError as exc:
        raise CatalogueError(f"{where}: date {exc}") from None
    freq = _number(values.get("frequency", ""), "frequency", where)
    freq_hz = freq * 1e9 if freq < 2000 else freq  # analysisUtils' rule: below 2000 it is GHz
    flux = _number(values.get("flux", ""), "flux", where)
    error = _number(values.get("error", ""), "error", where, allow_empty=True)
    band_text = values.get("band", "").strip()
    band = int(_number(band_text, "band", where)) if band_text else 0
    ingested = math.nan
    if values.get("ingested", "").strip():
        try:
            ingested = to_mjd(values["ingested"])
        except ValueError as exc:
            raise CatalogueError(f"{where}: ingested {exc}") from None
    aliases = tuple(a.strip() for a in values.get("aliases", "").split(";") if a.strip())
    return source, aliases, mjd, freq_hz, flux, error, band, ingested


def _csv_rows(text: str, path: Path):
    header = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            cells = next(csv.reader([line]))
        except csv.Error as exc:
            raise CatalogueError(f"{path}:{number}: not a CSV line ({exc})") from None
        if header is None:
            header = [c.strip().lower() for c in cells]
            missing = {"source", "date", "frequency", "flux"} - set(header)
            if missing:
                raise CatalogueError(f"{path}:{number}: the header lacks column(s) {sorted(missing)}; "
                                     f"expected {', '.join(COLUMNS)}")
            continue
        if len(cells) != len(header):
            raise CatalogueError(f"{path}:{number}: {len(cells)} values for {len(header)} columns")
        yield (number, *_row(dict(zip(header, cells)), f"{path}:{number}"))
    if header is None:
        raise CatalogueError(f"{path}: no header line and no measurements")


def _ecsv_rows(text: str, path: Path):
    from astropy.table import Table
    try:
        table = Table.read(text, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many types for malformed ECSV
        raise CatalogueError(f"{path}: not a readable ECSV table ({type(exc).__name__}: {exc})") from None
    names = [n.lower() for n in table.colnames]
    missing = {"source", "date", "frequency", "flux"} - set(names)
    if missing:
        raise CatalogueError(f"{path}: the ECSV table lacks column(s) {sorted(missing)}")
    freq_col = table.columns[names.index("frequency")]
    to_ghz = freq_col.unit.to("GHz") if getattr(freq_col, "unit", None) is not None else None
    for i, row in enumerate(table):
        values = {n: ("" if np.ma.is_masked(row[c]) else str(row[c])) for n, c in zip(names, table.colnames)}
        if to_ghz is not None:
            values["frequency"] = repr(float(values["frequency"]) * to_ghz)
        yield (i + 1, *_row(values, f"{path}: row {i + 1}"))
