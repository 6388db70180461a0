"""The image grid of a model: explicit, from a template image or MS field, or derived from the components.

CASA conventions throughout: axes RA, Dec, Stokes, Frequency; the reference
pixel of the direction axes is (nx // 2, ny // 2); RA increases to the left
(negative x increment) unless the caller gives both increments explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from almatools import log
from almatools.errors import TaskParameterError

from .components import TASK, Component, _direction, _q

__all__ = ["Grid", "grid_from_parameters", "grid_from_template", "good_size", "rad_per", "channel_frequencies"]

ARCSEC = math.pi / 648000


@dataclass
class Grid:
    nx: int
    ny: int
    dx: float  # radians, signed
    dy: float
    ra0: float
    dec0: float
    freqs0_hz: float
    width_hz: float
    nchan: int
    stokes: list
    frame: str = "LSRK"
    template_csys: dict | None = None  # a template's coordinate system record, used as is
    channel_freqs: list | None = None  # a template's channel frequencies (Hz)

    @property
    def shape(self) -> list[int]:
        return [self.nx, self.ny, len(self.stokes), self.nchan]

    def frequencies(self):
        if self.channel_freqs is not None:
            return list(self.channel_freqs)
        return [self.freqs0_hz + k * self.width_hz for k in range(self.nchan)]

    def coordsys_record(self, ct) -> dict:
        if self.template_csys is not None:
            return self.template_csys
        cs0 = ct.coordsys()
        cs = cs0.newcoordsys(direction=True, spectral=True, stokes=list(self.stokes))
        try:
            cs.setunits(["rad", "rad", "", "Hz"])
            cs.setincrement([self.dx, self.dy], "direction")
            cs.setreferencevalue([self.ra0, self.dec0], type="direction")
            cs.setreferencepixel([self.nx // 2, self.ny // 2], "direction")
            cs.setreferencecode(self.frame, type="spectral", adjust=False)
            cs.setreferencevalue(f"{self.freqs0_hz}Hz", "spectral")
            cs.setreferencepixel(0, "spectral")
            cs.setincrement(f"{self.width_hz}Hz", "spectral")
            cs.setrestfrequency(f"{self.freqs0_hz}Hz")  # not HI, newcoordsys's default
            return cs.torecord()
        finally:
            cs.done()
            cs0.done()


_RAD_PER = {"rad": 1.0, "deg": math.pi / 180, "'": math.pi / 10800, "arcmin": math.pi / 10800,
            "arcsec": ARCSEC, '"': ARCSEC}


def rad_per(unit: str) -> float:
    """Radians per CASA angle unit (coordsys writes arcmin and arcsec also as ' and ")."""
    return _RAD_PER[unit]


def channel_frequencies(cs, axis: int, n: int) -> list[float]:
    """Frequency (Hz) of the first *n* pixels along spectral pixel *axis* of coordsys *cs* (one call)."""
    import numpy as np
    pixels = np.tile(np.asarray(cs.referencepixel()["numeric"], float)[:, None], (1, n))
    pixels[axis] = np.arange(n)
    world = cs.toworldmany(pixels)["numeric"][axis]
    scale = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}[cs.units()[axis]]
    return [float(f) * scale for f in world]


def good_size(n: int) -> int:
    """The smallest even n' >= n whose factors are 2, 3 and 5 only (fast FFTs for later imaging)."""
    n = max(int(math.ceil(n)), 8)
    while True:
        if n % 2 == 0:
            m = n
            for p in (2, 3, 5):
                while m % p == 0:
                    m //= p
            if m == 1:
                return n
        n += 1


def _offsets(components: list[Component], ra0: float, dec0: float):
    """Orthographic (SIN) offsets of the components from (ra0, dec0), radians."""
    for c in components:
        x = math.cos(c.dec) * math.sin(c.ra - ra0)
        y = math.sin(c.dec) * math.cos(dec0) - math.cos(c.dec) * math.sin(dec0) * math.cos(c.ra - ra0)
        yield x, y


#: a derived image side beyond this many pixels is a mistake (a component on the far side of the sky)
MAX_DERIVED_PIXELS = 2**16


