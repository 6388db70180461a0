"""The PNG: uv coverage with the MRS and resolution baselines, the baseline distribution, the predicted beam."""

from __future__ import annotations

import math

import numpy as np

from almatools import log, plotting

from .psf import imaging_grid, psf_patch
from .rules import ARCSEC, C
from .survey import HIST_BINS, HIST_STEP, density_units

__all__ = ["plot_uv"]

_DISPLAY_CELLS = 400


def plot_uv(plotfile: str, surveys, plan, result: dict) -> str:
    """Draw the advice's three panels into *plotfile* (atomically) and return its path."""
    with plotting.style():
        fig = _draw(surveys, plan, result)
        plotting.save(fig, plotfile)
    log.info(f"plot: {plotfile}")
    return plotfile


def _draw(surveys, plan, result: dict):
    from matplotlib.patches import Circle, Ellipse

    geometry = plan.survey.geometry
    classes = result["baseline_classes"]
    freq = result["beam"]["combined"]["freq_hz"]
    scales = result["mrs"]["combined"]
    fig = plotting.figure(14, 5.2)
    ax_uv, ax_bl, ax_psf = fig.subplots(1, 3)
    mrs_colour, res_colour = plotting.colour(3), plotting.colour(4)  # baseline classes take 0, 1, 2

    natural = density_units(surveys, classes, False)[0]
    w, u, v = _coarse_for_display(natural, geometry)
    full = np.concatenate([w[::-1, ::-1], w], axis=1)  # the mirrored half below v = 0
    vv = np.concatenate([-v[::-1], v])
    with np.errstate(divide="ignore"):
        shown = np.log10(np.where(full > 0, full, np.nan))
    extent = [u[0] / 1e3, u[-1] / 1e3, vv[0] / 1e3, vv[-1] / 1e3]
    ax_uv.imshow(shown.T, origin="lower", extent=extent, cmap="viridis", aspect="equal")
    for length, label, colour in ((scales["L5_m"], f"L5 {scales['L5_m']:.0f} m: MRS {scales['mrs_arcsec']:.3g}\"",
                                   mrs_colour),
                                  (scales["L80_m"], f"L80 {scales['L80_m']:.0f} m: resolution "
                                                    f"{scales['resolution_arcsec']:.3g}\"", res_colour)):
        ax_uv.add_patch(Circle((0, 0), length * freq / C / 1e3, fill=False, color=colour, lw=1.2, label=label))
    ax_uv.set_xlabel("u (kλ)")
    ax_uv.set_ylabel("v (kλ)")
    ax_uv.set_title(f"uv coverage at {freq / 1e9:.4g} GHz (log summed weight)")
    ax_uv.legend(loc="upper right", fontsize=7)

    lengths = np.exp((np.arange(HIST_BINS) + 0.5) * HIST_STEP)
    for k, name in enumerate(classes):
        h = sum(s.hist[name] for s in surveys if name in s.hist)
        if np.sum(h):
            ax_bl.plot(lengths, np.cumsum(h) / np.sum(h), label=name, **plotting.series(k))
    for length, label, colour in ((scales["L5_m"], "L5", mrs_colour), (scales["L80_m"], "L80", res_colour)):
        ax_bl.axvline(length, color=colour, ls="--", lw=1)
        ax_bl.text(length, 0.02, f" {label}", color=colour, fontsize=8)
    ax_bl.set_xscale("log")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax_bl.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 5, 10, 20, 50 m …: plain numbers that fit
    ax_bl.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:g}"))
    ax_bl.xaxis.set_minor_formatter(NullFormatter())
    ax_bl.set_xlim(max(1.0, scales["L5_m"] / 5), scales["max_baseline_m"] * 1.3)
    ax_bl.set_ylim(0, 1)
    ax_bl.set_xlabel("projected baseline (m)")
    ax_bl.set_ylabel("fraction of integrations")
    ax_bl.set_title("baseline distribution (combined percentiles)")
    ax_bl.legend(loc="center right", fontsize=7)

    beam = result["beam"]["combined"]["briggs"]
    per_ms = result["gridder"]["mosweight"]
    units = density_units(surveys, classes, per_ms)
    half = 2.0 * beam["major_rad"]
    axis = np.linspace(-half, half, 121)
    psf = psf_patch(imaging_grid(units, "briggs", result["robust"]), geometry, axis, axis)
    ext = [-half / ARCSEC, half / ARCSEC, -half / ARCSEC, half / ARCSEC]
    ax_psf.imshow(psf.T, origin="lower", extent=ext, cmap="RdBu_r", vmin=-1, vmax=1)
    ax_psf.contour(axis / ARCSEC, axis / ARCSEC, psf.T, levels=[0.35], colors="k", linewidths=0.7)
    ax_psf.invert_xaxis()  # east (RA) to the left, as on the sky
    ax_psf.add_patch(Ellipse((0, 0), beam["minor_arcsec"], beam["major_arcsec"], angle=-beam["pa_deg"],
                             fill=False, color=res_colour, lw=1.5,
                             label=f"{beam['major_arcsec']:.3g}\" x {beam['minor_arcsec']:.3g}\", "
                                   f"PA {beam['pa_deg']:.0f}°"))
    ax_psf.set_xlabel("ΔRA (arcsec)")
    ax_psf.set_ylabel("ΔDec (arcsec)")
    ax_psf.set_title(f"predicted PSF, Briggs robust={result['robust']:g} (contour 0.35)")
    ax_psf.legend(loc="upper right", fontsize=7)
    fig.suptitle(f"imadvise: {result['source']} — cell {result['cell']['value']}, imsize "
                 f"{result['imsize']['value']}, expected rms {result['noise']['combined']['briggs_jy'] * 1e3:.3g} mJy",
                 fontsize=10)
    return fig


def _coarse_for_display(weights, geometry):
    """The half-plane cropped symmetrically to the occupied |u| and binned to at most
    :data:`_DISPLAY_CELLS` cells per axis: (weights, u of rows, v of columns)."""
    u, v = geometry.cell_centres()
    rows = np.flatnonzero(weights.any(axis=1))
    cols = np.flatnonzero(weights.any(axis=0))
    centre = geometry.nu // 2
    reach = min(centre, max(int(centre - rows[0]), int(rows[-1] + 1 - centre),
                            math.ceil((cols[-1] + 1) * geometry.dv / geometry.du)))
    top = min(geometry.nv // 2, max(int(cols[-1] + 1), math.ceil(reach * geometry.du / geometry.dv)))  # square
    w, u, v = weights[centre - reach:centre + reach, :top], u[centre - reach:centre + reach], v[:top]
    fu = max(1, math.ceil(w.shape[0] / _DISPLAY_CELLS))
    fv = max(1, math.ceil(w.shape[1] / (_DISPLAY_CELLS // 2)))
    nu, nv = w.shape[0] // (2 * fu) * 2 * fu, w.shape[1] // fv * fv
    cut = (w.shape[0] - nu) // 2
    w, u = w[cut:cut + nu, :nv], u[cut:cut + nu]
    w = w.reshape(nu // fu, fu, nv // fv, fv).sum(axis=(1, 3))
    return w, u.reshape(-1, fu).mean(axis=1), v[:nv].reshape(-1, fv).mean(axis=1)
