"""The ALMA Calibrator Source Catalogue over HTTP: its flux service and its measurement history.

* Flux service (the pipeline's method since Cycle 7, DOMAIN.md §6.2):
  ``GET <base>/sc/flux?NAME=&DATE=27-March-2013&FREQUENCY=<Hz>&WEIGHTED=true&RESULT=1&VERBOSE=1&CATALOGUE=5``,
  a one-row VOTable read **by field name**, so the older 13-column layout (with
  ``Clarification``) and the current 14-column one (with ``Curvature``) both read right.
* Measurement history: the catalogue's XML-RPC interface analysisUtils uses,
  ``POST <base>/sourcecat/xmlrpc`` ``sourcecat.searchMeasurements103(...)``.

Base URLs and failover are the archive tasks' (``almatools.plugins.archive.service``):
the ESO, NRAO and NAOJ mirrors in turn, then JAO's ``https://asa.alma.cl`` (the
pipeline's backup), or ``service=`` a mirror name or base URL(s), or
``$ALMATOOLS_ARCHIVE_URL`` (e.g. the local emulator).  A mirror that does not answer,
answers 5xx or 404, or answers something unreadable is skipped; the first that answers
is tried first from then on.  Answers are bounded in size and time.  Many queries run
in parallel threads (:meth:`SourceCatalogueService.fluxes`, :meth:`catalogue`).
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ElementTree
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import numpy as np

from almatools import log

from . import names as _names
from .catalogue import Catalogue, CatalogueError, Source, UnknownSource
from .dates import service_date, to_mjd

__all__ = ["SourceCatalogueService", "CatalogueUnreachable", "parse_flux_votable", "catalogue_urls", "JAO",
           "FLUX_FIELDS", "MAX_FLUX_BYTES", "MAX_HISTORY_BYTES"]

JAO = "https://asa.alma.cl"
#: the flux service's fields, current layout (the older one adds Clarification and drops the curvature)
FLUX_FIELDS = ("StatusCode", "SourceName", "Frequency", "Date", "FluxDensity", "FluxDensityError", "SpectralIndex",
               "SpectralIndexError", "Curvature", "CurvatureError", "DataConditions", "Nearest Measurement Date",
               "Verbose", "Version")
STATUS = {0: "grid-calibrator heuristic", 1: "low-cadence heuristic", 2: "measurements outside the window used",
          3: "fallback algorithm outside the window", 4: "no valid flux density"}
MAX_FLUX_BYTES = 1 << 20
MAX_HISTORY_BYTES = 64 << 20
TIMEOUT = (10.0, 60.0)  # connect, read (the pipeline waits 60 s)
NULL_AS_FLOAT = 1.7976931348623157e+308
#: most measurements asked for one source (ALMA's best-monitored quasars have a few thousand)
MAX_MEASUREMENTS = 100_000


class CatalogueUnreachable(CatalogueError):
    """No mirror of the catalogue answered; the message lists what each said."""


class _BadAnswer(OSError):
    """An answer that cannot be used (too large, not XML): try the next mirror."""


def catalogue_urls(service: str = "") -> list[str]:
    """Base URLs in the order to try: the archive's mirror rule, plus JAO's server when none is chosen."""
    import os
    from almatools.plugins.archive.service import URL_ENV, mirror_urls
    urls = mirror_urls(service)
    if not (service or "").strip() and not os.environ.get(URL_ENV, "").strip():
        urls.append(JAO)
    return urls


def _field_name(element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def parse_flux_votable(data: bytes, label: str = "flux service") -> dict:
    """The first row of a flux-service VOTable, by FIELD name; ``_BadAnswer`` when it is not one."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _BadAnswer(f"{label}: the answer has a document type declaration (refused)")
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise _BadAnswer(f"{label}: not a VOTable ({exc})") from None
    fields = [f.get("name", "") for f in root.iter() if _field_name(f) == "FIELD"]
    row = next((r for r in root.iter() if _field_name(r) == "TR"), None)
    if not fields or row is None:
        raise _BadAnswer(f"{label}: the VOTable has no FIELD or no row")
    cells = [(td.text or "").strip() for td in row if _field_name(td) == "TD"]
    raw = dict(zip(fields, cells))
    missing = [f for f in ("StatusCode", "FluxDensity", "SpectralIndex") if f not in raw]
    if missing:
        raise _BadAnswer(f"{label}: the VOTable lacks field(s) {missing}")

    def num(key):
        try:
            value = float(raw.get(key, ""))
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    status = num("StatusCode")
    flux, spix = num("FluxDensity"), num("SpectralIndex")
    layout = "13-column (Clarification)" if "Clarification" in raw else \
        "14-column (Curvature)" if "Curvature" in raw else f"{len(fields)}-column"
    return {"status_code": None if status is None else int(status),
            "status": STATUS.get(int(status), "unknown status") if status is not None else "unreadable status",
            "clarification": raw.get("Clarification") or "", "source_name": raw.get("SourceName", ""),
            "frequency_hz": num("Frequency"), "date": raw.get("Date", ""), "flux_density": flux,
            "flux_density_error": num("FluxDensityError"), "spectral_index": spix,
            "spectral_index_error": num("SpectralIndexError"), "curvature": num("Curvature"),
            "curvature_error": num("CurvatureError"), "data_conditions": raw.get("DataConditions", ""),
            "nearest_measurement_age": num("Nearest Measurement Date"), "verbose": raw.get("Verbose", ""),
            "version": raw.get("Version", ""), "layout": layout,
            # the pipeline's rule (dbfluxes.py): a flux <= 0 or a spectral index of -1000 (or null) is invalid
            "valid": flux is not None and flux > 0 and spix is not None and spix != -1000}


