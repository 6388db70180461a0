"""Read what a Jy/beam ↔ K conversion needs from CASA images and FITS files, and convert their pixels
in one streaming pass with bounded memory.

Both formats are described by :class:`ImageInfo`: the brightness unit, each spectral plane's
frequency (from the spectral axis in the image's own frame; velocity axes are turned into frequency
with the rest frequency), the beam of each (channel, polarization) plane (CASA per-plane beams, the
FITS ``BEAMS`` table, or BMAJ/BMIN/BPA) and the pixel solid angle.  Axes may come in any order;
Stokes is optional.  Everything a file says is checked before any output is made: a header that
contradicts itself or the file's size, a non-finite or zero beam, an axis of length zero, a BEAMS
table that misses planes — each raises :class:`ImageFileError` naming the file.

The conversion is close to a copy: one read, one multiply in place (in the data's own precision,
with one factor per plane in the Rayleigh–Jeans case), one write, in blocks of at most
:data:`BLOCK_BYTES` (memory stays flat whatever the cube's size).

* FITS: the primary header is rewritten and the data streamed in blocks of whole *runs* (the pixels
  between two changes of channel or polarization), or pieces of one run when a run is larger than
  a block; every other HDU (``BEAMS``) is copied byte for byte.  Every read is checked, so a file
  that is shorter than its header says — or shrinks while it is read — is an error, never a
  silently short output.
* CASA images: the image's table files are copied once, then its pixel file is streamed tile by
  tile (:mod:`almatools.casaimage`).  Images whose pixels are not in a plain tiled file (virtual,
  compressed) go through CASA (LEL, or ``getchunk``/``putchunk`` blocks for Planck).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from almatools.casaimage import beams_from_imageinfo, read_image_table, set_units_and_history
from almatools.errors import InputFileError
from almatools.io import scratch_path

from .conversion import ARCSEC

__all__ = ["ImageInfo", "ImageFileError", "read_info", "convert_fits", "convert_casa", "BLOCK_BYTES", "planes"]

#: the block of pixels read, converted in place and written at a time.  Small enough to stay in the
#: CPU cache between the read, the multiply and the write, so the pixels cross main memory once on
#: the way in and once on the way out: on the reference machine 1 MB blocks streamed a 1 GB cube
#: about as fast as the kernel's own copy, 32 MB blocks 1.7x slower (a block no longer fits in the
#: cache, so each pass over it goes to memory).
BLOCK_BYTES = 2**20
FITS_BLOCK = 2880
#: a primary or extension header longer than this many 2880-byte blocks (36,000 cards) is refused
MAX_HEADER_BLOCKS = 1000


class ImageFileError(InputFileError):
    """An image file is unreadable, truncated or says something impossible; the message names it."""


@dataclass
class ImageInfo:
    """What the conversion needs to know about an image.

    :param shape: the axis lengths in the image's own order (FITS: NAXIS1 first).
    :param spectral_axis: index into *shape* of the spectral axis, or None.
    :param stokes_axis: index into *shape* of the Stokes axis, or None.
    :param freqs_hz: frequency of each spectral plane (length 1 without a spectral axis).
    :param beams: array ``[nchan, npol, 3]`` of (major, minor) in radians and PA in degrees,
        or None when the image has no beam; ``nchan``/``npol`` are 1 for a single beam.
    :param nbytes: bytes of the file or directory (what an output will need).
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
    nbytes: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def nchan(self) -> int:
        return self.shape[self.spectral_axis] if self.spectral_axis is not None else 1

    @property
    def npol(self) -> int:
        return self.shape[self.stokes_axis] if self.stokes_axis is not None else 1


