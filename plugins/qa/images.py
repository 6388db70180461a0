"""Product images read plane by plane, with bounded memory: FITS (plain or gzipped) and CASA images.

:func:`open_image` describes an image (shape, per-channel frequencies in its own spectral frame,
per-channel beams, cell, brightness unit, observation date, direction, size on disk) without
reading its pixels; :meth:`ImageFile.planes` then yields one ``(ny, nx)`` float32 plane of Stokes I
(the first polarization) at a time, masked pixels as NaN.

* Plain FITS with float pixels are read with ``os.pread`` straight from the data offset: one
  plane is one contiguous run of bytes when the two sky axes come first (as CASA and the pipeline
  write them).  A reader thread fetches the next planes while the caller works on the current one.
* Gzipped FITS (the pipeline's ``.pb.fits.gz`` and ``.mask.fits.gz``), scaled or integer FITS and
  unusual axis orders go through astropy's ``section`` (forward reads, one plane in memory).
* CASA images are read with casatools' image tool, ``getchunk`` of one plane and its mask.

A FITS file shorter than its header says is refused before any plane is read, naming both sizes.
Frequencies, beams and pixel solid angle come from :func:`almatools.plugins.brightness.images.read_info`
(one reader of CASA per-plane beams and FITS ``BEAMS`` tables in the project).
"""

from __future__ import annotations

import math
import os
import queue
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from almatools.errors import AlmatoolsError

__all__ = ["ImageFile", "ImageReadError", "open_image", "FITS_FRAMES", "prefetch", "native"]

#: FITS SPECSYS → CASA frame names (what the frames plugin speaks)
FITS_FRAMES = {"LSRK": "LSRK", "BARYCENT": "BARY", "TOPOCENT": "TOPO", "GEOCENTR": "GEO", "LSRD": "LSRD",
               "GALACTOC": "GALACTO", "LOCALGRP": "LGROUP", "CMBDIPOL": "CMB", "SOURCE": "REST"}
_ARCSEC_PER_RAD = 180 / math.pi * 3600
#: the most bytes of consecutive planes read in one system call
READ_BYTES = 32 * 2**20


class ImageReadError(AlmatoolsError):
    """An image that cannot be read (truncated, not an image, unreadable); the message names it."""


@dataclass
class ImageFile:
    """What qacheck needs to know about one image, and access to its planes.

    :param shape: ``(nx, ny, nchan, npol)``.
    :param freqs_hz: frequency of each channel in the image's own spectral frame (*frame*).
    :param beams_arcsec: ``[nchan, 3]`` (major, minor FWHM in arcsec, PA in deg) of the first
        polarization, or None when the image has no beam (pb, mask).
    :param cell_arcsec: ``(|dx|, |dy|)``.
    :param obs_mjd: observation date (MJD, UTC) or None.
    :param direction_deg: the reference direction (RA, Dec in degrees) and its frame.
    """

    path: Path
    format: str
    shape: tuple
    freqs_hz: np.ndarray
    frame: str
    beams_arcsec: np.ndarray | None
    cell_arcsec: tuple
    bunit: str
    size_bytes: int
    obs_mjd: float | None = None
    direction_deg: tuple = (math.nan, math.nan)
    direction_frame: str = "J2000"
    restfreq_hz: float | None = None
    _axes: dict = field(default_factory=dict, repr=False)

    @property
    def nchan(self) -> int:
        return self.shape[2]

    def channel_width_hz(self) -> float:
        return float(abs(np.median(np.diff(self.freqs_hz)))) if self.nchan > 1 else float(self._axes.get("width", 0))

    def planes(self, pol: int = 0, native: bool = True) -> Iterator[tuple[int, np.ndarray]]:
        """``(channel, plane)`` for every channel, plane as float32 ``[ny, nx]``, masked pixels NaN.

        :param native: False lets plain FITS planes come in the file's big-endian order, to be turned
            native by :func:`native` where the work is (another thread); every plane is a fresh array.
        """
        if self.format == "casa":
            yield from _casa_planes(self, pol)
        elif self._axes.get("raw"):
            yield from _raw_fits_planes(self, pol, native)
        else:
            yield from _section_fits_planes(self, pol)