def grid_from_parameters(components: list[Component], imsize, cell, phasecenter, nchan, start, width, stokes,
                         outframe, beam_minor_rad: float | None, beam_major_rad: float | None) -> Grid:
    """A grid from the explicit parameters, each empty one derived from the components."""
    if not components:
        missing = [name for name, value in (("phasecenter", phasecenter), ("imsize", list(imsize or [])),
                                            ("cell", list(cell or [])), ("start", start)) if not value]
        if missing:
            raise TaskParameterError(TASK, missing[0], "", "there are no components to derive the grid from: "
                                     f"give {', '.join(missing)} for an empty model (or give components)")
    if phasecenter:
        ra0, dec0 = _direction("phasecenter", phasecenter)
    else:  # the mean direction of the components (as unit vectors: safe across RA = 0)
        vx = sum(math.cos(c.dec) * math.cos(c.ra) for c in components)
        vy = sum(math.cos(c.dec) * math.sin(c.ra) for c in components)
        vz = sum(math.sin(c.dec) for c in components)
        ra0, dec0 = math.atan2(vy, vx) % (2 * math.pi), math.atan2(vz, math.hypot(vx, vy))
    if list(cell or []):
        dx, dy = _increments(cell)
    else:
        sizes = [c.minor for c in components if c.shape != "point"] + ([beam_minor_rad] if beam_minor_rad else [])
        step = min(sizes) / 5 if sizes else 0.1 * ARCSEC
        dx, dy = -step, step
        log.info(f"cell not given: {step / ARCSEC:.4g} arcsec (a fifth of the smallest component or beam)")
    if list(imsize or []):
        nx, ny = _size(imsize)
    else:
        offs = list(_offsets(components, ra0, dec0))
        extent = max(max(abs(x), abs(y)) for x, y in offs)
        extent += 3 * max([c.major for c in components] + [beam_major_rad or 0.0])
        need = 2 * extent / min(abs(dx), abs(dy)) + 16
        if not need <= MAX_DERIVED_PIXELS:
            raise TaskParameterError(TASK, "imsize", imsize, f"holding every component would need {need:.3g} pixels "
                                     f"a side (more than {MAX_DERIVED_PIXELS}): give imsize, cell and phasecenter")
        nx = ny = good_size(need)
        log.info(f"imsize not given: {nx} x {ny} pixels to hold every component")
    _check_projection(nx, ny, dx, dy, imsize, cell)
    if nchan < 1:
        raise TaskParameterError(TASK, "nchan", nchan, "must be at least 1")
    f0 = _q("start", start, "Hz") if start else components[0].freq_hz
    df = _q("width", width, "Hz") if width else f0 * 1e-3
    if df == 0:
        raise TaskParameterError(TASK, "width", width, "must not be zero")
    last = f0 + (nchan - 1) * df
    if not (f0 > 0 and last > 0 and math.isfinite(last)):
        raise TaskParameterError(TASK, "start" if not f0 > 0 else "width", start if not f0 > 0 else width,
                                 f"gives channel frequencies from {f0:.6g} to {last:.6g} Hz: all must be > 0")
    return Grid(nx, ny, dx, dy, ra0, dec0, f0, df, int(nchan), _stokes(stokes), outframe)


def _increments(cell) -> tuple[float, float]:
    """(dx, dy) in radians from *cell*: one size (RA growing to the left, as CASA's tclean) or both increments."""
    cells = list(cell)
    if len(cells) > 2:
        raise TaskParameterError(TASK, "cell", cell, "give one size, or the x and y increments")
    values = [_q("cell", c, "rad") for c in cells]
    if any(v == 0 for v in values):
        raise TaskParameterError(TASK, "cell", cell, "pixel sizes must not be zero")
    return (-abs(values[0]), abs(values[0])) if len(values) == 1 else (values[0], values[1])


def _size(imsize) -> tuple[int, int]:
    """(nx, ny) from *imsize*: [n] for a square image or [nx, ny]."""
    sizes = list(imsize)
    if len(sizes) > 2:
        raise TaskParameterError(TASK, "imsize", imsize, "give [n] or [nx, ny]")
    nx, ny = (sizes[0], sizes[0]) if len(sizes) == 1 else sizes
    if nx <= 0 or ny <= 0:
        raise TaskParameterError(TASK, "imsize", imsize, "must be positive")
    return int(nx), int(ny)


def _check_projection(nx: int, ny: int, dx: float, dy: float, imsize, cell) -> None:
    """Every pixel must lie on the SIN projection's hemisphere (direction cosines below 1)."""
    half_x, half_y = (nx / 2 + 1) * abs(dx), (ny / 2 + 1) * abs(dy)
    if not math.hypot(half_x, half_y) < 1:
        raise TaskParameterError(TASK, "cell", cell, f"with imsize {[nx, ny]} the image would span "
                                 f"{math.degrees(2 * half_x):.4g} x {math.degrees(2 * half_y):.4g} deg: more than the "
                                 "SIN projection holds (a hemisphere)")


