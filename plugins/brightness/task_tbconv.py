"""tbconv: Jy/beam ↔ brightness temperature for values, CASA images and FITS cubes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from almatools import log
from almatools.errors import TaskParameterError
from almatools.io import atomic_path

from . import conversion as conv
from . import images

__all__ = ["tbconv"]

TASK = "tbconv"
_BUNIT_ALIASES = {"jy/beam": "Jy/beam", "jy/bm": "Jy/beam", "jy beam-1": "Jy/beam", "jy.beam-1": "Jy/beam",
                  "k": "K", "kelvin": "K", "jy/pixel": "Jy/pixel", "jy/pix": "Jy/pixel", "jy/sr": "Jy/sr"}


def tbconv(imagename="", values=None, inunit="", outunit="", freq="", beam=None, cell="",
           approximation="rj", outfile="", outformat="", inplace=False, overwrite=False):
    """Convert between Jy/beam and brightness temperature; see ``xml/tbconv.xml``."""
    values = list(values or [])
    beam = list(beam or [])
    if imagename:
        if values:
            raise TaskParameterError(TASK, "values", values, "give either imagename or values, not both")
        return _convert_image(Path(imagename), inunit, outunit, freq, beam, cell, approximation,
                              outfile, outformat, inplace, overwrite)
    if not values:
        raise TaskParameterError(TASK, "values", values, "give values to convert, or an imagename")
    return _convert_values(values, inunit, outunit, freq, beam, cell, approximation)


# --- parameters --------------------------------------------------------------------------------

def _quantity(param: str, text: str, unit: str):
    from astropy import units as u
    try:
        q = u.Quantity(text)
        return q.to_value(unit, equivalencies=u.spectral()) if unit == "Hz" else q.to_value(unit)
    except (TypeError, ValueError, u.UnitsError) as exc:
        raise TaskParameterError(TASK, param, text, f"must be a quantity in {unit} or a convertible unit ({exc})")


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
    freq_hz = _quantity("freq", freq, "Hz") if freq else math.nan
    beam_sr = pixel_sr = None
    axes = None
    if "Jy/beam" in (inunit, outunit):
        if not beam:
            raise TaskParameterError(TASK, "beam", beam, "a beam is needed to convert Jy/beam")
        axes, beam_sr = _beam_from_param(beam)
    if "Jy/pixel" in (inunit, outunit):
        if not cell:
            raise TaskParameterError(TASK, "cell", cell, "a pixel size is needed to convert Jy/pixel")
        side = _quantity("cell", cell, "rad")
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
    if not path.exists():
        raise TaskParameterError(TASK, "imagename", str(path), "does not exist")
    try:
        info = images.read_info(path)
    except (ValueError, RuntimeError, OSError) as exc:
        raise TaskParameterError(TASK, "imagename", str(path), f"cannot be read as a CASA image or FITS file: {exc}")
    bunit = _image_bunit(info, inunit)
    outunit = _unit("outunit", outunit, ("K", "Jy/beam")) if outunit else _default_outunit(bunit)
    if outunit == bunit:
        raise TaskParameterError(TASK, "outunit", outunit, f"{path} is already in {bunit}")
    if cell:
        log.warn(f"cell={cell!r} is not used for images: the pixel size comes from the image")
    freqs = _plane_freqs(info, freq)
    beams = _plane_beams(info, beam)
    src_format = info.format
    dst_format = outformat or src_format
    target = _output_path(path, src_format, dst_format, outunit, outfile, inplace, overwrite)

    converter = PlaneConverter(bunit, outunit, approximation, freqs, beams)
    history = [f"tbconv: {bunit} -> {outunit} ({'Rayleigh-Jeans' if approximation == 'rj' else 'Planck'}) "
               f"from {path.name}, {len(freqs)} frequencies {freqs.min() / 1e9:.6f}-{freqs.max() / 1e9:.6f} GHz, "
               f"{beams.shape[0] * beams.shape[1]} beam(s)"]
    log.info(f"{path}: {src_format} image {info.shape}, {bunit} -> {outunit}, {approximation}, "
             f"spectral axis: {info.spectral_note or 'none (freq given)'}; writing {target}")
    _convert_into(info, target, src_format, dst_format, converter, outunit, history)
    peaks = converter.peak
    rj = conv.factor_rj(freqs) / conv.beam_solid_angle(beams[..., 0], beams[..., 1]).mean()
    result = {"mode": "image", "imagename": str(path), "outfile": str(target), "format": dst_format,
              "inunit": bunit, "outunit": outunit, "approximation": approximation,
              "shape": list(info.shape),
              "nplanes": int(np.prod([info.shape[a] for a in (info.spectral_axis, info.stokes_axis) if a is not None])),
              "freq_hz": {"min": float(freqs.min()), "max": float(freqs.max()), "n": int(len(freqs))},
              "beams": int(beams.shape[0] * beams.shape[1]),
              "beam_arcsec": {"major": [float(beams[..., 0].min() / conv.ARCSEC), float(beams[..., 0].max() / conv.ARCSEC)],
                              "minor": [float(beams[..., 1].min() / conv.ARCSEC), float(beams[..., 1].max() / conv.ARCSEC)]},
              "k_per_jy_per_beam_rj": {"min": float(rj.min()), "max": float(rj.max())},
              "peak": {bunit: peaks["in"], outunit: peaks["out"]} if math.isfinite(peaks["in"]) else {},
              "inplace": bool(inplace)}
    if result["peak"]:
        log.info(f"peak {peaks['in']:.6g} {bunit} = {peaks['out']:.6g} {outunit}")
    return result


class PlaneConverter:
    """Converts blocks of pixels given the channel and polarization index of each pixel.

    With the Rayleigh-Jeans approximation the conversion is one factor per
    plane: :attr:`plane_factors` (``[channel, pol]``) lets a CASA image be
    converted by CASA itself (LEL) instead of block by block in Python.
    Keeps the brightest input pixel and its converted value in :attr:`peak`.
    """

    def __init__(self, bunit, outunit, approximation, freqs, beams):
        self.bunit, self.outunit, self.approximation = bunit, outunit, approximation
        self.freqs = freqs
        self.beam_sr = conv.beam_solid_angle(beams[..., 0], beams[..., 1])  # [nchan or 1, npol or 1]
        self.peak = {"in": -math.inf, "out": -math.inf}
        self.plane_factors = None
        if approximation == "rj":
            nchan = max(len(freqs), self.beam_sr.shape[0])
            chan = np.arange(nchan)[:, None]
            pol = np.arange(self.beam_sr.shape[1])[None, :]
            self.plane_factors = self._factor(chan, pol)

    def _indices(self, chan, pol):
        c = np.minimum(chan, len(self.freqs) - 1)
        b = (np.minimum(chan, self.beam_sr.shape[0] - 1), np.minimum(pol, self.beam_sr.shape[1] - 1))
        return c, b

    def _factor(self, chan, pol):
        c, b = self._indices(chan, pol)
        return conv.convert(1.0, self.bunit, self.outunit, self.freqs[c], "rj", self.beam_sr[b])

    def __call__(self, block, chan, pol):
        if self.approximation == "rj":  # applied in the data's own precision
            out = block * np.asarray(self._factor(chan, pol), dtype=block.dtype.newbyteorder("="))
        else:
            c, b = self._indices(chan, pol)
            out = conv.convert(block.astype(np.float64), self.bunit, self.outunit, self.freqs[c],
                               self.approximation, self.beam_sr[b])
        top = np.fmax.reduce(block, axis=None)  # ignores NaN without copying the block
        if top > self.peak["in"]:
            i = int(np.argmax(np.where(np.isnan(block), -np.inf, block)))
            self.note_peak(float(block.flat[i]), float(np.broadcast_to(out, block.shape).flat[i]))
        return out

    def note_peak(self, value: float, converted: float) -> None:
        if value > self.peak["in"]:
            self.peak = {"in": value, "out": converted}


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
        hz = _quantity("freq", freq, "Hz")
        if info.spectral_axis is not None:
            log.warn(f"freq={freq!r} given: used for every plane instead of the image's spectral axis")
        return np.array([hz])
    if info.spectral_axis is None or not np.all(np.isfinite(info.freqs_hz)):
        raise TaskParameterError(TASK, "freq", freq,
                                 f"{info.path} has no spectral axis: give the frequency (e.g. freq='230GHz')")
    return info.freqs_hz


def _plane_beams(info, beam: list[str]) -> np.ndarray:
    if beam:
        axes, sr = _beam_from_param(beam)
        if info.beams is not None:
            log.warn(f"beam={beam!r} given: used for every plane instead of the image's beam(s)")
        if axes is None:  # a solid angle: an equivalent circular beam
            fwhm = math.sqrt(sr / conv.FWHM_TO_AREA)
            axes = (fwhm, fwhm, 0.0)
        return np.array([[axes]], float)
    if info.beams is None:
        raise TaskParameterError(TASK, "beam", beam,
                                 f"{info.path} has no restoring beam: give one (beam=['1.2arcsec', '0.6arcsec'])")
    if not np.all(info.beams[..., :2] > 0):
        raise TaskParameterError(TASK, "imagename", str(info.path), "has a beam of zero size")
    return info.beams


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
        if src_format == "fits" and path.suffix.lower() in (".fits", ".fit", ".fts"):
            stem = path.with_suffix("")
        else:
            stem = path
        target = Path(f"{stem}{tag}{'.fits' if dst_format == 'fits' else ''}")
    if target.resolve() == path.resolve():
        raise TaskParameterError(TASK, "outfile", str(target), "is the input image; use inplace=True to convert it in place")
    if target.exists() and not overwrite:
        raise TaskParameterError(TASK, "outfile", str(target), "exists; set overwrite=True to replace it")
    return target


def _convert_into(info, target: Path, src_format, dst_format, convert_block, outunit, history):
    """Convert in the source format, going through a temporary image when the output format differs."""
    from almatools.casaenv import casatools
    with log.progress(total=images.planes(info), desc=f"tbconv {info.path.name}", unit="plane") as bar:
        if src_format == dst_format:
            (images.convert_fits if src_format == "fits" else images.convert_casa)(
                info, target, convert_block, outunit, history, bar)
            return
        ia = casatools().image()
        work = target.with_name(f".{target.name}.work")
        shutil.rmtree(work, ignore_errors=True)
        try:
            if src_format == "fits":  # FITS → CASA: import, then convert the imported copy
                ia.fromfits(outfile=str(work), infile=str(info.path), overwrite=True)
                ia.close()
                images.convert_casa(images.read_info(work), target, convert_block, outunit, history, bar)
            else:  # CASA → FITS: convert to a temporary CASA image, export it
                images.convert_casa(info, work, convert_block, outunit, history, bar)
                ia.open(str(work))
                with atomic_path(target) as tmp:
                    ia.tofits(outfile=tmp, velocity=False, overwrite=True)
                    ia.close()
        finally:
            ia.done()
            shutil.rmtree(work, ignore_errors=True)
