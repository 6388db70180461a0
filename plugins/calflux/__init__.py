"""Built-in plugin ``calflux``: calibrator flux densities from the ALMA Calibrator Source Catalogue.

:mod:`.names` matches catalogue names, :mod:`.catalogue` holds measurement histories
(service or offline file), :mod:`.estimate` is analysisUtils' getALMAFlux (vectorised),
:mod:`.service` talks to the catalogue's flux service and XML-RPC interface,
:mod:`.archival` gathers a delivery's calibrator fluxes (through :mod:`almatools.delivery`),
:mod:`.compare` gives the verdicts, :mod:`.setjyout` / :mod:`.setjy_mode` write
recalibration inputs and :mod:`.plot` the PNG.
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_calflux import calflux

__all__ = ["calflux"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("calflux"), impl=calflux)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="calflux", run=_demo, order=60)]


def _demo(ctx):
    """The calibrators of the example Member OUS against a local Source Catalogue (the emulator's)."""
    from almatools.casa_tasks import calflux
    from almatools.plugins.archive.emulator.sourcecat import SourceCatalogueServer
    out = ctx.workdir / "calflux"
    out.mkdir(exist_ok=True)
    with SourceCatalogueServer() as cat:
        ctx.echo(f"calibrator catalogue emulator on {cat.url} (flux service /sc/flux, history /sourcecat/xmlrpc)")
        r = calflux(source=["J1924-2914"], freq=["230GHz"], date=["2019-12-12"], method="both", service=cat.url,
                    overwrite=True, plotfile=str(out / "J1924-2914.png"))
        e = r["estimates"][0]
        ctx.echo(f"J1924-2914 at 230 GHz on 2019-12-12: {e['fluxDensity']:.4f} +- {e['fluxDensityUncertainty']:.4f} Jy "
                 f"(spectral index {e['spectralIndex']:+.3f} from the pair of {e['pairs'][0]['low_date']}); "
                 f"flux service {e['service']['flux_density']:.4f} Jy")
        r = calflux(mode="mous", path=str(ctx.mous), method="both", service=cat.url, overwrite=True,
                    plotfile=str(out / "mous.png"), outfile=str(out / "mous.ecsv"))
        for c in r["calibrators"]:
            diff = "" if c["max_difference_percent"] is None else f" (largest difference {c['max_difference_percent']:.1f} %)"
            role = "flux calibrator" if c["flux_calibrator"] else "calibrator"
            ctx.echo(f"{c['field']} [{role}]: {c['verdict']}{diff}")
        ctx.echo(f"plots: {r['plotfile']}; table: {r['outfile']}")
        s = calflux(mode="setjy", path=str(ctx.mous), service=cat.url, outdir=str(out), overwrite=True)
        ctx.echo(f"setjy: {len(s['setjy']['commands'])} command(s) in {s['setjy']['script']}; "
                 f"flux.csv for the pipeline: {', '.join(f['file'] for f in s['setjy']['fluxcsv']) or 'none'}")
    ctx.data["calflux"] = r
