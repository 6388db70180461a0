"""cl2image: a model image from components in one call (the toolkit sequence, without its traps)."""

from __future__ import annotations

import math
import re
import stat
from pathlib import Path

import numpy as np

from almatools import limits, log
from almatools.errors import TaskParameterError
from almatools.io import remove_path, remove_stale_scratch, replace_path, scratch_path

from . import components as comp
from .grid import ARCSEC, grid_from_parameters, grid_from_template, rad_per
from .render import FootprintModel, Unsupported, component_scales, footprint_box, needs_renormalising, render_toolkit

__all__ = ["cl2image"]

TASK = comp.TASK
METHODS = ("footprint", "toolkit")
#: pixel evaluations one call may ask for (about a minute of work either way); more is refused up front
MAX_EVALUATIONS = 2 * 10**9
#: a renormalised component is sampled by CASA on a scratch image of its footprint: at most this many pixels
MAX_SAMPLED_PIXELS = 2**24
#: float32 pixels
PIXEL_BYTES = 4
#: work directories earlier versions of cl2image left
LEGACY_TEMPORARIES = (re.compile(r"^\..+\.cl2image(?P<pid>\d+)$"),)


def cl2image(imagename, direction=None, flux=None, fluxunit="Jy", freq=None, shape=None, majoraxis=None,
             minoraxis=None, positionangle=None, spectralindex=None, complist="", template="", field="", spw="",
             imsize=None, cell=None, phasecenter="", nchan=1, start="", width="", stokes="I", outframe="LSRK",
             beam=None, method="footprint", exportfits=True, overwrite=False):
    """Make a model image from components; see ``xml/cl2image.xml``."""
    from almatools.casaenv import casatools
    ct = casatools()
    method = str(method).strip().lower()
    if method not in METHODS:
        raise TaskParameterError(TASK, "method", method, f"must be one of {', '.join(METHODS)}")
    image = Path(imagename)
    outputs = _outputs(image, exportfits, overwrite)
    cleaned = remove_stale_scratch(image.parent, TASK, LEGACY_TEMPORARIES)
    if cleaned:
        log.info(f"removed {len(cleaned)} work directorie(s) left by interrupted cl2image runs: "
                 f"{', '.join(p.name for p in cleaned)}")
    components = _components(complist, direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                             spectralindex)
    beam_axes = _beam(beam)
    if template:
        grid = grid_from_template(Path(template), field, spw, stokes, imsize, cell)
    else:
        grid = grid_from_parameters(components, imsize, cell, phasecenter, nchan, start, width, stokes,
                                    str(outframe).strip().upper(), beam_axes[1] if beam_axes else None,
                                    beam_axes[0] if beam_axes else None)
    freqs = grid.frequencies()
    scales = _plane_fluxes(components, freqs, grid.stokes)
    pixel_rad = min(abs(grid.dx), abs(grid.dy))
    renormalise = [needs_renormalising(c, pixel_rad) for c in components]
    _check_bounds(image, grid.shape, components, renormalise, (grid.dx, grid.dy), method, exportfits, beam_axes)

    warnings = [] if components else ["no components: the model is empty"]
    work = scratch_path(image, TASK, "work")
    remove_path(work)
    work.mkdir(parents=True)  # and the output directory, now that everything has been checked
    try:
        cl_path = work / "model.cl"
        comp.to_componentlist(components, cl_path, grid.frame)
        csys = grid.coordsys_record(ct)
        model = work / "model.im"
        used, sums, plan = method, None, None
        if components and method == "footprint":
            try:
                plan = FootprintModel(ct, components, csys, grid.shape, freqs, grid.stokes, renormalise, grid.frame)
            except Unsupported as exc:
                log.info(f"footprint method not possible on this grid ({exc}): using the toolkit")
                used = "toolkit"
        _empty_image(ct, model, grid.shape, csys, plan.evaluate if plan else None)
        warnings += _placement_warnings(ct, model, components)
        if plan is not None:
            sums, _ = plan.write(ct, model)
            warnings += plan.warnings
        if components and used == "toolkit":
            warnings += render_toolkit(ct, model, components, _record(ct, cl_path), csys, grid.shape, freqs,
                                       grid.stokes, renormalise, grid.frame)
        final = model
        if beam_axes:
            final = work / "model.convolved.im"
            _convolve(ct, model, final, beam_axes)
        if sums is not None and not beam_axes:
            unit, image_flux = "Jy/pixel", sums
        else:
            unit, image_flux = _image_flux(ct, final, grid.stokes, bool(beam_axes))
        expected = scales[:, :, grid.stokes.index("I")].sum(axis=0) if "I" in grid.stokes and components \
            else np.zeros(len(freqs))
        if exportfits:
            part = scratch_path(outputs["fits"], TASK, "part")
            _export(ct, final, part)
            replace_path(part, outputs["fits"], TASK)
        replace_path(final, image, TASK)
        replace_path(cl_path, outputs["complist"], TASK)
    finally:
        remove_path(work)
    fluxes = [{"channel": k, "freq_hz": float(freqs[k]), "image_jy": float(image_flux[k]),
               "components_jy": float(expected[k]),
               "ratio": float(image_flux[k]) / float(expected[k]) if expected[k] else math.nan}
              for k in range(len(freqs))]
    for w in warnings:
        log.warn(w)
    for f in fluxes:
        log.info(f"plane {f['channel']} at {f['freq_hz'] / 1e9:.6f} GHz: image {f['image_jy']:.6g} Jy, "
                 f"components {f['components_jy']:.6g} Jy")
    return {"imagename": str(image), "complist": str(outputs["complist"]),
            "fitsimage": str(outputs["fits"]) if exportfits else "", "unit": unit,
            "ncomponents": len(components), "shape": grid.shape, "method": used,
            "cell_arcsec": [grid.dx / ARCSEC, grid.dy / ARCSEC] if grid.template_csys is None else [],
            "phasecenter": {"ra_deg": math.degrees(grid.ra0), "dec_deg": math.degrees(grid.dec0)},
            "flux": fluxes, "warnings": warnings}


