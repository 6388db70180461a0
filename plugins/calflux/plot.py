"""PNG plots: each calibrator's catalogue history and the power law at the date, archival values marked.

One row per source: left, the catalogue's flux densities against time in the low and
high band (error bars), the date marked; right, flux density against frequency (log–log):
the measurements the estimate used, the power law with its Monte Carlo ±1σ band, and the
values being checked (archival models as squares, derived values as triangles, the flux
service's answers as diamonds).  Matplotlib's object API on a figure of our own: the
user's pyplot state is not touched.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from almatools.io import atomic_path

from .catalogue import Catalogue

__all__ = ["plot_sources"]

MAX_PANELS = 40  # rows in one figure (a bound on the figure's size)


def plot_sources(path: str | Path, catalogue: Catalogue | None, estimates: list[dict], rows: list[dict] | None = None,
                 title: str = "") -> str:
    """Write the PNG to *path*; *estimates* are the estimator's results, *rows* the comparison rows."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    names = list(dict.fromkeys(e.get("catalogue_name") or e.get("source") for e in estimates
                               if "fluxDensity" in e or "service" in e))
    rows = rows or []
    names += [r["field"] for r in rows if r["field"] not in names]
    names = names[:MAX_PANELS] or ["(nothing to plot)"]
    fig = Figure(figsize=(12, 3.4 * len(names)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(names), 2, squeeze=False)
    for (ax_t, ax_f), name in zip(axes, names):
        src = catalogue.lookup(name) if catalogue is not None else None
        ests = [e for e in estimates if (e.get("catalogue_name") or e.get("source")) == name]
        mine = [r for r in rows if r["field"] == name or (src is not None and catalogue.lookup(r["field"]) is src)]
        _history(ax_t, src, ests, name)
        _spectrum(ax_f, ests, mine, name)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)
    return str(path)


_EPOCH = np.datetime64("1858-11-17")
HISTORY_DAYS = 730  # the history shown on each side of the date


def _dates(days) -> np.ndarray:
    return _EPOCH + np.asarray(days, dtype=np.int64).astype("timedelta64[D]")


def _history(ax, src, ests, name) -> None:
    ax.set_title(f"{name}: catalogue history")
    if src is None:
        ax.text(0.5, 0.5, "no catalogue history", ha="center", va="center", transform=ax.transAxes)
        return
    centre = ests[0]["mjd"] if ests else float(src.day.max())
    near = np.abs(src.day - centre) <= HISTORY_DAYS
    for band, colour in ((3, "tab:blue"), (6, "tab:green"), (7, "tab:red")):
        idx = src.in_band(band)
        idx = idx[near[idx]]
        if len(idx):
            ax.errorbar(_dates(src.day[idx]), src.flux[idx], yerr=src.error[idx], fmt=".", ms=3, lw=0.5,
                        color=colour, label=f"Band {band}")
    for e in ests[:1]:
        ax.axvline(_dates([e["mjd"]])[0], color="k", ls="--", lw=0.8, label=f"date {e['date']}")
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_ylabel("flux density (Jy)")
    ax.legend(fontsize=7, loc="best")


def _spectrum(ax, ests, rows, name) -> None:
    ax.set_title(f"{name}: spectrum at the date")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plotted = False
    for e in ests[:1]:
        if "fluxDensity" not in e:
            continue
        used = [m for ms in e.get("closest", {}).values() for m in ms]
        if used:
            ax.errorbar([m["frequency_hz"] / 1e9 for m in used], [m["flux"] for m in used],
                        yerr=[m["error"] for m in used], fmt="o", color="tab:blue", label="closest measurements")
        for p in e.get("pairs", [])[:1]:
            ax.errorbar(np.array(p["frequencies_hz"]) / 1e9, p["fluxes"], yerr=p["errors"], fmt="s", mfc="none",
                        color="tab:gray", label=f"pair {p['low_date']}/{p['high_date']}")
        nu = np.geomspace(80e9, 950e9, 60)
        s = e["referenceFluxDensity"] * (nu / e["referenceFrequency"]) ** e["spectralIndex"]
        frac = e["fluxDensityUncertainty"] / e["fluxDensity"] if e["fluxDensity"] else 0
        ax.plot(nu / 1e9, s, color="k", lw=1, label=f"α = {e['spectralIndex']:+.3f}")
        ax.fill_between(nu / 1e9, s * (1 - frac), s * (1 + frac), color="k", alpha=0.12, lw=0)
        plotted = True
    for r in rows:
        f = r["frequency_ghz"]
        marker = "s" if r["kind"] == "model" else "^"
        ax.plot([f], [r["archival_jy"]], marker, color="tab:orange", ms=7,
                label=f"archival {r['kind']}" if not any(h.get_label() == f"archival {r['kind']}"
                                                         for h in ax.get_lines()) else None)
        if r.get("service_jy"):
            ax.plot([f], [r["service_jy"]], "D", color="tab:purple", ms=5,
                    label="flux service" if not any(h.get_label() == "flux service" for h in ax.get_lines()) else None)
        plotted = True
    for n, e in enumerate(e for e in ests if e.get("service", {}).get("valid")):
        ax.plot([e["frequency_hz"] / 1e9], [e["service"]["flux_density"]], "D", color="tab:purple", ms=5,
                label="flux service" if n == 0 and not rows else None)
        plotted = True
    if plotted:
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("frequency (GHz)")
    ax.set_ylabel("flux density (Jy)")
