"""Built-in plugin ``calunflag``: remove calibrators' spectral-line flags from delivered scripts.

:mod:`.scan` finds calls in Python 2/3 scripts without running them,
:mod:`.roles` works out which fields are calibrators and on what evidence,
:mod:`.edit` decides and edits reversibly, :mod:`.ppr` reads pipeline
processing requests; :mod:`.task_calunflag` is the task.
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_calunflag import calunflag

__all__ = ["calunflag"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("calunflag"), impl=calunflag)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="calunflag", run=_demo, order=30)]


def _demo(ctx):
    """Run on a manual MOUS (Titan line flags) and on the pipeline MOUS; show the diffs."""
    from pathlib import Path
    from almatools.casa_tasks import calunflag
    from almatools.example import build_member_ous
    manual = build_member_ous(ctx.workdir / "example-manual", kind="manual", images=False)
    for mous in (manual, ctx.mous):
        r = calunflag(path=str(mous), overwrite=True)
        ctx.echo(f"{Path(mous).relative_to(ctx.workdir)}: {r['changes']} change(s)")
        for f in r["findings"]:
            if f["action"] != "keep":
                ctx.echo(f"  {Path(f['file']).name}:{f['line']} {f['kind']} {f['field']} spw {f['spw'] or '-'}"
                         f" -> {f['action']}")
        for written in r["files"].values():
            ctx.echo(Path(written["diff"]).read_text().rstrip())
        for kind, command in r["command"].items():
            ctx.echo(f"re-run ({kind}): {command}")
