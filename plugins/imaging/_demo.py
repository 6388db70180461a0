"""The ``imadvise`` demo step: re-imaging advice for the example's target, 12 m + 7 m.

Two small execution blocks of the example project's target (TW Hya, Band 6,
spws named as the example's cont.dat names them) are simulated with
radiometer noise and a 20 mJy point source: one with the 12 m array, one
with the 7 m array.  imadvise advises a continuum image of both together (the
Member OUS tells it the data were pipeline-calibrated and, through its
cont.dat, which channels are line-free), draws the uv coverage, and runs the
tclean call it advises to compare the achieved beam and rms with its prediction.
"""

from __future__ import annotations

from almatools.example import EXECBLOCKS, TARGET, TARGET_DIRECTION, uid_path
from almatools.testing import simulate_ms

__all__ = ["run_demo", "DEMO_SPWS"]

#: two Band 6 spws of different widths, named and placed as the example's cont.dat expects them
DEMO_SPWS = [("X1#ALMA_RB_06#BB_1#SW-01#FULL_RES", 229.91e9, 1.953125e6, 64),
             ("X1#ALMA_RB_06#BB_2#SW-01#FULL_RES", 231.95e9, 15.625e6, 16)]


def run_demo(ctx):
    from almatools.casa_tasks import imadvise
    out = ctx.workdir / "imadvise"
    out.mkdir(parents=True, exist_ok=True)
    eb = uid_path(EXECBLOCKS[0])
    vis = []
    for name, array, nant, seed in ((f"{eb}.ms", "alma.cycle10.1.cfg", 12, 11), (f"{eb}_7m.ms", "7m", 8, 12)):
        path = out / name
        if not path.exists():
            simulate_ms(path, DEMO_SPWS, array=array, nant=nant, antennas="spread" if array != "7m" else None,
                        field=TARGET, direction=TARGET_DIRECTION, duration_s=2400, integration_s=30,
                        noise_k=3e4, flux_jy=0.02, seed=seed)
        vis.append(str(path))
    image = out / "twhya_12m7m"
    for old in out.glob("twhya_12m7m.*"):  # a re-run of the demo starts from scratch
        import shutil
        shutil.rmtree(old, ignore_errors=True)
    r = imadvise(vis=vis, mous=str(ctx.mous) if ctx.mous else "", specmode="cont", niter=100,
                 imagename=str(image), plotfile=str(out / "uv_coverage.png"), execute=True)
    echo = ctx.echo
    echo(f"{r['source']}: arrays {', '.join(r['arrays'])}; datacolumn={r['datacolumn']['value']!r}")
    if r["continuum"]["source"]:
        echo(f"  line-free channels from {r['continuum']['source']}: spw={r['tclean']['params']['spw']!r}")
    for name, beam in ((k, v) for k, v in r["beam"].items() if isinstance(v, dict)):
        b = beam["briggs"]
        echo(f"  beam {name:<8} Briggs {b['major_arcsec']:.3g} x {b['minor_arcsec']:.3g} arcsec, natural "
             f"{beam['natural']['major_arcsec']:.3g} x {beam['natural']['minor_arcsec']:.3g}; MRS "
             f"{r['mrs'][name]['mrs_arcsec']:.3g} arcsec")
    echo(f"  cell {r['cell']['value']}, imsize {r['imsize']['value']}, gridder {r['gridder']['value']}, "
         f"deconvolver {r['deconvolver']['value']}")
    echo(f"  averaging: timebin {r['averaging']['time']['timebin'] or 'none'} (limit "
         f"{r['averaging']['time']['limit_s']:.3g} s); chanbin "
         + ", ".join(f"{c['chanbin']}" for c in r["averaging"]["channel"]))
    echo(f"  expected rms {r['noise']['combined']['briggs_jy'] * 1e3:.3g} mJy -> threshold {r['threshold']['value']}")
    for w in r["warnings"]:
        echo(f"  warning: {w}")
    echo(f"  {r['tclean']['call']}")
    x = r.get("execute", {})
    if x.get("ok"):
        echo(f"  tclean achieved {x['beam']['major_arcsec']:.3g} x {x['beam']['minor_arcsec']:.3g} arcsec "
             f"(x{x['major_ratio']:.3f}, x{x['minor_ratio']:.3f} the prediction), rms {x['rms_jy'] * 1e3:.3g} mJy "
             f"(x{x['rms_ratio']:.3f})")
    echo(f"plot: {r['plotfile']}")
    ctx.data["imadvise"] = r
