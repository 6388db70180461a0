"""The almatools hook specifications.

A plugin is a plain module (or object) with functions named like these hooks
and decorated with :data:`almatools.hookimpl`; it is found through the
entry-point group ``almatools``::

    [project.entry-points.almatools]
    myplugin = "myplugin.hooks"

An implementation may accept any subset of a hook's arguments.  The full
reference, with examples, is ``plugins/README.md``; a test fails when a hook
below is missing there or lacks documentation here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import pluggy

if TYPE_CHECKING:  # types only: the spec module costs nothing at run time
    from .demo import DemoStep
    from .registry import TaskSource

hookspec = pluggy.HookspecMarker("almatools")


@hookspec
def almatools_register_tasks() -> Iterable["TaskSource"]:
    """Return the tasks this plugin provides.

    Called once when the task registry is first built (on first access to a
    task, never at import).  Return an iterable of
    :class:`almatools.TaskSource`, each naming a CASA task XML file and the
    plain Python function that implements it; the function's parameter
    names must equal the XML's.  The core parses the XML, refuses a name
    another plugin already registered (naming both plugins) and a name that
    shadows a CASA task (unless ``TaskSource(override=True)``).

    :return: task sources; ``None`` or an empty list is allowed.

    .. versionadded:: 0.1
    """


@hookspec
def almatools_demo_steps() -> Iterable["DemoStep"]:
    """Return the steps this plugin adds to ``almatools demo``.

    Called by ``almatools demo``.  Each :class:`almatools.DemoStep` has a
    ``name``, an ``order`` (steps run in increasing order; the archive step
    that provides the Member OUS tree runs first at order 10) and a ``run``
    callable taking a :class:`almatools.demo.DemoContext`; it calls tasks on
    the embedded data and prints what they did.

    :return: demo steps; ``None`` or an empty list is allowed.

    .. versionadded:: 0.1
    """
