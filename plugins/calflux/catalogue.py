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
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from almatools.errors import AlmatoolsError

from . import names as _names
from .bands import band_array
from .dates import to_mjd

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
        self._index: dict[str, str] = {}  # normalised alias -> source
        self._short: dict[str, str] = {}  # short J-name derived from a long alias -> source
        self.origin = origin
        self.unknown: dict[str, UnknownSource] = {}  # names asked for that the catalogue does not know
        for s in sources:
            self.add(s)

    def add(self, source: Source) -> None:
        self.sources[source.name] = source
        for alias in source.aliases:
            self._index.setdefault(_names.normalise(alias), source.name)
            short = _names.short_jname(alias)
            if short:
                self._short.setdefault(short, source.name)

    def names(self) -> list[str]:
        return sorted({a for s in self.sources.values() for a in s.aliases})

    def lookup(self, name: str) -> Source | None:
        """The source with an alias *name*; a short J-name (``J1924-292``) also finds its long form."""
        key = _names.normalise(name)
        if key in self._index:
            return self.sources[self._index[key]]
        if _names.is_short_jname(key) and key in self._short:
            return self.sources[self._short[key]]
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
        """An offline catalogue file (``.ecsv``/``# %ECSV`` by astropy, anything else as CSV with a header)."""
        from almatools.delivery.textfile import DeliveryError, read_text
        path = Path(path)
        try:
            text = read_text(path, MAX_CATALOGUE_BYTES).text
        except DeliveryError as exc:
            raise CatalogueError(str(exc)) from None
        cols, where = _ecsv_columns(text, path) if text.lstrip().startswith("# %ECSV") else _csv_columns(text, path)
        return cls.from_columns(cols, where, origin=str(path))

    @classmethod
    def from_columns(cls, cols: dict, where=lambda i: f"row {i + 1}", origin: str = "") -> "Catalogue":
        """From columns of text (``source``, ``date``, ``frequency``, ``flux`` and optional ``aliases``,
        ``error``, ``band``, ``ingested``); *where(i)* names row *i* in error messages."""
        n = len(cols["source"])
        source = np.array([s.strip() for s in cols["source"]], dtype=object)
        empty = np.flatnonzero(source == "")
        if len(empty):
            raise CatalogueError(f"{where(int(empty[0]))}: the source name is empty")
        mjd = _dates(cols["date"], "date", where)
        freq = _floats(cols["frequency"], "frequency", where)
        freq_hz = np.where(freq < 2000, freq * 1e9, freq)  # analysisUtils' rule: below 2000 it is GHz
        flux = _floats(cols["flux"], "flux", where)
        error = _floats(cols.get("error", [""] * n), "error", where, empty_ok=True)
        band = _floats(cols.get("band", [""] * n), "band", where, empty_ok=True)
        ingested = _dates(cols.get("ingested", [""] * n), "ingested", where, empty_ok=True)
        aliases = cols.get("aliases", [""] * n)
        cat = cls(origin=origin)
        order = np.argsort(source, kind="stable")
        names, starts = np.unique(source[order], return_index=True)
        for name, lo, hi in zip(names, starts, list(starts[1:]) + [n]):
            idx = order[lo:hi]
            alias = list(dict.fromkeys(a.strip() for i in idx for a in str(aliases[i]).split(";") if a.strip()))
            cat.add(Source.from_arrays(name, alias, mjd[idx], freq_hz[idx], flux[idx], error[idx],
                                       np.nan_to_num(band[idx], nan=0).astype(int), ingested[idx]))
        return cat

    def write(self, path: str | os.PathLike) -> None:
        """Write every measurement as ECSV (``.ecsv``) or CSV, atomically; :meth:`read` reads it back.

        Uncertainties the catalogue lacked are written empty (not as the 10 % assumed on reading);
        measurements discarded on reading (flux ≤ 0) are not written.
        """
        from astropy.table import Table
        from almatools.io import atomic_path
        sources = list(self.sources.values())
        epoch = np.datetime64("1858-11-17")

        def iso(days):
            out = (epoch + np.nan_to_num(days, nan=0).astype(np.int64).astype("timedelta64[D]")).astype(str)
            return np.where(np.isfinite(days), out, "")
        cat = (lambda f: np.concatenate([f(s) for s in sources]) if sources else np.array([]))
        error = cat(lambda s: np.where(s.assumed, np.nan, s.error) if s.assumed is not None else s.error)
        table = Table({"source": cat(lambda s: np.full(len(s), s.name, dtype=object)).astype(str),
                       "aliases": cat(lambda s: np.full(len(s), ";".join(a for a in s.aliases if a != s.name),
                                                        dtype=object)).astype(str),
                       "date": iso(cat(lambda s: s.day.astype(float))),
                       "frequency": cat(lambda s: s.freq_hz / 1e9), "flux": cat(lambda s: s.flux),
                       "error": np.ma.masked_invalid(error), "band": cat(lambda s: s.band).astype(int),
                       "ingested": iso(cat(lambda s: s.ingested))}, names=COLUMNS)
        table["frequency"].unit, table["flux"].unit, table["error"].unit = "GHz", "Jy", "Jy"
        path = Path(path)
        with atomic_path(path) as tmp:
            table.write(tmp, format="ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv", overwrite=True)