def read_info(path: str | os.PathLike) -> ImageInfo:
    """Describe a CASA image (a directory) or a FITS file (a regular file); anything else is refused."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ImageFileError(path, f"cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        return _read_casa_info(path)
    if not stat.S_ISREG(mode):  # a FIFO or a device would block or never end
        raise ImageFileError(path, "is neither a regular file (FITS) nor a directory (CASA image)")
    return _read_fits_info(path)


def planes(info: ImageInfo) -> int:
    """Number of progress steps a conversion reports: its blocks."""
    return max(1, -(-_data_bytes(info) // BLOCK_BYTES))


def _data_bytes(info: ImageInfo) -> int:
    return math.prod(info.shape) * (info.extra.get("itemsize") or 4)


# --- FITS: reading and checking the file -------------------------------------------------------

def _read_header(fh, path: Path, offset: int, what: str):
    """The FITS header starting at *offset* (a 2880-byte boundary) and the offset where its data start."""
    from astropy.io import fits
    fh.seek(offset)
    raw = bytearray()
    for _ in range(MAX_HEADER_BLOCKS):
        block = fh.read(FITS_BLOCK)
        if len(block) < FITS_BLOCK:
            raise ImageFileError(path, f"{what} header is cut short at byte {offset + len(raw) + len(block)} "
                                 "(the file is truncated or not FITS)")
        raw += block
        if any(block[i:i + 8] == b"END     " for i in range(0, FITS_BLOCK, 80)):
            break
    else:
        raise ImageFileError(path, f"{what} header has no END card in its first {MAX_HEADER_BLOCKS} blocks")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = fits.Header.fromstring(raw.decode("ascii"))
    except Exception as exc:  # astropy raises many types for malformed cards
        raise ImageFileError(path, f"{what} header cannot be parsed ({exc})") from None
    for card in header.cards:  # every value readable now, so no later look-up fails deep inside
        try:
            card.value
        except Exception:
            raise ImageFileError(path, f"{what} header keyword {card.keyword} is unreadable: "
                                 f"{card.image.strip()!r}") from None
    return header, offset + len(raw)


def _card(header, key: str, path: Path, kind, default=None, what="primary"):
    """A header value of the given type, or a clear error naming the keyword and what it holds."""
    from astropy.io.fits import VerifyError
    if key not in header:
        if default is None:
            raise ImageFileError(path, f"{what} header has no {key}")
        return default
    try:
        value = header[key]
    except (VerifyError, ValueError):
        raise ImageFileError(path, f"{what} header keyword {key} is unreadable: {header.cards[key].image.strip()!r}"
                             ) from None
    if kind is int:
        if type(value) is not int:  # bool is an int in Python: T is not a length
            raise ImageFileError(path, f"{what} header keyword {key} = {value!r} is not an integer")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ImageFileError(path, f"{what} header keyword {key} = {value!r} is not a number")
        value = float(value)
        if not math.isfinite(value):
            raise ImageFileError(path, f"{what} header keyword {key} = {value!r} is not finite")
    return value


def _hdu_data_bytes(header, path: Path, what: str) -> tuple[int, tuple]:
    """(bytes of data, shape NAXIS1 first) of an HDU, from BITPIX, NAXISn, PCOUNT, GCOUNT."""
    bitpix = _card(header, "BITPIX", path, int, what=what)
    if bitpix not in (8, 16, 32, 64, -32, -64):
        raise ImageFileError(path, f"{what} header has BITPIX = {bitpix} (allowed: 8, 16, 32, 64, -32, -64)")
    naxis = _card(header, "NAXIS", path, int, what=what)
    if not 0 <= naxis <= 999:
        raise ImageFileError(path, f"{what} header has NAXIS = {naxis} (allowed: 0 to 999)")
    shape = tuple(_card(header, f"NAXIS{i}", path, int, what=what) for i in range(1, naxis + 1))
    for i, n in enumerate(shape, 1):
        if n < 0:
            raise ImageFileError(path, f"{what} header has NAXIS{i} = {n}")
    pcount = _card(header, "PCOUNT", path, int, default=0, what=what)
    gcount = _card(header, "GCOUNT", path, int, default=1, what=what)
    if pcount < 0 or gcount < 0:
        raise ImageFileError(path, f"{what} header has PCOUNT = {pcount}, GCOUNT = {gcount}")
    values = math.prod(shape) if shape else 0
    return abs(bitpix) // 8 * gcount * (pcount + values), shape


def _read_fits_structure(path: Path) -> dict:
    """Walk every HDU of the file, checking each against the file's size; return the primary's layout."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if not fh.read(9) == b"SIMPLE  =":
            raise ImageFileError(path, "is not a FITS file (no SIMPLE card) nor a CASA image")
        header, data_loc = _read_header(fh, path, 0, "primary")
        if header.get("SIMPLE") is not True:
            raise ImageFileError(path, "primary header does not say SIMPLE = T")
        data_bytes, shape = _hdu_data_bytes(header, path, "primary")
        if header.get("GROUPS") is True:
            raise ImageFileError(path, "holds random groups (visibilities), not an image")
        if not shape:
            raise ImageFileError(path, "the primary HDU has no image data (NAXIS = 0)")
        if 0 in shape:
            raise ImageFileError(path, f"axis NAXIS{shape.index(0) + 1} has length 0: the image holds no pixels")
        end = data_loc + data_bytes + (-data_bytes % FITS_BLOCK)
        if end > size:
            raise ImageFileError(path, f"is truncated: its header announces {data_bytes} bytes of data "
                                 f"({' x '.join(map(str, shape))} pixels) ending at byte {end}, the file has {size}")
        primary = {"header": header, "data_loc": data_loc, "data_bytes": data_bytes, "end": end, "shape": shape}
        extensions, offset = [], end
        while offset < size:
            fh.seek(offset)
            start = fh.read(10)
            if len(start) < 10 and b"XTENSION="[:len(start)] == start:
                raise ImageFileError(path, f"is truncated: extension {len(extensions) + 1} is cut short at byte {size}")
            if not start.startswith(b"XTENSION="):
                rest = fh.read(size - offset - len(start)) if size - offset <= 16 * 2**20 else b"x"
                if (start + rest).strip(b"\0 "):
                    raise ImageFileError(path, f"has {size - offset} bytes after HDU {len(extensions)} "
                                         f"(byte {offset}) that are not a FITS extension")
                break
            what = f"extension {len(extensions) + 1}"
            ext_header, ext_data = _read_header(fh, path, offset, what)
            nbytes, _ = _hdu_data_bytes(ext_header, path, what)
            ext_end = ext_data + nbytes + (-nbytes % FITS_BLOCK)
            if ext_end > size:
                raise ImageFileError(path, f"is truncated: {what} ({ext_header.get('EXTNAME', '')}) needs bytes up to "
                                     f"{ext_end}, the file has {size}")
            extensions.append({"header": ext_header, "offset": offset, "end": ext_end})
            offset = ext_end
    primary.update(size=size, extensions=extensions)
    return primary