def _is_fits(path: Path) -> tuple[bool, bool]:
    """(is FITS, gzipped) from the first bytes; a directory is neither."""
    if path.is_dir():
        return False, False
    with open(path, "rb") as fh:
        head = fh.read(30)
    if head[:2] == b"\x1f\x8b":
        return True, True
    return head.startswith(b"SIMPLE  ="), False


def _size_of(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def open_image(path) -> ImageFile:
    """Describe the image at *path* (FITS, FITS.gz or a CASA image directory); raises :class:`ImageReadError`."""
    from almatools import limits
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: does not exist")
    if not path.is_dir() and not path.is_file():
        raise ImageReadError(f"{path}: is a {limits.file_kind(path.stat().st_mode)}, not an image; not opened")
    fits, gz = _is_fits(path)
    try:
        if fits:
            return _open_fits(path, gz)
        if path.is_dir() and (path / "table.dat").is_file():
            return _open_casa(path)
    except ImageReadError:
        raise
    except Exception as exc:  # astropy and casatools raise many kinds for a damaged file
        raise ImageReadError(f"{path}: not readable as an image ({type(exc).__name__}: {exc})") from None
    raise ImageReadError(f"{path}: neither a FITS file nor a CASA image")


# --- FITS ---------------------------------------------------------------------------------------

def _open_fits(path: Path, gz: bool) -> ImageFile:
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_scales
    with warnings.catch_warnings():  # a truncated file is refused below with both sizes, not a warning
        warnings.simplefilter("ignore")
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            header = hdul[0].header
            loc = hdul.fileinfo(0) if not gz else None
    naxis = int(header.get("NAXIS", 0))
    if naxis < 2:
        raise ImageReadError(f"{path}: the primary HDU holds no image (NAXIS = {naxis})")
    dims = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    bitpix = int(header["BITPIX"])
    if loc is not None:
        need = loc["datLoc"] + abs(bitpix) // 8 * int(np.prod(dims, dtype=np.int64))
        have = path.stat().st_size
        if have < need:
            raise ImageReadError(f"{path}: truncated: {have} bytes, the header describes {need} "
                                 f"({need - have} missing); not read")
    ctypes = [str(header.get(f"CTYPE{i}", "")).upper() for i in range(1, naxis + 1)]
    spectral = next((i for i, c in enumerate(ctypes) if c.startswith(("FREQ", "VRAD", "VOPT", "VELO", "FELO",
                                                                       "WAVE"))), None)
    stokes = next((i for i, c in enumerate(ctypes) if c.startswith("STOKES")), None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(header)
    cell = tuple(float(v) * 3600 for v in proj_plane_pixel_scales(wcs.celestial)) if wcs.has_celestial \
        else (math.nan, math.nan)
    freqs, beams = _fits_spectral_and_beams(path, gz, header, wcs, spectral, dims)
    nchan = dims[spectral] if spectral is not None else 1
    npol = dims[stokes] if stokes is not None else 1
    scaled = header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0
    # a plane is one contiguous run of bytes when the two sky axes come first
    raw = (not gz and bitpix in (-32, -64) and not scaled
           and all(i >= 2 for i in (spectral, stokes) if i is not None))
    frame = FITS_FRAMES.get(str(header.get("SPECSYS", "")).strip().upper(), str(header.get("SPECSYS", "")).strip())
    obs = _mjd_of(header.get("MJD-OBS"), header.get("DATE-OBS"))
    width = abs(float(header.get(f"CDELT{spectral + 1}", 0))) if spectral is not None else 0.0
    return ImageFile(path, "fits", (dims[0], dims[1], nchan, npol), freqs, frame, beams, cell,
                     str(header.get("BUNIT", "")).strip(), _size_of(path), obs,
                     (float(header.get("CRVAL1", math.nan)), float(header.get("CRVAL2", math.nan))),
                     str(header.get("RADESYS", "FK5")).replace("FK5", "J2000"),
                     float(header["RESTFRQ"]) if "RESTFRQ" in header else None,
                     {"dims": dims, "spectral": spectral, "stokes": stokes, "bitpix": bitpix, "raw": raw,
                      "data_loc": None if loc is None else loc["datLoc"], "width": width})


def _mjd_of(mjd, date) -> float | None:
    if mjd is not None:
        try:
            return float(mjd)
        except (TypeError, ValueError):
            pass
    if date:
        try:
            from astropy.time import Time
            return float(Time(str(date), scale="utc").mjd)
        except ValueError:
            return None
    return None


def _fits_spectral_and_beams(path: Path, gz: bool, header, wcs, spectral, dims):
    """Per-channel frequencies and beams; plain FITS through the brightness plugin's reader."""
    nchan = dims[spectral] if spectral is not None else 1
    if not gz:
        from almatools.plugins.brightness.images import read_info
        info = read_info(path)
        freqs = np.asarray(info.freqs_hz, dtype=float)
        beams = None if info.beams is None else _beams_arcsec(info.beams, nchan)
        return freqs, beams
    # gzipped files (pb, mask) need no beam; their frequencies from the header alone
    if spectral is None:
        return np.array([float(header.get("RESTFRQ", math.nan))]), None
    sub = wcs.sub([spectral + 1])
    return np.asarray(sub.all_pix2world(np.arange(nchan, dtype=float), 0)[0], dtype=float), None


def _beams_arcsec(beams_rad: np.ndarray, nchan: int) -> np.ndarray:
    """``[nchan, npol, 3]`` (radians, deg) → ``[nchan, 3]`` (arcsec, deg) of the first polarization."""
    b = np.asarray(beams_rad)[:, 0, :].copy()
    b[:, :2] *= _ARCSEC_PER_RAD
    if b.shape[0] == 1 and nchan > 1:
        b = np.repeat(b, nchan, axis=0)
    return b


def prefetch(iterable, depth: int = 2):
    """Iterate *iterable* in a thread, *depth* items ahead (reading overlaps the caller's work)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def worker():
        try:
            for item in iterable:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a worker waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(0.05)


def _plane_index(img: ImageFile, chan: int, pol: int) -> int:
    """Index of the (chan, pol) plane among the planes beyond the two sky axes, in file order."""
    dims, ax = img._axes["dims"], img._axes
    index, stride = 0, 1
    for i in range(2, len(dims)):
        value = chan if i == ax["spectral"] else pol if i == ax["stokes"] else 0
        index += value * stride
        stride *= dims[i]
    return index


def native(plane: np.ndarray) -> np.ndarray:
    """*plane* as native-order float32: a big-endian plane (its own fresh array) is swapped in place."""
    if plane.dtype.byteorder == ">":
        plane.byteswap(inplace=True)
        plane = plane.view(plane.dtype.newbyteorder("="))
    return plane if plane.dtype == np.float32 else plane.astype(np.float32)


def _raw_fits_planes(img: ImageFile, pol: int, native_order: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """Planes read with ``preadv``: runs of consecutive planes (up to :data:`READ_BYTES`) in one call, so
    two files read side by side (an image and its pb) still reach the disk as long sequential reads."""
    nx, ny = img.shape[0], img.shape[1]
    itemsize = abs(img._axes["bitpix"]) // 8
    dtype = np.dtype(">f4" if itemsize == 4 else ">f8")
    nbytes = nx * ny * itemsize
    per_read = max(1, READ_BYTES // nbytes)
    fd = os.open(img.path, os.O_RDONLY)
    if hasattr(os, "posix_fadvise"):  # planes are read front to back: let the kernel read far ahead
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    try:
        chan = 0
        while chan < img.nchan:
            first = img._axes["data_loc"] + _plane_index(img, chan, pol) * nbytes
            run = 1  # how many of the next planes follow each other in the file
            while (run < per_read and chan + run < img.nchan
                   and img._axes["data_loc"] + _plane_index(img, chan + run, pol) * nbytes == first + run * nbytes):
                run += 1
            buffers = [np.empty(nx * ny, dtype=dtype) for _ in range(run)]  # fresh arrays, turned native in place
            got = os.preadv(fd, buffers, first)
            if got != run * nbytes:
                raise ImageReadError(f"{img.path}: plane {chan + got // nbytes} ends early "
                                     f"({got % nbytes} of {nbytes} bytes)")
            for k, buffer in enumerate(buffers):
                plane = buffer.reshape(ny, nx)
                yield chan + k, native(plane) if native_order else plane
            chan += run
    finally:
        os.close(fd)


def _section_fits_planes(img: ImageFile, pol: int) -> Iterator[tuple[int, np.ndarray]]:
    from astropy.io import fits
    dims, ax = img._axes["dims"], img._axes
    try:
        with fits.open(img.path, memmap=False, lazy_load_hdus=True) as hdul:
            section = hdul[0].section
            for chan in range(img.nchan):
                index = []
                for i in range(len(dims) - 1, -1, -1):  # numpy order: last FITS axis first
                    if i < 2:
                        index.append(slice(None))
                    else:
                        index.append(chan if i == ax["spectral"] else pol if i == ax["stokes"] else 0)
                plane = np.asarray(section[tuple(index)], dtype=np.float32)
                yield chan, plane.reshape(img.shape[1], img.shape[0])
    except (OSError, EOFError, ValueError, TypeError) as exc:
        raise ImageReadError(f"{img.path}: could not read its planes ({type(exc).__name__}: {exc}); the file "
                             "may be truncated or damaged") from None


# --- CASA images ------------------------------------------------------------------------------------

def _open_casa(path: Path) -> ImageFile:
    from almatools.casaenv import casatools
    from almatools.plugins.brightness.images import read_info
    info = read_info(path)
    ct = casatools()
    ia = ct.image()
    try:
        ia.open(str(path))
        cs = ia.coordsys()
        try:
            inc = cs.increment(type="direction", format="q")["quantity"]
            cell = tuple(abs(ct.quanta().convert(inc[k], "arcsec")["value"]) for k in ("*1", "*2"))
            ref = cs.referencevalue(type="direction", format="q")["quantity"]
            direction = tuple(ct.quanta().convert(ref[k], "deg")["value"] for k in ("*1", "*2"))
            dframe = cs.referencecode("direction")[0]
            frame = cs.referencecode("spectral")[0] if info.spectral_axis is not None else ""
            epoch = cs.epoch()
            obs = float(epoch["m0"]["value"]) if epoch and epoch.get("m0", {}).get("unit") == "d" else None
            rest = cs.restfrequency()
            restfreq = float(rest["value"][0]) if rest and len(rest.get("value", [])) else None
            width = abs(float(cs.increment(type="spectral", format="n")["numeric"][0])) \
                if info.spectral_axis is not None else 0.0
        finally:
            cs.done()
    finally:
        ia.done()
    shape = info.shape
    order = [i for i in range(len(shape)) if i not in (info.spectral_axis, info.stokes_axis)][:2]
    nchan = shape[info.spectral_axis] if info.spectral_axis is not None else 1
    npol = shape[info.stokes_axis] if info.stokes_axis is not None else 1
    beams = None if info.beams is None else _beams_arcsec(info.beams, nchan)
    return ImageFile(path, "casa", (shape[order[0]], shape[order[1]], nchan, npol),
                     np.asarray(info.freqs_hz, dtype=float), frame, beams, cell, info.bunit, _size_of(path), obs,
                     direction, dframe, restfreq,
                     {"ndim": len(shape), "spectral": info.spectral_axis, "stokes": info.stokes_axis,
                      "sky": order, "width": width})


def _casa_planes(img: ImageFile, pol: int) -> Iterator[tuple[int, np.ndarray]]:
    from almatools.casaenv import casatools
    ia = casatools().image()
    ax = img._axes
    try:
        ia.open(str(img.path))
        has_mask = bool(ia.maskhandler("get")) if hasattr(ia, "maskhandler") else False
        for chan in range(img.nchan):
            blc, trc = [0] * ax["ndim"], [0] * ax["ndim"]
            for i, n in zip(ax["sky"], img.shape[:2]):
                trc[i] = n - 1
            for i, value in ((ax["spectral"], chan), (ax["stokes"], pol)):
                if i is not None:
                    blc[i] = trc[i] = value
            plane = np.asarray(ia.getchunk(blc=blc, trc=trc, dropdeg=True), dtype=np.float32)
            if has_mask:
                mask = np.asarray(ia.getchunk(blc=blc, trc=trc, dropdeg=True, getmask=True))
                plane = np.where(mask, plane, np.float32(np.nan))
            plane = plane.reshape(img.shape[0], img.shape[1]).T  # CASA arrays are [x, y]
            yield chan, np.ascontiguousarray(plane)
    except RuntimeError as exc:
        raise ImageReadError(f"{img.path}: casatools could not read plane ({exc})") from None
    finally:
        ia.done()
