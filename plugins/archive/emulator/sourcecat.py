"""The ALMA Calibrator Source Catalogue, emulated: its flux service and its measurement history, over HTTP.

Served by a small threaded HTTP server on loopback (started by :class:`ArchiveEmulator`
behind its nginx, or on its own for tests and the demo):

* ``GET /sc/flux?NAME=&DATE=&FREQUENCY=[&WEIGHTED=&RESULT=&VERBOSE=&CATALOGUE=]`` — the
  flux service (DOMAIN.md §6.2): a one-row VOTable in the current 14-column layout
  (StatusCode, SourceName, Frequency, Date, FluxDensity, FluxDensityError,
  SpectralIndex, SpectralIndexError, Curvature, CurvatureError, DataConditions,
  Nearest Measurement Date, Verbose, Version); ``GET /legacy/sc/flux`` answers in the
  older 13-column layout (Clarification after StatusCode, no curvature).  A missing or
  malformed parameter is HTTP 400; an unknown source is StatusCode 4 with
  FluxDensity −1 and SpectralIndex −1000, as the pipeline expects invalid answers.
* ``POST /sourcecat/xmlrpc`` — the catalogue's XML-RPC interface that analysisUtils
  uses (``sourcecat.listCatalogues``, ``sourcecat.listTypes``,
  ``sourcecat.searchMeasurements103``): the measurement history, one struct per
  measurement with the catalogue's field names and its null (1.797e308).

The flux service's algorithm here is the emulator's own (a time-weighted power-law fit
to the measurements within a window around the date, widened when one band is missing,
with the status codes of §6.2); it is *not* analysisUtils' algorithm, so the two
methods calflux offers stay independent.
"""

from __future__ import annotations

import math
import re
import threading
import time
import xmlrpc.server
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

import numpy as np

from .sourcecat_data import CalSource, generate

__all__ = ["SourceCatalogue", "SourceCatalogueServer", "NULL_AS_FLOAT", "VERSION"]

NULL_AS_FLOAT = 1.7976931348623157e+308
VERSION = "2026NOV-emulator"
LN10 = math.log(10.0)
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december"]
_FIELDS_14 = [("StatusCode", 'datatype="int" width="1"'), ("SourceName", 'datatype="char" arraysize="16"'),
              ("Frequency", 'unit="Hz" datatype="double" width="10"'), ("Date", 'datatype="char" arraysize="32"'),
              ("FluxDensity", 'unit="Jansky" datatype="double" width="10"'),
              ("FluxDensityError", 'unit="Jansky" datatype="double" width="10"'),
              ("SpectralIndex", 'unit="Unitless" datatype="double" width="10"'),
              ("SpectralIndexError", 'unit="Unitless" datatype="double" width="10"'),
              ("Curvature", 'unit="Unitless" datatype="double" width="10"'),
              ("CurvatureError", 'unit="Unitless" datatype="double" width="10"'),
              ("DataConditions", 'datatype="int" width="10"'),
              ("Nearest Measurement Date", 'datatype="float" width="10"'),
              ("Verbose", 'datatype="char" arraysize="256000"'), ("Version", 'datatype="char" arraysize="20"')]
_FIELDS_13 = [_FIELDS_14[0], ("Clarification", 'datatype="char" arraysize="*"')] + \
    [f for f in _FIELDS_14[1:] if f[0] not in ("Curvature", "CurvatureError")]


def _key(name: str) -> str:
    key = re.sub(r"\s+", "", name).upper()
    return key[3:] if key.startswith("QSO") and len(key) > 3 else key


def parse_service_date(text: str) -> int:
    """The DATE forms users send: ``27-March-2013``, ``10-Dec-2021``, ``2013-03-27``; → MJD day."""
    text = text.strip()
    m = re.fullmatch(r"(\d{1,2})-([A-Za-z]+)-(\d{4})", text)
    if m:
        word = m.group(2).lower()
        month = next((i for i, n in enumerate(_MONTHS, 1) if n.startswith(word) and len(word) >= 3), 0)
        if not month:
            raise ValueError(f"unknown month {m.group(2)!r}")
        return (date(int(m.group(3)), month, int(m.group(1))) - date(1858, 11, 17)).days
    m = re.fullmatch(r"(\d{4})-?(\d{2})-?(\d{2})", text)
    if m:
        return (date(int(m.group(1)), int(m.group(2)), int(m.group(3))) - date(1858, 11, 17)).days
    raise ValueError(f"DATE {text!r} is not DD-Month-YYYY")