def _read_fits_info(path: Path) -> ImageInfo:
    layout = _read_fits_structure(path)
    header, shape = layout["header"], layout["shape"]
    bitpix = header["BITPIX"]
    ctypes = [str(header.get(f"CTYPE{i}", "")).upper() for i in range(1, len(shape) + 1)]
    stokes = next((i for i, c in enumerate(ctypes) if c.startswith("STOKES")), None)
    wcs = _fits_wcs(path, header, len(shape))
    spectral, freqs, note = None, np.array([math.nan]), ""
    if wcs.has_spectral:
        spectral = wcs.wcs.spec
        freqs = _fits_frequencies(path, header, wcs, spectral, shape[spectral])
        note = f"{ctypes[spectral]} axis, frame {header.get('SPECSYS', 'unknown')}"
    pixel_sr = math.nan
    if wcs.has_celestial:
        from astropy.wcs.utils import proj_plane_pixel_area
        pixel_sr = float(proj_plane_pixel_area(wcs.celestial)) * (math.pi / 180) ** 2
    beams, beam_error = None, None
    beams_ext = [e for e in layout["extensions"] if str(e["header"].get("EXTNAME", "")).strip().upper() == "BEAMS"]
    try:  # a bad beam is reported only if the beam is needed (a beam given to the task replaces it)
        if beams_ext:
            beams = _fits_beam_table(path, len(freqs) if spectral is not None else 1,
                                     shape[stokes] if stokes is not None else 1)
        elif "BMAJ" in header or "BMIN" in header:
            bmaj, bmin = (_card(header, k, path, float) for k in ("BMAJ", "BMIN"))
            bpa = _card(header, "BPA", path, float, default=0.0)
            beams = np.array([[[math.radians(bmaj), math.radians(bmin), bpa]]])
            _check_beams(path, beams)
    except ImageFileError as exc:
        beams, beam_error = None, exc
    return ImageInfo(path, "fits", shape, str(header.get("BUNIT", "")).strip(), spectral, stokes, freqs, beams,
                     pixel_sr, note, nbytes=layout["size"],
                     extra={"data_loc": layout["data_loc"], "data_bytes": layout["data_bytes"],
                            "primary_end": layout["end"], "size": layout["size"], "bitpix": bitpix,
                            "itemsize": abs(bitpix) // 8,
                            "scaled": header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0,
                            "beam_error": beam_error})


#: header keywords that must hold finite numbers when present (wcslib quietly ignores text in them)
_WCS_NUMBERS = re.compile(r"^(CRPIX|CRVAL|CDELT|CROTA)\d+$|^(PC|CD)\d+_\d+$|^RESTFR(Q|EQ)$")


