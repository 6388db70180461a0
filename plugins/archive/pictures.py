"""almaquery's pictures: footprints on the sky and spectral coverage, as the archive page draws them.

The Observations table has one row per Member OUS, target and spectral window; both pictures
work on *groups* — one per Member OUS and target — so each footprint is drawn once and each
spectral window gets one bar.

* :func:`plot_footprints` — celestial axes (astropy WCSAxes, a gnomonic projection around the
  search centre: RA increases to the left, sexagesimal labels), each Member OUS (or project,
  when there are more Member OUS than colours) in its own colour with a legend, mosaics as
  their polygons, the search cones and boxes, and a scale bar.
* :func:`plot_spectra` — one horizontal bar per spectral window (from ``frequency_support``,
  read by :func:`.coverage.parse_support`), grouped and labelled by Member OUS and target, one
  panel per band, the searched frequencies shaded, and the lines of the bundled list
  (:mod:`almatools.lines`) marked at their sky frequencies for the given ``vsys``/``z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from almatools import lines as linelist
from almatools import plotting

from . import coverage
from .grammar import Not, Or, Range, Value

__all__ = ["Group", "groups", "lines_covered", "plot_footprints", "plot_spectra", "MAX_GROUPS"]

#: groups drawn in one spectral-coverage figure (a bound on its size); the title says how many are left out
MAX_GROUPS = 40
#: legend entries before "… and N more"
MAX_LEGEND = 12
C = 299792458.0


@dataclass
class Group:
    """One Member OUS × target: its spectral windows and footprint polygons."""

    mous: str
    target: str
    project: str
    band: int | None
    windows: list = field(default_factory=list)    # coverage.Window, sorted by frequency
    polygons: list = field(default_factory=list)   # [(ra, dec), …] in degrees, each drawn once
    centre: tuple | None = None                    # (s_ra, s_dec)
    science: bool = True

    @property
    def label(self) -> str:
        return f"{self.mous}  {self.target}"


def _text(value) -> str:
    if value is None or np.ma.is_masked(value):
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def groups(table) -> list[Group]:
    """The table's rows gathered per Member OUS and target, in first-seen order."""
    from .task_almaquery import footprints
    cols = set(table.colnames)
    out: dict[tuple, Group] = {}
    seen_regions: dict[tuple, set] = {}
    for row in table:
        mous = _text(row["member_ous_uid"]) if "member_ous_uid" in cols else ""
        target = _text(row["target_name"]) if "target_name" in cols else ""
        key = (mous, target)
        g = out.get(key)
        if g is None:
            band = _number(_text(row["band_list"]).split()[0]) if "band_list" in cols and _text(row["band_list"]) \
                else None
            g = out[key] = Group(mous, target, _text(row["proposal_id"]) if "proposal_id" in cols else "",
                                 int(band) if band else None,
                                 science=_text(row["science_observation"]) != "F" if "science_observation" in cols
                                 else True)
            seen_regions[key] = set()
            if "frequency_support" in cols:
                try:
                    g.windows = coverage.parse_support(_text(row["frequency_support"]))
                except coverage.SupportError:
                    g.windows = []
            if "s_ra" in cols and _number(row["s_ra"]) is not None and _number(row["s_dec"]) is not None:
                g.centre = (float(row["s_ra"]), float(row["s_dec"]))
        if not g.windows and "em_min" in cols and _number(row["em_min"]) and _number(row["em_max"]):
            # no readable set-up: this row's own window (em_min/em_max, metres) stands for it
            g.windows.append(coverage.Window(C / float(row["em_max"]) / 1e9, C / float(row["em_min"]) / 1e9))
        if "s_region" in cols:
            region = row["s_region"]
            ident = _text(region) if isinstance(region, (str, bytes)) else repr(np.asarray(region).tolist())
            if ident not in seen_regions[key]:
                seen_regions[key].add(ident)
                g.polygons += footprints(region)
    for g in out.values():
        g.windows = sorted(set(g.windows), key=lambda w: (w.lo_ghz, w.hi_ghz))
        if g.centre is None and g.polygons:
            g.centre = _mean_direction(np.concatenate([np.asarray(p) for p in g.polygons]))
    return list(out.values())


