"""The report people look at: one HTML file with PNGs beside it, and ECSV tables.

Plots are drawn in almatools.plotting's one style (``cividis`` and the Okabe–Ito colours,
readable with any colour vision; constrained layout, so labels do not overlap), say in the
title what they show and label axes with units.  The HTML needs no server and no network: every
image is a relative link to a PNG in the same folder, every user string is escaped, and one small
inline script sorts tables by a click on their header.
"""

from __future__ import annotations

import html
import math
import re
from pathlib import Path

import numpy as np

from almatools import plotting
from almatools.io import atomic_path, atomic_write

__all__ = ["write_tables", "plot_thumbnail", "plot_spectrum", "write_html", "safe_name"]

# almatools.plotting's palette by name (the HTML's status colours use it too)
OKABE_ITO = dict(zip(("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow"), plotting.PALETTE))
_LEVEL_COLOUR = {"ok": OKABE_ITO["green"], "warning": OKABE_ITO["orange"], "problem": OKABE_ITO["vermillion"]}


def safe_name(text: str) -> str:
    """A file-name-safe form of *text* (for PNG names)."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)[:150]


def _short(product) -> str:
    spw = f"spw{'_'.join(product.spws)}" if product.spws else ""
    return " ".join(x for x in (product.target or product.name, spw, product.specmode, product.term) if x)


# ---------------------------------------------------------------------------------------- tables
def write_tables(outdir: Path, tables: dict[str, list[dict]]) -> list[str]:
    """One ECSV file per non-empty table (``name`` → rows of equal keys); returns the paths written."""
    from astropy.table import Table
    written = []
    for name, rows in tables.items():
        if not rows:
            continue
        columns = list(rows[0])
        table = Table(rows=[[_cell(r.get(c)) for c in columns] for r in rows], names=columns)
        path = outdir / f"{name}.ecsv"
        with atomic_path(path) as tmp:
            table.write(tmp, format="ascii.ecsv", overwrite=True)
        written.append(str(path))
    return written


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if isinstance(value, float) and not math.isfinite(value):
        return float("nan")
    return value


# ---------------------------------------------------------------------------------------- plots
def plot_thumbnail(path: Path, image, meas, product, pbmin: float) -> str:
    """Peak (over channels) of the flat-noise image, the pb ≥ pbmin contour and the beam."""
    with plotting.style():
        return plotting.save(_thumbnail(image, meas, product, pbmin), path)


def _thumbnail(image, meas, product, pbmin: float):
    from matplotlib.patches import Ellipse
    data = meas.peakmap
    ny, nx = data.shape
    dx, dy = image.cell_arcsec
    extent = [nx / 2 * dx, -nx / 2 * dx, -ny / 2 * dy, ny / 2 * dy]  # east to the left
    fig = plotting.figure(5.2, 4.6)
    ax = fig.add_subplot()
    finite = data[np.isfinite(data)]
    vmin, vmax = (np.percentile(finite, [1, 99.9]) if finite.size else (0, 1))
    shown = ax.imshow(data * 1e3, origin="lower", cmap="cividis", extent=extent, vmin=vmin * 1e3, vmax=vmax * 1e3,
                      interpolation="nearest")
    fig.colorbar(shown, ax=ax, label="peak (mJy/beam)" if image.nchan > 1 else "intensity (mJy/beam)")
    handles = []
    if meas.pb_plane is not None:
        y = np.linspace(extent[2], extent[3], ny)
        x = np.linspace(extent[0], extent[1], nx)
        ax.contour(x, y, meas.pb_plane, levels=[pbmin], colors=[OKABE_ITO["orange"]], linewidths=1.5,
                   linestyles="--")
        from matplotlib.lines import Line2D
        handles.append(Line2D([], [], color=OKABE_ITO["orange"], ls="--", label=f"pb = {pbmin:g}"))
    if image.beams_arcsec is not None:
        bmaj, bmin_, pa = image.beams_arcsec[image.nchan // 2]
        cx, cy = extent[0] - 0.1 * (extent[0] - extent[1]), extent[2] + 0.1 * (extent[3] - extent[2])
        ax.add_patch(Ellipse((cx, cy), bmin_, bmaj, angle=-pa, facecolor="none", edgecolor=OKABE_ITO["sky"],
                             linewidth=1.5))
        from matplotlib.patches import Patch
        handles.append(Patch(facecolor="none", edgecolor=OKABE_ITO["sky"],
                             label=f"beam {bmaj:.2f}\" x {bmin_:.2f}\""))
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=8, framealpha=0.8)
    ax.set_xlabel("RA offset (arcsec)")
    ax.set_ylabel("Dec offset (arcsec)")
    what = "peak over channels" if image.nchan > 1 else "image"
    ax.set_title(f"{_short(product)}: {what}", fontsize=10)
    return fig


def plot_spectrum(path: Path, image, meas, product, linefree, rms: float, theoretical: float | None,
                  noisy: list[int], from_contdat: bool = True) -> str:
    """rms per channel against frequency, line-free channels shaded, noisy ones marked."""
    with plotting.style():
        return plotting.save(_spectrum(image, meas, product, linefree, rms, theoretical, noisy, from_contdat), path)


def _spectrum(image, meas, product, linefree, rms: float, theoretical: float | None, noisy: list[int],
              from_contdat: bool):
    freqs = image.freqs_hz / 1e9
    fig = plotting.figure(6.4, 3.4)
    ax = fig.add_subplot()
    half = abs(np.median(np.diff(freqs))) / 2 if freqs.size > 1 else 0.0
    shaded = False
    for start, stop in _runs(linefree):
        ax.axvspan(min(freqs[start], freqs[stop]) - half, max(freqs[start], freqs[stop]) + half,
                   color=OKABE_ITO["sky"], alpha=0.25, lw=0,
                   label=None if shaded else "line-free (cont.dat)" if from_contdat else "all channels (no cont.dat range)")
        shaded = True
    ax.plot(freqs, meas.rms_chan * 1e3, color=OKABE_ITO["black"], lw=1.2, marker=".", ms=3,
            label="rms per channel")
    if noisy:
        ax.plot(freqs[noisy], meas.rms_chan[noisy] * 1e3, ls="none", marker="x", ms=7, color=OKABE_ITO["vermillion"],
                label="noisy channel")
    if math.isfinite(rms):
        ax.axhline(rms * 1e3, color=OKABE_ITO["blue"], ls="--", lw=1, label=f"image rms (median) {rms * 1e3:.3g}")
    if theoretical:
        ax.axhline(theoretical * 1e3, color=OKABE_ITO["orange"], ls=":", lw=1.5,
                   label=f"theoretical {theoretical * 1e3:.3g}")
    ax.set_xlabel(f"frequency (GHz, {image.frame or 'frame unknown'})")
    ax.set_ylabel("rms (mJy/beam)")
    ax.set_title(f"{_short(product)}: rms per channel", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return fig


def _runs(mask) -> list[tuple[int, int]]:
    """(first, last) index of each run of True in *mask*."""
    out, start = [], None
    for i, v in enumerate(list(mask) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i - 1))
            start = None
    return out


# ---------------------------------------------------------------------------------------- HTML
_CSS = """
body{font-family:sans-serif;margin:1.5em;color:#111;max-width:1300px}
h1{font-size:1.4em} h2{font-size:1.2em;border-bottom:1px solid #999;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em} th,td{border:1px solid #bbb;padding:3px 6px;
text-align:left;vertical-align:top} th{background:#eee;cursor:pointer} td.num{text-align:right;font-variant-numeric:tabular-nums}
.level-ok{color:#fff;background:#009E73}.level-warning{color:#000;background:#E69F00}.level-problem{color:#fff;background:#D55E00}
.badge{padding:1px 6px;border-radius:3px;font-weight:bold}
.card{border:1px solid #ccc;padding:.6em;margin:1em 0}.plots img{max-width:48%;margin-right:1%;vertical-align:top}
.note{white-space:pre-wrap;background:#f6f6f6;padding:.4em}
"""
_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-asc') !== 'true';
    rows.sort(function (a, b) {
      var x = a.cells[col].textContent, y = b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    th.setAttribute('data-asc', asc);
  });
});
"""


def _e(value) -> str:
    return html.escape("" if value is None else str(value))


def _num(value, fmt: str = ".4g", scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return format(value * scale, fmt)


def _table(headers: list[str], rows: list[list], cls: str = "sortable", numeric: set | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td class=\"num\">{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _flux_table(fluxes: list[dict]) -> str:
    """Calibrator flux densities as the file gives them (model values and measured ones)."""
    return "<p>Calibrator flux densities:</p>" + _table(
        ["origin", "kind", "field", "spw", "frequency (GHz)", "flux (Jy)", "error (Jy)"],
        [[f["origin"], f["kind"], f["field"], f["spw"], _num(f["freq_hz"], ".6g", 1e-9), _num(f["flux_jy"], ".5g"),
          _num(f["error_jy"], ".3g")] for f in fluxes], numeric={4, 5, 6})


def write_html(path: Path, result: dict, cards: list[dict]) -> str:
    """The report page; *cards* hold per image ``{"row", "thumbnail", "spectrum"}`` (PNG names relative to the page)."""
    r = result
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>qacheck: {_e(r['mous'] or r['path'])}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>qacheck: Member OUS {_e(r['mous'] or Path(r['path']).name)}</h1>"]
    cal = r.get("calibration", {})
    readme = r.get("readme") or {}
    parts.append(_table(["", ""], [["path", r["path"]], ["project", r.get("project", "")],
                                   ["calibration", cal.get("type", "")], ["CASA version", cal.get("casa_version", "")],
                                   ["pipeline version", cal.get("pipeline_version", "")],
                                   ["QA2 status (README)", readme.get("qa2_status", "") or "not stated"]],
                        cls="summary"))
    for note in readme.get("notes", []):
        parts.append(f"<p><b>{_e(note['heading'])}</b> ({_e(note['where'])})</p><div class=\"note\">{_e(note['text'])}"
                     "</div>")
    parts.append("<h2>Images: verdicts</h2>")
    parts.append(_table(["image", "verdict", "rms (mJy/beam)", "theoretical (mJy/beam)", "rms ratio", "peak (mJy/beam)",
                         "DR", "expected DR", "pixels/beam", "reasons"],
                        [[c["row"]["file"], c["row"]["verdict"], _num(c["row"]["rms_jy"], ".4g", 1e3),
                          _num(c["row"]["theoretical_jy"], ".4g", 1e3), _num(c["row"]["rms_ratio"], ".3g"),
                          _num(c["row"]["peak_jy"], ".4g", 1e3), _num(c["row"]["dr"], ".1f"),
                          c["row"]["dr_expected"] or "–", _num(c["row"]["pixels_per_beam"], ".2f"),
                          "; ".join(c["row"]["reasons"])] for c in cards], numeric={2, 3, 4, 5, 6, 7, 8}))
    parts.append("<h2>QA scores (pipeline AQUA report)</h2>")
    for aq in r.get("aqua", []):
        parts.append(f"<p>{_e(aq['file'])}: pipeline {_e(aq['pipeline_version'])}, CASA {_e(aq['casa_version'])}, "
                     f"layout {_e(aq['layout'] or 'no stages')}</p>")
        if aq["topics"]:
            parts.append(_table(["topic", "score"], [[k, _num(v, ".3g")] for k, v in aq["topics"].items()],
                                numeric={1}))
        if aq["lowest_scores"]:
            parts.append("<p>Lowest scores:</p>" + _table(["stage", "task", "score", "message"], [
                [s["stage"], s["task"], _num(s["score"], ".3g"), s["reason"] or ", ".join(
                    f"{m['name']}={m['value']}" for m in s["metrics"])] for s in aq["lowest_scores"]], numeric={0, 2}))
        if aq["stages"]:
            parts.append("<details><summary>All stages</summary>" + _table(["stage", "task", "score", "message"], [
                [s["number"], s["name"], _num(s["score"], ".3g"), s["reason"]] for s in aq["stages"]], numeric={0, 2})
                + "</details>")
        if aq["sensitivities"]:
            parts.append("<p>Sensitivities:</p>" + _table(
                ["stage", "field", "spw", "mode", "bandwidth (MHz)", "theoretical (mJy/beam)", "observed (mJy/beam)"],
                [[x["origin"], x["field"], x["spw"], x["bwmode"], _num(x["bandwidth_hz"], ".4g", 1e-6),
                  _num(x["theoretical_jy"], ".4g", 1e3), _num(x["observed_jy"], ".4g", 1e3)]
                 for x in aq["sensitivities"]], numeric={4, 5, 6}))
        if aq["fluxes"]:
            parts.append(_flux_table(aq["fluxes"]))
    if not r.get("aqua"):
        parts.append("<p>No AQUA report in this delivery (manual calibration, or a pipeline before Cycle 5).</p>")
    for q in r.get("qa2", []):
        parts.append(f"<h2>QA2 text: {_e(Path(q['file']).name)}</h2><p>{_e(q['shape'])}</p>")
        if q["execution_blocks"]:
            keys = [k for k in q["execution_blocks"][0] if k != "where"]
            parts.append(_table(keys, [[eb.get(k, "") for k in keys] for eb in q["execution_blocks"]]))
        if q["rms"]:
            parts.append(_table(["quantity", "value"], [[k, v] for k, v in q["rms"].items()], cls="summary"))
        if q["spws"]:
            keys = [k for k in q["spws"][0] if k != "where"]
            parts.append(_table(keys, [[row.get(k, "") for k in keys] for row in q["spws"]]))
        if q["fluxes"]:
            parts.append(_flux_table(q["fluxes"]))
    parts.append("<h2>Inventory</h2>")
    parts.append(_table(["file", "target", "intent", "spws", "mode", "term", "kind", "shape", "frequency (GHz)",
                         "beam (arcsec)", "size (MB)"],
                        [[i["file"], i["target"], i["intent"], " ".join(i["spws"]), i["specmode"], i["term"], i["kind"],
                          " x ".join(str(n) for n in i["shape"]) if i["shape"] else "–",
                          "–" if i["freq_min_ghz"] is None else f"{i['freq_min_ghz']:.4f}–{i['freq_max_ghz']:.4f}",
                          i["beam_text"], _num(i["size_mb"], ".3g")] for i in r["inventory"]], numeric={10}))
    if r["missing"]:
        parts.append("<p>Expected but missing:</p>" + _table(["group", "missing", "severity", "why"],
                                                              [[m["group"], m["missing"], m["severity"], m["why"]]
                                                               for m in r["missing"]]))
    parts.append("<h2>Images, one by one</h2>")
    for c in cards:
        row = c["row"]
        level = row["verdict"]
        parts.append(f"<div class=\"card\"><h3>{_e(row['file'])} <span class=\"badge level-{_e(level)}\">{_e(level)}"
                     "</span></h3><div class=\"plots\">")
        for key, alt in (("thumbnail", "peak map with beam and pb contour"), ("spectrum", "rms per channel")):
            if c.get(key):
                parts.append(f"<img src=\"{_e(c[key])}\" alt=\"{_e(alt)}: {_e(row['file'])}\">")
        parts.append("</div><ul>" + "".join(f"<li>{_e(t)}</li>" for t in row["reasons"]) + "</ul>")
        parts.append(_table(["quantity", "value"], [
            ["rms (mJy/beam)", _num(row["rms_jy"], ".4g", 1e3)], ["rms from", row["rms_from"]],
            ["theoretical (mJy/beam)", _num(row["theoretical_jy"], ".4g", 1e3)],
            ["theoretical from", row["theoretical_from"]], ["peak (mJy/beam)", _num(row["peak_jy"], ".4g", 1e3)],
            ["dynamic range", _num(row["dr"], ".1f")], ["band", row["band"] or "–"],
            ["beam (arcsec, deg)", row["beam_text"]], ["cell (arcsec)", _num(row["cell_arcsec"], ".4g")],
            ["pixels per beam (minor axis)", _num(row["pixels_per_beam"], ".2f")],
            ["noisy channels", ", ".join(map(str, row["noisy_channels"])) or "none"],
            ["MRS (arcsec, QA2)", _num(row["mrs_arcsec"], ".3g")]], cls="summary"))
        parts.append("</div>")
    if r["not_read"]:
        parts.append("<h2>Not read</h2>" + _table(["file", "why"], [[n["file"], n["why"]] for n in r["not_read"]]))
    if r["failed"]:
        parts.append("<h2>Failed</h2>" + _table(["file", "why"], [[n["file"], n["why"]] for n in r["failed"]]))
    parts.append(f"<script>{_JS}</script></body></html>")
    atomic_write(path, "\n".join(parts))
    return str(path)
