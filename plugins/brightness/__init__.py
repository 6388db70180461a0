"""Built-in plugin ``brightness``: the ``tbconv`` task (Jy/beam ↔ K).

:mod:`.conversion` holds the formulas; :mod:`.images` reads beams, frequencies
and units from CASA images and FITS files and converts them block by block.
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_tbconv import tbconv

__all__ = ["tbconv"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("tbconv"), impl=tbconv)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="tbconv", run=_demo, order=70)]


def _demo(ctx):
    """Convert the Member OUS's product cube to K and print the peak in both units."""
    from almatools.casa_tasks import tbconv
    cube = sorted((ctx.mous / "product").glob("*.cube.I.pbcor.fits"))[0]
    out = ctx.workdir / "tbconv" / cube.name.replace(".fits", ".K.fits")
    out.parent.mkdir(parents=True, exist_ok=True)
    r = tbconv(imagename=str(cube), outfile=str(out), overwrite=True)
    ctx.echo(f"{cube.name}: {r['nplanes']} planes, {r['beams']} beams, "
             f"{r['freq_hz']['min'] / 1e9:.4f}-{r['freq_hz']['max'] / 1e9:.4f} GHz")
    ctx.echo(f"peak {r['peak']['Jy/beam']:.4f} Jy/beam = {r['peak']['K']:.3f} K (Rayleigh-Jeans) -> {out}")
    ctx.data["tbconv"] = r
