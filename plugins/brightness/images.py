"""Read what a Jy/beam ↔ K conversion needs from CASA images and FITS files, and
convert them block by block with bounded memory.

Both formats are described by :class:`ImageInfo`: the brightness unit, each
spectral plane's frequency (from the spectral axis in the image's own frame;
velocity axes are turned into frequency with the rest frequency), the beam of
each (channel, polarization) plane (CASA per-plane beams, the FITS ``BEAMS``
table, or BMAJ/BMIN/BPA) and the pixel solid angle.  Axes may come in any
order; Stokes is optional.

FITS files are streamed: the primary header is rewritten and the data read,
converted and written one contiguous block at a time (at most
:data:`BLOCK_BYTES`), and every other HDU (the ``BEAMS`` table) is copied byte
for byte.  CASA images are copied (masks, history, beams and all) and then
converted plane by plane with ``getchunk``/``putchunk``.
"""

from __future__ import annotations

import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from almatools.io import atomic_path

from .conversion import ARCSEC

__all__ = ["ImageInfo", "read_info", "convert_fits", "convert_casa", "BLOCK_BYTES", "is_fits"]

BLOCK_BYTES = 32 * 2**20
FITS_BLOCK = 2880


@dataclass
class ImageInfo:
    """What the conversion needs to know about an image.

    :param shape: the axis lengths in the image's own order (FITS: NAXIS1 first).
    :param spectral_axis: index into *shape* of the spectral axis, or None.
    :param stokes_axis: index into *shape* of the Stokes axis, or None.
    :param freqs_hz: frequency of each spectral plane (length 1 without a spectral axis).
    :param beams: array ``[nchan, npol, 3]`` of (major, minor) in radians and PA in degrees,
        or None when the image has no beam; ``nchan``/``npol`` are 1 for a single beam.
    """

    path: Path
    format: str
    shape: tuple
    bunit: str
    spectral_axis: int | None
    stokes_axis: int | None
    freqs_hz: np.ndarray
    beams: np.ndarray | None
    pixel_sr: float
    spectral_note: str = ""
    extra: dict = field(default_factory=dict)


def is_fits(path: Path) -> bool:
    if path.is_dir():
        return False
    with open(path, "rb") as fh:
        return fh.read(30).startswith(b"SIMPLE  =")


def read_info(path: str | os.PathLike) -> ImageInfo:
    """Describe a CASA image (a directory) or a FITS file."""
    path = Path(path)
    return _read_fits_info(path) if is_fits(path) else _read_casa_info(path)


# --- FITS --------------------------------------------------------------------------------------

def _read_fits_info(path: Path) -> ImageInfo:
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_area
    with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
        header = hdul[0].header
        beams_hdu = next((h for h in hdul[1:] if h.name == "BEAMS"), None)
        table = None if beams_hdu is None else (beams_hdu.data.copy(), beams_hdu.columns)
        info = hdul.fileinfo(0)
    naxis = header.get("NAXIS", 0)
    shape = tuple(header[f"NAXIS{i}"] for i in range(1, naxis + 1))
    if not shape:
        raise ValueError(f"{path}: the primary HDU has no image data")
    ctypes = [str(header.get(f"CTYPE{i}", "")).upper() for i in range(1, naxis + 1)]
    stokes = next((i for i, c in enumerate(ctypes) if c.startswith("STOKES")), None)
    with warnings.catch_warnings():  # CASA's headers make astropy fix OBSGEO/date keywords, loudly
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    spectral = None
    freqs = np.array([math.nan])
    note = ""
    if wcs.has_spectral:
        spectral = wcs.wcs.spec
        freqs = _fits_frequencies(path, header, wcs, spectral, shape[spectral])
        note = f"{ctypes[spectral]} axis, frame {header.get('SPECSYS', 'unknown')}"
    pixel_sr = float(proj_plane_pixel_area(wcs.celestial)) * (math.pi / 180) ** 2 if wcs.has_celestial else math.nan
    beams = None
    if table is not None:
        data, cols = table
        unit = {c.name.upper(): (c.unit or "").lower() for c in cols}
        nchan = int(data["CHAN"].max()) + 1
        npol = int(data["POL"].max()) + 1
        beams = np.full((nchan, npol, 3), np.nan)
        for row in data:
            beams[row["CHAN"], row["POL"]] = [_angle_rad(row["BMAJ"], unit.get("BMAJ", "arcsec")),
                                              _angle_rad(row["BMIN"], unit.get("BMIN", "arcsec")), row["BPA"]]
    elif "BMAJ" in header and "BMIN" in header:
        beams = np.array([[[math.radians(header["BMAJ"]), math.radians(header["BMIN"]), header.get("BPA", 0.0)]]])
    return ImageInfo(path, "fits", shape, str(header.get("BUNIT", "")).strip(), spectral, stokes, freqs, beams,
                     pixel_sr, note, {"header_loc": info["hdrLoc"], "data_loc": info["datLoc"],
                                      "data_span": info["datSpan"], "bitpix": header["BITPIX"],
                                      "scaled": header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0})