def _floats(values, what: str, where, empty_ok: bool = False) -> np.ndarray:
    """Text (or numbers) → float array (NaN for empty cells when *empty_ok*); the first bad cell is named."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":
        out = values.astype(float)
        texts = None
    else:
        texts = [str(v).strip() for v in values]
        try:
            out = np.array([t or "nan" for t in texts] if empty_ok else texts, dtype=float)
        except ValueError:
            for i, t in enumerate(texts):  # find the culprit
                try:
                    float(t or ("nan" if empty_ok else "x"))
                except ValueError:
                    raise CatalogueError(f"{where(i)}: {what} is {t!r}, not a number") from None
            raise
    bad = ~np.isfinite(out)
    if empty_ok:
        bad &= ~np.isnan(out) if texts is None else np.array([bool(t) for t in texts], dtype=bool)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CatalogueError(f"{where(i)}: {what} is {out[i] if texts is None else texts[i]!r}, not a finite number")
    return out


def _dates(values, what: str, where, empty_ok: bool = False) -> np.ndarray:
    """Dates → MJD: ISO days in one numpy conversion, any other form (:func:`.dates.to_mjd`) one by one."""
    texts = [str(v).strip() for v in values]
    out = np.full(len(texts), np.nan)
    iso = np.array([len(t) == 10 and t[4] == "-" and t[7] == "-" for t in texts], dtype=bool)
    if iso.any():
        try:
            days = np.array([t for t, ok in zip(texts, iso) if ok], dtype="datetime64[D]")
            out[iso] = (days - np.datetime64("1858-11-17")).astype(float)
        except ValueError:
            iso[:] = False  # an impossible date among them: the slow path names it
    for i in np.flatnonzero(~iso):
        if not texts[i] and empty_ok:
            continue
        try:
            out[i] = to_mjd(texts[i])
        except ValueError as exc:
            raise CatalogueError(f"{where(int(i))}: {what} {exc}") from None
    return out


def _csv_columns(text: str, path: Path):
    header, cols, lines = None, {}, []
    reader = csv.reader(text.splitlines())
    try:
        for cells in reader:
            number = reader.line_num
            if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                missing = {"source", "date", "frequency", "flux"} - set(header)
                if missing or len(set(header)) != len(header):
                    raise CatalogueError(f"{path}:{number}: the header must name each of {', '.join(COLUMNS)} once "
                                         f"(source, date, frequency and flux are required); got {','.join(cells)!r}")
                cols = {h: [] for h in header}
                continue
            if len(cells) != len(header):
                raise CatalogueError(f"{path}:{number}: {len(cells)} values for {len(header)} columns")
            for h, c in zip(header, cells):
                cols[h].append(c)
            lines.append(number)
    except csv.Error as exc:
        raise CatalogueError(f"{path}:{reader.line_num}: not a CSV line ({exc})") from None
    if header is None:
        raise CatalogueError(f"{path}: no header line and no measurements")
    return cols, lambda i: f"{path}:{lines[i]}"


def _ecsv_columns(text: str, path: Path):
    from astropy.table import Table
    try:
        table = Table.read(text, format="ascii.ecsv")
    except Exception as exc:  # astropy raises many types for malformed ECSV
        raise CatalogueError(f"{path}: not a readable ECSV table ({type(exc).__name__}: {exc})") from None
    names = {n.lower(): n for n in table.colnames}
    missing = {"source", "date", "frequency", "flux"} - set(names)
    if missing:
        raise CatalogueError(f"{path}: the ECSV table lacks column(s) {sorted(missing)}")
    cols = {}
    for key, name in names.items():
        column = table[name]
        if key == "frequency" and getattr(column, "unit", None) is not None:
            try:
                column = column.to("GHz").value
            except Exception:
                raise CatalogueError(f"{path}: frequency unit {column.unit} is not a frequency") from None
        values = np.ma.filled(np.ma.asarray(column), np.nan) if np.asarray(column).dtype.kind in "fiu" else None
        cols[key] = values if values is not None else ["" if np.ma.is_masked(v) else str(v) for v in column]
    return cols, lambda i: f"{path}: row {i + 1}"