def lines_covered(gs: list[Group], z: float) -> list[dict]:
    """For each group, the bundled lines that fall inside one of its spectral windows at redshift *z*."""
    out = []
    for g in gs:
        names = []
        for w in g.windows:
            names += [ln.name for ln in linelist.in_range(w.lo_ghz, w.hi_ghz, z) if ln.name not in names]
        out.append({"member_ous_uid": g.mous, "target_name": g.target, "band": g.band, "lines": names})
    return out


# ---------------------------------------------------------------------------------------------- colours

def colour_keys(gs: list[Group]) -> tuple[dict, str]:
    """Each group's colour index and what a colour stands for ('Member OUS' or 'project')."""
    mouses = list(dict.fromkeys(g.mous for g in gs))
    if len(mouses) <= len(plotting.PALETTE):
        return {id(g): mouses.index(g.mous) for g in gs}, "Member OUS"
    projects = list(dict.fromkeys(g.project for g in gs))
    return {id(g): projects.index(g.project) for g in gs}, "project"


def _legend_label(g: Group, by: str, gs: list[Group]) -> str:
    if by == "project":
        n = len({x.mous for x in gs if x.project == g.project})
        return f"{g.project} ({n} Member OUS)"
    targets = list(dict.fromkeys(x.target for x in gs if x.mous == g.mous))
    shown = ", ".join(targets[:2]) + (f" +{len(targets) - 2}" if len(targets) > 2 else "")
    band = f", Band {g.band}" if g.band else ""
    return f"{g.mous} ({g.project}, {shown}{band})"


# ---------------------------------------------------------------------------------------------- the sky

def _unit(ra, dec) -> np.ndarray:
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def _mean_direction(points: np.ndarray) -> tuple[float, float]:
    v = _unit(points[:, 0], points[:, 1]).sum(axis=0)
    norm = np.linalg.norm(v)
    if norm < 1e-9:
        return 0.0, 0.0
    v /= norm
    return float(np.degrees(np.arctan2(v[1], v[0])) % 360.0), float(np.degrees(np.arcsin(np.clip(v[2], -1, 1))))


def _separation(ra0, dec0, ra, dec) -> np.ndarray:
    """Angular distance (deg) from (ra0, dec0) to each (ra, dec)."""
    cosd = np.clip(_unit(ra, dec) @ _unit(np.array([ra0]), np.array([dec0]))[0], -1.0, 1.0)
    return np.degrees(np.arccos(cosd))


def _atoms(term) -> list[tuple[object, bool]]:
    """The cones and boxes of a position term, each with whether it is excluded (under a '!')."""
    if term is None:
        return []
    if isinstance(term, Or):
        return [a for t in term.terms for a in _atoms(t)]
    if isinstance(term, Not):
        return [(a, not neg) for a, neg in _atoms(term.term)]
    return [(term, False)]


def _nice_scale(field_arcsec: float) -> float:
    """A round scale-bar length near a fifth of the field."""
    steps = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 18000, 36000]
    want = field_arcsec / 5
    return max([s for s in steps if s <= want] or [steps[0]])


def _box_outline(box, n: int = 40) -> np.ndarray:
    (l0, l1), (b0, b1) = box.lon, box.lat
    if l1 < l0:
        l1 += 360.0
    lon = np.concatenate([np.linspace(l0, l1, n), np.full(n, l1), np.linspace(l1, l0, n), np.full(n, l0)])
    lat = np.concatenate([np.full(n, b0), np.linspace(b0, b1, n), np.full(n, b1), np.linspace(b1, b0, n)])
    return np.stack([lon % 360.0, lat], axis=-1)


