"""The ``frameconv`` demo step.

The demo turns the Member OUS's cont.dat into uvcontsub ``fitspec``
selections for two small execution blocks observed months apart (their TOPO
channels differ), matching spws by name, and plots one spw's LSRK drift.
"""

from __future__ import annotations

import glob
import os

from almatools.example import CONTDAT as DEMO_CONTDAT  # used when the Member OUS carries no cont.dat
from almatools.example import TARGET_DIRECTION
from almatools.testing import simulate_ms

__all__ = ["run_demo", "DEMO_CONTDAT", "ms_spws_for_contdat"]


def ms_spws_for_contdat(cd, nchan=128):
    """MS spw definitions covering each spw block of a cont.dat, and the names to observe.

    With spw names (v3) the MS gets one spw per name.  Without (v1/v2, whose ids are
    the MS's own), spw ids must equal the file's: lower ids get small unobserved filler spws.
    """
    blocks = {}
    for f in cd.fields:
        for s in f.spws:
            blocks.setdefault(s.spw_id, (s.name, []))[1].extend(s.ranges)
    named = all(name for name, _ in blocks.values())
    covering = {}
    for sid, (name, ranges) in sorted(blocks.items()):
        if not ranges:  # NONE / ALL: any frequencies will do
            covering[sid] = (name or f"SPW{sid}", 90e9 + 0.1e9 * sid, 1e6, 16)
            continue
        lo, hi = min(r.lo_hz for r in ranges), max(r.hi_hz for r in ranges)
        span = (hi - lo) * 1.1 + 2 * 1e-4 * hi + 4e6  # room for ±30 km/s of TOPO-LSRK shift
        width = round(span / nchan / 1e3) * 1e3
        covering[sid] = (name or f"SPW{sid}", 0.5 * (lo + hi) - 0.5 * width * (nchan - 1), width, nchan)
    if named:
        spws = list(dict((c[0], c) for c in covering.values()).values())
        return spws, [c[0] for c in spws]
    spws = [covering.get(i, (f"FILLER{i}", 90e9 + 0.1e9 * i, 1e6, 4)) for i in range(max(covering) + 1)]
    return spws, [covering[i][0] for i in sorted(covering)]


def _find_contdat(ctx):
    if ctx.mous is not None:
        hits = sorted(glob.glob(os.path.join(str(ctx.mous), "**", "*cont.dat"), recursive=True))
        if hits:
            return hits[0]
    path = os.path.join(str(ctx.workdir), "frameconv", "cont.dat")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        fh.write(DEMO_CONTDAT)
    return path


def run_demo(ctx):
    from almatools.casa_tasks import frameconv
    from .contdat import read_contdat

    echo = ctx.echo
    contfile = _find_contdat(ctx)
    cd = read_contdat(contfile)
    echo(f"cont.dat: {contfile} (version {cd.version}; fields {', '.join(f.name for f in cd.fields)})")
    vislist = [v for v in ctx.data.get("frameconv_ms", []) if os.path.isdir(v)]
    if not vislist:
        spws, observed = ms_spws_for_contdat(cd)
        named = all(not n.startswith("FILLER") for n, *_ in spws)
        field = cd.fields[0].name
        outdir = os.path.join(str(ctx.workdir), "frameconv")
        os.makedirs(outdir, exist_ok=True)
        for i, date in enumerate(("2024/11/15/00:00:00", "2025/04/20/00:00:00")):
            vis = os.path.join(outdir, f"demo_eb{i + 1}.ms")
            if not os.path.isdir(vis):
                # with spw names, the second execution block lists its spws in the opposite order
                simulate_ms(vis, spws[::-1] if i and named else spws, field=field, direction=TARGET_DIRECTION,
                            refdate=date, observe=observed)
            vislist.append(vis)
        ctx.data["frameconv_ms"] = vislist
    r = frameconv(mode="contdat", contfile=contfile, vis=vislist)
    for vis, res in r["ms"].items():
        echo(f"{os.path.basename(vis)}:")
        echo(f"  uvcontsub fitspec = {res['fitspec']!r}")
        echo(f"  fitspec dict      = {res['fitspec_dict']}")
        echo(f"  uvcontsub_old fitspw = {res.get('fitspw', '')!r}  (or {res.get('fitspw_freq', '')!r})")
    for m in r["missing"]:
        echo(f"  reported: {m}")
    plot = os.path.join(str(ctx.workdir), "frameconv", "lsrk_drift.png")
    first = next(iter(r["ms"][vislist[0]]["fields"].values()), {"spws": {"0": {}}})
    spw = next(iter(first["spws"]), "0")
    m = frameconv(mode="ms", vis=vislist[0], spw=spw, outframe="LSRK", plotfile=plot,
                  outfile=os.path.join(str(ctx.workdir), "frameconv", "lsrk_drift.ecsv"), overwrite=True)
    s = m["spws"][spw]
    echo(f"spw {spw} of {os.path.basename(vislist[0])} in LSRK: drift {s['drift_hz_max']:.0f} Hz = "
         f"{s['drift_channels_max']:.3f} channels over {s['start']} … {s['end']}")
    echo(f"plot: {m['plotfile']}")
    echo(f"tables: {m['outfile']} (per channel), {m['timesfile']} (frequency versus time)")
    ctx.data["frameconv"] = {"fitspec": {v: res["fitspec"] for v, res in r["ms"].items()}, "plot": m["plotfile"]}
