"""cl2image: a model image from components in one call (the toolkit sequence, without its traps)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np

from almatools import log
from almatools.errors import TaskParameterError
from almatools.io import atomic_path

from . import components as comp
from .grid import ARCSEC, channel_frequencies, grid_from_parameters, grid_from_template, rad_per

__all__ = ["cl2image"]

TASK = comp.TASK


def cl2image(imagename, direction=None, flux=None, fluxunit="Jy", freq=None, shape=None, majoraxis=None,
             minoraxis=None, positionangle=None, spectralindex=None, complist="", template="", field="", spw="",
             imsize=None, cell=None, phasecenter="", nchan=1, start="", width="", stokes="I", outframe="LSRK",
             beam=None, exportfits=True, overwrite=False):
    """Make a model image from components; see ``xml/cl2image.xml``."""
    from almatools.casaenv import casatools
    ct = casatools()
    image = Path(imagename)
    outputs = _outputs(image, exportfits, overwrite)
    components = _components(complist, direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                             spectralindex)
    beam_axes = _beam(beam)
    if template:
        grid = grid_from_template(Path(template), field, spw, stokes, imsize, cell)
    else:
        grid = grid_from_parameters(components, imsize, cell, phasecenter, nchan, start, width, stokes, outframe,
                                    beam_axes[1] if beam_axes else None, beam_axes[0] if beam_axes else None)
    warnings = []
    work = image.with_name(f".{image.name}.cl2image{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        cl_path = work / "model.cl"
        comp.to_componentlist(components, cl_path, grid.frame)
        csys = grid.coordsys_record(ct)
        model = work / "model.im"
        warnings += _render(ct, components, cl_path, model, grid.shape, csys)
        final = model
        if beam_axes:
            final = work / "model.convolved.im"
            _convolve(ct, model, final, beam_axes)
        fluxes, unit = _flux_table(ct, final, components, grid.frequencies(), beam_axes)
        _place(final, image)
        _place(cl_path, outputs["complist"])
        if exportfits:
            _export(ct, image, outputs["fits"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for f in fluxes:
        log.info(f"plane {f['channel']} at {f['freq_hz'] / 1e9:.6f} GHz: image {f['image_jy']:.6g} Jy, "
                 f"components {f['components_jy']:.6g} Jy")
    return {"imagename": str(image), "complist": str(outputs["complist"]),
            "fitsimage": str(outputs["fits"]) if exportfits else "", "unit": unit,
            "ncomponents": len(components), "shape": grid.shape,
            "cell_arcsec": [grid.dx / ARCSEC, grid.dy / ARCSEC] if grid.template_csys is None else [],
            "phasecenter": {"ra_deg": math.degrees(grid.ra0), "dec_deg": math.degrees(grid.dec0)},
            "flux": fluxes, "warnings": warnings}


def _outputs(image: Path, exportfits: bool, overwrite: bool) -> dict:
    stem = image.with_suffix("") if image.suffix in (".im", ".image") else image
    out = {"complist": Path(f"{stem}.cl"), "fits": Path(f"{stem}.fits")}
    for path in [image, out["complist"]] + ([out["fits"]] if exportfits else []):
        if path.exists() and not overwrite:
            raise TaskParameterError(TASK, "imagename", str(image), f"{path} exists; set overwrite=True to replace it")
    if not image.name:
        raise TaskParameterError(TASK, "imagename", str(image), "give the name of the model image to write")
    image.parent.mkdir(parents=True, exist_ok=True)
    return out


def _components(complist, direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                spectralindex) -> list:
    if complist:
        if direction:
            raise TaskParameterError(TASK, "complist", complist, "give either complist or direction/flux lists")
        path = Path(complist)
        if path.is_dir():
            return comp.from_componentlist(path)
        return comp.from_table(path, fluxunit)
    return comp.from_parameters(direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                                spectralindex)


def _beam(beam):
    beam = list(beam or [])
    if not beam:
        return None
    if len(beam) not in (2, 3):
        raise TaskParameterError(TASK, "beam", beam, "give [major, minor] or [major, minor, pa]")
    major, minor = (comp._q("beam", b, "rad", 0) for b in beam[:2])
    if not (major > 0 and minor > 0) or minor > major:
        raise TaskParameterError(TASK, "beam", beam, "needs 0 < minor <= major")
    return major, minor, comp._q("beam", beam[2], "deg", 0) if len(beam) == 3 else 0.0


def _render(ct, components, cl_path: Path, model: Path, shape: list[int], csys: dict) -> list[str]:
    """Fill the image (Jy/pixel) with the components; returns warnings."""
    warnings = []
    ia, cl = ct.image(), ct.componentlist()
    try:
        ia.fromshape(outfile=str(model), shape=shape, csys=csys, overwrite=True)
        ia.setbrightnessunit("Jy/pixel")
        cs = ia.coordsys()
        pixel_rad = abs(cs.increment(type="direction", format="n")["numeric"][0]) * rad_per(cs.units()[0])
        for i, c in enumerate(components):
            px = _topixel(cs, c)
            if not (-0.5 <= px[0] <= shape[0] - 0.5 and -0.5 <= px[1] <= shape[1] - 0.5):
                warnings.append(f"component {i} ({c.label or c.shape}) lies outside the image "
                                f"(pixel {px[0]:.1f}, {px[1]:.1f}); its flux is not in the image")
            elif c.shape != "point" and c.major < pixel_rad:
                warnings.append(f"component {i} ({c.shape}, {c.major / ARCSEC:.3g} arcsec) is smaller than a pixel "
                                f"({pixel_rad / ARCSEC:.3g} arcsec); its shape is not resolved")
        cs.done()
        cl.open(str(cl_path))
        record = cl.torecord()
        cl.done()  # not close(): it logs a WARN every time
        # CASA samples each component at pixel centres: exact for points and resolved Gaussians,
        # ~1 % low for disks and far off for Gaussians under two pixels, which are renormalised
        renorm = [i for i, c in enumerate(components)
                  if c.shape == "disk" or (c.shape == "Gaussian" and c.minor < 2 * pixel_rad)]
        keep = [i for i in range(len(components)) if i not in renorm]
        rest = {f"component{j}": record[f"component{i}"] for j, i in enumerate(keep)}
        rest["nelements"] = len(keep)
        if keep:
            ia.modify(model=rest, subtract=False)
        for i in renorm:
            _add_renormalised(ct, ia, record, i, components[i], shape)
        ia.close()
    finally:
        ia.done()
        cl.done()
    for w in warnings:
        log.warn(w)
    return warnings


def _topixel(cs, c):
    world = cs.referencevalue(format="n")["numeric"].copy()
    units = cs.units()
    world[0], world[1] = c.ra / rad_per(units[0]), c.dec / rad_per(units[1])
    return cs.topixel(world)["numeric"][:2]


def _add_renormalised(ct, ia, record: dict, i: int, c, shape: list[int]) -> None:
    """Add component *i* (a disk or a small Gaussian) with its exact flux.

    The component is sampled once on this grid extended by a margin that holds
    all of it (same pixels, same sub-pixel phase), so the sampled total is
    known even when the image clips it; the image part is then scaled per
    channel to carry the component's flux at that channel's frequency.
    """
    one = {"nelements": 1, "component0": record[f"component{i}"]}
    nx, ny, npol, nchan = shape
    cs = ia.coordsys()
    try:
        csys = cs.torecord()
        freqs = channel_frequencies(cs, 3, nchan)
        cell = abs(cs.increment(type="direction", format="n")["numeric"][0]) * rad_per(cs.units()[0])
    finally:
        cs.done()
    pad = int(math.ceil(2 * c.major / cell)) + 2
    direction = next(k for k in csys if k.startswith("direction"))
    csys[direction]["crpix"] = np.asarray(csys[direction]["crpix"], float) + pad
    scratch = ct.image()
    try:
        scratch.fromshape(shape=[nx + 2 * pad, ny + 2 * pad, npol, 1], csys=csys, overwrite=True)
        scratch.setbrightnessunit("Jy/pixel")
        scratch.modify(model=one, subtract=False)
        sampled = scratch.getchunk()  # at the first channel's frequency
    finally:
        scratch.done()
    full = float(sampled[:, :, 0, 0].sum(dtype=np.float64))
    pattern = sampled[pad:pad + nx, pad:pad + ny, :, 0]
    for k in range(nchan):
        plane = ia.getchunk(blc=[0, 0, 0, k], trc=[nx - 1, ny - 1, npol - 1, k])
        plane[:, :, :, 0] += (pattern * (c.flux_at(freqs[k]) / full)).astype(plane.dtype)
        ia.putchunk(plane, blc=[0, 0, 0, k])


def _convolve(ct, model: Path, out: Path, beam_axes) -> None:
    major, minor, pa = beam_axes
    ia = ct.image()
    try:
        ia.open(str(model))
        conv = ia.convolve2d(outfile=str(out), axes=[0, 1], type="gaussian", major=f"{major}rad",
                             minor=f"{minor}rad", pa=f"{pa}deg", overwrite=True)
        conv.done()
    finally:
        ia.done()


def _flux_table(ct, image: Path, components, freqs, beam_axes):
    """Per-plane Stokes I total in the image against the components' (at each plane's frequency)."""
    ia = ct.image()
    try:
        ia.open(str(image))
        unit = ia.brightnessunit()
        beam_pixels = ia.beamarea()["pixels"] if beam_axes else 1.0
        # sums over the direction axes, in CASA (no pixels through Python): [stokes, channel]
        sums = np.asarray(ia.statistics(axes=[0, 1], robust=False, verbose=False)["sum"]).reshape(
            ia.shape()[2], ia.shape()[3])
    finally:
        ia.done()
    rows = []
    for k, total in enumerate(sums[0] / beam_pixels):
        expected = sum(c.flux_at(freqs[k]) for c in components)
        rows.append({"channel": k, "freq_hz": float(freqs[k]), "image_jy": float(total), "components_jy": expected,
                     "ratio": float(total) / expected if expected else math.nan})
    return rows, unit


def _place(src: Path, dst: Path) -> None:
    """Move a finished output into place, replacing an old one only after the new one is complete."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old{os.getpid()}")
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    else:
        os.replace(src, dst)


def _export(ct, image: Path, fitsfile: Path) -> None:
    ia = ct.image()
    try:
        ia.open(str(image))
        with atomic_path(fitsfile) as tmp:
            ia.tofits(outfile=tmp, velocity=False, dropstokes=False, overwrite=True)
    finally:
        ia.done()
