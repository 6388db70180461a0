"""Components for model images: from task parameters, from a CSV/ECSV table, or from a ``.cl``.

A :class:`Component` is checked when it is made (units, shapes, sizes) so a
mistake is reported against the parameter and component it came from, not
deep inside the componentlist tool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from almatools.errors import TaskParameterError

__all__ = ["Component", "from_parameters", "from_table", "from_componentlist", "to_componentlist",
           "to_componentlist_record"]

TASK = "cl2image"
SHAPES = {"point": "point", "gaussian": "Gaussian", "disk": "disk"}


@dataclass
class Component:
    """One sky component; angles in radians, flux in Jy, frequency in Hz."""

    ra: float
    dec: float
    flux: tuple[float, float, float, float]  # I, Q, U, V in Jy at the reference frequency
    freq_hz: float
    shape: str = "point"
    major: float = 0.0
    minor: float = 0.0
    pa_deg: float = 0.0
    index: float = 0.0
    label: str = ""
    texts: dict = field(default_factory=dict)  # the quantities as given, passed to CASA unchanged
    frame: str = "J2000"  # of ra, dec

    def flux_at(self, freq_hz: float) -> float:
        """Stokes I at *freq_hz* (S ∝ ν^α about the reference frequency)."""
        return self.flux[0] * (freq_hz / self.freq_hz) ** self.index


_TOOLS: dict = {}


def _tool(name: str):
    """One quanta or measures tool per process for parsing (making a tool per value costs more than
    parsing it); used only for conversions that keep no state."""
    if name not in _TOOLS:
        from almatools.casaenv import casatools
        _TOOLS[name] = getattr(casatools(), name)()
    return _TOOLS[name]


def _whose(which: int | None) -> str:
    """The start of a refusal: which component it is about (None: a parameter of the grid or beam)."""
    return "" if which is None else f"component {which}: "


def _q(param: str, text, unit: str, which: int | None = None) -> float:
    """A finite CASA quantity string (or a number already in *unit*) in *unit*, parsed by CASA's
    quanta so the values are the very doubles the toolkit would use."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        qa = _tool("quanta")
        try:
            q = qa.quantity(str(text).replace(" ", ""))
        except RuntimeError:
            q = None
        if not q or not q.get("unit") or not qa.compare(q, qa.quantity(f"1{unit}")):
            raise TaskParameterError(TASK, param, text, f"{_whose(which)}must be a quantity in {unit} "
                                     "or a compatible unit, e.g. '0.5arcsec', '230GHz', '30deg'")
        value = float(qa.convert(q, unit)["value"])
    if not math.isfinite(value) or abs(value) >= 1e300:  # CASA reads '1e400GHz' as the largest double
        raise TaskParameterError(TASK, param, text, f"{_whose(which)}must be a finite quantity")
    return value


def _direction(param: str, text: str, which: int | None = None) -> tuple[float, float]:
    """'J2000 10h00m00.0s -30d00m00.0s' (or degrees) → (ra, dec) radians, parsed by CASA's measures."""
    parts = str(text).split()
    if len(parts) == 2:
        parts = ["J2000"] + parts
    if len(parts) != 3 or parts[0].upper() != "J2000":
        raise TaskParameterError(TASK, param, text, f"{_whose(which)}give 'J2000 <ra> <dec>'")
    try:
        d = _tool("measures").direction("J2000", parts[1], parts[2])
    except RuntimeError:
        d = {}
    if not d or not all(math.isfinite(float(d[k]["value"])) for k in ("m0", "m1")):
        raise TaskParameterError(TASK, param, text, f"{_whose(which)}not a direction such as "
                                 "'J2000 10h00m00.0s -30d00m00.0s'")
    return float(d["m0"]["value"]) % (2 * math.pi), float(d["m1"]["value"])


def _text(value) -> str:
    """A quantity as CASA reads it: '0.5 arcsec' → '0.5arcsec'."""
    return str(value).replace(" ", "")


def _per_component(name: str, values, n: int, default):
    values = list(values) if values is not None else []
    if not values:
        return [default] * n
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise TaskParameterError(TASK, name, values,
                                 f"has {len(values)} entries for {n} components (give 1 or {n})")
    return values


