"""Image quality measured plane by plane: rms in the noise region, peak, dynamic range, noisy channels.

The noise is measured where the primary beam is at least *pbmin* (0.5), away from the image edges,
on the *flat-noise* image: a pipeline ``pbcor`` product times its ``pb`` (the pb-corrected image's
noise grows as 1/pb towards the edge), or a non-corrected image as it is.  Source pixels are
removed by sigma clipping: a robust start (median and MAD of a regular subsample of the region,
clipped until stable), then two clipping passes over every region pixel at ``clip`` × σ.  The σ
of a Gaussian cut at ±kσ is smaller than σ by a known factor (0.9866 at k = 3); it is divided out,
so pure noise gives its σ without bias.  A source's wings below the clip level would still add to it,
so pixels within a beam of anything brighter than 5σ are left out first.

For a cube, each channel gets its rms; the image's rms is the median over the line-free channels
(the cont.dat ranges, converted to the image's frame by the caller), which a few noisy channels
(atmospheric lines, band edges) do not move.  Channels whose rms exceeds ``noisy_factor`` × that
rms are listed as noisy; channels with no valid pixel as blank.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .images import ImageFile, native, prefetch

__all__ = ["robust_start", "truncation_factor", "dilate", "noise_region", "plane_rms", "measure_image",
           "Measurement"]

#: a region needs this many pixels for an rms (fewer: the channel's rms is NaN)
MIN_PIXELS = 20
#: size of the subsample the robust start is computed on
SUBSAMPLE = 20_000
#: threads measuring channels at once (numpy releases the GIL; the machine's cores, at most 4)
WORKERS = max(1, min(4, os.cpu_count() or 1))
#: planes waiting for a thread take at most this much memory
IN_FLIGHT_BYTES = 256 * 2**20
TRIM_EVERY = 16  # channels between returns of freed plane memory to the system (see release_freed_memory)
#: the robust start of a plane looks at about this many region pixels, evenly spread (the full clip follows)
SAMPLE_PIXELS = 4000
#: pixels this many σ from the mean seed the source mask (noise reaches it once in ~2 million pixels)
SEED_SIGMA = 5.0


def truncation_factor(k: float) -> float:
    """σ of a unit normal cut at ±k: ``sqrt(1 − 2kφ(k) / (2Φ(k) − 1))`` (0.98658 at k = 3)."""
    phi = math.exp(-k * k / 2) / math.sqrt(2 * math.pi)
    inside = math.erf(k / math.sqrt(2))
    return math.sqrt(1 - 2 * k * phi / inside)


def robust_start(values: np.ndarray, clip: float = 3.0) -> tuple[float, float]:
    """(mean, σ) of the noise from a regular subsample: median and MAD, then clipped until stable."""
    x = np.asarray(values)
    factor = truncation_factor(clip)
    sample = x[:: max(1, x.size // SUBSAMPLE)].astype(np.float64)
    if sample.size == 0:
        return math.nan, math.nan
    mu = float(np.median(sample))
    sd = 1.4826 * float(np.median(np.abs(sample - mu)))
    if not sd > 0:
        sd = float(sample.std())
    for _ in range(10):
        kept = sample[np.abs(sample - mu) <= clip * sd]
        if kept.size < MIN_PIXELS:
            break
        new_mu, new_sd = float(kept.mean()), float(kept.std()) / factor
        if abs(new_sd - sd) <= 1e-3 * sd and abs(new_mu - mu) <= 1e-3 * sd:
            break
        mu, sd = new_mu, new_sd
    return mu, sd


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """*mask* grown by a (2 radius + 1)² box: two running-sum passes, linear in the pixels."""
    out = mask
    for axis in (0, 1):
        c = np.cumsum(out, axis=axis, dtype=np.int32)
        n = out.shape[axis]
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.pad(c, pad, mode="edge")
        c = np.moveaxis(c, axis, 0)
        c[: radius + 1] = 0  # before the first row the running sum is 0
        hi = c[2 * radius + 1: 2 * radius + 1 + n]
        lo = c[:n]
        out = np.moveaxis(hi - lo > 0, 0, axis)
    return out


def noise_region(shape: tuple, pb_plane: np.ndarray | None, pbmin: float, edge: int) -> np.ndarray:
    """Pixels where pb ≥ *pbmin* and more than *edge* pixels from every image edge.

    Without a pb, the central disc of radius 0.33 × the smaller image side stands in for pb ≥ 0.5
    (the pipeline images out to pb = 0.2, which a Gaussian beam reaches at 1.52 × the pb = 0.5 radius).
    """
    ny, nx = shape
    inner = np.zeros((ny, nx), dtype=bool)
    inner[edge: ny - edge, edge: nx - edge] = True
    if pb_plane is not None:
        with np.errstate(invalid="ignore"):
            return inner & (pb_plane >= pbmin)
    y, x = np.ogrid[:ny, :nx]
    r2 = (x - (nx - 1) / 2) ** 2 + (y - (ny - 1) / 2) ** 2
    return inner & (r2 <= (0.33 * min(nx, ny)) ** 2)


@dataclass
class Measurement:
    """What :func:`measure_image` found.

    :param rms_chan: per-channel clipped rms (Jy/beam, NaN for blank channels).
    :param peak_chan: per-channel peak of the flat-noise image.
    :param peak_pbcor: the image's own value (pb-corrected for a pbcor image) at the flat-noise peak.
    :param peakmap: the flat-noise image's peak over channels (the image itself for one channel; NaN
        everywhere unless asked for).
    """

    rms_chan: np.ndarray
    npix_chan: np.ndarray
    peak_chan: np.ndarray
    peak_pbcor: float
    peakmap: np.ndarray
    pb_plane: np.ndarray | None
    region: np.ndarray
    peak_xy: tuple = (0, 0)
    notes: list = field(default_factory=list)


class _Region:
    """The noise region of one pb plane, cropped to its bounding box (the work of a channel stays there)."""

    def __init__(self, shape: tuple, pb_plane: np.ndarray | None, pbmin: float, edge: int):
        mask = noise_region(shape, pb_plane, pbmin, edge)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size:
            self.box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        else:
            self.box = (slice(0, 0), slice(0, 0))
        self.mask = mask[self.box]
        # a regular subsample of about SAMPLE_PIXELS region pixels for the robust start
        self.step = max(1, int(math.sqrt(int(self.mask.sum()) / SAMPLE_PIXELS)))
        self.sample = self.mask[::self.step, ::self.step]

    def work_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This thread's work arrays for the region's box, reused channel after channel (no page faults)."""
        arrays = getattr(_THREAD, "arrays", None)
        if arrays is None or arrays[0].shape != self.mask.shape:
            arrays = (np.empty(self.mask.shape, dtype=np.float32), np.empty(self.mask.shape, dtype=bool),
                      np.empty(self.mask.shape, dtype=bool))
            _THREAD.arrays = arrays
        return arrays