def _stokes(stokes: str) -> list[str]:
    s = stokes.strip().upper()
    if s not in ("I", "IQUV"):
        raise TaskParameterError(TASK, "stokes", stokes, "must be 'I' or 'IQUV'")
    return list(s)


def grid_from_template(template: Path, field: str, spw: str, stokes: str, imsize, cell) -> Grid:
    """The grid of a template CASA/FITS image, or the phase centre and LSRK channels of an MS field and spw."""
    from almatools.casaenv import casatools
    ct = casatools()
    if (template / "FIELD").exists() and (template / "SPECTRAL_WINDOW").exists():
        return _grid_from_ms(ct, template, field, spw, stokes, imsize, cell)
    ia = ct.image()
    try:
        ia.open(str(template))
        shape = [int(n) for n in ia.shape()]
        cs = ia.coordsys()
        names = cs.names()
        if names[:2] != ["Right Ascension", "Declination"]:
            raise TaskParameterError(TASK, "template", str(template), "needs RA and Dec as its first two axes")
        rec = cs.torecord()
        spec = names.index("Frequency") if "Frequency" in names else None
        stk = names.index("Stokes") if "Stokes" in names else None
        inc = cs.increment(type="direction", format="n")["numeric"]
        units = cs.units(type="direction")
        ref = cs.referencevalue(type="direction", format="n")["numeric"]
        freqs = channel_frequencies(cs, spec, shape[spec]) if spec is not None else []
        stokes_names = list(cs.stokes()) if stk is not None else []
        frame = cs.referencecode("spectral")[0] if spec is not None else "LSRK"
        cs.done()
    except RuntimeError as exc:
        raise TaskParameterError(TASK, "template", str(template), f"cannot be opened as an image: {exc}") from None
    finally:
        ia.done()
    if spec is None or stk is None or names != ["Right Ascension", "Declination", "Stokes", "Frequency"]:
        raise TaskParameterError(TASK, "template", str(template),
                                 f"has axes {names}; a template needs RA, Dec, Stokes, Frequency in that order")
    unknown = [s for s in stokes_names if s not in ("I", "Q", "U", "V")]
    if unknown:
        raise TaskParameterError(TASK, "template", str(template), f"has Stokes planes {stokes_names}; "
                                 "component models have I, Q, U and V only")
    return Grid(shape[0], shape[1], inc[0] * rad_per(units[0]), inc[1] * rad_per(units[1]),
                ref[0] * rad_per(units[0]), ref[1] * rad_per(units[1]), math.nan, math.nan, shape[3],
                stokes_names, frame=frame, template_csys=rec, channel_freqs=freqs)


def _grid_from_ms(ct, vis: Path, field: str, spw: str, stokes: str, imsize, cell) -> Grid:
    """Phase centre of *field* and the LSRK channels of *spw* (via ms.cvelfreqs) from an MS."""
    tb, ms = ct.table(), ct.msmetadata()
    try:
        ms.open(str(vis))
        try:  # msmetadata raises for an unknown name
            fields = ms.fieldsforname(field) if field and not field.isdigit() else [int(field or 0)]
        except RuntimeError:
            fields = []
        if len(fields) == 0 or not int(fields[0]) < ms.nfields():
            raise TaskParameterError(TASK, "field", field, f"is not a field of {vis}")
        spw_id = int(spw or 0)
        if not 0 <= spw_id < ms.nspw():
            raise TaskParameterError(TASK, "spw", spw, f"{vis} has {ms.nspw()} spws")
        pc = ms.phasecenter(int(fields[0]))
        ms.done()
        mst = ct.ms()
        try:
            mst.open(str(vis))
            freqs = mst.cvelfreqs(spwids=[spw_id], fieldids=[int(fields[0])], outframe="LSRK")
        finally:
            mst.done()
    finally:
        ms.done()
        tb.done()
    if not (list(imsize or []) and list(cell or [])):
        raise TaskParameterError(TASK, "imsize", imsize, "with an MS template, give imsize and cell")
    (dx, dy), (nx, ny) = _increments(cell), _size(imsize)  # as without a template
    _check_projection(nx, ny, dx, dy, imsize, cell)
    width = float(freqs[1] - freqs[0]) if len(freqs) > 1 else 1e6
    return Grid(nx, ny, dx, dy, pc["m0"]["value"] % (2 * math.pi), pc["m1"]["value"], float(freqs[0]), width,
                len(freqs), _stokes(stokes), "LSRK")