def _flux_tuple(value, unit_scale: float, which: int) -> tuple:
    values = list(value) if isinstance(value, (list, tuple)) else [value, 0.0, 0.0, 0.0]
    if len(values) != 4:
        raise TaskParameterError(TASK, "flux", value, f"component {which}: give I or [I, Q, U, V]")
    try:
        flux = tuple(float(v) * unit_scale for v in values)
    except (TypeError, ValueError):
        raise TaskParameterError(TASK, "flux", value, f"component {which}: flux densities must be numbers") from None
    if not all(math.isfinite(f) for f in flux):
        raise TaskParameterError(TASK, "flux", value, f"component {which}: flux densities must be finite")
    return flux


#: no component is larger than the sky: a major axis beyond half a great circle is a unit mistake
MAX_SIZE_RAD = math.pi


def make(which: int, direction, flux, fluxunit, freq, shape, major, minor, pa, index, label="") -> Component:
    """One checked component (*which* numbers it in messages)."""
    from astropy import units as u
    try:
        scale = u.Unit(fluxunit).to(u.Jy)
    except Exception:  # astropy's unit parser raises several types for hostile text
        raise TaskParameterError(TASK, "fluxunit", fluxunit, "must be a flux-density unit such as Jy or mJy") from None
    kind = SHAPES.get(str(shape).strip().lower())
    if kind is None:
        raise TaskParameterError(TASK, "shape", shape, f"component {which}: must be point, gaussian or disk")
    try:
        index = float(index)
    except (TypeError, ValueError):
        index = math.nan
    if not math.isfinite(index):
        raise TaskParameterError(TASK, "spectralindex", index, f"component {which}: must be a finite number")
    ra, dec = _direction("direction", direction, which)
    c = Component(ra, dec, _flux_tuple(flux, scale, which), _q("freq", freq, "Hz", which), kind, label=label,
                  index=index, texts={"dir": str(direction), "freq": _text(freq)})
    if kind != "point":
        c.texts.update(majoraxis=_text(major), minoraxis=_text(minor if minor not in ("", None) else major),
                       positionangle=_text(pa) if pa not in ("", None) else "0deg")
        c.major = _q("majoraxis", major, "rad", which)
        c.minor = _q("minoraxis", minor, "rad", which) if minor not in ("", None) else c.major
        c.pa_deg = _q("positionangle", pa, "deg", which) if pa not in ("", None) else 0.0
        if not (c.major > 0 and c.minor > 0):
            raise TaskParameterError(TASK, "majoraxis" if c.major <= 0 else "minoraxis", major if c.major <= 0 else minor,
                                     f"component {which}: {kind} sizes must be > 0")
        if c.minor > c.major * (1 + 1e-12):
            raise TaskParameterError(TASK, "minoraxis", minor,
                                     f"component {which}: the minor axis is larger than the major axis ({major})")
        if c.major > MAX_SIZE_RAD:
            raise TaskParameterError(TASK, "majoraxis", major, f"component {which}: larger than 180 deg")
        if abs(c.pa_deg) >= 360:  # CASA refuses angles beyond one turn; the shape repeats every 180 deg
            c.pa_deg = math.fmod(c.pa_deg, 180.0)
            c.texts["positionangle"] = f"{c.pa_deg!r}deg"
    if not c.freq_hz > 0:
        raise TaskParameterError(TASK, "freq", freq, f"component {which}: the frequency must be > 0")
    return c


