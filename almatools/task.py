"""A task: a callable built at run time from its XML spec and its implementation.

There are no generated wrapper files.  One :class:`Task` object serves every
face — modular Python, the ``casa%`` prompt (through
:class:`almatools.casa_tasks.shell.ShellTask`), scripts and the command line —
so binding, validation and logging exist once.
"""

from __future__ import annotations

import inspect
import time

from . import casaenv, log, params as _params
from .errors import TaskParameterError
from .taskxml import ParamSpec, TaskSpec

__all__ = ["Task", "render_doc"]


class Task:
    """A CASA-style task.

    Call it with positional arguments in XML order or with keywords.  Values
    are coerced and validated against the XML (``TaskParameterError`` names
    the task, the parameter, the rule and the value); subparameter defaults
    follow the XML constraints; the call is logged to ``casalog`` with the
    task as origin (Begin Task, the parameters, End Task with elapsed time);
    the implementation's result dictionary is returned.
    """

    def __init__(self, spec: TaskSpec, impl, plugin: str = "", distribution: str = ""):
        self.spec = spec
        self.impl = impl
        self.plugin = plugin
        self.distribution = distribution
        self.name = self.__name__ = self.__qualname__ = spec.name
        self.__module__ = "almatools.casa_tasks"
        self.__signature__ = inspect.Signature([
            inspect.Parameter(p.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=p.default)
            for p in spec.params])
        self.__doc__ = render_doc(spec)
        # casashell's `tasks`/`taskhelp` list objects carrying these two attributes
        self._info_group_ = spec.category or "almatools"
        self._info_desc_ = spec.shortdescription

    def __repr__(self) -> str:
        return f"<almatools task {self.name}{self.__signature__}>"

    # ----------------------------------------------------------------- parameters
    def active(self, spec: ParamSpec, values: dict) -> bool:
        """Whether *spec* is shown and used, given the other values."""
        if not spec.subparam:
            return True
        conditions = self.spec.conditions_for(spec.name)
        return not conditions or any(
            c.param in values and c.holds(values[c.param]) for c in conditions)

    def default_for(self, spec: ParamSpec, values: dict):
        """The default of *spec* given the values of its parents (XML constraints)."""
        for cond in self.spec.conditions_for(spec.name):
            if cond.param in values and cond.holds(values[cond.param]):
                return cond.defaults[spec.name]
        return spec.default

    def check(self, name: str, value):
        """Coerce and validate one value; raise :class:`TaskParameterError`."""
        spec = self.spec.param(name)
        try:
            return _params.check(spec, value)
        except ValueError as exc:
            raise TaskParameterError(self.name, name, value, str(exc)) from None

    def resolve(self, given: dict) -> dict:
        """Complete *given* (name → value) with defaults and validate everything.

        Parents are resolved before subparameters so constraint defaults see
        the values actually used.
        """
        unknown = set(given) - set(self.spec.names)
        if unknown:
            name = sorted(unknown)[0]
            raise TaskParameterError(self.name, name, given[name],
                                     f"is not a parameter of this task (parameters: {', '.join(self.spec.names)})")
        values: dict = {}
        ordered = [p for p in self.spec.params if not p.subparam] + [p for p in self.spec.params if p.subparam]
        for p in ordered:
            if p.name in given:
                values[p.name] = self.check(p.name, given[p.name])
            else:
                value = self.default_for(p, values)
                if p.mustexist and self.active(p, values):
                    value = self.check(p.name, value)  # a required path left empty is an error
                values[p.name] = value
        return {name: values[name] for name in self.spec.names}

    # ----------------------------------------------------------------- calling
    def __call__(self, *args, **kwargs):
        try:
            bound = self.__signature__.bind(*args, **kwargs)
        except TypeError as exc:
            if kwargs and set(kwargs) - set(self.spec.names):
                name = sorted(set(kwargs) - set(self.spec.names))[0]
                raise TaskParameterError(self.name, name, kwargs[name],
                                         f"is not a parameter of this task (parameters: "
                                         f"{', '.join(self.spec.names)})") from None
            raise TypeError(f"{self.name}: {exc}") from None
        try:
            values = self.resolve(bound.arguments)
        except Exception as exc:
            if log.task_chain():  # a task calling this one: say which task the user called
                _note_failure(exc, log.task_chain() + (self.name,))
            raise
        return self.run(values)

    def run(self, values: dict):
        """Run the implementation on already resolved *values*, with CASA-style logging.

        Refuses to start under ``python -O`` (CASA's own code cannot work there).
        When a task calls another one (wtcheck runs calversion for provenance),
        the inner task's log lines carry the origin ``outer>inner`` and its
        failure a note naming both.
        """
        casaenv.refuse_optimized(self.name)
        chain = log.task_chain() + (self.name,)
        token = log._task_chain.set(chain)
        start = time.perf_counter()
        try:
            log.post(_begin_banner(self.name))
            log.post(f"{self.name}( " + ", ".join(f"{k}={v!r}" for k, v in values.items()) + " )")
            try:
                result = self.impl(**values)
            except Exception as exc:
                log.post(f"Task {self.name} raised {type(exc).__name__}: {exc}", "SEVERE")
                _note_failure(exc, chain)
                raise
            finally:
                log.post(f"Elapsed time: {time.perf_counter() - start:.3f} s")
                log.post(_end_banner(self.name))
        finally:
            log._task_chain.reset(token)
        return {} if result is None else result


