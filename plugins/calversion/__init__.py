"""Built-in plugin ``calversion``: the CASA version behind an ALMA delivery.

:mod:`.sources` reads version statements from scripts, READMEs, CASA logs and
weblogs; :mod:`.task_calversion` ranks them and reports.
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_calversion import calversion

__all__ = ["calversion"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("calversion"), impl=calversion)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="example", run=_build_example, order=0),
            DemoStep(name="calversion", run=_demo, order=20)]


def _build_example(ctx):
    """Step 0: the embedded example Member OUS that later steps work on."""
    from almatools.example import build_member_ous
    ctx.mous = build_member_ous(ctx.workdir / "example")
    ctx.echo(f"embedded example Member OUS: {ctx.mous}")


def _demo(ctx):
    from almatools.casa_tasks import calversion
    r = calversion(path=str(ctx.mous))
    cal = r["calibration"]
    ctx.echo(f"calibrated with CASA {r['casa_version'] or '?'} ({r['calibration_type']}"
             f"{', pipeline ' + r['pipeline_version'] if r['pipeline_version'] else ''})"
             + (f" — from {cal['file']}:{cal['line']}" if cal else ""))
    ctx.echo(f"running CASA {r['running_version']}: {r['match_note']}")
    if r["command"]["shell"]:
        ctx.echo(f"recreate the calibrated data: {r['command']['shell']}")
    for p in r["pitfalls"]:
        ctx.echo(f"pitfall: {p}")
    ctx.data["calversion"] = r