def from_parameters(direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                    spectralindex) -> list[Component]:
    """Components from the task's list parameters (each of length 1 or one per component)."""
    direction = list(direction or [])
    flux = list(flux) if isinstance(flux, (list, tuple)) else ([] if flux in ("", None) else [flux])
    n = len(direction)
    if n == 0:
        if flux or list(freq or []) or list(shape or []):
            raise TaskParameterError(TASK, "direction", direction, "give one direction per component")
        return []  # no components: an empty model (the grid must then be given in full)
    if len(flux) not in (1, n):
        raise TaskParameterError(TASK, "flux", flux, f"has {len(flux)} entries for {n} directions (give 1 or {n})")
    cols = [_per_component("flux", flux, n, 1.0), _per_component("freq", freq, n, None),
            _per_component("shape", shape, n, "point"), _per_component("majoraxis", majoraxis, n, ""),
            _per_component("minoraxis", minoraxis, n, ""), _per_component("positionangle", positionangle, n, ""),
            _per_component("spectralindex", spectralindex, n, 0.0)]
    if cols[1][0] is None:
        raise TaskParameterError(TASK, "freq", freq, "give the components' reference frequency, e.g. '230GHz'")
    return [make(i, direction[i], *[c[i] for c in cols[:1]], fluxunit, *[c[i] for c in cols[1:]])
            for i in range(n)]


def from_table(path: Path, fluxunit: str) -> list[Component]:
    """Components from a CSV or ECSV table with columns named like the task parameters.

    Required: ``direction`` (or ``ra`` and ``dec`` in degrees or with units),
    ``flux``, ``freq``; optional ``shape``, ``majoraxis``, ``minoraxis``,
    ``positionangle``, ``spectralindex``, ``label``.  Numeric columns take their
    unit from the table (ECSV) or are read as Jy, Hz, arcsec and deg.
    """
    from astropy import units as u
    from astropy.table import Table
    try:
        table = Table.read(path, format="ascii.ecsv" if path.suffix.lower() == ".ecsv" else "ascii.csv")
    except Exception as exc:  # astropy raises many types for malformed tables
        raise TaskParameterError(TASK, "complist", str(path), f"cannot be read as a CSV/ECSV table: {exc}") from None
    names = {c.lower(): c for c in table.colnames}
    missing = [c for c in ("flux", "freq") if c not in names]
    if "direction" not in names and not ("ra" in names and "dec" in names):
        missing.append("direction (or ra and dec)")
    if missing:
        raise TaskParameterError(TASK, "complist", str(path), f"lacks the column(s) {', '.join(missing)}")

    def cell(row, name, default_unit, default=""):
        if name not in names:
            return default
        col = table[names[name]]
        value = row[names[name]]
        if col.unit is not None:
            if default_unit is not None:
                try:  # astropy knows units CASA's quanta does not (hourangle, ...); CASA reads the result
                    return f"{float((value * col.unit).to_value(default_unit))!r} {default_unit}"
                except (u.UnitsError, ValueError, TypeError):
                    pass  # not convertible: CASA refuses it below, naming the value and its unit
            return f"{value} {col.unit.to_string()}"
        if default_unit is None:
            return value
        if isinstance(value, str):  # a text column (numbers mixed with quantities): a bare number takes the unit too
            try:
                float(value)
            except ValueError:
                return value
        return f"{value} {default_unit}"

    comps = []
    for i, row in enumerate(table):
        if "direction" in names:
            direction = str(row[names["direction"]])
        else:
            ra, dec = (_q(k, cell(row, k, "deg"), "deg", i) for k in ("ra", "dec"))
            direction = f"J2000 {ra!r}deg {dec!r}deg"
        flux = _q("flux", cell(row, "flux", fluxunit), "Jy", i)
        comps.append(make(i, direction, flux, "Jy", cell(row, "freq", "Hz"), cell(row, "shape", None, "point"),
                          cell(row, "majoraxis", "arcsec"), cell(row, "minoraxis", "arcsec"),
                          cell(row, "positionangle", "deg"), float(cell(row, "spectralindex", None, 0.0) or 0.0),
                          str(cell(row, "label", None, ""))))
    return comps