def _fits_wcs(path: Path, header, naxis: int):
    """The WCS of the image's *naxis* data axes (keywords of axes beyond NAXIS describe no pixel of it)."""
    from astropy.wcs import WCS
    for key in header:
        if _WCS_NUMBERS.match(key):
            _card(header, key, path, float)
    try:
        with warnings.catch_warnings():  # CASA's headers make astropy fix OBSGEO/date keywords, loudly
            warnings.simplefilter("ignore")
            return WCS(header, naxis=naxis)
    except Exception as exc:  # wcslib reports bad WCS keywords through many exception types
        raise ImageFileError(path, f"its WCS keywords cannot be read ({type(exc).__name__}: {exc})") from None


def _fits_frequencies(path: Path, header, wcs, axis: int, n: int) -> np.ndarray:
    """Frequency (Hz) of each pixel along the spectral axis, in the axis's own frame.

    Pure WCS arithmetic (no frame transformation, which would need the IERS
    tables online): frequency axes as they are, velocity axes through the
    rest frequency with their Doppler convention, wavelength axes as c/λ.
    """
    from .conversion import C
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sub = wcs.sub([axis + 1])
            world = np.asarray(sub.all_pix2world(np.arange(n, dtype=float), 0)[0], float)  # SI units
    except Exception as exc:
        raise ImageFileError(path, f"its spectral axis cannot be evaluated ({type(exc).__name__}: {exc})") from None
    ctype = sub.wcs.ctype[0].upper()
    if ctype.startswith("FREQ"):
        freqs = world
    elif ctype.startswith("WAVE"):
        freqs = C / world
    else:
        rest = sub.wcs.restfrq or header.get("RESTFRQ") or header.get("RESTFREQ")
        if not rest:
            raise ImageFileError(path, f"the spectral axis {ctype} is a velocity axis and the header has no "
                                 "RESTFRQ to turn it into frequency")
        beta = world / C
        with np.errstate(invalid="ignore", divide="ignore"):
            if ctype.startswith("VRAD"):
                freqs = rest * (1 - beta)
            elif ctype.startswith(("VOPT", "FELO")):
                freqs = rest / (1 + beta)
            elif ctype.startswith("VELO"):
                freqs = rest * np.sqrt((1 - beta) / (1 + beta))
            else:
                raise ImageFileError(path, f"unsupported spectral axis type {ctype}")
    bad = ~(np.isfinite(freqs) & (freqs > 0))
    if bad.any():
        k = int(np.argmax(bad))
        raise ImageFileError(path, f"spectral axis {ctype} gives frequency {float(freqs[k])!r} Hz at pixel {k}: "
                             "frequencies must be finite and > 0")
    return freqs


def _fits_beam_table(path: Path, nchan: int, npol: int) -> np.ndarray:
    """The ``BEAMS`` binary table (CASA's per-plane beams) as ``[nchan, npol, 3]``, every plane present and sane."""
    from astropy.io import fits
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = next(h for h in hdul[1:] if h.name == "BEAMS")
            data, cols = hdu.data, hdu.columns
            unit = {c.name.upper(): (c.unit or "").lower() for c in cols}
            names = {c.name.upper(): c.name for c in cols}
            missing = [c for c in ("BMAJ", "BMIN", "BPA", "CHAN", "POL") if c not in names]
            if missing:
                raise ImageFileError(path, f"its BEAMS table lacks the column(s) {', '.join(missing)}")
            rows = {k: np.asarray(data[names[k]]).astype(float) for k in ("BMAJ", "BMIN", "BPA", "CHAN", "POL")}
    except ImageFileError:
        raise
    except Exception as exc:
        raise ImageFileError(path, f"its BEAMS table cannot be read ({type(exc).__name__}: {exc})") from None
    nrows = len(rows["CHAN"])
    if nrows == 0:
        raise ImageFileError(path, "its BEAMS table is empty")
    table_nchan = int(np.nanmax(rows["CHAN"])) + 1 if np.isfinite(rows["CHAN"]).all() else -1
    table_npol = int(np.nanmax(rows["POL"])) + 1 if np.isfinite(rows["POL"]).all() else -1
    if table_nchan not in (1, nchan) or table_npol not in (1, npol) or (rows["CHAN"] < 0).any() \
            or (rows["POL"] < 0).any() or (rows["CHAN"] % 1 != 0).any() or (rows["POL"] % 1 != 0).any():
        raise ImageFileError(path, f"its BEAMS table covers channels 0-{table_nchan - 1} and polarizations "
                             f"0-{table_npol - 1}; the image has {nchan} channel(s) and {npol} polarization(s)")
    beams = np.full((table_nchan, table_npol, 3), np.nan)
    scale = [_angle_rad(path, k, unit.get(k, "arcsec")) for k in ("BMAJ", "BMIN")]
    for i in range(nrows):
        c, p = int(rows["CHAN"][i]), int(rows["POL"][i])
        beams[c, p] = [rows["BMAJ"][i] * scale[0], rows["BMIN"][i] * scale[1], rows["BPA"][i]]
    _check_beams(path, beams)
    return beams


