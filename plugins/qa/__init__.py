"""Built-in plugin ``qa``: the ``qacheck`` task (what a Member OUS delivery contains and how good it is).

:mod:`.images` reads product images plane by plane (FITS, gzipped FITS, CASA images),
:mod:`.stats` measures rms, peak and noisy channels, :mod:`.verdict` compares them with what the
delivery promised, :mod:`.report` writes the HTML page, PNGs and ECSV tables.  The delivery's files
(README, AQUA report, QA2 text, product names, cont.dat) are read through :mod:`almatools.delivery`
and :mod:`almatools.plugins.frames`; the CASA version through ``calversion``.
"""

from pathlib import Path

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_qacheck import qacheck

__all__ = ["qacheck"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("qacheck"), impl=qacheck)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="qacheck", run=_demo, order=70)]


def _demo(ctx):
    """qacheck on the example Member OUS: inventory, AQUA scores, measured noise and the HTML report."""
    from almatools.casa_tasks import qacheck as task
    out = ctx.workdir / "qacheck"
    r = task(path=str(ctx.mous), outdir=str(out), overwrite=True)
    ctx.echo(f"{len(r['inventory'])} product(s); missing companions: "
             f"{', '.join(m['group'].rsplit('.', 3)[-3] + ' ' + m['missing'] for m in r['missing']) or 'none'}")
    for aq in r["aqua"]:
        low = aq["lowest_scores"][:3]
        ctx.echo(f"AQUA ({aq['layout']}): topics {aq['topics']}; lowest: "
                 + "; ".join(f"{s['task']} {s['score']:.2f} {s['reason']!r}" for s in low))
    for row in r["images"]:
        ctx.echo(f"{row['file']}: rms {row['rms_jy'] * 1e3:.3g} mJy/beam ({row['theoretical_from']}), "
                 f"DR {row['dr']:.0f}, {row['pixels_per_beam']:.1f} px/beam -> {row['verdict']}: "
                 f"{'; '.join(row['reasons'])}")
    ctx.echo(f"report: {r['report']} (open it in a browser); tables: {', '.join(Path(t).name for t in r['tables'])}")
    ctx.data["qacheck"] = r