def _read_bounded(response, limit: int, url: str) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_content(65536):
        size += len(chunk)
        if size > limit:
            raise _BadAnswer(f"{url}: answer larger than {limit} bytes (refused)")
        chunks.append(chunk)
    return b"".join(chunks)


class SourceCatalogueService:
    """A client of the catalogue at *service* (mirror name, base URL(s), or '' for the ALMA mirrors)."""

    def __init__(self, service: str = "", workers: int = 8):
        self.bases = catalogue_urls(service)
        self.workers = max(1, int(workers))
        self._local = threading.local()
        self._lock = threading.Lock()
        self._types: list | None = None

    # --------------------------------------------------------------------------- transport
    def _session(self):
        import requests
        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _call(self, what: str, request):
        """``request(base)`` on each base URL in turn; the first that answers goes first from then on."""
        from almatools.plugins.archive.service import ArchiveUnreachable, run_with_failover
        with self._lock:
            order = list(self.bases)
        try:
            result, base = run_with_failover(",".join(order), request)
        except ArchiveUnreachable as exc:
            raise CatalogueUnreachable(f"the calibrator catalogue's {what} did not answer: "
                                       + str(exc).split(":", 1)[-1].strip()) from None
        with self._lock:
            if self.bases[0] != base:
                self.bases.remove(base)
                self.bases.insert(0, base)
        return result

    def _get(self, base: str, path: str, params: dict, limit: int) -> bytes:
        url = f"{base}{path}?{urlencode(params)}"
        with self._session().get(url, timeout=TIMEOUT, stream=True) as r:
            if r.status_code == 400:
                raise CatalogueError(f"{url}: the catalogue refused the request (HTTP 400: {r.text[:200].strip()})")
            r.raise_for_status()  # 404 and 5xx: this mirror cannot help, try the next
            return _read_bounded(r, limit, url)

    def _xmlrpc(self, base: str, method: str, params: tuple, limit: int = MAX_HISTORY_BYTES):
        url = f"{base}/sourcecat/xmlrpc"
        body = xmlrpc.client.dumps(params, method, allow_none=True)
        with self._session().post(url, data=body.encode(), timeout=TIMEOUT, stream=True,
                                  headers={"Content-Type": "text/xml"}) as r:
            r.raise_for_status()
            data = _read_bounded(r, limit, url)
        if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
            raise _BadAnswer(f"{url}: the answer has a document type declaration (refused)")
        try:
            (result,), _ = xmlrpc.client.loads(data)
        except xmlrpc.client.Fault as exc:
            raise CatalogueError(f"{url}: {method} failed on the server: {exc.faultString}") from None
        except Exception as exc:  # expat errors and malformed structures
            raise _BadAnswer(f"{url}: not an XML-RPC answer ({type(exc).__name__}: {exc})") from None
        return result

    # --------------------------------------------------------------------------- flux service
    def flux(self, name: str, mjd: float, freq_hz: float) -> dict:
        """The flux service's answer for one source, date (MJD) and frequency (Hz), as the pipeline asks it."""
        params = {"NAME": str(name).split(";")[0], "DATE": service_date(mjd), "FREQUENCY": repr(float(freq_hz)),
                  "WEIGHTED": "true", "RESULT": 1, "VERBOSE": 1, "CATALOGUE": 5}
        answer = self._call("flux service", lambda base: parse_flux_votable(
            self._get(base, "/sc/flux", params, MAX_FLUX_BYTES), f"{base}/sc/flux"))
        answer["request"] = {"name": params["NAME"], "date": params["DATE"], "frequency_hz": float(freq_hz)}
        return answer

    def fluxes(self, requests) -> list[dict]:
        """:meth:`flux` for many ``(name, mjd, freq_hz)`` at once, in parallel threads, in order."""
        requests = list(requests)
        with log.progress(total=len(requests), desc="flux service", unit=" queries") as bar:
            def one(r):
                answer = self.flux(*r)
                bar.update(1)
                return answer
            if len(requests) <= 1 or self.workers == 1:
                return [one(r) for r in requests]
            with ThreadPoolExecutor(max_workers=min(self.workers, len(requests))) as pool:
                return list(pool.map(one, requests))

    # --------------------------------------------------------------------------- history
    def _type_ids(self) -> list:
        if self._types is None:
            types = self._call("XML-RPC interface", lambda base: self._xmlrpc(base, "sourcecat.listTypes", ()))
            self._types = [t["type_id"] for t in types if isinstance(t, dict) and "type_id" in t]
        return self._types

    def _search(self, name: str, limit_sources: int, per_source: int) -> list:
        params = (per_source, limit_sources, [5], self._type_ids(), name, -1.0, -1.0, -1.0, [], -1.0, -1.0, -1.0,
                  -1.0, -1.0, -1.0, -361.0, -361.0, "date_observed", True, False, 0, "", True, -1.0, -1.0)
        result = self._call("XML-RPC interface", lambda base: self._xmlrpc(base, "sourcecat.searchMeasurements103",
                                                                           params))
        if not isinstance(result, list):
            raise CatalogueError(f"searchMeasurements103 for {name!r} answered {type(result).__name__}, not a list")
        return result

    def history(self, name: str) -> Source:
        """Every ALMA measurement of the source called *name*; :class:`UnknownSource` with close names if none."""
        key = _names.normalise(name)
        rows = self._search(key, 5, MAX_MEASUREMENTS)  # the catalogue lists short J-names as aliases
        if not rows:
            # names sharing the first characters (for a J-name: the same hour of right ascension)
            prefix = (key[:3] if _names.short_jname(key) or key.startswith("J") else key[:2]) + "%"
            near = self._search(prefix, 50, 1)
            known = {n.get("source_name", "") for m in near for n in m.get("names", []) if isinstance(n, dict)}
            raise UnknownSource(name, _names.close_names(name, known))
        return _source_from_structs(name, rows)

    def catalogue(self, names) -> Catalogue:
        """A :class:`Catalogue` of the named sources' histories, fetched in parallel; unknown names are skipped."""
        unique = list(dict.fromkeys(names))
        cat = Catalogue(origin=f"{self.bases[0]}/sourcecat/xmlrpc")

        def one(name):
            try:
                return self.history(name)
            except UnknownSource as exc:
                log.warn(str(exc))
                return exc
            finally:
                bar.update(1)
        with log.progress(total=len(unique), desc="catalogue histories", unit=" sources") as bar, \
                ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(unique)))) as pool:
            for result in pool.map(one, unique):
                if isinstance(result, Source):
                    cat.add(result)
                else:
                    cat.unknown[result.name] = result
        return cat