_THREAD = threading.local()


def plane_rms(flat: np.ndarray, region: _Region, clip: float, beam_pix: int) -> tuple[float, int]:
    """Clipped rms of one flat-noise plane inside *region*, with a beam masked around emission above 5σ.

    Work stays in the region's bounding box: a robust start on a regular subsample, one pass for the
    deviations (shared by the source seeds and the clip), one clipped selection, its mean and variance.
    """
    box = flat[region.box]
    sample = box[::region.step, ::region.step][region.sample]
    sample = sample[np.isfinite(sample)]
    if sample.size < MIN_PIXELS:
        return math.nan, 0
    mu, sd = robust_start(sample, clip)
    if not sd > 0:
        return (0.0, int(region.mask.sum())) if sd == 0 else (math.nan, 0)
    dev, keep, seeds = region.work_arrays()
    with np.errstate(invalid="ignore"):
        np.subtract(box, np.float32(mu), out=dev)
        np.abs(dev, out=dev)
        np.less_equal(dev, np.float32(clip * sd), out=keep)  # NaN compares False: masked pixels drop out
        np.logical_and(keep, region.mask, out=keep)
        np.greater(dev, np.float32(SEED_SIGMA * sd), out=seeds)
    if seeds.any():
        keep &= ~dilate(seeds, beam_pix)
    kept = box[keep]
    if kept.size < MIN_PIXELS:
        return math.nan, int(kept.size)
    mean = float(kept.mean(dtype=np.float64))
    d = kept - np.float32(mean)
    return math.sqrt(float(np.dot(d, d)) / kept.size) / truncation_factor(clip), int(kept.size)


