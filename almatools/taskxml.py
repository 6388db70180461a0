"""CASA task XML (the ``casaxml`` dialect) → :class:`TaskSpec`.

The XML is the single source of a task's signature, defaults, allowed values
and help.  It is parsed once, when the task is registered; anything this
parser does not understand is refused there, naming the file and the element,
so a broken interface never reaches a user's call.

Supported (see ``xml/README.md`` for the annotated dialect):

* ``<task name= category=>`` with ``shortdescription``, ``description``,
  ``input``, ``returns``, ``example``;
* ``<param type= name= subparam= mustexist= ignorecase= units= nonfinite=>`` with
  ``shortdescription``, ``description``, ``value`` (nested ``value`` for
  arrays), ``allowed kind="enum|range"``, ``type``/``any`` children for
  multi-type parameters;
* ``<constraints><when param=><equals|notequals value=><default param=>``.

No code is generated or executed: constraints stay data.
"""

from __future__ import annotations

import ast
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import TaskDefinitionError
from . import params as _params

__all__ = ["ParamSpec", "Condition", "TaskSpec", "parse_task_xml"]


@dataclass(frozen=True)
class ParamSpec:
    """One ``<param>`` of a task."""

    name: str
    type: str  #: canonical type name, see :data:`almatools.params.TYPES`
    default: Any
    accepts: tuple[str, ...] = ()  #: for ``any``: accepted types, in order ((): everything)
    shortdescription: str = ""
    description: str = ""
    allowed: tuple | None = None  #: enum values
    range: tuple | None = None  #: (min, max), either may be None
    ignorecase: bool = False
    mustexist: bool = False
    subparam: bool = False
    units: str = ""
    nonfinite: bool = False  #: NaN and ±inf accepted (``nonfinite="true"``); refused otherwise


@dataclass(frozen=True)
class Condition:
    """``<when param=P><equals value=V>`` (or ``notequals``) with its defaults."""

    param: str
    op: str  #: "equals" or "notequals"
    value: Any
    defaults: dict = field(default_factory=dict)

    def holds(self, parent_value) -> bool:
        same = _params.loosely_equal(parent_value, self.value)
        return same if self.op == "equals" else not same


@dataclass(frozen=True)
class TaskSpec:
    """Everything the XML says about one task."""

    name: str
    category: str
    shortdescription: str
    description: str
    params: tuple[ParamSpec, ...]
    constraints: tuple[Condition, ...] = ()
    example: str = ""
    returns: str = "void"
    source: str = ""

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def conditions_for(self, subparam: str) -> list[Condition]:
        """The constraint branches that set a default for *subparam*."""
        return [c for c in self.constraints if subparam in c.defaults]


# --------------------------------------------------------------------------- parsing

_TASK_CHILDREN = {"shortdescription", "description", "input", "output", "returns", "example"}
_PARAM_CHILDREN = {"shortdescription", "description", "value", "allowed", "type", "any", "example"}


def _local(tag: str) -> str:
    """Strip the ``{namespace}`` ElementTree puts in front of casaxml tags."""
    return tag.rsplit("}", 1)[-1]


def _text(elem) -> str:
    if elem is None:
        return ""
    return textwrap.dedent("".join(elem.itertext())).strip("\n").rstrip()


def _child(elem, name):
    for c in elem:
        if _local(c.tag) == name:
            return c
    return None


def _children(elem, name):
    return [c for c in elem if _local(c.tag) == name]


def _truthy(attr: str | None) -> bool:
    return (attr or "").strip().lower() in {"true", "t", "1", "yes"}


