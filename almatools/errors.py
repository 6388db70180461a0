"""Exceptions and warnings raised by almatools and its tasks.

Every message names what was wrong (task, parameter, file, element), the
rule that was broken and the value received, so the user can fix the call
without reading source code.
"""

from __future__ import annotations

__all__ = [
    "AlmatoolsError",
    "TaskParameterError",
    "TaskDefinitionError",
    "PluginError",
    "CasaSetupError",
    "AlmatoolsWarning",
]


class AlmatoolsError(Exception):
    """Base class of every error almatools raises on purpose."""


class TaskParameterError(AlmatoolsError, ValueError):
    """A task was called with a value its XML interface does not accept.

    A ``ValueError`` subclass, raised (never asserted), so it survives
    ``python -O``.
    """

    def __init__(self, task: str, param: str, value, rule: str):
        self.task, self.param, self.value, self.rule = task, param, value, rule
        super().__init__(f"{task}: parameter '{param}' {rule}; got {value!r}")


class TaskDefinitionError(AlmatoolsError):
    """A task XML file or a task registration is broken.

    Raised at registration time, naming the file and the element.
    """

    def __init__(self, source, element: str, problem: str):
        self.source, self.element, self.problem = str(source), element, problem
        super().__init__(f"{source}: {element}: {problem}")


class PluginError(AlmatoolsError):
    """Plugins conflict (duplicate task names, shadowing CASA tasks) or fail to load."""


class CasaSetupError(AlmatoolsError):
    """CASA cannot be configured or started offline."""


class AlmatoolsWarning(UserWarning):
    """Base class of almatools warnings, so users can filter them as one."""