def measure_image(image: ImageFile, pb: ImageFile | None, *, corrected: bool, pbmin: float = 0.5,
                  clip: float = 3.0, progress=None, keep_map: bool = True) -> Measurement:
    """Read *image* (and its *pb*) once, plane by plane, and measure every channel.

    :param corrected: the image is primary-beam corrected (``pbcor``): with a pb the flat-noise image
        is image × pb; without one the noise region is central and the rms grows outward (noted).
    :param keep_map: also keep the peak over channels of every pixel (for the report's thumbnail).
    """
    nx, ny, nchan, _ = image.shape
    edge = max(2, int(round(0.05 * min(nx, ny))))
    rms = np.full(nchan, np.nan)
    npix = np.zeros(nchan, dtype=int)
    peak = np.full(nchan, np.nan)
    peakmap = np.full((ny, nx), np.nan, dtype=np.float32)
    notes = []
    if pb is not None and (pb.shape[0], pb.shape[1]) != (nx, ny):
        notes.append(f"the pb ({pb.path.name}) is {pb.shape[0]} x {pb.shape[1]} pixels, the image {nx} x {ny}: "
                     "not used")
        pb = None
    if pb is not None and pb.nchan not in (1, nchan):
        notes.append(f"the pb has {pb.nchan} channels, the image {nchan}: its first plane is used for all")
    if pb is None and corrected:
        notes.append("no pb: the noise is measured on the pb-corrected image in its central disc "
                     "(radius 0.33 x the image side), where it is up to 2x the true rms at the disc edge")
    pb_planes = _pb_planes(pb, nchan)
    cell = min(image.cell_arcsec) if image.cell_arcsec and min(image.cell_arcsec) > 0 else math.nan
    if image.beams_arcsec is not None and math.isfinite(cell):
        beam_pix = np.maximum(1, np.round(image.beams_arcsec[:, 0] / cell)).astype(int)
    else:
        beam_pix = np.full(nchan, 3)
    region = _Region((ny, nx), None, pbmin, edge)
    last_pb = None
    pb_keep = None
    best = (-np.inf, (0, 0), math.nan)
    threaded = image.format != "casa" and (pb is None or pb.format != "casa")
    if threaded:
        # the image and its pb are read by two threads while others measure (casatools stays on this one);
        # image planes arrive in the file's byte order and are turned native by the measuring thread
        pairs = zip(prefetch(image.planes(native=False)), prefetch(pb_planes))
    else:
        pairs = zip(image.planes(), pb_planes)
    # channels are measured by WORKERS threads (numpy releases the GIL); at most IN_FLIGHT_BYTES of planes wait
    in_flight = max(1, min(4 * WORKERS, IN_FLIGHT_BYTES // max(1, nx * ny * 4 * 3)))
    pending: deque = deque()

    def collect(item):
        nonlocal best
        chan, future = item
        rms[chan], npix[chan], top, plane, flat = future.result()
        if math.isfinite(top):
            peak[chan] = top
            if top > best[0]:  # where, only for a new best (rare after the first channels)
                at = int(np.nanargmax(flat))
                best = (top, (at % nx, at // nx), float(plane.flat[at]))
            if keep_map:
                np.fmax(peakmap, flat, out=peakmap)
        if progress is not None:
            progress.update(1)
        if chan % TRIM_EVERY == TRIM_EVERY - 1:
            release_freed_memory()

    with ThreadPoolExecutor(max_workers=WORKERS if threaded else 1) as pool:
        for (chan, plane), pb_plane in pairs:
            if pb_plane is not None:
                if pb_plane is not last_pb and (last_pb is None or not _same_plane(pb_plane, last_pb)):
                    region = _Region((ny, nx), pb_plane, pbmin, edge)
                last_pb = pb_plane
                if chan == nchan // 2 or pb_keep is None:
                    pb_keep = pb_plane
            pending.append((chan, pool.submit(_channel, plane, pb_plane if corrected else None, region, clip,
                                              int(beam_pix[chan]))))
            while len(pending) > in_flight:
                collect(pending.popleft())
        while pending:
            collect(pending.popleft())
    return Measurement(rms, npix, peak, best[2], peakmap, pb_keep, region.mask, best[1], notes)


def _libc_trim():
    import ctypes
    import ctypes.util
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: its allocator does not keep freed planes per thread
        return None


_TRIM = _libc_trim()


def release_freed_memory() -> None:
    """Give freed memory back to the system (glibc's ``malloc_trim``).

    Planes of a few MB are allocated and freed by the reading and measuring threads, each in its own
    glibc arena; after the first frees glibc stops using mmap for blocks of that size, and every arena
    keeps what its thread freed, so the process grew to 1.5 GB on a 4 GiB cube where ~200 MB are in use.
    Trimming every few channels keeps the peak near what is in use; it costs a walk of the free lists.
    """
    if _TRIM is not None:
        _TRIM(0)


def _channel(plane: np.ndarray, pb_plane: np.ndarray | None, region: _Region, clip: float, beam_pix: int):
    """One channel's numbers: (rms, pixels used, peak, the plane, the flat-noise plane)."""
    plane = native(plane)
    flat = plane if pb_plane is None else np.multiply(plane, pb_plane)
    rms, npix = plane_rms(flat, region, clip, beam_pix)
    return rms, npix, _peak(flat), plane, flat


def _same_plane(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two pb planes are the same, judged on every 32nd row: pb planes are either repeated (one
    pb for all channels) or change smoothly with frequency everywhere, so whole rows decide."""
    return a.shape == b.shape and a[::32].tobytes() == b[::32].tobytes()  # NaNs compare by their bits


def _peak(plane: np.ndarray) -> float:
    """The largest value of *plane*, NaN ignored (one ``fmax`` pass); NaN when nothing is finite."""
    return float(np.fmax.reduce(plane, axis=None))


def _pb_planes(pb: ImageFile | None, nchan: int):
    """The pb plane for each image channel (one plane repeated for a single-plane pb), or None each time."""
    if pb is None:
        for _ in range(nchan):
            yield None
        return
    if pb.nchan == nchan:
        for _, plane in pb.planes():
            yield plane
        return
    first = next(pb.planes())[1]
    for _ in range(nchan):
        yield first