def _null(value):
    if value is None or value == "" or value == "null":
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return math.nan if value >= NULL_AS_FLOAT or not math.isfinite(value) else value


def _source_from_structs(query: str, rows: list) -> Source:
    """One :class:`Source` from searchMeasurements103 structs (the source whose names match *query*)."""
    keys = _names.keys(query)
    by_source: dict = {}
    for m in rows:
        if not isinstance(m, dict):
            continue
        names = [n.get("source_name", "") for n in m.get("names", []) if isinstance(n, dict)]
        sid = m.get("source_id", names[0] if names else "")
        by_source.setdefault(sid, (names, []))[1].append(m)
    # the source with an exact name match, else the first one the catalogue listed
    chosen = next((v for v in by_source.values() if any(keys & _names.keys(n) for n in v[0])),
                  next(iter(by_source.values())))
    names, measurements = chosen
    official = next((n for n in names if _names.short_jname(n)), names[0] if names else query)
    day, freq, flux, error, ingested = [], [], [], [], []
    for m in measurements:
        try:
            d = to_mjd(str(m.get("date_observed", "")).replace(" ", "T")[:19])
        except ValueError:
            continue
        day.append(d)
        freq.append(_null(m.get("frequency")))
        flux.append(_null(m.get("flux")))
        error.append(_null(m.get("flux_uncertainty")))
        try:
            ingested.append(to_mjd(str(m.get("date_created", "")).replace(" ", "T")[:19]))
        except ValueError:
            ingested.append(math.nan)
    return Source.from_arrays(official, [n for n in names if n != official], np.array(day), np.array(freq),
                              np.array(flux), np.array(error), None, np.array(ingested))
