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
    "ResourceLimitError",
    "InputFileError",
    "OutputPathError",
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


class ResourceLimitError(AlmatoolsError, ValueError):
    """A size that a parameter or a file controls exceeds a bound checked before work starts.

    Raised by :mod:`almatools.limits`; names what asked for the resource (a
    parameter, a file), how much it needs and the bound.
    """

    def __init__(self, subject: str, needed: str, bound: str, hint: str = ""):
        self.subject, self.needed, self.bound, self.hint = subject, needed, bound, hint
        message = f"{subject} needs {needed}; the bound is {bound}"
        super().__init__(message + (f"; {hint}" if hint else ""))


class InputFileError(AlmatoolsError, ValueError):
    """A file given to almatools cannot be read as what it should be (naming the file and, where known, the line)."""

    def __init__(self, path, problem: str, line: int | None = None):
        self.path, self.problem, self.line = str(path), problem, line
        where = f"{path}: line {line}" if line else str(path)
        super().__init__(f"{where}: {problem}")


class OutputPathError(AlmatoolsError, OSError):
    """An output cannot be written where it was asked to go (e.g. the name is an existing directory)."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")

    def __str__(self) -> str:  # OSError's own __str__ would format (errno, strerror)
        return f"{self.path}: {self.problem}"


class AlmatoolsWarning(UserWarning):
    """Base class of almatools warnings, so users can filter them as one."""
