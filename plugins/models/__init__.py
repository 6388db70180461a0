"""Built-in plugin ``models``: the ``cl2image`` task (model images from component lists).

:mod:`.components` reads and checks components (parameters, tables, ``.cl``);
:mod:`.grid` makes the image grid (explicit, template, MS, or derived);
:mod:`.render` puts the components into the image (each on its footprint, or CASA's ``ia.modify``).
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_cl2image import cl2image

__all__ = ["cl2image"]

#: the two-Gaussian model of the demo (and of the tests' toolkit comparison)
TWO_GAUSSIANS = dict(
    direction=["J2000 10h00m00.0s -30d00m00.0s", "J2000 10h00m00.2s -30d00m01.5s"],
    flux=[1.0, 0.5], freq=["230GHz"], shape=["gaussian"], majoraxis=["0.5arcsec", "0.8arcsec"],
    minoraxis=["0.3arcsec", "0.8arcsec"], positionangle=["45deg", "0deg"], imsize=[256], cell=["0.1arcsec"],
    phasecenter="J2000 10h00m00.0s -30d00m00.0s", start="230GHz", width="1GHz")


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("cl2image"), impl=cl2image)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="cl2image", run=_demo, order=80)]


def _demo(ctx):
    from almatools.casa_tasks import cl2image
    out = ctx.workdir / "cl2image"
    out.mkdir(parents=True, exist_ok=True)
    r = cl2image(imagename=str(out / "two_gaussians.im"), overwrite=True, **TWO_GAUSSIANS)
    f = r["flux"][0]
    ctx.echo(f"two-Gaussian model {r['shape']} ({r['unit']}): total flux {f['image_jy']:.6f} Jy "
             f"(components {f['components_jy']:.6f} Jy) -> {r['fitsimage']}")
    ctx.data["cl2image"] = r