def parse_task_xml(path) -> TaskSpec:
    """Parse one CASA task XML file.

    :param path: a file path or an :mod:`importlib.resources` traversable.
    :raises TaskDefinitionError: malformed XML, an unknown element or type, a
        default that breaks its own type or ``allowed`` rule, a constraint on
        an unknown parameter.
    """
    source = str(path)
    try:
        data = Path(path).read_bytes() if not hasattr(path, "read_bytes") else path.read_bytes()
    except OSError as exc:
        raise TaskDefinitionError(source, "file", f"cannot be read ({exc.strerror})") from None
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise TaskDefinitionError(source, f"line {exc.position[0]}", f"malformed XML: {exc}") from None

    task = root if _local(root.tag) == "task" else _child(root, "task")
    if task is None:
        raise TaskDefinitionError(source, f"<{_local(root.tag)}>", "has no <task> element")
    name = (task.get("name") or "").strip()
    if not name.isidentifier() or not name.islower():
        raise TaskDefinitionError(source, "<task name>", f"must be a lower-case Python identifier; got {name!r}")
    for c in task:
        if _local(c.tag) not in _TASK_CHILDREN:
            raise TaskDefinitionError(source, f"<task name={name!r}>", f"unknown element <{_local(c.tag)}>")

    inp = _child(task, "input")
    params: list[ParamSpec] = []
    constraints: list[Condition] = []
    if inp is not None:
        for elem in inp:
            tag = _local(elem.tag)
            if tag == "param":
                params.append(_parse_param(source, elem))
            elif tag == "constraints":
                constraints.extend(_parse_constraints(source, elem, params))
            else:
                raise TaskDefinitionError(source, "<input>", f"unknown element <{tag}>")
    names = [p.name for p in params]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise TaskDefinitionError(source, f"<param name={sorted(dupes)[0]!r}>", "is declared twice")

    returns = _child(task, "returns")
    return TaskSpec(
        name=name,
        category=(task.get("category") or "").strip(),
        shortdescription=" ".join(_text(_child(task, "shortdescription")).split()),
        description=_text(_child(task, "description")),
        params=tuple(params),
        constraints=tuple(constraints),
        example=_text(_child(task, "example")),
        returns=(returns.get("type") or _text(returns) or "void") if returns is not None else "void",
        source=source,
    )


def _parse_param(source: str, elem) -> ParamSpec:
    name = (elem.get("name") or "").strip()
    where = f"<param name={name!r}>"
    if not name.isidentifier():
        raise TaskDefinitionError(source, "<param>", f"name must be a Python identifier; got {name!r}")
    for c in elem:
        if _local(c.tag) not in _PARAM_CHILDREN:
            raise TaskDefinitionError(source, where, f"unknown element <{_local(c.tag)}>")
    try:
        ptype = _params.canonical_type(elem.get("type") or "")
    except KeyError as exc:
        raise TaskDefinitionError(source, where, f"unknown type {exc.args[0]!r}; supported: "
                                  f"{', '.join(sorted(_params.TYPE_ALIASES))}") from None

    accepts: tuple[str, ...] = ()
    if ptype == "any":
        declared = [_text(t).strip() for t in _children(elem, "type")]
        any_elem = _child(elem, "any")
        if any_elem is not None and any_elem.get("limittypes"):
            declared += any_elem.get("limittypes").split()
        try:
            accepts = tuple(dict.fromkeys(_params.canonical_type(t) for t in declared))
        except KeyError as exc:
            raise TaskDefinitionError(source, where, f"unknown accepted type {exc.args[0]!r}") from None

    value_elem = _child(elem, "value")
    try:
        default = _xml_value(value_elem, ptype, accepts)
    except ValueError as exc:
        raise TaskDefinitionError(source, f"{where} <value>", str(exc)) from None

    allowed = rng = None
    ignorecase = _truthy(elem.get("ignorecase"))
    allowed_elem = _child(elem, "allowed")
    if allowed_elem is not None:
        kind = (allowed_elem.get("kind") or "enum").strip()
        ignorecase = ignorecase or _truthy(allowed_elem.get("ignorecase"))
        base = _params.element_type(ptype) if ptype != "any" else "string"
        try:
            if kind == "enum":
                allowed = tuple(_params.from_xml_text(base, _text(v)) for v in _children(allowed_elem, "value"))
            elif kind == "range":
                bounds = {v.get("range"): _params.from_xml_text("double", _text(v))
                          for v in _children(allowed_elem, "value")}
                if set(bounds) - {"min", "max"}:
                    raise ValueError(f"range values need range='min' or range='max'; got {sorted(map(str, bounds))}")
                rng = (bounds.get("min"), bounds.get("max"))
            else:
                raise ValueError(f"unknown kind {kind!r} (enum or range)")
        except ValueError as exc:
            raise TaskDefinitionError(source, f"{where} <allowed>", str(exc)) from None

    spec = ParamSpec(
        name=name, type=ptype, default=default, accepts=accepts,
        shortdescription=" ".join(_text(_child(elem, "shortdescription")).split()),
        description=_text(_child(elem, "description")),
        allowed=allowed, range=rng, ignorecase=ignorecase,
        mustexist=_truthy(elem.get("mustexist")), subparam=_truthy(elem.get("subparam")),
        units=(elem.get("units") or "").strip(), nonfinite=_truthy(elem.get("nonfinite")),
    )
    # A default must obey its own rules (an empty path is "not given", so mustexist is not checked).
    try:
        _params.check(spec, default, check_exists=False)
    except ValueError as exc:
        raise TaskDefinitionError(source, f"{where} <value>", f"default {default!r} {exc}") from None
    return spec