def _angle_rad(path: Path, column: str, unit: str) -> float:
    scale = {"arcsec": ARCSEC, "deg": math.pi / 180, "degree": math.pi / 180, "rad": 1.0,
             "arcmin": ARCSEC * 60, "mas": ARCSEC / 1000}.get(unit.strip() or "arcsec")
    if scale is None:
        raise ImageFileError(path, f"unknown angle unit {unit!r} of {column} in the BEAMS table")
    return scale


def _check_beams(path: Path, beams: np.ndarray) -> None:
    """Every plane has a beam with finite axes > 0 and a finite position angle."""
    bad = ~(np.isfinite(beams).all(axis=2) & (beams[..., 0] > 0) & (beams[..., 1] > 0))
    if bad.any():
        c, p = (int(i) for i in np.argwhere(bad)[0])
        major, minor, pa = beams[c, p]
        what = "no beam" if np.isnan(beams[c, p]).all() else (
            f"the beam {major / ARCSEC:.6g} x {minor / ARCSEC:.6g} arcsec, PA {pa:.6g} deg")
        raise ImageFileError(path, f"has {what} for channel {c}, polarization {p} "
                             f"({int(bad.sum())} bad plane(s)): beams must be finite and > 0")


# --- FITS: converting ------------------------------------------------------------------------------

