"""Built-in plugin ``archive``: ``almaquery`` (search the ALMA Science Archive) and ``almafetch``
(download Member OUS data: parallel, resumable, verified, safely unpacked).

:mod:`.adql` turns the search box's grammar into ADQL, :mod:`.service` picks the mirror,
:mod:`.datalink` resolves what a Member OUS delivers, :mod:`.download` fetches it,
:mod:`.unpack` extracts tars safely, :mod:`.emulator` is the local archive for tests and the demo.
"""

from almatools import DemoStep, TaskSource, builtin_xml, hookimpl

from .task_almafetch import almafetch
from .task_almaquery import almaquery

__all__ = ["almaquery", "almafetch"]


@hookimpl
def almatools_register_tasks():
    return [TaskSource(xml=builtin_xml("almaquery"), impl=almaquery),
            TaskSource(xml=builtin_xml("almafetch"), impl=almafetch)]