def _outputs(image: Path, exportfits: bool, overwrite: bool) -> dict:
    """The three outputs' paths; existing ones are replaced only with overwrite, and only by their own kind."""
    if not image.name:
        raise TaskParameterError(TASK, "imagename", str(image), "give the name of the model image to write")
    stem = image.with_suffix("") if image.suffix in (".im", ".image") else image
    out = {"complist": Path(f"{stem}.cl"), "fits": Path(f"{stem}.fits")}
    for path, kind in [(image, "image"), (out["complist"], "componentlist")] + \
            ([(out["fits"], "fits")] if exportfits else []):
        if not path.exists() and not path.is_symlink():
            continue
        is_table = path.is_dir() and (path / "table.dat").is_file()
        if (kind == "fits" and path.is_dir()) or (kind != "fits" and not is_table):
            raise TaskParameterError(TASK, "imagename", str(image), f"{path} exists and is not a "
                                     f"{'FITS file' if kind == 'fits' else 'CASA ' + kind}: cl2image never replaces it")
        if not overwrite:
            raise TaskParameterError(TASK, "imagename", str(image), f"{path} exists; set overwrite=True to replace it")
    return out


def _components(complist, direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                spectralindex) -> list:
    if complist:
        if direction:
            raise TaskParameterError(TASK, "complist", complist, "give either complist or direction/flux lists")
        path = Path(complist)
        try:
            mode = path.stat().st_mode
        except OSError:
            raise TaskParameterError(TASK, "complist", complist, "does not exist") from None
        if stat.S_ISDIR(mode):
            return comp.from_componentlist(path)
        if not stat.S_ISREG(mode):  # a FIFO or device would block the reader
            raise TaskParameterError(TASK, "complist", complist, "is neither a componentlist nor a regular file")
        return comp.from_table(path, fluxunit)
    return comp.from_parameters(direction, flux, fluxunit, freq, shape, majoraxis, minoraxis, positionangle,
                                spectralindex)


def _beam(beam):
    beam = list(beam or [])
    if not beam:
        return None
    if len(beam) not in (2, 3):
        raise TaskParameterError(TASK, "beam", beam, "give [major, minor] or [major, minor, pa]")
    major, minor = (comp._q("beam", b, "rad") for b in beam[:2])
    if not (major > 0 and minor > 0) or minor > major:
        raise TaskParameterError(TASK, "beam", beam, "needs 0 < minor <= major")
    return major, minor, comp._q("beam", beam[2], "deg") if len(beam) == 3 else 0.0


