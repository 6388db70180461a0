"""Built-in plugin ``imaging``: the ``imadvise`` task (re-imaging parameters from the data).

:mod:`.msmeta` reads what the MS's subtables say and applies the selection,
:mod:`.survey` makes the one pass over UVW/FLAG/WEIGHT (per MS or per sub-MS,
mergeable), :mod:`.psf` predicts beams and noise from the gridded weights,
:mod:`.rules` holds the rules of thumb, :mod:`.plot` draws the uv coverage and
:mod:`.execute` runs the advised tclean call and compares.
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_imadvise import imadvise

__all__ = ["imadvise"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("imadvise"), impl=imadvise)]


@hookimpl
def almatools_demo_steps():
    from ._demo import run_demo
    return [DemoStep(name="imadvise", run=run_demo, order=85)]