class SourceCatalogue:
    """The generated catalogue, with the flux service's and the XML-RPC interface's logic."""

    def __init__(self, sources: list[CalSource] | None = None):
        self.sources = sources if sources is not None else generate()
        self.by_key: dict[str, CalSource] = {}
        for s in self.sources:
            for alias in [s.name, *s.aliases]:
                self.by_key.setdefault(_key(alias), s)
        self._ids = {s.name: i for i, s in enumerate(self.sources, 1)}
        self._arrays = {s.name: {k: np.array([m[k] for m in s.measurements], dtype=float)
                                 for k in ("day", "freq", "flux", "error")} for s in self.sources}

    def lookup(self, name: str) -> CalSource | None:
        return self.by_key.get(_key(name))

    # ------------------------------------------------------------------------------- flux service
    def flux(self, name: str, day: int, freq_hz: float, weighted: bool = True) -> dict:
        """The flux service's answer (the 14 values and a clarification) for *name* at *day* and *freq_hz*."""
        answer = dict(StatusCode=4, Clarification="", SourceName=name, Frequency=freq_hz, Date="",
                      FluxDensity=-1.0, FluxDensityError=-1.0, SpectralIndex=-1000.0, SpectralIndexError=-1000.0,
                      Curvature=0.0, CurvatureError=0.0, DataConditions="000", NearestMeasurementDate=-1.0,
                      Verbose="", Version=VERSION)
        d = date(1858, 11, 17).toordinal() + day
        answer["Date"] = f"{date.fromordinal(d).day:02d}-{_MONTHS[date.fromordinal(d).month - 1].capitalize()}-" \
                         f"{date.fromordinal(d).year}"
        src = self.lookup(name)
        if src is None:
            answer["Verbose"] = answer["Clarification"] = f"Source {name} not found in the catalogue"
            return answer
        a = self._arrays[src.name]
        valid = a["flux"] > 0
        if not valid.any():
            answer["Verbose"] = answer["Clarification"] = f"No valid measurement of {src.name}"
            return answer
        day_v, freq_v, flux_v = a["day"][valid], a["freq"][valid], a["flux"][valid]
        err_v = np.where(np.isfinite(a["error"][valid]) & (a["error"][valid] > 0), a["error"][valid], 0.1 * flux_v)
        bands = np.where(freq_v < 150e9, 3, np.where(freq_v < 275e9, 6, 7))
        dt = day - day_v
        windows = [(14, 0), (60, 2), (365, 2)] if src.grid else [(90, 1), (365, 2)]
        for width, status in windows:
            sel = np.abs(dt) <= width
            if len(set(bands[sel])) >= 2 and (bands[sel] == 3).any():
                return self._fit(answer, src, sel, day_v, freq_v, flux_v, err_v, bands, dt, width, status,
                                 freq_hz, weighted)
        nearest = int(np.argmin(np.abs(dt)))  # fallback: the nearest measurement, default spectral index
        flux = flux_v[nearest] * (freq_hz / freq_v[nearest]) ** -0.7
        answer.update(StatusCode=3, FluxDensity=round(float(flux), 6),
                      FluxDensityError=round(float(flux * math.hypot(err_v[nearest] / flux_v[nearest],
                                                                     0.2 * math.log(freq_hz / freq_v[nearest]))), 6),
                      SpectralIndex=-0.7, SpectralIndexError=0.2, DataConditions=f"1{0}{0}",
                      NearestMeasurementDate=float(dt[nearest]),
                      Clarification="Fallback algorithm used: one band only, default spectral index -0.7",
                      Verbose=f"Fallback: nearest measurement {flux_v[nearest]:.3f} Jy at "
                              f"{freq_v[nearest] / 1e9:.2f} GHz, {dt[nearest]:+.0f} days, spectral index -0.7")
        return answer

    def _fit(self, answer, src, sel, day_v, freq_v, flux_v, err_v, bands, dt, width, status, freq_hz, weighted):
        x = np.log10(freq_v[sel] / 1e9)
        y = np.log10(flux_v[sel])
        w = (flux_v[sel] * LN10 / err_v[sel]) ** 2
        if weighted:
            w = w * np.exp(-np.abs(dt[sel]) / width)
        x0 = np.log10(freq_hz / 1e9)
        xc = x - x0  # intercept at the requested frequency: its variance is the flux's
        sw, swx, swxx, swy, swxy = w.sum(), (w * xc).sum(), (w * xc * xc).sum(), (w * y).sum(), (w * xc * y).sum()
        det = sw * swxx - swx ** 2
        b = (swxx * swy - swx * swxy) / det
        alpha = (sw * swxy - swx * swy) / det
        flux = 10 ** b
        flux_err = flux * LN10 * math.sqrt(swxx / det)
        nearest = int(np.argmin(np.abs(dt)))
        before, after = (dt[sel] >= 0).any(), (dt[sel] <= 0).any()
        n = int(sel.sum())
        clar = "" if status < 2 else f"Flux densities outside the window were required ({width} days)"
        answer.update(StatusCode=status, Clarification=clar, SourceName=src.name, FluxDensity=round(float(flux), 6),
                      FluxDensityError=round(float(flux_err), 6), SpectralIndex=round(float(alpha), 6),
                      SpectralIndexError=round(float(math.sqrt(sw / det)), 6),
                      DataConditions=f"{min(n, 9)}{1 if len(set(bands[sel])) >= 2 else 0}{1 if before and after else 0}",
                      NearestMeasurementDate=float(dt[nearest]),
                      Verbose=f"{n} measurements within {width} days in bands "
                              f"{','.join(str(b) for b in sorted(set(bands[sel])))}; power-law fit "
                              f"{'weighted by error and time' if weighted else 'weighted by error'}")
        return answer

    # ------------------------------------------------------------------------------- XML-RPC
    def list_catalogues(self) -> list[dict]:
        return [{"catalogue_id": 1, "catalogue_name": "SMA"}, {"catalogue_id": 5, "catalogue_name": "ALMA"}]

    def list_types(self) -> list[dict]:
        return [{"type_id": 1, "type_name": "point"}, {"type_id": 25, "type_name": "grid"}]

    def search_measurements(self, sourceBandLimit, limit, catalogues, types, name, ra, dec, radius, ranges, fLower,
                            fUpper, fluxMin, fluxMax, degreeMin, degreeMax, angleMin, angleMax, sortBy, asc,
                            searchOnDate, dateCriteria, date_, onlyValid=True, uvmin=-1.0, uvmax=-1.0) -> list[dict]:
        """``sourcecat.searchMeasurements103``: measurements of sources whose names match *name* (SQL LIKE)."""
        if catalogues and 5 not in catalogues:
            return []
        pattern = re.compile("^" + ".*".join(re.escape(p) for p in _key(name or "%").split("%")) + "$")
        matched = [s for s in self.sources if any(pattern.match(_key(a)) for a in [s.name, *s.aliases])]
        if types:
            matched = [s for s in matched if (25 if s.grid else 1) in types]
        matched = matched[:max(int(limit), 0)] if limit and limit > 0 else matched
        out = []
        on_day = parse_service_date(date_) if searchOnDate and date_ else None
        for s in matched:
            rows = [m for m in s.measurements
                    if (fLower is None or fLower < 0 or m["freq"] >= fLower)
                    and (fUpper is None or fUpper < 0 or m["freq"] <= fUpper)
                    and (on_day is None or (m["day"] <= on_day if dateCriteria <= 0 else m["day"] >= on_day))]
            key = {"date_observed": lambda m: m["day"], "frequency": lambda m: m["freq"],
                   "flux": lambda m: m["flux"]}.get(sortBy, lambda m: m["day"])
            rows.sort(key=key, reverse=not asc)
            if sourceBandLimit and sourceBandLimit > 0:
                rows = rows[:int(sourceBandLimit)]
            out += [self._struct(s, m, i) for i, m in enumerate(rows)]
        return out

    def _struct(self, s: CalSource, m: dict, i: int) -> dict:
        def iso(day):
            return datetime.fromordinal(date(1858, 11, 17).toordinal() + int(day)).strftime("%Y-%m-%dT%H:%M:%S")
        null = NULL_AS_FLOAT
        return {"measurement_id": int(m["day"]) * 100 + i % 100, "source_id": self._ids[s.name],
                "catalogue_id": 5, "names": [{"source_name": a} for a in [s.name, *s.aliases]],
                "ra": s.ra, "ra_uncertainty": null, "dec": s.dec, "dec_uncertainty": null,
                "frequency": m["freq"], "flux": m["flux"],
                "flux_uncertainty": null if not math.isfinite(m["error"]) else m["error"],
                "degree": null, "degree_uncertainty": null, "angle": null, "angle_uncertainty": null,
                "uvmin": null, "uvmax": null, "fluxratio": 1.0, "date_observed": iso(m["day"]),
                "date_created": iso(m["ingested"]), "origin": m["origin"], "valid": True}