def _sky_wcs(gs: list[Group], regions: list) -> tuple[object, float, bool]:
    """A celestial WCS framing every footprint and search region; its half-width (deg); whether all-sky."""
    from astropy.wcs import WCS
    from .search import Box, Cone
    points = [np.asarray(p) for g in gs for p in g.polygons] + [np.array([g.centre]) for g in gs if g.centre]
    cones = [r for r, _ in regions if isinstance(r, Cone)]
    boxes = [r for r, _ in regions if isinstance(r, Box) and not r.galactic]
    if cones:
        ra0, dec0 = cones[0].ra, cones[0].dec
    else:
        allp = np.concatenate(points + [_box_outline(b) for b in boxes]) if points or boxes else np.zeros((1, 2))
        ra0, dec0 = _mean_direction(allp)
    extent = 0.0
    for p in points + [_box_outline(b) for b in boxes]:
        extent = max(extent, float(np.max(_separation(ra0, dec0, p[:, 0], p[:, 1]))))
    for c in cones:
        extent = max(extent, float(_separation(ra0, dec0, np.array([c.ra]), np.array([c.dec]))[0]) + c.radius)
    extent = max(extent, 5.0 / 3600)  # at least 10″ across
    wcs = WCS(naxis=2)
    if extent > 45.0:  # too wide for a gnomonic projection: the whole sky (Hammer-Aitoff)
        wcs.wcs.ctype = ["RA---AIT", "DEC--AIT"]
        wcs.wcs.crval = [ra0, 0.0]
        wcs.wcs.cdelt = [-0.5, 0.5]
        wcs.wcs.crpix = [360.5, 180.5]
        return wcs, 180.0, True
    half = extent * 1.12
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra0, dec0]
    size = 600
    wcs.wcs.cdelt = [-2 * half / size, 2 * half / size]
    wcs.wcs.crpix = [size / 2 + 0.5, size / 2 + 0.5]
    return wcs, half, False


def plot_footprints(gs: list[Group], path: str, position=None, title: str = "") -> str:
    """PNG of every group's footprint on celestial axes, with the search regions and a scale bar."""
    import astropy.units as u
    from astropy.visualization.wcsaxes import SphericalCircle, add_scalebar
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Polygon
    from .search import Box, Cone
    regions = _atoms(position)
    keys, by = colour_keys(gs)
    with plotting.style():
        fig = plotting.figure(10, 6.4)
        wcs, half, allsky = _sky_wcs(gs, regions)
        if allsky:
            from astropy.visualization.wcsaxes.frame import EllipticalFrame
            ax = fig.add_subplot(projection=wcs, frame_class=EllipticalFrame)
            ax.set_xlim(-0.5, 719.5)
            ax.set_ylim(-0.5, 359.5)
        else:
            ax = fig.add_subplot(projection=wcs)
            ax.set_xlim(-0.5, 599.5)
            ax.set_ylim(-0.5, 599.5)
        world = ax.get_transform("icrs")
        legend, shown = [], set()
        for g in gs:
            k = keys[id(g)]
            style = plotting.series(k)
            for poly in g.polygons:
                verts = np.asarray(poly, dtype=float)
                ax.add_patch(Polygon(verts, closed=True, transform=world, facecolor=style["color"], alpha=0.12,
                                     edgecolor="none"))
                ax.add_patch(Polygon(verts, closed=True, transform=world, facecolor="none", lw=1.3,
                                     edgecolor=style["color"], linestyle=style["linestyle"]))
            if g.centre and (allsky or not g.polygons):  # tiny on an all-sky map: a marker says where
                ax.plot([g.centre[0]], [g.centre[1]], transform=world, marker="o", ms=4, color=style["color"],
                        linestyle="none")
            if k not in shown:
                shown.add(k)
                legend.append(Line2D([], [], lw=1.6, label=_legend_label(g, by, gs), **style))
        for region, excluded in regions:
            ls = ":" if excluded else "--"
            what = "excluded" if excluded else "search"
            if isinstance(region, Cone):
                ax.add_patch(SphericalCircle((region.ra * u.deg, region.dec * u.deg), region.radius * u.deg,
                                             transform=world, edgecolor=plotting.NEUTRAL["dark"], facecolor="none",
                                             linestyle=ls, lw=1.2))
                label = f"{what} cone (radius {plotting.arcsec_label(round(region.radius * 3600, 3))})"
            elif isinstance(region, Box):
                frame = ax.get_transform("galactic" if region.galactic else "icrs")
                ax.add_patch(Polygon(_box_outline(region), closed=True, transform=frame, facecolor="none",
                                     edgecolor=plotting.NEUTRAL["dark"], linestyle=ls, lw=1.2))
                label = f"{what} box ({'galactic' if region.galactic else 'RA/Dec'} ranges)"
            else:
                continue
            if label not in [h.get_label() for h in legend]:
                legend.append(Patch(facecolor="none", edgecolor=plotting.NEUTRAL["dark"], linestyle=ls, label=label))
        ra, dec = ax.coords[0], ax.coords[1]
        ra.set_axislabel("Right ascension (ICRS)")
        dec.set_axislabel("Declination (ICRS)")
        ra.set_major_formatter("hh:mm:ss" if not allsky else "hh")
        dec.set_major_formatter("dd:mm:ss" if not allsky else "dd")
        if allsky:
            ax.set_aspect("equal")
            ra.set_ticklabel_position("h")
            dec.set_ticklabel_position("c")
            dec.set_axislabel_position("c")
            ra.set_axislabel_position("h")
        ra.set_ticklabel(exclude_overlapping=True)
        dec.set_ticklabel(exclude_overlapping=True)
        ax.coords.grid(color=plotting.NEUTRAL["light"], linestyle="-", lw=0.5, alpha=0.8)
        if not allsky:
            length = _nice_scale(2 * half * 3600)
            add_scalebar(ax, length * u.arcsec, label=plotting.arcsec_label(length), corner="bottom right",
                         color=plotting.NEUTRAL["dark"], frame=True)
        if len(legend) > MAX_LEGEND + 1:
            more = len(legend) - MAX_LEGEND
            legend = legend[:MAX_LEGEND] + [Line2D([], [], color="none", label=f"… and {more} more")]
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.03, 1.0), borderaxespad=0.0,
                  title=f"colour = {by}", title_fontsize=8)
        nmous = len({g.mous for g in gs})
        nproj = len({g.project for g in gs})
        ax.set_title(title or f"ALMA footprints: {nmous} Member OUS of {nproj} project{'s' * (nproj != 1)}"
                     + ("" if not regions else ", search region dashed"))
        return plotting.save(fig, path)