def convert_fits(info: ImageInfo, outfile: Path, converter, new_bunit: str, history: list[str],
                 progress=None) -> dict:
    """Write *outfile* (a path the caller makes final): the input with every pixel converted.

    Returns ``{"method": "stream", "blocks": n}``.
    """
    if info.extra["bitpix"] > 0 or info.extra["scaled"]:
        raise ImageFileError(info.path, "integer or scaled (BSCALE/BZERO) FITS data; convert it to floating point "
                             "first (e.g. importfits then exportfits)")
    dtype = np.dtype(">f4" if info.extra["bitpix"] == -32 else ">f8")
    header, _ = _read_header_of(info)
    header["BUNIT"] = new_bunit
    for line in history:  # FITS headers are ASCII: a file name with other letters keeps its place as '?'
        header.add_history(line.encode("ascii", "replace").decode("ascii"))
    runs = _Runs(info)
    blocks = 0
    with open(info.path, "rb", buffering=0) as src, open(outfile, "wb", buffering=0) as dst:
        _posix_fadvise_sequential(src)
        _write_all(dst, header.tostring().encode("ascii"))
        src.seek(info.extra["data_loc"])
        buffer = np.empty(max(1, min(BLOCK_BYTES, info.extra["data_bytes"]) // dtype.itemsize), dtype)
        for values, chan, pol in runs.blocks(buffer):
            _read_exactly(src, values, info)
            converter.convert_inplace(values, chan, pol, peak=True)
            _write_all(dst, values)
            blocks += 1
            if progress is not None:
                progress.update(1)
        _write_all(dst, b"\0" * (-info.extra["data_bytes"] % FITS_BLOCK))
        src.seek(info.extra["primary_end"])
        rest = info.extra["size"] - info.extra["primary_end"]
        copied = _copy_exactly(src, dst, rest)
        if copied != rest:
            raise ImageFileError(info.path, f"shrank while it was read: {rest} bytes of extensions expected "
                                 f"after byte {info.extra['primary_end']}, {copied} read")
    return {"method": "stream", "blocks": blocks}


def _read_header_of(info: ImageInfo):
    with open(info.path, "rb") as fh:
        return _read_header(fh, info.path, 0, "primary")


class _Runs:
    """The FITS data as a sequence of *runs*: stretches of pixels sharing one channel and polarization.

    A run is all pixels of the axes below the first of (spectral, Stokes) — in a cube with the usual
    axis order, one plane.  Blocks hold whole runs, or a piece of one run if it does not fit.
    """

    def __init__(self, info: ImageInfo):
        self.shape = info.shape
        axes = [a for a in (info.spectral_axis, info.stokes_axis) if a is not None]
        self.first = min(axes) if axes else len(self.shape)
        self.run = math.prod(self.shape[:self.first])
        self.nruns = math.prod(self.shape[self.first:])
        self.spectral, self.stokes = info.spectral_axis, info.stokes_axis

    def _indices(self, r0: int, r1: int):
        """Channel and polarization index of runs r0 … r1 − 1."""
        if self.first == len(self.shape):
            return np.zeros(r1 - r0, int), np.zeros(r1 - r0, int)
        index = np.unravel_index(np.arange(r0, r1), self.shape[self.first:], order="F")

        def along(axis):
            return index[axis - self.first] if axis is not None else np.zeros(r1 - r0, int)
        return along(self.spectral), along(self.stokes)

    def blocks(self, buffer: np.ndarray):
        """Yield (view of *buffer* to fill and convert, channel, polarization) — broadcastable to the view."""
        capacity = len(buffer)
        if self.run <= capacity:
            per_block = capacity // self.run
            for r0 in range(0, self.nruns, per_block):
                r1 = min(self.nruns, r0 + per_block)
                chan, pol = self._indices(r0, r1)
                yield buffer[:(r1 - r0) * self.run].reshape(r1 - r0, self.run), chan[:, None], pol[:, None]
        else:
            for r in range(self.nruns):
                chan, pol = self._indices(r, r + 1)
                for start in range(0, self.run, capacity):
                    yield buffer[:min(capacity, self.run - start)], chan[0], pol[0]


def _posix_fadvise_sequential(fh) -> None:
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError:
            pass


def _read_exactly(src, values: np.ndarray, info: ImageInfo) -> None:
    """Fill *values* from *src*; a short read means the file is shorter than its header says."""
    view = memoryview(values.reshape(-1).view(np.uint8))
    got = 0
    while got < len(view):
        n = src.readinto(view[got:])
        if not n:
            raise ImageFileError(info.path, f"is truncated or shrank while it was read: the data end at byte "
                                 f"{src.tell()}, {len(view) - got} bytes short of what its header announces")
        got += n


def _write_all(dst, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[dst.write(view):]


def _copy_exactly(src, dst, nbytes: int) -> int:
    copied = 0
    while copied < nbytes:
        chunk = src.read(min(16 * 2**20, nbytes - copied))
        if not chunk:
            break
        _write_all(dst, chunk)
        copied += len(chunk)
    return copied


# --- CASA images: reading --------------------------------------------------------------------------

def _read_casa_info(path: Path) -> ImageInfo:
    """A paged CASA image is read from its table alone (one open, no image tool); any other kind of
    image directory CASA knows (virtual, concatenated) through the image tool."""
    from almatools.casaenv import casatools
    table = read_image_table(path)
    if table is None:
        return _read_casa_info_with_image_tool(path)
    cs = casatools().coordsys()
    try:
        cs.fromrecord(table.coords)
        axes = _casa_axes(path, cs, table.shape)
    finally:
        cs.done()
    beams, beam_error = None, None
    try:  # reported only if the beam is needed
        beams = table.beams
        if beams is not None:
            _check_beam_planes(path, beams, table.shape, axes["spectral"], axes["stokes"])
            _check_beams(path, beams)
    except ImageFileError as exc:
        beams, beam_error = None, exc
    itemsize = table.pixels.dtype.itemsize if table.pixels is not None else 4
    return ImageInfo(path, "casa", table.shape, table.units.strip(), axes["spectral"], axes["stokes"],
                     axes["freqs"], beams, axes["pixel_sr"], axes["note"], nbytes=_tree_bytes(path),
                     extra={"itemsize": itemsize, "beam_error": beam_error, "pixels": table.pixels,
                            "why": table.why})


def _read_casa_info_with_image_tool(path: Path) -> ImageInfo:
    from almatools.casaenv import casatools
    ia = casatools().image()
    try:
        try:
            ia.open(str(path))
        except RuntimeError as exc:
            raise ImageFileError(path, f"is a directory that CASA cannot open as an image ({str(exc).strip()})"
                                 ) from None
        shape = tuple(int(n) for n in ia.shape())
        cs = ia.coordsys()
        try:
            axes = _casa_axes(path, cs, shape)
        finally:
            cs.done()
        record, bunit = ia.restoringbeam(), ia.brightnessunit()
    finally:
        ia.done()
    beams, beam_error = None, None
    try:
        if record:
            imageinfo = {"restoringbeam": record} if "beams" not in record else {"perplanebeams": {
                "nChannels": record["nChannels"], "nStokes": record["nStokes"],
                **{f"*{c + p * int(record['nChannels'])}": record["beams"][f"*{c}"][f"*{p}"]
                   for c in range(int(record["nChannels"])) for p in range(int(record["nStokes"]))}}}
            beams = beams_from_imageinfo(imageinfo)
            _check_beam_planes(path, beams, shape, axes["spectral"], axes["stokes"])
            _check_beams(path, beams)
    except ImageFileError as exc:
        beams, beam_error = None, exc
    return ImageInfo(path, "casa", shape, bunit.strip(), axes["spectral"], axes["stokes"], axes["freqs"], beams,
                     axes["pixel_sr"], axes["note"], nbytes=_tree_bytes(path),
                     extra={"itemsize": 4, "beam_error": beam_error, "pixels": None,
                            "why": "not a paged image"})


def _casa_axes(path: Path, cs, shape) -> dict:
    """Spectral and Stokes axes, each channel's frequency (Hz) and the pixel solid angle of a coordsys."""
    spectral = _pixel_axis(cs, "spectral")
    stokes = _pixel_axis(cs, "stokes")
    freqs, note = np.array([math.nan]), ""
    if spectral is not None:
        pixels = np.tile(np.asarray(cs.referencepixel()["numeric"], float)[:, None], (1, shape[spectral]))
        pixels[spectral] = np.arange(shape[spectral])
        world = cs.toworldmany(pixels)["numeric"]
        unit = cs.units()[spectral]
        freqs = np.asarray(world[spectral], float) * {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}.get(unit, math.nan)
        if not (np.isfinite(freqs) & (freqs > 0)).all():
            raise ImageFileError(path, f"its spectral axis gives frequencies {float(freqs.min())!r}-"
                                 f"{float(freqs.max())!r} ({unit}): they must be finite and > 0 Hz")
        note = f"frequency axis, frame {cs.referencecode('spectral')[0]}"
    pixel_sr = math.nan
    if _pixel_axis(cs, "direction") is not None:
        inc = cs.increment(type="direction", format="n")["numeric"]
        units = cs.units(type="direction")
        pixel_sr = abs(inc[0] * _TO_RAD.get(units[0], math.nan) * inc[1] * _TO_RAD.get(units[1], math.nan))
    return {"spectral": spectral, "stokes": stokes, "freqs": freqs, "note": note, "pixel_sr": pixel_sr}


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


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


def _check_beam_planes(path: Path, beams: np.ndarray, shape, spectral, stokes) -> None:
    want = (shape[spectral] if spectral is not None else 1, shape[stokes] if stokes is not None else 1)
    if beams.shape[0] not in (1, want[0]) or beams.shape[1] not in (1, want[1]):
        raise ImageFileError(path, f"has per-plane beams for {beams.shape[0]} channel(s) x {beams.shape[1]} "
                             f"polarization(s); the image has {want[0]} x {want[1]}")


# --- CASA images: converting -----------------------------------------------------------------------

def convert_casa(info: ImageInfo, outfile: Path, converter, new_bunit: str, history: list[str],
                 progress=None) -> dict:
    """Write the converted image to *outfile* (a new path the caller makes final).

    The image's files are copied once except its pixel file, which is streamed through the
    converter tile by tile; images whose pixels are not in a plain tiled file are copied by CASA
    (``subimage``) and converted by CASA.  Returns ``{"method": "tiles" | "casa", "blocks": n}``.
    """
    layout = info.extra.get("pixels")
    if layout is not None:
        shutil.copytree(info.path, outfile, symlinks=True,
                        ignore=lambda d, names: [layout.file.name] if Path(d) == info.path else [])
        stats = _stream_tiles(info, layout, outfile / layout.file.name, converter, progress)
    else:
        from almatools import log
        log.info(f"{info.path}: converted through CASA ({info.extra.get('why')})")
        stats = _convert_with_casa(info, outfile, converter, progress)
    set_units_and_history(outfile, new_bunit, history, "tbconv")
    return stats


def _stream_tiles(info: ImageInfo, layout, target: Path, converter, progress) -> dict:
    """Copy the pixel file to *target*, converting each tile on the way: one read, one write."""
    per_block = max(1, BLOCK_BYTES // layout.tile_bytes)
    tile_shape = layout.tile_numpy_shape
    buffer = np.empty(min(per_block, layout.ntiles) * math.prod(layout.tile), layout.dtype)
    blocks = 0
    with open(layout.file, "rb", buffering=0) as src, open(target, "wb", buffering=0) as dst:
        _posix_fadvise_sequential(src)
        for t0 in range(0, layout.ntiles, per_block):
            t1 = min(layout.ntiles, t0 + per_block)
            tiles = buffer[:(t1 - t0) * math.prod(layout.tile)].reshape((t1 - t0,) + tile_shape)
            _read_exactly(src, tiles, info)
            origins = layout.origins(t0, t1)
            if converter.linear:
                chan, pol = _tile_indices(info, layout, origins)
                converter.convert_inplace(tiles, chan, pol, peak=False)
            else:  # per tile, on the pixels inside the image (edge tiles are padded)
                for k, origin in enumerate(origins):
                    inside = tuple(slice(0, min(t, n - o)) for t, n, o in
                                   reversed(list(zip(layout.tile, info.shape, origin))))
                    chan, pol = _tile_indices(info, layout, origin[None, :])
                    view = tiles[k][inside]
                    converter.convert_inplace(view, chan[0][inside], pol[0][inside], peak=True)
            _write_all(dst, tiles)
            blocks += 1
            if progress is not None:
                progress.update(1)
    return {"method": "tiles", "blocks": blocks}


def _tile_indices(info: ImageInfo, layout, origins: np.ndarray):
    """Channel and polarization index of every pixel of the tiles at *origins*, broadcastable to
    ``(ntiles,) + tile_numpy_shape``; indices past the image's edge (tile padding) are clipped."""
    ndim = len(layout.tile)

    def along(axis):
        if axis is None:
            return np.zeros((len(origins),) + (1,) * ndim, int)
        shape = [len(origins)] + [1] * ndim
        shape[1 + ndim - 1 - axis] = layout.tile[axis]
        index = origins[:, axis][:, None] + np.arange(layout.tile[axis])[None, :]
        return np.minimum(index, info.shape[axis] - 1).reshape(shape)
    return along(info.spectral_axis), along(info.stokes_axis)


def _convert_with_casa(info: ImageInfo, image: Path, converter, progress) -> dict:
    """Copy the image to the paged image *image* with CASA, then convert it in place through casatools."""
    from almatools.casaenv import casatools
    ia = casatools().image()
    try:
        ia.open(str(info.path))
        ia.subimage(outfile=str(image), dropdeg=False).done()
    finally:
        ia.done()
    if converter.linear and "'" not in str(image):  # LEL cannot quote a name holding '
        _scale_planes_in_casa(info, image, converter.factor_table(info.nchan, info.npol))
        return {"method": "casa", "blocks": 1}
    ndim, spec, stokes = len(info.shape), info.spectral_axis, info.stokes_axis
    step = max(1, BLOCK_BYTES // (4 * math.prod(info.shape) // info.nchan))
    pol = _along(ndim, stokes, np.arange(info.npol)) if stokes is not None else np.zeros((1,) * ndim, int)
    blocks = 0
    ia = casatools().image()
    try:
        ia.open(str(image))
        for c0 in range(0, info.nchan, step):
            c1 = min(info.nchan, c0 + step) - 1
            blc, trc = [0] * ndim, [n - 1 for n in info.shape]
            chan = np.zeros((1,) * ndim, int)
            if spec is not None:
                blc[spec], trc[spec] = c0, c1
                chan = _along(ndim, spec, np.arange(c0, c1 + 1))
            block = ia.getchunk(blc=blc, trc=trc, dropdeg=False)
            converter.convert_inplace(block, chan, pol, peak=True)
            ia.putchunk(block, blc=blc)
            blocks += 1
            if progress is not None:
                progress.update(1)
    finally:
        ia.done()
    return {"method": "casa", "blocks": blocks}


def _scale_planes_in_casa(info: ImageInfo, image: Path, table: np.ndarray) -> None:
    """Multiply each (channel, pol) plane of *image* by its factor, in place, with one LEL
    expression: a factor image with degenerate direction axes, which LEL stretches over the planes."""
    from almatools.casaenv import casatools
    ct = casatools()
    ndim, spec, stokes = len(info.shape), info.spectral_axis, info.stokes_axis
    trc, shape = [0] * ndim, [1] * ndim
    for axis, n in ((spec, info.nchan), (stokes, info.npol)):
        if axis is not None:
            trc[axis], shape[axis] = n - 1, n
    values = np.empty(shape, np.float32)
    for c in range(info.nchan):
        for p in range(info.npol):
            index = [0] * ndim
            if spec is not None:
                index[spec] = c
            if stokes is not None:
                index[stokes] = p
            values[tuple(index)] = table[c, p]
    factor_image = scratch_path(image, "tbconv", "factors")
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