def _fits_frequencies(path: Path, header, wcs, axis: int, n: int) -> np.ndarray:
    """Frequency (Hz) of each pixel along the spectral axis, in the axis's own frame.

    Pure WCS arithmetic (no frame transformation, which would need the IERS
    tables online): frequency axes as they are, velocity axes through the
    rest frequency with their Doppler convention, wavelength axes as c/λ.
    """
    from .conversion import C
    sub = wcs.sub([axis + 1])
    world = sub.all_pix2world(np.arange(n, dtype=float), 0)[0]  # SI units after astropy's unit fix
    ctype = sub.wcs.ctype[0].upper()
    if ctype.startswith("FREQ"):
        return world
    if ctype.startswith("WAVE"):
        return C / world
    rest = sub.wcs.restfrq or header.get("RESTFRQ") or header.get("RESTFREQ")
    if not rest:
        raise ValueError(f"{path}: the spectral axis {ctype} is a velocity axis and the header has no "
                         "RESTFRQ to turn it into frequency")
    beta = world / C
    if ctype.startswith("VRAD"):
        return rest * (1 - beta)
    if ctype.startswith(("VOPT", "FELO")):
        return rest / (1 + beta)
    if ctype.startswith("VELO"):
        return rest * np.sqrt((1 - beta) / (1 + beta))
    raise ValueError(f"{path}: unsupported spectral axis type {ctype}")


def _angle_rad(value, unit: str) -> float:
    scale = {"arcsec": ARCSEC, "deg": math.pi / 180, "degree": math.pi / 180, "rad": 1.0,
             "arcmin": ARCSEC * 60, "mas": ARCSEC / 1000}.get(unit.strip() or "arcsec")
    if scale is None:
        raise ValueError(f"unknown angle unit {unit!r} in the BEAMS table")
    return float(value) * scale


def convert_fits(info: ImageInfo, outfile: Path, convert_block: Callable, new_bunit: str,
                 history: list[str], progress=None) -> None:
    """Write *outfile* (a FITS file): the input with every pixel converted.

    *convert_block(values, chan, pol)* gets a block of pixels and matching
    arrays of channel and polarization indices and returns the converted values.
    """
    from astropy.io import fits
    if info.extra["bitpix"] > 0 or info.extra["scaled"]:
        raise ValueError(f"{info.path}: integer or scaled (BSCALE/BZERO) FITS data; "
                         "convert it to floating point first (e.g. importfits then exportfits)")
    dtype = np.dtype(">f4" if info.extra["bitpix"] == -32 else ">f8")
    header = fits.getheader(info.path, 0)
    header["BUNIT"] = new_bunit
    for line in history:
        header.add_history(line)
    header_bytes = header.tostring().encode("ascii")
    depth, size, nblocks = _fits_blocks(info.shape, dtype.itemsize)
    inner, outer = info.shape[:depth], info.shape[depth:]
    chan_idx, pol_idx = _axis_indices(info, inner, outer)
    with atomic_path(outfile) as tmp:
        with open(info.path, "rb") as src, open(tmp, "wb") as dst:
            dst.write(header_bytes)
            src.seek(info.extra["data_loc"])
            raw = bytearray(size * dtype.itemsize)
            for b in range(nblocks):
                src.readinto(raw)
                values = np.frombuffer(raw, dtype=dtype).reshape(inner[::-1])
                out = convert_block(values, chan_idx(b), pol_idx(b))
                dst.write(np.asarray(out).astype(dtype).data)  # FITS data are big-endian
                if progress is not None:
                    progress.update(1)
            data_bytes = size * nblocks * dtype.itemsize
            dst.write(b"\0" * (-data_bytes % FITS_BLOCK))
            src.seek(info.extra["data_loc"] + info.extra["data_span"])
            shutil.copyfileobj(src, dst, 16 * 2**20)  # the other HDUs (BEAMS), byte for byte