def from_componentlist(path: Path) -> list[Component]:
    """Components of an existing componentlist (``.cl``) directory, checked like the parameters."""
    from almatools.casaenv import casatools
    ct = casatools()
    cl, qa = ct.componentlist(), ct.quanta()
    comps = []
    try:
        try:
            cl.open(str(path))
        except RuntimeError as exc:
            raise TaskParameterError(TASK, "complist", str(path),
                                     f"cannot be opened as a componentlist ({str(exc).strip()})") from None
        for i in range(cl.length()):
            d = cl.getrefdir(i)
            shape = cl.getshape(i)
            spectrum = cl.getspectrum(i)
            kind = SHAPES.get(cl.shapetype(i).lower())
            if kind is None:
                raise TaskParameterError(TASK, "complist", str(path),
                                         f"component {i} has shape {cl.shapetype(i)!r} (point, Gaussian, disk only)")
            if spectrum["type"] not in ("Constant", "Spectral Index"):
                raise TaskParameterError(TASK, "complist", str(path), f"component {i} has a {spectrum['type']!r} "
                                         "spectrum (constant and spectral index only)")
            jy = float(qa.convert(qa.quantity(1.0, cl.getfluxunit(i)), "Jy")["value"])  # values are in its unit
            c = Component(float(d["m0"]["value"]), float(d["m1"]["value"]),
                          tuple(float(f) * jy for f in cl.getfluxvalue(i)),
                          float(qa.convert(spectrum["frequency"]["m0"], "Hz")["value"]), kind,
                          index=float(np.atleast_1d(spectrum["index"])[0]) if spectrum["type"] == "Spectral Index" else 0.0,
                          label=cl.getlabel(i), frame=str(d.get("refer", "J2000")))
            if kind != "point":
                c.major, c.minor = (float(qa.convert(shape[k], "rad")["value"]) for k in ("majoraxis", "minoraxis"))
                c.pa_deg = float(qa.convert(shape["positionangle"], "deg")["value"])
            numbers = [c.ra, c.dec, c.freq_hz, c.index, c.major, c.minor, c.pa_deg, *c.flux]
            if not all(math.isfinite(v) for v in numbers) or not c.freq_hz > 0 or \
                    (kind != "point" and not 0 < c.minor <= c.major <= MAX_SIZE_RAD):
                raise TaskParameterError(TASK, "complist", str(path), f"component {i} has impossible values "
                                         f"(flux {c.flux}, frequency {c.freq_hz} Hz, index {c.index}, axes "
                                         f"{c.major}, {c.minor} rad)")
            comps.append(c)
    finally:
        cl.done()
    return comps


def _add(cl, me, c: Component, frame: str, unit_flux: bool = False) -> None:
    """Add *c* to the componentlist tool *cl*: its quantities as given, reference frequency in *frame*.
    With *unit_flux* only its shape counts: flux 1 Jy in every Stokes parameter, flat spectrum."""
    kw = {}
    if c.shape != "point":
        kw = {k: c.texts.get(k, v) for k, v in (("majoraxis", f"{c.major!r}rad"), ("minoraxis", f"{c.minor!r}rad"),
                                                ("positionangle", f"{c.pa_deg!r}deg"))}
    direction = c.texts.get("dir") or f"{c.frame} {c.ra!r}rad {c.dec!r}rad"
    if len(direction.split()) == 2:
        direction = "J2000 " + direction
    cl.addcomponent(flux=[1.0] * 4 if unit_flux else list(c.flux), fluxunit="Jy", polarization="Stokes",
                    dir=direction, shape=c.shape, freq=me.frequency(frame, c.texts.get("freq") or f"{c.freq_hz!r}Hz"),
                    spectrumtype="spectral index" if c.index and not unit_flux else "constant",
                    index=0.0 if unit_flux else c.index, label=c.label, **kw)


def to_componentlist(components: list[Component], path: Path, frame: str = "LSRK") -> None:
    """Write the components as a componentlist at *path* (reference frequencies in *frame*)."""
    from almatools.casaenv import casatools
    ct = casatools()
    cl, me = ct.componentlist(), ct.measures()
    try:
        for c in components:
            _add(cl, me, c, frame)
        cl.rename(str(path))
    finally:
        cl.done()  # writes the list; close() would too, but always logs a WARN saying so
        me.done()


def to_componentlist_record(ct, components: list[Component], frame: str, unit_flux: bool = False) -> dict:
    """The components as the record ``ia.modify`` takes, without writing a componentlist."""
    cl, me = ct.componentlist(), ct.measures()
    try:
        for c in components:
            _add(cl, me, c, frame, unit_flux)
        return cl.torecord()
    finally:
        cl.done()
        me.done()
