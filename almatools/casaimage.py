"""The pixel file of a CASA image: read and rewrite its tiles directly, as fast as a file copy.

A paged CASA image is a casacore table whose single column ``map`` holds the pixels, stored by a
tiled storage manager in one data file (``table.f0_TSM0``): the cube is cut into tiles of
``TileShape`` pixels, each tile is one bucket of ``BucketSize`` bytes with its pixels in Fortran
order (first axis fastest), buckets follow one another in Fortran order of the tile grid, and the
numbers are in the table's endian format.  Edge tiles are stored whole (their padding is never
read by CASA).  Everything else (coordinates, beams, units, masks, history) lives in other files.

Going through the file directly avoids casatools' per-element array conversion (``putchunk``
moves about 70 MB/s) and casacore's tile cache, so a conversion costs one read and one write of
the pixel bytes.  The layout is taken from the table's own data-manager description and checked
against the file size before use; :func:`tiled_pixels` returns ``None`` (with the reason) for
anything else — a virtual or compressed image, several hypercubes, another storage manager — and
callers then use casatools.  Tables must be closed by casatools before their files are touched.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["TiledPixels", "ImageTable", "tiled_pixels", "read_image_table", "beams_from_imageinfo",
           "set_units_and_history"]

_VALUE_TYPES = {"float": "f4", "double": "f8"}


@dataclass(frozen=True)
class TiledPixels:
    """Where and how the pixels of a CASA image are stored.

    :param file: the data file of the tiled storage manager.
    :param shape: the image shape, CASA axis order.
    :param tile: the tile shape, CASA axis order.
    :param dtype: the stored element type with its byte order.
    """

    file: Path
    shape: tuple
    tile: tuple
    dtype: np.dtype

    @property
    def grid(self) -> tuple:
        """Number of tiles along each axis."""
        return tuple(-(-n // t) for n, t in zip(self.shape, self.tile))

    @property
    def ntiles(self) -> int:
        return math.prod(self.grid)

    @property
    def tile_bytes(self) -> int:
        return math.prod(self.tile) * self.dtype.itemsize

    @property
    def tile_numpy_shape(self) -> tuple:
        """A tile as a C-order numpy array (CASA's axes reversed)."""
        return tuple(reversed(self.tile))

    def origins(self, first: int, stop: int) -> np.ndarray:
        """The pixel position (CASA order) of the first pixel of tiles *first* … *stop* − 1, one row each."""
        index = np.unravel_index(np.arange(first, stop), self.grid, order="F")
        return np.stack(index, axis=1) * np.asarray(self.tile)

    def tile_index(self, grid_position) -> int:
        """The number of the tile at *grid_position* (tile units, CASA order)."""
        return int(np.ravel_multi_index(tuple(grid_position), self.grid, order="F"))


@dataclass
class ImageTable:
    """What a paged CASA image's table says, read with one table open (no image tool: opening an
    image parses its per-plane beams, which costs more than copying a gigabyte of pixels).

    :param shape: the image shape, CASA axis order.
    :param coords: the coordinate-system record (``coordsys().fromrecord`` takes it).
    :param units: the brightness unit ('' when unset).
    :param beams: ``[nchan, npol, 3]`` beams (see :func:`beams_from_imageinfo`), or None.
    :param pixels: the tiled pixel file, or None when the pixels are stored otherwise (*why*).
    """

    shape: tuple
    coords: dict
    units: str
    beams: np.ndarray | None
    pixels: TiledPixels | None
    why: str


def read_image_table(image: str | os.PathLike) -> ImageTable | None:
    """The table-level description of the paged CASA image *image*, or None if it is not one."""
    from .casaenv import casatools
    image = Path(image)
    if not (image / "table.dat").is_file():
        return None
    tb = casatools().table()
    try:
        try:
            tb.open(str(image))
        except RuntimeError:
            return None
        if tb.info().get("type") != "Image" or tb.colnames() != ["map"] or tb.nrows() != 1:
            return None
        keywords = tb.keywordnames()
        shape = tuple(int(n) for n in tb.getcolshapestring("map")[0].strip("[]").split(","))
        coords = tb.getkeyword("coords") if "coords" in keywords else {}
        units = str(tb.getkeyword("units")) if "units" in keywords else ""
        beams = _beams(tb, image) if "imageinfo" in keywords else None
        pixels, why = _layout(tb, image)
    finally:
        tb.done()
    if pixels is not None and pixels.shape != shape:
        pixels, why = None, f"pixel file shape {pixels.shape} is not the image shape {shape}"
    return ImageTable(shape, coords, units, beams, pixels, why)


def _beams(tb, image: Path) -> np.ndarray | None:
    """The beams of the open image table *tb*.

    casatools converts a record of a thousand per-plane beams several times slower than a thousand
    single-beam look-ups, so per-plane beams are fetched one by one (``imageinfo.perplanebeams.*i``).
    Whether the image has them is guessed from its ``table.dat`` (which holds the keywords) to avoid
    a failing look-up, which casatools would log as SEVERE; a wrong guess only costs time.
    """
    try:
        per_plane = b"perplanebeams" in (image / "table.dat").read_bytes()
    except OSError:
        per_plane = False
    if per_plane:
        try:
            nchan = int(tb.getkeyword("imageinfo.perplanebeams.nChannels"))
            npol = int(tb.getkeyword("imageinfo.perplanebeams.nStokes"))
            planes = {"nChannels": nchan, "nStokes": npol}
            for i in range(nchan * npol):
                planes[f"*{i}"] = tb.getkeyword(f"imageinfo.perplanebeams.*{i}")
            return beams_from_imageinfo({"perplanebeams": planes})
        except RuntimeError:
            pass
    return beams_from_imageinfo(tb.getkeyword("imageinfo"))


def beams_from_imageinfo(imageinfo: dict) -> np.ndarray | None:
    """Beams as ``[nchan, npol, 3]`` (major, minor in radians, PA in degrees), ``[1, 1, 3]`` for a
    single beam, None without one.  Per-plane beams are stored flat, channel fastest."""
    def row(beam):
        return [_quantity(beam["major"], _RAD), _quantity(beam["minor"], _RAD),
                _quantity(beam["positionangle"], _DEG)]
    if "perplanebeams" in imageinfo:
        planes = imageinfo["perplanebeams"]
        nchan, npol = int(planes["nChannels"]), int(planes["nStokes"])
        beams = np.empty((nchan, npol, 3))
        for p in range(npol):
            for c in range(nchan):
                beams[c, p] = row(planes[f"*{c + p * nchan}"])
        return beams
    if imageinfo.get("restoringbeam"):
        return np.array([[row(imageinfo["restoringbeam"])]])
    return None


_RAD = {"rad": 1.0, "deg": math.pi / 180, "arcmin": math.pi / 10800, "'": math.pi / 10800,
        "arcsec": math.pi / 648000, '"': math.pi / 648000, "mas": math.pi / 648000000}
_DEG = {"deg": 1.0, "rad": 180 / math.pi}


def _quantity(q: dict, units: dict) -> float:
    try:
        return float(q["value"]) * units[q["unit"]]
    except (KeyError, TypeError, ValueError):
        return math.nan  # reported by the caller as an impossible beam


def set_units_and_history(image: str | os.PathLike, units: str, history: list[str], origin: str) -> None:
    """Set the brightness unit and append *history* lines (as ``ia.sethistory`` would) through the
    table tool, without opening the image (and parsing its beams) again."""
    from .casaenv import casatools
    ct = casatools()
    tb, qa = ct.table(), ct.quanta()
    now = qa.convert(qa.quantity("today"), "s")["value"]
    try:
        tb.open(str(image), nomodify=False)
        tb.putkeyword("units", units)
        tb.done()
        tb.open(str(Path(image) / "logtable"), nomodify=False)
        first = tb.nrows()
        tb.addrows(len(history))
        for k, line in enumerate(history):
            for column, value in (("TIME", now), ("PRIORITY", "INFO"), ("MESSAGE", line), ("LOCATION", origin),
                                  ("OBJECT_ID", "")):
                tb.putcell(column, first + k, value)
    finally:
        tb.done()


def tiled_pixels(image: str | os.PathLike) -> tuple[TiledPixels | None, str]:
    """The pixel layout of the CASA image *image*, or ``(None, reason)`` when it is not a plain tiled one."""
    table = read_image_table(image)
    if table is None:
        return None, "not a paged CASA image"
    return table.pixels, table.why


def _layout(tb, image: Path) -> tuple[TiledPixels | None, str]:
    """The tiled pixel file described by the open table *tb*, checked against the file's size."""
    value_type = tb.getcoldesc("map").get("valueType")
    managers = [m for m in tb.getdminfo().values() if "map" in list(m.get("COLUMNS", []))]
    endian = tb.endianformat()
    if value_type not in _VALUE_TYPES:
        return None, f"pixel type {value_type!r}"
    if len(managers) != 1 or managers[0].get("TYPE") not in ("TiledCellStMan", "TiledShapeStMan"):
        return None, f"storage manager {[m.get('TYPE') for m in managers]}"
    manager = managers[0]
    cubes = list(manager["SPEC"].get("HYPERCUBES", {}).values())
    if len(cubes) != 1:
        return None, f"{len(cubes)} hypercubes"
    cube_shape = [int(n) for n in cubes[0]["CubeShape"]]
    tile = [int(n) for n in cubes[0]["TileShape"]]
    if manager["TYPE"] == "TiledShapeStMan":  # one more axis: the table row
        if cube_shape[-1:] != [1] or tile[-1:] != [1]:
            return None, "a TiledShapeStMan cube of several rows"
        cube_shape, tile = cube_shape[:-1], tile[:-1]
    dtype = np.dtype(("<" if endian == "little" else ">") + _VALUE_TYPES[value_type])
    layout = TiledPixels(image / f"table.f{int(manager['SEQNR'])}_TSM0", tuple(cube_shape), tuple(tile), dtype)
    if int(cubes[0]["BucketSize"]) != layout.tile_bytes:
        return None, f"bucket size {cubes[0]['BucketSize']} for tiles {tile}"
    try:
        size = layout.file.stat().st_size
    except FileNotFoundError:
        return None, f"no data file {layout.file.name}"
    need = layout.ntiles * layout.tile_bytes
    if size != need:
        return None, f"{layout.file.name} holds {size} bytes, {layout.ntiles} tiles need {need}"
    return layout, ""
