"""tbconv: Jy/beam ↔ brightness temperature for values, CASA images and FITS cubes."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from almatools import limits, log
from almatools.errors import TaskParameterError
from almatools.io import remove_path, remove_stale_scratch, replace_path, scratch_path

from . import conversion as conv
from . import images

__all__ = ["tbconv"]

TASK = "tbconv"
_BUNIT_ALIASES = {"jy/beam": "Jy/beam", "jy/bm": "Jy/beam", "jy beam-1": "Jy/beam", "jy.beam-1": "Jy/beam",
                  "k": "K", "kelvin": "K", "jy/pixel": "Jy/pixel", "jy/pix": "Jy/pixel", "jy/sr": "Jy/sr"}
FORMATS = ("casa", "fits")
#: temporaries earlier versions of tbconv left (FITS through atomic_path, CASA copies beside the output)
LEGACY_TEMPORARIES = (re.compile(r"^\..+\.(?P<pid>\d+)\.tmp\.fits$"), re.compile(r"^\..+\.(tmp|old)(?P<pid>\d+)$"))
FITS_SUFFIXES = (".fits", ".fit", ".fts")


def tbconv(imagename="", values=None, inunit="", outunit="", freq="", beam=None, cell="",
           approximation="rj", outfile="", outformat="", inplace=False, overwrite=False):
    """Convert between Jy/beam and brightness temperature; see ``xml/tbconv.xml``."""
    values = list(values or [])
    beam = list(beam or [])
    approximation = _choice("approximation", approximation or "rj", conv.APPROXIMATIONS)
    outformat = _choice("outformat", outformat, ("",) + FORMATS)
    if imagename:
        if values:
            raise TaskParameterError(TASK, "values", values, "give either imagename or values, not both")
        return _convert_image(Path(imagename), inunit, outunit, freq, beam, cell, approximation,
                              outfile, outformat, inplace, overwrite)
    if not values:
        raise TaskParameterError(TASK, "values", values, "give values to convert, or an imagename")
    return _convert_values(values, inunit, outunit, freq, beam, cell, approximation)


# --- parameters --------------------------------------------------------------------------------

def _choice(param: str, value: str, allowed) -> str:
    """An enum value, case-insensitively, in its canonical (lower-case) spelling."""
    canonical = str(value).strip().lower()
    if canonical not in allowed:
        raise TaskParameterError(TASK, param, value, f"must be one of {', '.join(repr(a) for a in allowed)}")
    return canonical


def _quantity(param: str, text: str, unit: str) -> float:
    """A finite quantity in *unit* (frequencies also from wavelengths)."""
    from astropy import units as u
    try:
        q = u.Quantity(text)
        value = q.to_value(unit, equivalencies=u.spectral()) if unit == "Hz" else q.to_value(unit)
    except Exception as exc:  # astropy's parser raises several types for hostile text
        raise TaskParameterError(TASK, param, text,
                                 f"must be a quantity in {unit} or a convertible unit ({exc})") from None
    if np.ndim(value) != 0 or not math.isfinite(value):
        raise TaskParameterError(TASK, param, text, f"must be one finite quantity in {unit}")
    return float(value)


def _positive(param: str, text: str, unit: str) -> float:
    value = _quantity(param, text, unit)
    if not value > 0:
        raise TaskParameterError(TASK, param, text, "must be > 0")
    return value


def _beam_from_param(beam: list[str]):
    """(major rad, minor rad, pa deg) or a solid angle in sr from the beam parameter."""
    if len(beam) == 1:
        sr = _quantity("beam", beam[0], "sr")
        if not sr > 0:
            raise TaskParameterError(TASK, "beam", beam, "a beam solid angle must be > 0")
        return None, sr
    if len(beam) not in (2, 3):
        raise TaskParameterError(TASK, "beam", beam, "give [major, minor], [major, minor, pa] or [solid angle]")
    major, minor = (_quantity("beam", b, "rad") for b in beam[:2])
    pa = _quantity("beam", beam[2], "deg") if len(beam) == 3 else 0.0
    if not (major > 0 and minor > 0):
        raise TaskParameterError(TASK, "beam", beam, "the beam major and minor axes must be > 0")
    if minor > major:
        raise TaskParameterError(TASK, "beam", beam, "the minor axis is larger than the major axis")
    return (major, minor, pa), conv.beam_solid_angle(major, minor)


def _unit(param: str, text: str, allowed=conv.UNITS) -> str:
    unit = _BUNIT_ALIASES.get(text.strip().lower().replace(" ", ""), text)
    if unit not in allowed:
        raise TaskParameterError(TASK, param, text, f"must be one of {', '.join(allowed)}")
    return unit


def _default_outunit(inunit: str) -> str:
    return "Jy/beam" if inunit == "K" else "K"


# --- values ------------------------------------------------------------------------------------

def _convert_values(values, inunit, outunit, freq, beam, cell, approximation):
    if not inunit:
        raise TaskParameterError(TASK, "inunit", inunit, "say what unit the values are in")
    inunit = _unit("inunit", inunit)
    outunit = _unit("outunit", outunit) if outunit else _default_outunit(inunit)
    if not freq and "K" in (inunit, outunit):
        raise TaskParameterError(TASK, "freq", freq, "a frequency is needed to convert to or from K")
    freq_hz = _positive("freq", freq, "Hz") if freq else math.nan
    beam_sr = pixel_sr = None
    axes = None
    if "Jy/beam" in (inunit, outunit):
        if not beam:
            raise TaskParameterError(TASK, "beam", beam, "a beam is needed to convert Jy/beam")
        axes, beam_sr = _beam_from_param(beam)
    if "Jy/pixel" in (inunit, outunit):
        if not cell:
            raise TaskParameterError(TASK, "cell", cell, "a pixel size is needed to convert Jy/pixel")
        side = _positive("cell", cell, "rad")
        pixel_sr = side * side
    out = conv.convert(np.asarray(values, float), inunit, outunit, freq_hz, approximation, beam_sr, pixel_sr)
    result = {"mode": "values", "inunit": inunit, "outunit": outunit, "approximation": approximation,
              "freq_hz": float(freq_hz), "values": [float(v) for v in values], "converted": [float(v) for v in out]}
    if beam_sr is not None:
        result["beam_sr"] = float(beam_sr)
        result["beam_arcsec2"] = float(beam_sr) / conv.ARCSEC ** 2
        if axes:
            result["beam"] = {"major_arcsec": float(axes[0] / conv.ARCSEC),
                              "minor_arcsec": float(axes[1] / conv.ARCSEC), "pa_deg": float(axes[2])}
    if pixel_sr is not None:
        result["pixel_sr"] = float(pixel_sr)
    for v, o in zip(values[:20], out[:20]):
        log.info(f"{v:.6g} {inunit} = {o:.6g} {outunit} at {freq_hz / 1e9:.6f} GHz ({approximation})")
    return result


# --- images ------------------------------------------------------------------------------------

def _convert_image(path, inunit, outunit, freq, beam, cell, approximation, outfile, outformat, inplace,
                   overwrite):
    if not os.path.lexists(path):
        raise TaskParameterError(TASK, "imagename", str(path), "does not exist")
    info = images.read_info(path)  # ImageFileError (naming the file) for anything unreadable or impossible
    bunit = _image_bunit(info, inunit)
    outunit = _unit("outunit", outunit, ("K", "Jy/beam")) if outunit else _default_outunit(bunit)
    if outunit == bunit:
        raise TaskParameterError(TASK, "outunit", outunit, f"{path} is already in {bunit}")
    if cell:
        log.warn(f"cell={cell!r} is not used for images: the pixel size comes from the image")
    freqs = _plane_freqs(info, freq)
    beams = _plane_beams(info, beam)
    src_format = info.format
    dst_format = _output_format(outformat, outfile, src_format, inplace)
    target = _output_path(path, src_format, dst_format, outunit, outfile, inplace, overwrite)
    cleaned = remove_stale_scratch(target.parent, TASK, LEGACY_TEMPORARIES)
    if cleaned:
        log.info(f"removed {len(cleaned)} temporary file(s) left by interrupted tbconv runs: "
                 f"{', '.join(p.name for p in cleaned)}")
    _check_space(info, target, src_format != dst_format)

    converter = PlaneConverter(bunit, outunit, approximation, freqs, beams, info.nchan, info.npol)
    history = [f"tbconv: {bunit} -> {outunit} ({'Rayleigh-Jeans' if approximation == 'rj' else 'Planck'}) "
               f"from {path.name}, {len(freqs)} frequencies {freqs.min() / 1e9:.6f}-{freqs.max() / 1e9:.6f} GHz, "
               f"{beams.shape[0] * beams.shape[1]} beam(s)"]
    log.info(f"{path}: {src_format} image {info.shape}, {bunit} -> {outunit}, {approximation}, "
             f"spectral axis: {info.spectral_note or 'none (freq given)'}; writing {target}")
    stats = _convert_into(info, target, src_format, dst_format, converter, outunit, history)
    peaks = converter.peak
    rj = conv.factor_rj(freqs) / conv.beam_solid_angle(beams[..., 0], beams[..., 1]).mean()
    result = {"mode": "image", "imagename": str(path), "outfile": str(target), "format": dst_format,
              "inunit": bunit, "outunit": outunit, "approximation": approximation,
              "shape": list(info.shape), "nplanes": info.nchan * info.npol,
              "freq_hz": {"min": float(freqs.min()), "max": float(freqs.max()), "n": int(len(freqs))},
              "beams": int(beams.shape[0] * beams.shape[1]),
              "beam_arcsec": {"major": [float(beams[..., 0].min() / conv.ARCSEC), float(beams[..., 0].max() / conv.ARCSEC)],
                              "minor": [float(beams[..., 1].min() / conv.ARCSEC), float(beams[..., 1].max() / conv.ARCSEC)]},
              "k_per_jy_per_beam_rj": {"min": float(rj.min()), "max": float(rj.max())},
              "peak": {bunit: peaks["in"], outunit: peaks["out"]} if math.isfinite(peaks["in"]) else {},
              "inplace": bool(inplace), "method": stats["method"], "blocks": stats["blocks"]}
    if result["peak"]:
        log.info(f"peak {peaks['in']:.6g} {bunit} = {peaks['out']:.6g} {outunit}")
    return result


class PlaneConverter:
    """Converts blocks of pixels given the channel and polarization index of each pixel.

    With the Rayleigh–Jeans approximation the conversion is one factor per plane
    (:attr:`linear`; :meth:`factor_table` gives them as ``[channel, pol]``), applied by one
    multiplication in place in the data's own precision.  Planck is computed in float64.
    Keeps the brightest input pixel and its converted value in :attr:`peak` when asked.
    """

    def __init__(self, bunit, outunit, approximation, freqs, beams, nchan: int, npol: int):
        self.bunit, self.outunit, self.approximation = bunit, outunit, approximation
        self.freqs = np.asarray(freqs, float)
        self.beam_sr = conv.beam_solid_angle(beams[..., 0], beams[..., 1])  # [nchan or 1, npol or 1]
        self.linear = approximation == "rj"
        self.peak = {"in": -math.inf, "out": -math.inf}
        self._table = self.factor_table(nchan, npol) if self.linear else None

    def _plane(self, chan, pol):
        """Frequency and beam solid angle of the planes (a frequency or beam given once serves all)."""
        chan, pol = np.asarray(chan), np.asarray(pol)
        freq = self.freqs[np.minimum(chan, len(self.freqs) - 1)]
        beam = self.beam_sr[np.minimum(chan, self.beam_sr.shape[0] - 1), np.minimum(pol, self.beam_sr.shape[1] - 1)]
        return freq, beam

    def factor_table(self, nchan: int, npol: int) -> np.ndarray:
        """Output per input unit for every (channel, pol) plane (Rayleigh–Jeans)."""
        freq, beam = self._plane(np.arange(nchan)[:, None], np.arange(npol)[None, :])
        return conv.convert(1.0, self.bunit, self.outunit, freq, "rj", beam)

    def convert_inplace(self, block: np.ndarray, chan, pol, peak: bool) -> None:
        """Convert *block* in place; *chan*/*pol* are index arrays broadcastable to it."""
        if self.linear:
            factor = self._table[chan, pol].astype(block.dtype.newbyteorder("="))
            if peak:
                self._note_peak(block, factor)
            np.multiply(block, factor, out=block)
            return
        freq, beam = self._plane(chan, pol)
        out = conv.convert(block.astype(np.float64), self.bunit, self.outunit, freq, self.approximation, beam)
        if peak:
            self._note_peak(block, None, out)
        block[...] = out

    def _note_peak(self, block, factor=None, converted=None) -> None:
        top = np.fmax.reduce(block, axis=None)  # ignores NaN without copying the block
        if not top > self.peak["in"]:
            return
        i = int(np.nanargmax(block))
        value = float(block.reshape(-1)[i]) if block.flags.c_contiguous else float(block.flat[i])
        if converted is not None:
            out = float(np.broadcast_to(converted, block.shape).flat[i])
        else:
            out = value * float(np.broadcast_to(factor, block.shape).flat[i])
        self.peak = {"in": value, "out": out}


def _image_bunit(info, inunit: str) -> str:
    bunit = _BUNIT_ALIASES.get(info.bunit.lower().replace(" ", ""), info.bunit)
    if inunit:
        given = _unit("inunit", inunit, ("K", "Jy/beam"))
        if bunit and bunit != given:
            raise TaskParameterError(TASK, "inunit", inunit, f"{info.path} has BUNIT {info.bunit!r}")
        bunit = bunit or given
    if bunit == "Jy/pixel":
        raise TaskParameterError(
            TASK, "imagename", str(info.path),
            "is in Jy/pixel (a model image): convolve it with a beam first (imsmooth(kernel='gauss', "
            "major=..., minor=..., pa=...) or cl2image(beam=...)) to get Jy/beam")
    if bunit not in ("Jy/beam", "K"):
        raise TaskParameterError(TASK, "imagename", str(info.path),
                                 f"has brightness unit {info.bunit!r}; tbconv converts Jy/beam or K images "
                                 "(set inunit if the header's BUNIT is missing)")
    return bunit


def _plane_freqs(info, freq: str) -> np.ndarray:
    if freq:
        hz = _positive("freq", freq, "Hz")
        if info.spectral_axis is not None:
            log.warn(f"freq={freq!r} given: used for every plane instead of the image's spectral axis")
        return np.array([hz])
    if info.spectral_axis is None:
        raise TaskParameterError(TASK, "freq", freq,
                                 f"{info.path} has no spectral axis: give the frequency (e.g. freq='230GHz')")
    return info.freqs_hz


def _plane_beams(info, beam: list[str]) -> np.ndarray:
    if beam:
        axes, sr = _beam_from_param(beam)
        if info.beams is not None or info.extra.get("beam_error"):
            log.warn(f"beam={beam!r} given: used for every plane instead of the image's beam(s)")
        if axes is None:  # a solid angle: an equivalent circular beam
            fwhm = math.sqrt(sr / conv.FWHM_TO_AREA)
            axes = (fwhm, fwhm, 0.0)
        return np.array([[axes]], float)
    if info.extra.get("beam_error"):
        raise info.extra["beam_error"]
    if info.beams is None:
        raise TaskParameterError(TASK, "beam", beam,
                                 f"{info.path} has no restoring beam: give one (beam=['1.2arcsec', '0.6arcsec'])")
    return info.beams


def _output_format(outformat: str, outfile: str, src_format: str, inplace: bool) -> str:
    """The output format: as asked, else FITS for an outfile named *.fits, else the input's format.

    A CASA image named *.fits is refused: every FITS reader would fail on it.
    """
    fits_name = bool(outfile) and Path(outfile).suffix.lower() in FITS_SUFFIXES
    if outformat == "casa" and fits_name:
        raise TaskParameterError(TASK, "outfile", outfile,
                                 "ends in .fits but outformat='casa' (a CASA image is a directory); "
                                 "give another name or outformat='fits'")
    if outformat:
        return outformat
    if fits_name and not inplace:
        return "fits"
    return src_format


def _output_path(path: Path, src_format, dst_format, outunit, outfile, inplace, overwrite) -> Path:
    if inplace:
        if outfile and Path(outfile).resolve() != path.resolve():
            raise TaskParameterError(TASK, "outfile", outfile, "must be empty with inplace=True")
        if dst_format != src_format:
            raise TaskParameterError(TASK, "outformat", dst_format, f"inplace=True keeps the format ({src_format})")
        return path
    if outfile:
        target = Path(outfile)
    else:
        tag = ".K" if outunit == "K" else ".Jybeam"
        stem = path.with_suffix("") if src_format == "fits" and path.suffix.lower() in FITS_SUFFIXES else path
        target = Path(f"{stem}{tag}{'.fits' if dst_format == 'fits' else ''}")
    resolved, source = target.resolve(), path.resolve()
    if resolved == source:
        raise TaskParameterError(TASK, "outfile", str(target), "is the input image; use inplace=True to convert it in place")
    if source in resolved.parents:
        raise TaskParameterError(TASK, "outfile", str(target), f"lies inside the input image {path}")
    if os.path.lexists(target):
        if target.is_dir() and dst_format == "fits":
            raise TaskParameterError(TASK, "outfile", str(target),
                                     "is an existing directory; give the name of the FITS file to write")
        if target.is_dir() and not (target / "table.dat").is_file():
            raise TaskParameterError(TASK, "outfile", str(target),
                                     "is an existing directory that is not a CASA image; tbconv never replaces it")
        if not target.is_dir() and dst_format == "casa":
            raise TaskParameterError(TASK, "outfile", str(target),
                                     "is an existing file; a CASA image (a directory) cannot replace it")
        if not overwrite:
            raise TaskParameterError(TASK, "outfile", str(target), "exists; set overwrite=True to replace it")
    return target


def _check_space(info, target: Path, cross_format: bool) -> None:
    """The output (and, across formats, an intermediate copy) must fit on the disk before work starts."""
    limits.check_disk_space(target.parent, info.nbytes * (2 if cross_format else 1),
                            subject=limits.parameter("outfile"))


def _convert_into(info, target: Path, src_format, dst_format, converter, outunit, history) -> dict:
    """Convert into a scratch copy beside *target*, then move it into place (replacing the old one only
    when the new one is complete); across formats an intermediate goes through CASA's FITS machinery."""
    from almatools.casaenv import casatools
    part, work = scratch_path(target, TASK, "part"), scratch_path(target, TASK, "work")
    target.parent.mkdir(parents=True, exist_ok=True)
    with log.progress(total=images.planes(info), desc=f"tbconv {info.path.name}", unit="block") as bar:
        try:
            if src_format == dst_format:
                convert = images.convert_fits if src_format == "fits" else images.convert_casa
                stats = convert(info, part, converter, outunit, history, bar)
            else:
                ia = casatools().image()
                try:
                    if src_format == "fits":  # FITS → CASA: import, then convert the imported copy
                        ia.fromfits(outfile=str(work), infile=str(info.path), overwrite=True)
                    else:  # CASA → FITS: export, then stream the FITS file
                        ia.open(str(info.path))
                        ia.tofits(outfile=str(work), velocity=False, overwrite=True)
                finally:
                    ia.done()
                convert = images.convert_casa if dst_format == "casa" else images.convert_fits
                stats = convert(images.read_info(work), part, converter, outunit, history, bar)
            replace_path(part, target, TASK)
        finally:
            remove_path(part)
            remove_path(work)
    return stats