# ---------------------------------------------------------------------------------------------- spectra

def _intervals(term) -> list[tuple[float | None, float | None, bool]]:
    """The frequency intervals of a search term (GHz), each with whether it is excluded."""
    if term is None:
        return []
    if isinstance(term, Or):
        return [i for t in term.terms for i in _intervals(t)]
    if isinstance(term, Not):
        return [(lo, hi, not ex) for lo, hi, ex in _intervals(term.term)]
    if isinstance(term, Value):
        return [(term.value, term.value, False)]
    if isinstance(term, Range):
        return [(term.lo, term.hi, False)]
    return []


def _search_label(lo, hi, excluded) -> str:
    what = "excluded" if excluded else "searched"
    if lo is not None and hi is not None:
        return f"{what}: {lo:g} GHz" if lo == hi else f"{what}: {lo:g}–{hi:g} GHz"
    return f"{what}: < {hi:g} GHz" if lo is None else f"{what}: > {lo:g} GHz"


def _z_label(vsys: float, z: float) -> str:
    if z:
        return f"z = {z:g}"
    if vsys:
        return f"vsys = {vsys:g} km/s (cz)"
    return "rest frequencies (vsys = 0)"


def plot_spectra(gs: list[Group], path: str, frequency=None, vsys: float = 0.0, z: float = 0.0,
                 title: str = "") -> str:
    """PNG of every group's spectral windows, one panel per band, lines marked at their sky frequencies."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    keys, by = colour_keys(gs)
    zz = linelist.redshift(vsys, z)
    drawn = [g for g in gs if g.windows][:MAX_GROUPS]
    left_out = len([g for g in gs if g.windows]) - len(drawn)
    bands = sorted({g.band for g in drawn}, key=lambda b: (b is None, b or 0))
    per_band = {b: [g for g in drawn if g.band == b] for b in bands}
    heights = [sum(len(g.windows) for g in per_band[b]) * 0.22 + 1.3 for b in bands] or [1.0]
    searched = _intervals(frequency)
    with plotting.style():
        fig = plotting.figure(11, min(sum(heights) + 0.9, 60.0))
        axes = fig.subplots(len(heights), 1, squeeze=False, height_ratios=heights)[:, 0]
        if not drawn:
            axes[0].text(0.5, 0.5, "no spectral windows to draw", ha="center", va="center",
                         transform=axes[0].transAxes)
            axes[0].set_axis_off()
        for ax, band in zip(axes, bands):
            _band_panel(ax, per_band[band], band, keys, searched, zz)
        handles = [Patch(facecolor=plotting.NEUTRAL["shade"], edgecolor=plotting.NEUTRAL["mid"], label=lab)
                   for lab in dict.fromkeys(_search_label(*s) for s in searched)]
        handles.append(Line2D([], [], color=plotting.NEUTRAL["dark"], lw=0.8, ls=":",
                              label=f"line at its sky frequency ({_z_label(vsys, z)}); bold: inside a window"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), frameon=False)
        nmous = len({g.mous for g in drawn})
        fig.suptitle(title or (f"Spectral coverage: {len(drawn)} target{'s' * (len(drawn) != 1)} in {nmous} Member OUS, one bar per "
                               "spectral window" + (f" ({left_out} more not drawn)" if left_out else "")))
        return plotting.save(fig, path)


def _band_panel(ax, gs: list[Group], band, keys, searched, z: float) -> None:
    lo = min(w.lo_ghz for g in gs for w in g.windows)
    hi = max(w.hi_ghz for g in gs for w in g.windows)
    pad = max(0.03 * (hi - lo), 0.3)
    xlo, xhi = lo - pad, hi + pad
    y, ticks, labels = 0, [], []
    for n, g in enumerate(gs):
        style = plotting.series(keys[id(g)])
        first = y
        for w in g.windows:
            ax.barh(y, w.hi_ghz - w.lo_ghz, left=w.lo_ghz, height=0.72, color=style["color"],
                    hatch=None if style["linestyle"] == "-" else "//", edgecolor="white", lw=0.3)
            y += 1
        ticks.append((first + y - 1) / 2)
        labels.append(g.label)
        if n:
            ax.axhline(first - 0.5, color=plotting.NEUTRAL["light"], lw=0.6)
    for s_lo, s_hi, excluded in searched:
        a = xlo if s_lo is None else s_lo
        b = xhi if s_hi is None else s_hi
        if b < xlo or a > xhi:
            continue
        if a == b:
            ax.axvline(a, color=plotting.NEUTRAL["mid"], lw=2.0, zorder=0)
        else:
            ax.axvspan(a, b, facecolor=plotting.NEUTRAL["shade"], edgecolor=plotting.NEUTRAL["mid"],
                       hatch="xx" if excluded else None, lw=0.6, zorder=0)
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(y - 0.5, -0.5)
    ax.set_yticks(ticks, labels)
    ax.tick_params(axis="y", length=0)
    name = f"Band {band}" if band else "band unknown"
    ax.set_xlabel(f"sky frequency (GHz) — {name}")
    seen = linelist.in_range(xlo, xhi, z)
    inside = {ln.name for g in gs for w in g.windows for ln in linelist.in_range(w.lo_ghz, w.hi_ghz, z)}
    for ln in seen:
        ax.axvline(linelist.sky_ghz(ln, z), color=plotting.NEUTRAL["dark"], lw=0.8, ls=":", zorder=3)
    _label_lines(ax, seen, inside, z)


def _label_lines(ax, seen, inside: set, z: float) -> None:
    """Name the marked lines on a top axis, dropping names that would collide (covered lines and tier 1 first)."""
    fig = ax.figure
    fig.canvas.draw()  # settle the layout so data → pixel is known
    to_px = ax.transData
    font_px = 8 / 72 * fig.dpi * 1.35  # one rotated label's width, with a gap
    order = sorted(seen, key=lambda ln: (ln.name not in inside, ln.tier, ln.rest_ghz))
    kept: list[tuple[float, object]] = []
    for ln in order:
        x = to_px.transform((linelist.sky_ghz(ln, z), 0))[0]
        if all(abs(x - k) >= font_px for k, _ in kept):
            kept.append((x, ln))
    kept.sort(key=lambda item: item[0])
    top = ax.secondary_xaxis("top")
    top.set_xticks([linelist.sky_ghz(ln, z) for _, ln in kept], [ln.name for _, ln in kept], rotation=90,
                   fontsize=8)
    top.tick_params(length=3)
    for text, (_, ln) in zip(top.get_xticklabels(), kept):
        if ln.name in inside:
            text.set_fontweight("bold")