def _axis_indices(info: ImageInfo, inner: tuple, outer: tuple):
    """Functions giving, for block number b, arrays of channel and pol index broadcastable to the block."""
    def index_of(axis):
        if axis is None:
            return lambda b: 0
        if axis < len(inner):  # varies inside the block: numpy axis order is reversed
            n = len(inner)
            view = [1] * n
            view[n - 1 - axis] = inner[axis]
            arr = np.arange(inner[axis]).reshape(view)
            return lambda b: arr
        o = axis - len(inner)
        strides = np.cumprod((1,) + outer[:-1])
        return lambda b: (b // int(strides[o])) % outer[o]
    return index_of(info.spectral_axis), index_of(info.stokes_axis)


# --- CASA images -------------------------------------------------------------------------------

def _read_casa_info(path: Path) -> ImageInfo:
    from almatools.casaenv import casatools
    ct = casatools()
    ia = ct.image()
    try:
        ia.open(str(path))
        shape = tuple(int(n) for n in ia.shape())
        cs = ia.coordsys()
        try:
            spectral = _pixel_axis(cs, "spectral")
            stokes = _pixel_axis(cs, "stokes")
            freqs = np.array([math.nan])
            note = ""
            if spectral is not None:
                ref = cs.referencepixel()["numeric"]
                freqs = np.empty(shape[spectral])
                for k in range(shape[spectral]):
                    pixel = list(ref)
                    pixel[spectral] = k
                    world = cs.toworld(pixel, "m")["measure"]["spectral"]["frequency"]["m0"]
                    freqs[k] = world["value"] * {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}[world["unit"]]
                note = f"frequency axis, frame {cs.referencecode('spectral')[0]}"
            direction = _pixel_axis(cs, "direction")
            inc = cs.increment(type="direction", format="n")["numeric"] if direction is not None else None
            units = cs.units(type="direction") if direction is not None else None
        finally:
            cs.done()
        pixel_sr = math.nan
        if inc is not None:
            pixel_sr = abs(inc[0] * _TO_RAD[units[0]] * inc[1] * _TO_RAD[units[1]])
        beams = _casa_beams(ia.restoringbeam(), shape, spectral, stokes)
        bunit = ia.brightnessunit()
    finally:
        ia.done()
    return ImageInfo(path, "casa", shape, bunit.strip(), spectral, stokes, freqs, beams, pixel_sr, note)


#: CASA writes arcmin and arcsec also as ' and "
_TO_RAD = {"rad": 1.0, "deg": math.pi / 180, "arcmin": ARCSEC * 60, "'": ARCSEC * 60, "arcsec": ARCSEC,
           '"': ARCSEC, "mas": ARCSEC / 1000}


def _pixel_axis(cs, kind: str):
    try:
        found = cs.findcoordinate(kind)
    except Exception:  # casatools raises a bare RuntimeError for a missing coordinate
        return None
    pixel = found.get("pixel") if isinstance(found, dict) else None
    return int(pixel[0]) if pixel is not None and len(pixel) else None


def _quantity_rad(q) -> float:
    return q["value"] * _TO_RAD[q["unit"]]


def _quantity_deg(q) -> float:
    return q["value"] * {"deg": 1.0, "rad": 180 / math.pi}[q["unit"]]


def _casa_beams(record: dict, shape, spectral, stokes):
    if not record:
        return None
    if "beams" not in record:
        return np.array([[[_quantity_rad(record["major"]), _quantity_rad(record["minor"]),
                           _quantity_deg(record["positionangle"])]]])
    nchan, npol = int(record["nChannels"]), int(record["nStokes"])
    beams = np.empty((nchan, npol, 3))
    for c in range(nchan):
        for p in range(npol):
            b = record["beams"][f"*{c}"][f"*{p}"]
            beams[c, p] = [_quantity_rad(b["major"]), _quantity_rad(b["minor"]), _quantity_deg(b["positionangle"])]
    return beams


def convert_casa(info: ImageInfo, outfile: Path, convert_block: Callable, new_bunit: str,
                 history: list[str], progress=None) -> None:
    """Copy the CASA image to *outfile* (atomically) and convert the copy.

    A converter with ``plane_factors`` (linear conversions) is applied by CASA
    in one LEL expression; otherwise blocks of whole channels (all Stokes, at
    most :data:`BLOCK_BYTES`, following CASA's channel-deep tiles) pass
    through *convert_block*.
    """
    from almatools.casaenv import casatools
    tmp = outfile.with_name(f".{outfile.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(info.path, tmp, symlinks=True)
    factors = getattr(convert_block, "plane_factors", None)
    nchan = info.shape[info.spectral_axis] if info.spectral_axis is not None else 1
    ia = casatools().image()
    try:
        if factors is not None and "'" not in str(tmp):  # LEL cannot quote a name holding '
            _scale_planes_in_casa(info, tmp, factors)
            if progress is not None:
                progress.update(nchan)
        else:
            _convert_casa_blocks(ia, info, tmp, convert_block, progress)
        ia.open(str(tmp))
        ia.setbrightnessunit(new_bunit)
        ia.sethistory(origin="tbconv", history=history)
        ia.close()
    except BaseException:
        ia.done()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ia.done()
    if outfile.exists():  # only when overwriting or in place: swap, then remove the old one
        old = outfile.with_name(f".{outfile.name}.old{os.getpid()}")
        os.replace(outfile, old)
        os.replace(tmp, outfile)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, outfile)


def _convert_casa_blocks(ia, info: ImageInfo, image: Path, convert_block: Callable, progress) -> None:
    ndim, spec, stokes = len(info.shape), info.spectral_axis, info.stokes_axis
    nchan = info.shape[spec] if spec is not None else 1
    step = max(1, BLOCK_BYTES // (4 * int(np.prod(info.shape)) // nchan))
    pol = _along(ndim, stokes, np.arange(info.shape[stokes])) if stokes is not None else 0
    ia.open(str(image))
    for c0 in range(0, nchan, step):
        c1 = min(nchan, c0 + step) - 1
        blc, trc = [0] * ndim, [n - 1 for n in info.shape]
        chan = 0
        if spec is not None:
            blc[spec], trc[spec] = c0, c1
            chan = _along(ndim, spec, np.arange(c0, c1 + 1))
        block = ia.getchunk(blc=blc, trc=trc, dropdeg=False)
        ia.putchunk(np.asarray(convert_block(block, chan, pol), dtype=block.dtype), blc=blc)
        if progress is not None:
            progress.update(c1 - c0 + 1)
    ia.close()


def _scale_planes_in_casa(info: ImageInfo, image: Path, factors: np.ndarray) -> None:
    """Multiply each (channel, pol) plane of *image* by its factor, in place, with one LEL
    expression: a factor image with degenerate direction axes, which LEL stretches over the
    planes.  CASA does the pixel work (in the image's precision, masks kept); no pixels pass
    through Python, and no peak is looked for (that would be another pass over the cube)."""
    from almatools.casaenv import casatools
    ct = casatools()
    ndim, spec, stokes = len(info.shape), info.spectral_axis, info.stokes_axis
    nchan = info.shape[spec] if spec is not None else 1
    npol = info.shape[stokes] if stokes is not None else 1
    table = np.broadcast_to(factors[np.minimum(np.arange(nchan), factors.shape[0] - 1)][:, np.minimum(
        np.arange(npol), factors.shape[1] - 1)], (nchan, npol))
    trc = [0] * ndim
    shape = [1] * ndim
    for axis, n in ((spec, nchan), (stokes, npol)):
        if axis is not None:
            trc[axis], shape[axis] = n - 1, n
    values = np.empty(shape, np.float32)
    for c in range(nchan):
        for p in range(npol):
            index = [0] * ndim
            if spec is not None:
                index[spec] = c
            if stokes is not None:
                index[stokes] = p
            values[tuple(index)] = table[c, p]
    factor_image = image.with_name(image.name + ".factors")
    ia, rg = ct.image(), ct.regionmanager()
    try:
        ia.open(str(image))
        sub = ia.subimage(outfile=str(factor_image), region=rg.box(blc=[0] * ndim, trc=trc), overwrite=True)
        sub.putchunk(values)
        sub.done()
        ia.calc(f"'{image}' * '{factor_image}'", verbose=False)
        ia.close()
    finally:
        ia.done()
        rg.done()
        shutil.rmtree(factor_image, ignore_errors=True)


def _along(ndim: int, axis: int, values: np.ndarray) -> np.ndarray:
    """*values* shaped to vary along *axis* of an *ndim*-dimensional array (CASA order)."""
    shape = [1] * ndim
    shape[axis] = len(values)
    return values.reshape(shape)


def planes(info: ImageInfo) -> int:
    """Number of progress steps :func:`convert_casa` (channels) / :func:`convert_fits` (blocks) report."""
    if info.format == "casa":
        return info.shape[info.spectral_axis] if info.spectral_axis is not None else 1
    return _fits_blocks(info.shape, 4 if info.extra["bitpix"] == -32 else 8)[2]


def _fits_blocks(shape: tuple, itemsize: int) -> tuple[int, int, int]:
    """(depth, values per block, number of blocks): a block is the fastest *depth* FITS axes
    (NAXIS1 first, at least NAXIS1) whose pixels fit in :data:`BLOCK_BYTES`."""
    depth, size = 1, shape[0]
    while depth < len(shape) and size * shape[depth] * itemsize <= BLOCK_BYTES:
        size *= shape[depth]
        depth += 1
    return depth, size, int(np.prod(shape[depth:])) if shape[depth:] else 1