def votable(answer: dict, layout: int = 14) -> str:
    """The flux service's VOTable for *answer* in the 14- or 13-column layout."""
    fields = _FIELDS_14 if layout == 14 else _FIELDS_13
    heads = "\n".join(f'      <FIELD name="{n}" {attrs}/>' for n, attrs in fields)
    values = {**answer, "Nearest Measurement Date": answer["NearestMeasurementDate"]}
    cells = "".join(f"<TD>{escape(str(values[n]))}</TD>" if str(values[n]) != "" else "<TD/>" for n, _ in fields)
    return ('<?xml version="1.0"?>\n<VOTABLE version="1.3" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
            f'  <RESOURCE>\n    <TABLE>\n{heads}\n      <DATA><TABLEDATA>\n        <TR>{cells}</TR>\n'
            '      </TABLEDATA></DATA>\n    </TABLE>\n  </RESOURCE>\n</VOTABLE>\n')


class SourceCatalogueServer:
    """The catalogue on ``http://127.0.0.1:<port>``; ``latency`` (s) delays every answer (a distant server)."""

    MAX_BODY = 1 << 20

    def __init__(self, catalogue: SourceCatalogue | None = None, latency: float = 0.0, host: str = "127.0.0.1",
                 port: int = 0):
        self.catalogue = catalogue or SourceCatalogue()
        self.latency = latency
        self.requests: list[str] = []  # paths served, for tests
        self._lock = threading.Lock()
        dispatcher = xmlrpc.server.SimpleXMLRPCDispatcher(allow_none=True)
        cat = self.catalogue
        dispatcher.register_function(cat.list_catalogues, "sourcecat.listCatalogues")
        dispatcher.register_function(cat.list_types, "sourcecat.listTypes")
        dispatcher.register_function(cat.search_measurements, "sourcecat.searchMeasurements103")
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet: tests read server.requests instead
                pass

            def _send(self, code: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server._log(self.path)
                url = urlsplit(self.path)
                layout = 13 if url.path.startswith("/legacy/") else 14
                path = url.path[len("/legacy"):] if layout == 13 else url.path
                if path.rstrip("/") != "/sc/flux":
                    return self._send(404, f"no such page: {url.path}\n", "text/plain")
                query = {k.upper(): v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                try:
                    name, day, freq, weighted = server._flux_params(query)
                except ValueError as exc:
                    return self._send(400, f"{exc}\n", "text/plain")
                answer = server.catalogue.flux(name, day, freq, weighted)
                self._send(200, votable(answer, layout), "text/xml")

            def do_POST(self):
                server._log(self.path)
                path = urlsplit(self.path).path.replace("/legacy", "", 1)
                if path.rstrip("/") != "/sourcecat/xmlrpc":
                    return self._send(404, "no such page\n", "text/plain")
                length = int(self.headers.get("Content-Length") or 0)
                if length > server.MAX_BODY:
                    return self._send(413, "request too large\n", "text/plain")
                body = dispatcher._marshaled_dispatch(self.rfile.read(length))
                self._send(200, body.decode(), "text/xml")

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server((host, port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self._thread: threading.Thread | None = None

    def _log(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)
        if self.latency:
            time.sleep(self.latency)

    @staticmethod
    def _flux_params(q: dict) -> tuple[str, int, float, bool]:
        for key in ("NAME", "DATE", "FREQUENCY"):
            if not q.get(key, "").strip():
                raise ValueError(f"Missing parameter {key}")
        name = q["NAME"].split(";")[0].strip()
        try:
            day = parse_service_date(q["DATE"])
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        try:
            freq = float(q["FREQUENCY"])
        except ValueError:
            raise ValueError(f"FREQUENCY {q['FREQUENCY']!r} is not a number (Hz)") from None
        if not (math.isfinite(freq) and freq > 0):
            raise ValueError(f"FREQUENCY {q['FREQUENCY']!r} must be a positive frequency in Hz")
        return name, day, freq, q.get("WEIGHTED", "true").lower() != "false"

    def start(self) -> "SourceCatalogueServer":
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":  # python -m almatools.plugins.archive.emulator.sourcecat [PORT] [--write FILE.ecsv]
    import sys
    port = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0
    with SourceCatalogueServer(port=port) as srv:
        print(f"source catalogue emulator: {srv.url}/sc/flux, {srv.url}/sourcecat/xmlrpc", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
