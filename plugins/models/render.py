"""Putting components into a model image: each where it is (``method='footprint'``) or everywhere
(``method='toolkit'``, CASA's ``ia.modify``).

``footprint``: every component is evaluated only on its footprint — a point on its pixel, a
Gaussian out to the radius where its tail falls below 1e-9 of its peak (2.73 FWHM; CASA stops at 4
FWHM, where it is 1e-19) — with CASA's own formulas (:class:`SkyGrid` holds the image's SIN
projection in numpy, checked against CASA's at test pixels): the Gaussian value at each pixel centre
from its great-circle separation and position angle, times the pixel area, times the component's
flux.  A component's spectrum is a scale per channel and Stokes plane, so each footprint is
evaluated once and every plane is a weighted sum.  The image is created empty by CASA, then only
the tiles that components touch are written, straight into its pixel file
(:mod:`almatools.casaimage`), one spatial tile at a time: memory is bounded by a tile, not by the
image.

Disks and Gaussians under two pixels are *renormalised*: CASA samples them at pixel centres (a disk
~1 % low, a tiny Gaussian arbitrarily), so both methods sample their shape with CASA on the
footprint (a scratch image of the footprint's size with the same pixel phase — the rim pixels of a
disk are decided by rounding, so only CASA's own code reproduces them) and scale it to the exact
flux.  Points within 1e-13 rad of a pixel's edge are placed by CASA the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from almatools import log
from almatools.casaimage import tiled_pixels

from .components import Component
from .grid import ARCSEC, rad_per

__all__ = ["SkyGrid", "Unsupported", "FootprintModel", "render_toolkit", "component_scales"]

#: a Gaussian's footprint reaches where exp(-4 ln2 r²/FWHM²) = 1e-9
GAUSS_REACH = math.sqrt(math.log(1e9) / (4 * math.log(2)))
FOUR_LN2 = 4 * math.log(2)
#: Gaussians narrower than this many pixels are sampled by CASA and renormalised
SMALL_GAUSSIAN_PIXELS = 2.0
#: how far (radians) our pixel directions may be from CASA's: double rounding in a unit vector
#: (1e-16) with room to spare, and 1e-6 of a 0.1 mas pixel — far below what moves a value by 1e-6 of the peak
ANGLE_TOLERANCE = 1e-13
#: the largest block of pixels summed (footprint) or read and written back (toolkit) at once
CHUNK_BYTES = 64 * 2**20
#: footprints evaluated ahead (while CASA creates the empty image) up to this many bytes
PREFETCH_BYTES = 256 * 2**20


class Unsupported(Exception):
    """The footprint method cannot reproduce CASA on this grid (the caller uses the toolkit)."""


def _unit(lon, lat):
    return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def _east_north(lon, lat):
    return (np.array([-math.sin(lon), math.cos(lon), 0.0]),
            np.array([-math.sin(lat) * math.cos(lon), -math.sin(lat) * math.sin(lon), math.cos(lat)]))


@dataclass
class SkyGrid:
    """The direction axes of an image: pixel centres as unit vectors, and back (SIN projection).

    Intermediate coordinates are ``cdelt * (pc @ (pixel - crpix))`` (radians); a SIN projection
    puts the pixel at ``x * east + y * north + sqrt(1 - x² - y²) * centre`` of the reference
    direction.
    """

    crpix: np.ndarray
    cdelt: np.ndarray
    pc: np.ndarray
    centre: np.ndarray
    east: np.ndarray
    north: np.ndarray
    frame: str

    @classmethod
    def from_coordsys(cls, coordsys, shape) -> "SkyGrid":
        """The grid of a casatools coordsys (direction axes 0 and 1), checked against CASA at test pixels."""
        projection = coordsys.projection()
        if projection.get("type") != "SIN" or any(abs(float(p)) > 0 for p in projection.get("parameters", [])):
            raise Unsupported(f"projection {projection}")
        units = coordsys.units(type="direction")
        ref = coordsys.referencevalue(type="direction", format="n")["numeric"]
        inc = coordsys.increment(type="direction", format="n")["numeric"]
        lon0, lat0 = ref[0] * rad_per(units[0]), ref[1] * rad_per(units[1])
        east, north = _east_north(lon0, lat0)
        grid = cls(np.asarray(coordsys.referencepixel(type="direction")["numeric"], float),
                  np.array([inc[0] * rad_per(units[0]), inc[1] * rad_per(units[1])]),
                  np.asarray(coordsys.lineartransform(type="direction"), float).reshape(2, 2),
                  _unit(lon0, lat0), east, north, coordsys.referencecode(type="direction")[0])
        grid._check(coordsys, shape)
        return grid

    def _check(self, coordsys, shape) -> None:
        """Our pixel directions equal CASA's (to :data:`ANGLE_TOLERANCE`) at the corners, edges and centre."""
        nx, ny = shape[0], shape[1]
        xs = np.array([0, nx - 1, 0, nx - 1, nx // 2, nx // 3, 0, nx - 1], float)
        ys = np.array([0, 0, ny - 1, ny - 1, ny // 2, ny // 5, ny // 2, ny // 3], float)
        pixels = np.tile(np.asarray(coordsys.referencepixel()["numeric"], float)[:, None], (1, len(xs)))
        pixels[0], pixels[1] = xs, ys
        world = coordsys.toworldmany(pixels)["numeric"]
        units = coordsys.units()
        theirs = _unit(world[0] * rad_per(units[0]), world[1] * rad_per(units[1]))
        ours = self.vectors(xs, ys)
        error = 2 * np.arcsin(np.minimum(1.0, np.linalg.norm(ours - theirs, axis=0) / 2))
        if not np.all(error <= ANGLE_TOLERANCE):
            raise Unsupported(f"pixel directions differ from CASA's by up to {error.max() / ARCSEC:.3g} arcsec")

    @property
    def pixel_area(self) -> float:
        return abs(self.cdelt[0] * self.cdelt[1])

    def vectors(self, x, y) -> np.ndarray:
        """Unit vectors ``[3, ...]`` of pixel centres (x, y broadcast together)."""
        u, v, w = self.projected(x, y)
        shape = (3,) + (1,) * u.ndim
        return (u[None] * self.east.reshape(shape) + v[None] * self.north.reshape(shape)
                + w[None] * self.centre.reshape(shape))

    def projected(self, x, y):
        """The pixel centres' components along the reference direction's east, north and centre vectors."""
        dx, dy = np.asarray(x, float) - self.crpix[0], np.asarray(y, float) - self.crpix[1]
        u = self.cdelt[0] * (self.pc[0, 0] * dx + self.pc[0, 1] * dy)
        v = self.cdelt[1] * (self.pc[1, 0] * dx + self.pc[1, 1] * dy)
        return u, v, np.sqrt(np.maximum(0.0, 1.0 - u * u - v * v))

    def to_pixel(self, vector) -> tuple[float, float] | None:
        """The pixel position of a direction, or None on the far side of the sky."""
        if float(vector @ self.centre) <= 0:
            return None
        u, v = float(vector @ self.east) / self.cdelt[0], float(vector @ self.north) / self.cdelt[1]
        dx, dy = np.linalg.solve(self.pc, [u, v])
        return float(self.crpix[0] + dx), float(self.crpix[1] + dy)


def _offsets(direction: np.ndarray, pixels: np.ndarray):
    """Great-circle separation and the east and north components (sin and cos of the position angle,
    CASA's ``MVDirection::separation`` and ``positionAngle``) of *pixels* ``[3, ...]`` seen from
    *direction*."""
    lon = math.atan2(direction[1], direction[0])
    lat = math.asin(max(-1.0, min(1.0, direction[2])))
    east, north = _east_north(lon, lat)
    chord = np.sqrt(np.sum((pixels - direction.reshape((3,) + (1,) * (pixels.ndim - 1))) ** 2, axis=0))
    separation = 2 * np.arcsin(np.minimum(1.0, chord / 2))
    e = np.tensordot(east, pixels, axes=1)
    n = np.tensordot(north, pixels, axes=1)
    rho = np.hypot(e, n)
    safe = np.where(rho > 0, rho, 1.0)
    return separation, np.where(rho > 0, e / safe, 0.0), np.where(rho > 0, n / safe, 1.0)


# --- the components, where they are -------------------------------------------------------------

@dataclass
class Piece:
    """One component's footprint: the pixels it touches (clipped to the image) and how to evaluate it.

    Stored pieces hold their values (per unit flux); analytic ones (resolved Gaussians) are
    evaluated on demand for the part of the footprint a tile needs.
    """

    index: int
    x0: int
    x1: int  # exclusive
    y0: int
    y1: int
    values: np.ndarray | None = None  # [y, x] over the clipped box
    gaussian: tuple | None = None  # (direction, major, minor, pa_rad)

    def window(self, grid: SkyGrid, x0: int, x1: int, y0: int, y1: int) -> np.ndarray:
        """Values per unit flux on pixels [x0, x1) x [y0, y1) (inside this piece's box), as [y, x]."""
        if self.values is not None:
            return self.values[y0 - self.y0:y1 - self.y0, x0 - self.x0:x1 - self.x0]
        return _gaussian(grid, *self.gaussian, np.arange(x0, x1), np.arange(y0, y1))


def _gaussian(grid: SkyGrid, direction, major, minor, pa, xs, ys) -> np.ndarray:
    """CASA's GaussianShape::sample: unit flux, sampled at pixel centres, times the pixel area.

    The pixel's offset from the component along the component's east and north (e, n) and its
    separation s give CASA's (x, y) = s (-sin PA, cos PA) = (s/ρ) (-e, n) with ρ = hypot(e, n) =
    sin s.  s/ρ = asin(ρ)/ρ = 1 + ρ²/6 + 3ρ⁴/40 + … is summed as a series while the footprint is
    under 0.01 rad (the next term is below 1e-13), else computed exactly.
    """
    u, v, w = grid.projected(xs[None, :], ys[:, None])
    lon, lat = math.atan2(direction[1], direction[0]), math.asin(max(-1.0, min(1.0, direction[2])))
    east, north = _east_north(lon, lat)
    basis = (grid.east, grid.north, grid.centre)
    e = sum(float(east @ b) * a for a, b in zip((u, v, w), basis))
    n = sum(float(north @ b) * a for a, b in zip((u, v, w), basis))
    rho2 = e * e + n * n
    if rho2.max() < 1e-4:
        stretch = 1.0 + rho2 * (1.0 / 6.0 + rho2 * (3.0 / 40.0))
        separation2 = rho2 * stretch * stretch
    else:
        d = sum(float(direction @ b) * a for a, b in zip((u, v, w), basis))
        rho = np.sqrt(rho2)
        separation = np.arctan2(rho, d)
        stretch = np.where(rho > 0, separation / np.where(rho > 0, rho, 1.0), 1.0)
        separation2 = separation * separation
    x, y = -stretch * e, stretch * n
    across = (math.cos(pa) * x + math.sin(pa) * y) * (1.0 / minor)
    along = (math.cos(pa) * y - math.sin(pa) * x) * (1.0 / major)
    height = FOUR_LN2 / (math.pi * major * minor)
    values = (grid.pixel_area * height) * np.exp(-FOUR_LN2 * (across * across + along * along))
    values[separation2 > (4 * major) ** 2] = 0.0  # CASA's cut
    return values


def component_direction(ct, c: Component, frame: str) -> np.ndarray:
    """The component's direction as a unit vector in the image's direction frame."""
    if c.frame.upper() == frame.upper():
        return _unit(c.ra, c.dec)
    me = ct.measures()
    try:
        d = me.measure(me.direction(c.frame, f"{c.ra!r}rad", f"{c.dec!r}rad"), frame)
    finally:
        me.done()
    if not d:
        raise Unsupported(f"direction frame {c.frame} cannot be converted to {frame}")
    return _unit(d["m0"]["value"], d["m1"]["value"])


def needs_renormalising(c: Component, pixel_rad: float) -> bool:
    """CASA samples disks ~1 % low and Gaussians under two pixels arbitrarily: those are renormalised."""
    return c.shape == "disk" or (c.shape == "Gaussian" and c.minor < SMALL_GAUSSIAN_PIXELS * pixel_rad)


def footprint_box(c: Component, centre: tuple[float, float], cdelt) -> tuple[int, int, int, int]:
    """Pixel box [x0, x1) x [y0, y1) (not clipped) holding the component's footprint: a point's
    pixel, a disk, or a Gaussian's ellipse out to :data:`GAUSS_REACH` FWHM; two pixels of margin."""
    if c.shape == "point":
        half = (0.0, 0.0)
    else:
        reach = 0.5 if c.shape == "disk" else GAUSS_REACH
        a, b, pa = c.major * reach, c.minor * reach, math.radians(c.pa_deg)
        half = (math.hypot(a * math.sin(pa), b * math.cos(pa)), math.hypot(a * math.cos(pa), b * math.sin(pa)))
    x, y = centre
    hx, hy = half[0] / abs(cdelt[0]) + 2, half[1] / abs(cdelt[1]) + 2
    return (int(math.floor(x - hx)), int(math.ceil(x + hx)) + 1, int(math.floor(y - hy)), int(math.ceil(y + hy)) + 1)


def sample_with_casa(ct, csys: dict, c: Component, frame: str, box, npol: int) -> np.ndarray:
    """The unit-flux shape of *c* as CASA samples it on the pixels *box* of the grid *csys*, as [y, x].

    A scratch image of the box's size whose reference pixel is shifted by the box's corner has the
    same pixel centres as the image (pixel p of the box is pixel p + corner of the image).
    """
    from .components import to_componentlist_record
    x0, x1, y0, y1 = box
    record = {k: (dict(v) if isinstance(v, dict) else v) for k, v in csys.items()}
    key = next(k for k in record if k.startswith("direction"))
    record[key] = dict(record[key])
    record[key]["crpix"] = np.asarray(record[key]["crpix"], float) - np.array([x0, y0], float)
    ia = ct.image()
    try:
        ia.fromshape(shape=[x1 - x0, y1 - y0, npol, 1], csys=record, overwrite=True)
        ia.setbrightnessunit("Jy/pixel")
        ia.modify(model=to_componentlist_record(ct, [c], frame, unit_flux=True), subtract=False)
        values = ia.getchunk(blc=[0, 0, 0, 0], trc=[x1 - x0 - 1, y1 - y0 - 1, 0, 0]).astype(float)
    finally:
        ia.done()
    return values[:, :, 0, 0].T


def component_scales(components: list[Component], freqs, stokes: list[str]) -> np.ndarray:
    """``[component, channel, stokes plane]``: the flux each plane gets (spectrum times Stokes value)."""
    iquv = {"I": 0, "Q": 1, "U": 2, "V": 3}
    freqs = np.asarray(freqs, float)
    scales = np.empty((len(components), len(freqs), len(stokes)))
    for k, c in enumerate(components):
        spectrum = (freqs / c.freq_hz) ** c.index
        scales[k] = spectrum[:, None] * np.array([c.flux[iquv[s]] for s in stokes])[None, :]
    return scales


def _point_pixel(grid: SkyGrid, direction, shape) -> tuple[int, int] | str | None:
    """The pixel CASA gives a point (its nearest pixel if the point passes CASA's in-pixel test there),
    None when none, ``"edge"`` when rounding decides."""
    where = grid.to_pixel(direction)
    if where is None:
        return None
    ix, iy = (int(math.floor(p + 0.5)) for p in where)
    if not (-1 <= ix <= shape[0] and -1 <= iy <= shape[1]):
        return None
    half_x, half_y = abs(grid.cdelt[0]) / 2, abs(grid.cdelt[1]) / 2
    order = [(ix, iy)] + [(ix + dx, iy + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    for px, py in order:  # CASA's ComponentListImage: the nearest pixel, else the first of its 3x3 box
        separation, sin_pa, cos_pa = _offsets(direction, grid.vectors(np.array([px]), np.array([py])))
        sep, across, along = float(separation[0]), abs(float(separation[0] * sin_pa[0])), \
            abs(float(separation[0] * cos_pa[0]))
        margins = (2 * half_x - sep if half_x >= half_y else 2 * half_y - sep, half_x - across, half_y - along)
        if any(abs(m) <= ANGLE_TOLERANCE for m in margins):
            return "edge"
        if all(m > 0 for m in margins):
            return (px, py) if 0 <= px < shape[0] and 0 <= py < shape[1] else None
    return None


def footprint_pieces(ct, grid: SkyGrid, csys: dict, components: list[Component], shape, renormalise,
                     spectral_frame: str) -> tuple:
    """Every component's :class:`Piece` (None for those outside the image) and the warnings to give."""
    nx, ny, npol = shape[0], shape[1], shape[2]
    pixel_rad = abs(grid.cdelt[0])
    pieces, warnings = [], []
    for k, c in enumerate(components):
        direction = component_direction(ct, c, grid.frame)
        centre = grid.to_pixel(direction)
        if centre is None:
            pieces.append(None)
            continue
        if c.shape == "point":
            where = _point_pixel(grid, direction, shape)
            if where == "edge":
                box = (int(math.floor(centre[0])) - 1, int(math.floor(centre[0])) + 3,
                       int(math.floor(centre[1])) - 1, int(math.floor(centre[1])) + 3)
                pieces.append(_stored(k, sample_with_casa(ct, csys, c, spectral_frame, box, npol), box, nx, ny))
            else:
                pieces.append(None if where is None else
                              Piece(k, where[0], where[0] + 1, where[1], where[1] + 1, values=np.ones((1, 1))))
            continue
        box = footprint_box(c, centre, grid.cdelt if _diagonal(grid.pc) else (pixel_rad / 2, pixel_rad / 2))
        if renormalise[k]:
            piece, warning = renormalised_piece(ct, csys, k, c, spectral_frame, box, shape)
            pieces.append(piece)
            warnings += warning
        else:
            x0, x1, y0, y1 = max(0, box[0]), min(nx, box[1]), max(0, box[2]), min(ny, box[3])
            pieces.append(Piece(k, x0, x1, y0, y1, gaussian=(direction, c.major, c.minor, math.radians(c.pa_deg)))
                          if x0 < x1 and y0 < y1 else None)
    return pieces, warnings


def casa_pixel(ct, cs, c: Component) -> tuple[float, float]:
    """The component's pixel position as CASA computes it (``coordsys.topixel``), in the image's frame."""
    direction = component_direction(ct, c, cs.referencecode(type="direction")[0])
    units = cs.units()
    world = cs.referencevalue(format="n")["numeric"].copy()
    world[0] = math.atan2(direction[1], direction[0]) / rad_per(units[0])
    world[1] = math.asin(max(-1.0, min(1.0, direction[2]))) / rad_per(units[1])
    x, y = cs.topixel(world)["numeric"][:2]
    return float(x), float(y)


def renormalised_piece(ct, csys: dict, k: int, c: Component, frame: str, box, shape) -> tuple:
    """A disk's or small Gaussian's piece: CASA's samples on *box*, scaled to sum to one, and the
    warnings.  If no pixel centre falls on the component, all of it goes to its nearest pixel (as CASA
    places a point there: its own ``topixel``, rounded), so no flux is lost."""
    values = sample_with_casa(ct, csys, c, frame, box, shape[2])
    total = float(values.sum())
    warnings = []
    if not total > 0:
        warnings.append(f"component {k} ({c.shape}, {c.major / ARCSEC:.3g} arcsec) covers no pixel centre: "
                        "its flux is put on its nearest pixel")
        cs = ct.coordsys()
        try:
            cs.fromrecord(csys)
            px, py = casa_pixel(ct, cs, c)
        finally:
            cs.done()
        values = np.zeros_like(values)
        ix, iy = int(math.floor(px + 0.5)) - box[0], int(math.floor(py + 0.5)) - box[2]
        if 0 <= iy < values.shape[0] and 0 <= ix < values.shape[1]:
            values[iy, ix] = 1.0
        total = 1.0
    return _stored(k, values / total, box, shape[0], shape[1]), warnings


def _diagonal(pc: np.ndarray) -> bool:
    """Pixel axes along east and north (the box's half-widths in pixels are then exact)."""
    return abs(pc[0, 1]) < 1e-12 and abs(pc[1, 0]) < 1e-12 and abs(abs(pc[0, 0]) - 1) < 1e-12 \
        and abs(abs(pc[1, 1]) - 1) < 1e-12


def _stored(k: int, values: np.ndarray, box, nx: int, ny: int) -> Piece | None:
    """A stored piece for *values* on *box*, clipped to the image (None if nothing is inside)."""
    x0, x1, y0, y1 = box
    cx0, cx1, cy0, cy1 = max(0, x0), min(nx, x1), max(0, y0), min(ny, y1)
    if cx0 >= cx1 or cy0 >= cy1 or not values[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].any():
        return None
    return Piece(k, cx0, cx1, cy0, cy1, values=values[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0].copy())


# --- writing -------------------------------------------------------------------------------------

class FootprintModel:
    """The components on a grid, ready to be written into the empty image of that grid.

    Made before the image exists (it asks CASA for the grid check and for the renormalised shapes);
    :meth:`evaluate` is numpy only, so it can run while CASA creates the image; :meth:`write` puts
    the tiles into the image.  Raises :class:`Unsupported` for a grid this method does not reproduce.
    """

    def __init__(self, ct, components: list[Component], csys: dict, shape, freqs, stokes, renormalise: list[bool],
                 spectral_frame: str):
        cs = ct.coordsys()
        try:
            cs.fromrecord(csys)
            self.grid = SkyGrid.from_coordsys(cs, shape)
        finally:
            cs.done()
        self.pieces, self.warnings = footprint_pieces(ct, self.grid, csys, components, shape, renormalise,
                                                      spectral_frame)
        self.scales = component_scales(components, freqs, stokes)
        self.shape, self.stokes = list(shape), list(stokes)

    def evaluate(self, budget: int = PREFETCH_BYTES) -> None:
        """Evaluate the analytic pieces over their whole footprint now, as far as *budget* bytes allow
        (the rest are evaluated tile by tile while writing)."""
        used = 0
        for piece in self.pieces:
            if piece is None or piece.values is not None:
                continue
            size = (piece.x1 - piece.x0) * (piece.y1 - piece.y0) * 8
            if used + size > budget:
                continue
            piece.values = piece.window(self.grid, piece.x0, piece.x1, piece.y0, piece.y1)
            used += size

    def write(self, ct, image) -> tuple[np.ndarray, int]:
        """Write every touched tile into *image*; returns the per-channel Stokes-I sums of what was
        written and the number of tiles written."""
        layout, why = tiled_pixels(image)
        if layout is None or tuple(layout.shape) != tuple(self.shape):
            log.info(f"{image}: pixels written through casatools ({why or 'shape differs'})")
            layout = None
        writer = _RawTiles(layout) if layout is not None else _Chunks(ct, image)
        tile = layout.tile if layout is not None else (256, 256, self.shape[2], 1)
        try:
            sums, ntiles = _write_tiles(self.grid, self.pieces, self.scales, self.shape, tile, writer, self.stokes)
        finally:
            writer.close()
        if layout is not None:
            _verify(ct, image, writer.check)
        return sums, ntiles


def _write_tiles(grid, pieces, scales, shape, tile, writer, stokes):
    """For every spatial tile that a piece touches: evaluate the pieces there once, then write each of
    its (Stokes, channel) tiles as the scaled sum.  Two threads share the work when the writer can
    (numpy and ``pwrite`` release the GIL; casatools cannot be called from two threads)."""
    from concurrent.futures import ThreadPoolExecutor
    nx, ny, npol, nchan = shape
    tx, ty, ts, tf = tile
    live = [p for p in pieces if p is not None]
    touched = sorted({(i, j) for p in live for i in range(p.x0 // tx, (p.x1 - 1) // tx + 1)
                      for j in range(p.y0 // ty, (p.y1 - 1) // ty + 1)}, key=lambda ij: (ij[1], ij[0]))
    i_plane = stokes.index("I") if "I" in stokes else None
    sums, written = np.zeros(nchan), 0

    def one(ij):
        return _write_spatial_tile(grid, live, scales, shape, tile, writer, *ij, i_plane)
    with log.progress(total=len(touched), desc="cl2image footprints", unit="tile") as bar, \
            ThreadPoolExecutor(max_workers=2 if writer.threadsafe else 1) as pool:
        for tile_sums, n in pool.map(one, touched):
            sums += tile_sums
            written += n
            bar.update(1)
    return sums, written


def _write_spatial_tile(grid, live, scales, shape, tile, writer, i, j, i_plane) -> tuple[np.ndarray, int]:
    """Evaluate the pieces on spatial tile (i, j) once; write each of its (Stokes, channel) tiles.

    Planes are summed for as many channels at a time as :data:`CHUNK_BYTES` allows (whole tiles),
    one numpy operation per piece instead of one per piece and channel.
    """
    nx, ny, npol, nchan = shape
    tx, ty, ts, tf = tile
    x0, x1, y0, y1 = i * tx, min(nx, (i + 1) * tx), j * ty, min(ny, (j + 1) * ty)
    here = [(p, max(x0, p.x0), min(x1, p.x1), max(y0, p.y0), min(y1, p.y1)) for p in live
            if p.x0 < x1 and p.x1 > x0 and p.y0 < y1 and p.y1 > y0]
    patterns = [(p.index, (a - x0, b - x0, c - y0, d - y0), p.window(grid, a, b, c, d)) for p, a, b, c, d in here]
    group = max(1, CHUNK_BYTES // (8 * npol * (y1 - y0) * (x1 - x0) * tf)) * tf
    sums, written = np.zeros(nchan), 0
    for g0 in range(0, nchan, group):
        g1 = min(nchan, g0 + group)
        values = np.zeros((g1 - g0, npol, y1 - y0, x1 - x0))
        for k, (a, b, c, d), pattern in patterns:
            values[:, :, c:d, a:b] += scales[k, g0:g1, :, None, None] * pattern
        values = values.astype(np.float32)  # what the image holds, summed below as written
        if i_plane is not None:
            sums[g0:g1] += values[:, i_plane].sum(axis=(1, 2), dtype=np.float64)
        for s0 in range(0, npol, ts):
            for f0 in range(g0, g1, tf):
                writer.write((x0, y0, s0, f0), values[f0 - g0:f0 - g0 + tf, s0:s0 + ts])
                written += 1
    return sums, written


class _RawTiles:
    """Writes whole tiles into the image's pixel file (the rest of each tile is zero, as the image was)."""

    threadsafe = True  # pwrite at explicit offsets

    def __init__(self, layout):
        import os
        self.layout = layout
        self.fd = os.open(layout.file, os.O_RDWR)
        self.check = None

    def write(self, origin, values: np.ndarray) -> None:
        import os
        layout = self.layout
        if values.shape == layout.tile_numpy_shape and values.dtype == layout.dtype:
            buffer = np.ascontiguousarray(values)
        else:  # an edge tile (the rest is padding) or another byte order
            buffer = np.zeros(layout.tile_numpy_shape, layout.dtype)
            f, s, y, x = values.shape
            buffer[:f, :s, :y, :x] = values
        view = memoryview(buffer).cast("B")
        offset = layout.tile_index([o // t for o, t in zip(origin, layout.tile)]) * layout.tile_bytes
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n
        peak = float(np.abs(values).max())
        check = self.check  # a tuple swap: safe enough from two threads (any written tile will do)
        if check is None or peak > check[2]:
            self.check = (origin, values, peak)

    def close(self) -> None:
        import os
        os.close(self.fd)


class _Chunks:
    """Writes through casatools (``putchunk``): for images whose pixel file is not a plain tiled one."""

    threadsafe = False

    def __init__(self, ct, image):
        self.ia = ct.image()
        self.ia.open(str(image))

    def write(self, origin, values: np.ndarray) -> None:
        self.ia.putchunk(np.ascontiguousarray(values.transpose(3, 2, 1, 0)), blc=list(origin))

    def close(self) -> None:
        self.ia.done()


def _verify(ct, image, check) -> None:
    """Read back, through CASA, the tile with the brightest values written: the layout was understood."""
    if check is None:
        return
    (x0, y0, s0, f0), values, _ = check
    f, s, y, x = values.shape
    ia = ct.image()
    try:
        ia.open(str(image))
        got = ia.getchunk(blc=[x0, y0, s0, f0], trc=[x0 + x - 1, y0 + y - 1, s0 + s - 1, f0 + f - 1], dropdeg=False)
    finally:
        ia.done()
    if not np.array_equal(got, values.transpose(3, 2, 1, 0)):
        raise RuntimeError(f"{image}: the pixels written into its pixel file do not read back through CASA")


def render_toolkit(ct, image, components: list[Component], cl_record: dict, csys: dict, shape, freqs, stokes,
                   renormalise: list[bool], frame: str) -> list[str]:
    """CASA's way: ``ia.modify`` evaluates every component on every pixel; renormalised components
    are sampled by CASA on their footprint and added with their exact flux.  Returns warnings."""
    warnings = []
    keep = [i for i, r in enumerate(renormalise) if not r]
    ia = ct.image()
    try:
        ia.open(str(image))
        if keep:
            rest = {f"component{j}": cl_record[f"component{i}"] for j, i in enumerate(keep)}
            rest["nelements"] = len(keep)
            ia.modify(model=rest, subtract=False)
        cs = ia.coordsys()
        units = cs.units()
        inc = cs.increment(type="direction", format="n")["numeric"]
        cdelt = (inc[0] * rad_per(units[0]), inc[1] * rad_per(units[1]))
        if not _diagonal(np.asarray(cs.lineartransform(type="direction"), float).reshape(2, 2)):
            cdelt = (min(map(abs, cdelt)) / 2,) * 2  # a rotated grid: a box that holds the footprint anyway
        scales = component_scales(components, freqs, stokes)
        for k in (i for i, r in enumerate(renormalise) if r):
            c = components[k]
            box = footprint_box(c, casa_pixel(ct, cs, c), cdelt)
            piece, warning = renormalised_piece(ct, csys, k, c, frame, box, shape)
            warnings += warning
            if piece is None:
                continue
            step = max(1, CHUNK_BYTES // (piece.values.size * shape[2] * 4))  # channels per chunk
            for f0 in range(0, shape[3], step):
                f1 = min(shape[3], f0 + step)
                blc = [piece.x0, piece.y0, 0, f0]
                chunk = ia.getchunk(blc=blc, trc=[piece.x1 - 1, piece.y1 - 1, shape[2] - 1, f1 - 1], dropdeg=False)
                chunk += (piece.values.T[:, :, None, None] * scales[k, f0:f1].T[None, None]).astype(chunk.dtype)
                ia.putchunk(chunk, blc=blc)
        cs.done()
    finally:
        ia.done()
    return warnings