def _xml_value(value_elem, ptype: str, accepts: tuple[str, ...]):
    """The default a ``<value>`` element spells, typed like its parameter."""
    if value_elem is None:
        return _params.empty_value(ptype, accepts)
    vtype = value_elem.get("type")
    if ptype == "any":
        vtype = _params.canonical_type(vtype) if vtype else (accepts[0] if accepts else "string")
    else:
        vtype = ptype
    if _params.is_vector(vtype):
        inner = _children(value_elem, "value")
        if inner:
            return [_params.from_xml_text(_params.element_type(vtype), _text(v)) for v in inner]
        text = _text(value_elem).strip()
        return _params.from_xml_text(vtype, text) if text else []
    if vtype == "record":
        text = _text(value_elem).strip()
        return _params.from_xml_text("record", text) if text else {}
    return _params.from_xml_text(vtype, _text(value_elem))


def _constraint_value(value_elem, spec: ParamSpec):
    """A ``<default>`` value inside constraints.

    CASA writes these as Python literals (``&quot;linear&quot;``, ``True``,
    ``[]``) as often as bare text (``auto``, ``10%``): take the literal when
    the text is one that fits the parameter, the typed text otherwise.
    """
    text = _text(value_elem).strip() if value_elem is not None else ""
    if text:
        try:
            literal = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            pass
        else:
            try:
                return _params.coerce(spec.type, literal, spec.accepts)
            except ValueError:
                pass
    return _xml_value(value_elem, spec.type, spec.accepts)


def _parse_constraints(source: str, elem, params: list[ParamSpec]) -> list[Condition]:
    by_name = {p.name: p for p in params}
    out: list[Condition] = []
    for when in elem:
        if _local(when.tag) != "when":
            raise TaskDefinitionError(source, "<constraints>", f"unknown element <{_local(when.tag)}>")
        parent = when.get("param", "")
        if parent not in by_name:
            raise TaskDefinitionError(source, f"<when param={parent!r}>", "names no declared parameter")
        ptype = by_name[parent].type
        for branch in when:
            op = _local(branch.tag)
            if op not in {"equals", "notequals"}:
                raise TaskDefinitionError(source, f"<when param={parent!r}>", f"unknown element <{op}>")
            btype = branch.get("type")
            try:
                vtype = _params.canonical_type(btype) if btype else ("string" if ptype == "any" else ptype)
                value = _params.from_xml_text(_params.element_type(vtype) if _params.is_vector(vtype) else vtype,
                                              branch.get("value", ""))
            except (KeyError, ValueError) as exc:
                raise TaskDefinitionError(source, f"<{op} value={branch.get('value')!r}>", str(exc)) from None
            defaults = {}
            for d in branch:
                if _local(d.tag) != "default":
                    raise TaskDefinitionError(source, f"<{op} value={branch.get('value')!r}>",
                                              f"unknown element <{_local(d.tag)}>")
                target = d.get("param", "")
                if target not in by_name:
                    raise TaskDefinitionError(source, f"<default param={target!r}>", "names no declared parameter")
                sub = by_name[target]
                try:
                    dv = _constraint_value(_child(d, "value"), sub)
                    _params.check(sub, dv, check_exists=False)
                except (KeyError, ValueError) as exc:
                    raise TaskDefinitionError(source, f"<default param={target!r}>", f"default {exc}") from None
                defaults[target] = dv
            out.append(Condition(parent, op, value, defaults))
    return out
