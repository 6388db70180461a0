"""One look for every almatools picture: colours, fonts, figures, saving, and a layout check.

Every task that draws uses this module and nothing else for its style, so all PNGs read
alike and a change of style is one edit here::

    from almatools import plotting

    with plotting.style():
        fig = plotting.figure(8, 4.5)
        ax = fig.add_subplot()
        ax.plot(x, y, **plotting.series(0))      # colour (and line style past 8 series)
        ...
        plotting.save(fig, "out.png")

* Colours are Okabe & Ito's eight (Okabe & Ito 2008, "Color Universal Design"; Wong 2011,
  Nature Methods 8, 441), told apart by people with any common colour-vision deficiency;
  past eight series the colours repeat with another line style, so no two series look alike.
* Figures are matplotlib ``Figure`` objects with their own Agg canvas and constrained
  layout, never pyplot: the backend and state of the user's session (casashell, a notebook)
  are left alone, and labels, titles and legends are placed so they do not collide.
* :func:`layout_problems` and :func:`blank_axes` are what the tests ask of every picture:
  no two text elements overlap or leave the figure (measured with matplotlib's own
  renderer on the saved figure), and no panel is empty.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

from .io import atomic_path

__all__ = ["PALETTE", "NEUTRAL", "colour", "series", "style", "figure", "save", "text_boxes", "layout_problems",
           "blank_axes", "arcsec_label"]

#: Okabe & Ito's colour-blind-safe palette, in the order used (yellow late: it is pale on white)
PALETTE = ("#0072B2",  # blue
           "#E69F00",  # orange
           "#009E73",  # bluish green
           "#D55E00",  # vermillion
           "#CC79A7",  # reddish purple
           "#56B4E9",  # sky blue
           "#000000",  # black
           "#F0E442")  # yellow
#: greys for context (reference lines, shaded ranges, gridlines)
NEUTRAL = {"dark": "0.25", "mid": "0.55", "light": "0.85", "shade": "0.92"}
LINESTYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DPI = 110

#: matplotlib settings every almatools figure is drawn with
RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "legend.framealpha": 0.9,
    "figure.titlesize": 11,
    "axes.prop_cycle": None,  # set below (needs cycler)
    "axes.spines.top": True,
    "axes.spines.right": True,
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "lines.linewidth": 1.4,
    "image.cmap": "cividis",  # perceptually uniform and readable with colour-vision deficiencies
}


def colour(index: int) -> str:
    """The palette colour of series *index* (repeats after eight: see :func:`series`)."""
    return PALETTE[index % len(PALETTE)]


def series(index: int, marker: bool = False) -> dict:
    """Line keywords that tell series *index* apart: colour, then line style (and marker) past eight."""
    out = {"color": colour(index), "linestyle": LINESTYLES[(index // len(PALETTE)) % len(LINESTYLES)]}
    if marker:
        out["marker"] = MARKERS[(index // len(PALETTE)) % len(MARKERS)]
    return out


def _rc() -> dict:
    from cycler import cycler
    rc = dict(RC)
    rc["axes.prop_cycle"] = cycler(color=list(PALETTE))
    return rc


@contextlib.contextmanager
def style():
    """The almatools look for the figures made inside the block (matplotlib's ``rc_context``)."""
    import matplotlib
    with matplotlib.rc_context(_rc()):
        yield


def figure(width: float, height: float, **kwargs):
    """A Figure of *width* × *height* inches on its own Agg canvas, with constrained layout."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    kwargs.setdefault("layout", "constrained")
    fig = Figure(figsize=(width, height), dpi=DPI, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def save(fig, path: str | os.PathLike) -> str:
    """Write *fig* as PNG to *path* atomically (at the figure's own dpi, so what the tests measure
    is what was saved); returns the path."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi="figure")
    return str(path)


def arcsec_label(arcsec: float) -> str:
    """'30″', '2′', '1.5°': an angle as people write it on a scale bar."""
    if arcsec >= 3600:
        return f"{arcsec / 3600:g}°"
    if arcsec >= 60 and arcsec % 60 == 0 or arcsec >= 120:
        return f"{arcsec / 60:g}′"
    return f"{arcsec:g}″"


# ---------------------------------------------------------------------------------------------- checks

def text_boxes(fig) -> list[tuple[str, object]]:
    """Every visible text element of the drawn *fig* as (description, display-space Bbox).

    Texts inside a legend count as one element, the legend's box; the tick labels of
    astropy's WCSAxes (one artist drawing many labels) count label by label.  The figure
    is drawn first with its own renderer, as :func:`save` drew it.
    """
    from matplotlib.legend import Legend
    from matplotlib.text import Text
    from matplotlib.axis import Axis
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # an Axis keeps label artists for ticks outside its view too; only those it draws count
    tick_labels, drawn_ticks = set(), set()
    for axis in fig.findobj(Axis):
        for tick in axis.get_major_ticks() + axis.get_minor_ticks():
            tick_labels |= {id(tick.label1), id(tick.label2)}
        if axis.get_visible() and axis.axes.get_visible() and axis.axes.axison:
            drawn_ticks |= {id(lab) for tick in axis._update_ticks() for lab in (tick.label1, tick.label2)}
    legends = [a for a in fig.findobj(Legend) if a.get_visible()]
    in_legend = {id(t) for lg in legends for t in lg.findobj(Text)}
    boxes = [(f"legend {[t.get_text() for t in lg.get_texts()][:3]}", lg.get_window_extent(renderer))
             for lg in legends]
    for t in fig.findobj(Text):
        if id(t) in in_legend or not t.get_visible():
            continue
        multi = getattr(t, "_all_bboxes", None)  # WCSAxes TickLabels: one artist, many labels
        if multi is not None:
            boxes += [(f"tick label #{k} of {type(t).__name__}", bb) for k, bb in enumerate(multi)]
            continue
        if id(t) in tick_labels and id(t) not in drawn_ticks:
            continue
        if not t.get_text().strip() or _clipped_away(t, renderer):
            continue
        boxes.append((repr(t.get_text()), t.get_window_extent(renderer)))
    return boxes


def _clipped_away(t, renderer) -> bool:
    """A text matplotlib does not draw: clipped to an axes it lies outside of (an off-screen tick)."""
    if not t.get_clip_on() or t.axes is None:
        return False
    clip = t.get_clip_box()
    if clip is None:
        return False
    bb = t.get_window_extent(renderer)
    return not clip.overlaps(bb)


def layout_problems(fig, tolerance_px: float = 1.0) -> list[str]:
    """What makes *fig* hard to read: text elements that overlap each other or leave the figure.

    Two boxes overlap when they share more than *tolerance_px* in both directions (anti-aliasing
    makes touching boxes share a pixel).
    """
    boxes = text_boxes(fig)
    width, height = fig.bbox.width, fig.bbox.height
    problems = []
    for name, bb in boxes:
        if bb.x0 < -tolerance_px or bb.y0 < -tolerance_px or bb.x1 > width + tolerance_px \
                or bb.y1 > height + tolerance_px:
            problems.append(f"{name} leaves the figure ({bb.x0:.0f},{bb.y0:.0f})–({bb.x1:.0f},{bb.y1:.0f}) "
                            f"of {width:.0f}×{height:.0f} px")
    for (n1, b1), (n2, b2) in itertools.combinations(boxes, 2):
        dx = min(b1.x1, b2.x1) - max(b1.x0, b2.x0)
        dy = min(b1.y1, b2.y1) - max(b1.y0, b2.y0)
        if dx > tolerance_px and dy > tolerance_px:
            problems.append(f"{n1} overlaps {n2} by {dx:.0f}×{dy:.0f} px")
    return problems


def blank_axes(fig, png: str | os.PathLike, min_fraction: float = 0.002) -> list[str]:
    """The panels of *fig* that are empty in the saved *png*: fewer than *min_fraction* of the
    pixels inside the axes (frame and ticks excluded) differ from the axes' background."""
    import numpy as np
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread
    image = imread(str(png))[..., :3]
    if image.dtype != np.float32 and image.max() > 1:
        image = image / 255.0
    if float(image.std()) == 0.0:
        return [f"{Path(png).name}: the whole picture is one colour"]
    rows = image.shape[0]
    empty = []
    fig.canvas.draw()
    for k, ax in enumerate(fig.axes):
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        bb = ax.get_window_extent()
        x0, x1 = int(bb.x0) + 3, int(bb.x1) - 3
        y0, y1 = rows - int(bb.y1) + 3, rows - int(bb.y0) - 3  # display y runs up, image rows down
        if x1 <= x0 or y1 <= y0:
            empty.append(f"axes {k} ({ax.get_title()!r}) has no area")
            continue
        inside = image[y0:y1, x0:x1]
        background = np.array(to_rgb(ax.get_facecolor()))
        differs = np.any(np.abs(inside - background) > 0.02, axis=-1)
        if differs.mean() < min_fraction:
            empty.append(f"axes {k} ({ax.get_title()!r}) is blank: {differs.mean():.2%} of its pixels drawn")
    return empty