def _plane_fluxes(components, freqs, stokes) -> np.ndarray:
    """Each component's flux in every plane; refused when a spectrum leaves what an image can hold."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        scales = component_scales(components, freqs, stokes)
    bad = ~(np.isfinite(scales) & (np.abs(scales) < np.finfo(np.float32).max))
    if bad.any():
        k, f, _ = (int(i) for i in np.argwhere(bad)[0])
        c = components[k]
        raise TaskParameterError(TASK, "spectralindex", c.index,
                                 f"component {k}: its flux at {freqs[f]:.6g} Hz (reference {c.freq_hz:.6g} Hz, "
                                 f"index {c.index}) is {scales[k, f].max():.3g} Jy, beyond what an image can hold")
    return scales


def _check_bounds(image: Path, shape, components, renormalise, cdelt, method, exportfits, beam_axes) -> None:
    """Disk space, sampling size and the number of pixel evaluations, before anything is written."""
    nx, ny, npol, nchan = shape
    image_bytes = nx * ny * npol * nchan * PIXEL_BYTES
    limits.check_disk_space(image.parent, image_bytes * (1 + bool(beam_axes) + bool(exportfits)),
                            subject=limits.parameter("imsize"))
    evaluations = 0
    for k, c in enumerate(components):
        if c.shape == "point":
            continue
        x0, x1, y0, y1 = footprint_box(c, (0.0, 0.0), cdelt)
        area = (x1 - x0) * (y1 - y0)
        if renormalise[k]:
            limits.check_count(area, MAX_SAMPLED_PIXELS, subject=f"{TASK}: component {k} ({c.shape}, "
                               f"{c.major / ARCSEC:.6g} arcsec) sampled exactly", unit="pixels",
                               hint="use larger cells")
        evaluations += min(area, nx * ny) if method == "footprint" or renormalise[k] else nx * ny
    limits.check_count(evaluations, MAX_EVALUATIONS, subject=limits.parameter("imsize"),
                       unit="pixel evaluations", hint="use fewer or smaller components, a coarser grid or "
                       "method='footprint'")


def _empty_image(ct, model: Path, shape, csys: dict, meanwhile=None) -> None:
    """CASA writes the empty image; *meanwhile* (numpy only — casatools is not thread-safe) runs
    beside it, since casatools releases the GIL while it writes."""
    from concurrent.futures import ThreadPoolExecutor

    def create():
        ia = ct.image()
        try:
            ia.fromshape(outfile=str(model), shape=shape, csys=csys, overwrite=True)
            ia.setbrightnessunit("Jy/pixel")
        finally:
            ia.done()
    if meanwhile is None:
        return create()
    with ThreadPoolExecutor(max_workers=1) as pool:
        creating = pool.submit(create)
        meanwhile()
        creating.result()


def _record(ct, cl_path: Path) -> dict:
    cl = ct.componentlist()
    try:
        cl.open(str(cl_path))
        return cl.torecord()
    finally:
        cl.done()  # not close(): it logs a WARN every time


def _placement_warnings(ct, model: Path, components) -> list[str]:
    """Components outside the image (their flux is not in it) or smaller than a pixel (not resolved)."""
    warnings = []
    ia = ct.image()
    try:
        ia.open(str(model))
        shape = ia.shape()
        cs = ia.coordsys()
    finally:
        ia.done()
    try:
        units = cs.units()
        pixel_rad = abs(cs.increment(type="direction", format="n")["numeric"][0]) * rad_per(units[0])
        for i, c in enumerate(components):
            world = cs.referencevalue(format="n")["numeric"].copy()
            world[0], world[1] = c.ra / rad_per(units[0]), c.dec / rad_per(units[1])
            px = cs.topixel(world)["numeric"][:2]
            if not (-0.5 <= px[0] <= shape[0] - 0.5 and -0.5 <= px[1] <= shape[1] - 0.5):
                warnings.append(f"component {i} ({c.label or c.shape}) lies outside the image "
                                f"(pixel {px[0]:.1f}, {px[1]:.1f}); its flux is not in the image")
            elif c.shape != "point" and c.major < pixel_rad:
                warnings.append(f"component {i} ({c.shape}, {c.major / ARCSEC:.3g} arcsec) is smaller than a pixel "
                                f"({pixel_rad / ARCSEC:.3g} arcsec); its shape is not resolved")
    finally:
        cs.done()
    return warnings


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


def _image_flux(ct, image: Path, stokes, convolved: bool):
    """Per-plane Stokes I total of the image, summed by CASA (no pixels through Python), and its unit."""
    ia = ct.image()
    try:
        ia.open(str(image))
        unit = ia.brightnessunit()
        beam_pixels = ia.beamarea()["pixels"] if convolved else 1.0
        shape = ia.shape()
        sums = np.asarray(ia.statistics(axes=[0, 1], robust=False, verbose=False)["sum"]).reshape(shape[2], shape[3])
    finally:
        ia.done()
    if "I" not in stokes:
        return unit, np.zeros(shape[3])
    return unit, sums[stokes.index("I")] / beam_pixels


def _export(ct, image: Path, fitsfile: Path) -> None:
    ia = ct.image()
    try:
        ia.open(str(image))
        ia.tofits(outfile=str(fitsfile), velocity=False, dropstokes=False, overwrite=True)
    finally:
        ia.done()
