"""Built-in plugin ``weights``: the ``wtcheck`` task (visibility-weight consistency).

:mod:`.stats` measures weight x variance per group from third differences in
bounded chunks and finds the channels lines occupy, :mod:`.provenance` reads the
calibration's CASA version, :mod:`.fix` saves, scales and restores weight columns
(in a table inside the MS that restore removes again).
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_wtcheck import wtcheck

__all__ = ["wtcheck"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("wtcheck"), impl=wtcheck)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="wtcheck", run=_demo, order=60)]


def _demo(ctx):
    """Two small MSs in different weight states: check, plot, fix, check again, restore."""
    from almatools.casa_tasks import wtcheck
    from almatools.testing import simulate_ms
    out = ctx.workdir / "wtcheck"
    out.mkdir(parents=True, exist_ok=True)
    spws = [("SPW0", 230.0e9, 0.5e6, 64), ("SPW1", 232.0e9, 2.0e6, 32)]
    vis = []
    for name, weights, array in (("cycle7_12m.ms", "modern", "12m"), ("cycle1_7m.ms", "casa421", "7m")):
        path = out / name
        if not path.exists():
            simulate_ms(path, spws, array=array, nant=4, duration_s=600, integration_s=10, noise_k=2e4,
                        weights=weights, seed=len(vis))
        vis.append(str(path))
    r = wtcheck(vis=vis, plotfile=str(out / "weights.png"))
    ctx.echo(r["verdict"])
    for o in r["offenders"]:
        ctx.echo(f"  {o['vis'].split('/')[-1]} spw {o['spw']}: off by x{o['factor']:.3g} ± {o['factor_err']:.2g} "
                 f"({o['nsamples']:,} samples)")
    ctx.echo(f"remedy: {r['remedy']}")
    for c in r["commands"]:
        ctx.echo(f"  {c}")
    ctx.echo(f"plot: {r['plotfile']}")
    wtcheck(vis=vis, fix=True)
    ctx.echo(f"after fix=True: {wtcheck(vis=vis)['verdict']}")
    wtcheck(vis=vis, restore=True)
    ctx.echo("restore=True: original weights back")
