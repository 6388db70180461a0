"""Built-in plugin ``frames``: the ``frameconv`` task (spectral reference frames).

Domain modules: :mod:`.convert` (measures-based, vectorised frame conversion and
Doppler conventions), :mod:`.msinfo` (MS metadata), :mod:`.contdat` (pipeline
cont.dat reader/writer), :mod:`.selection` (fitspw/fitspec parsing and checks),
:mod:`.chansel` (frequency ranges ⇄ channel selections), :mod:`.msmode`
(channel drift table and plot).
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_frameconv import frameconv

__all__ = ["frameconv"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("frameconv"), impl=frameconv)]


@hookimpl
def almatools_demo_steps():
    return [DemoStep(name="frameconv", run=_demo_step, order=50)]


def _demo_step(ctx):
    from ._demo import run_demo
    run_demo(ctx)