def _note_failure(exc: BaseException, chain: tuple[str, ...]) -> None:
    """Add one note to *exc* naming the task that failed and, when nested, the task the user called."""
    if getattr(exc, "_almatools_task_chain", None):
        return  # the innermost task has already said where it failed
    try:
        exc._almatools_task_chain = chain
    except AttributeError:
        pass
    if len(chain) == 1:
        exc.add_note(f"(raised in almatools task '{chain[0]}')")
    else:
        exc.add_note(f"(raised in almatools task '{chain[-1]}', which the task called, '{chain[0]}', ran "
                     f"internally: {' > '.join(chain)})")


def _begin_banner(name: str) -> str:
    return "#" * 42 + "\n" + f"##### Begin Task: {name:<20} #####"


def _end_banner(name: str) -> str:
    return f"##### End Task: {name:<22} #####" + "\n" + "#" * 42


# --------------------------------------------------------------------------- help text

def _describe_type(p: ParamSpec) -> str:
    if p.type == "any":
        return " or ".join(p.accepts) if p.accepts else "any"
    return p.type


def render_doc(spec: TaskSpec) -> str:
    """numpydoc help rendered from the XML (defaults and allowed values included)."""
    out = [spec.shortdescription, ""]
    if spec.description:
        out += [spec.description, ""]
    out += ["Parameters", "----------"]
    for p in spec.params:
        head = f"{p.name} : {_describe_type(p)}, default {p.default!r}"
        if p.subparam:
            parents = sorted({c.param for c in spec.conditions_for(p.name)})
            head += f" (subparameter of {', '.join(parents)})" if parents else " (subparameter)"
        out.append(head)
        text = p.shortdescription
        if p.description and p.description != p.shortdescription:
            text = (text + "\n" if text else "") + p.description
        for line in text.splitlines():
            out.append("    " + line.strip())
        if p.allowed is not None:
            out.append(f"    Allowed: {', '.join(repr(a) for a in p.allowed)}")
        if p.range is not None:
            lo, hi = p.range
            out.append(f"    Range: {'-inf' if lo is None else lo} .. {'inf' if hi is None else hi}")
        if p.mustexist:
            out.append("    Must name an existing file or directory.")
        for cond in spec.constraints:
            if cond.param == p.name and cond.defaults:
                verb = "=" if cond.op == "equals" else "!="
                subs = ", ".join(f"{k}={v!r}" for k, v in cond.defaults.items())
                out.append(f"    When {p.name} {verb} {cond.value!r}: {subs}")
    out += ["", "Returns", "-------", f"{spec.returns}"]
    if spec.example:
        out += ["", "Examples", "--------", spec.example]
    return "\n".join(out).rstrip() + "\n"
