"""Parameter types of the CASA task XML: coercion and validation.

One table maps every XML type name CASA uses to a canonical name; one
function per concern (``coerce``, ``check``, ``from_xml_text``,
``from_cli_text``).  Each call works on its own values: there is no shared
validator state (CASA's cerberus validator is not re-entrant), and nothing
here uses ``assert``, so validation holds under ``python -O``.

Errors are plain ``ValueError`` messages stating the rule ("must be an
integer"); :class:`almatools.task.Task` wraps them into
:class:`~almatools.errors.TaskParameterError` with the task and parameter.
"""

from __future__ import annotations

import ast
import json
import math
import numbers
import os
from pathlib import Path

__all__ = ["TYPE_ALIASES", "canonical_type", "coerce", "check", "from_cli_text"]

#: XML spelling → canonical type. ``*Array`` are CASA 5 names of the ``*Vec`` types.
TYPE_ALIASES = {
    "string": "string", "int": "int", "double": "double", "float": "double", "bool": "bool",
    "path": "path", "record": "record", "dict": "record",
    "any": "any", "variant": "any",
    "stringVec": "stringVec", "stringArray": "stringVec",
    "intVec": "intVec", "intArray": "intVec",
    "doubleVec": "doubleVec", "doubleArray": "doubleVec", "floatVec": "doubleVec", "floatArray": "doubleVec",
    "boolVec": "boolVec", "boolArray": "boolVec",
    "pathVec": "pathVec",
}

_SCALAR_RULES = {
    "string": "must be a string",
    "int": "must be an integer",
    "double": "must be a number",
    "bool": "must be True or False",
    "path": "must be a path (string)",
    "record": "must be a dictionary",
}


def canonical_type(name: str) -> str:
    """The canonical name of an XML type; ``KeyError(name)`` if unknown."""
    key = (name or "").strip()
    if key not in TYPE_ALIASES:
        raise KeyError(key)
    return TYPE_ALIASES[key]


def is_vector(ptype: str) -> bool:
    return ptype.endswith("Vec")


def element_type(ptype: str) -> str:
    return ptype[:-3] if is_vector(ptype) else ptype


def empty_value(ptype: str, accepts=()):
    """What an empty ``<value/>`` means for a type."""
    t = accepts[0] if ptype == "any" and accepts else ptype
    return {"string": "", "path": "", "int": 0, "double": 0.0, "bool": False, "record": {}, "any": ""}.get(
        t, [] if is_vector(t) else "")


# --------------------------------------------------------------------------- coercion

def _coerce_scalar(ptype: str, value):
    if ptype == "string":
        if isinstance(value, str):
            return str(value)
    elif ptype == "path":
        if isinstance(value, (str, os.PathLike)):
            return os.path.expanduser(os.fspath(value))
    elif ptype == "bool":
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
    elif ptype == "int":
        if isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_":
            return int(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer():
            return int(value)
    elif ptype == "double":
        if isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_":
            return float(value)
    elif ptype == "record":
        if isinstance(value, dict):
            return dict(value)
    raise ValueError(_SCALAR_RULES[ptype])


def coerce(ptype: str, value, accepts=()):
    """Return *value* converted to *ptype*, or raise ``ValueError(rule)``.

    Vectors accept lists, tuples and numpy arrays; a single element is
    promoted to a one-element list, as CASA does.  ``any`` tries its accepted
    types in XML order.
    """
    if ptype == "any":
        if not accepts:
            return value
        for t in accepts:
            try:
                return coerce(t, value)
            except ValueError:
                pass
        raise ValueError("must be of type " + " or ".join(accepts))
    if is_vector(ptype):
        base = element_type(ptype)
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return [_coerce_scalar(base, v) for v in value]
        except ValueError:
            raise ValueError(f"must be a list of {base} values") from None
    return _coerce_scalar(ptype, value)


def loosely_equal(a, b) -> bool:
    """Equality as constraints mean it: strings compare trimmed, numbers by value."""
    if isinstance(a, str) and isinstance(b, str):
        return a.strip() == b.strip()
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real):
        return float(a) == float(b)
    if isinstance(a, str) and isinstance(b, numbers.Real):
        return a.strip() == str(b)
    return a == b


def _value_type(spec, value) -> str:
    """The concrete type a (coerced) value of *spec* has."""
    if spec.type != "any":
        return spec.type
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "double"
    if isinstance(value, (list, tuple)):
        return "stringVec" if all(isinstance(v, str) for v in value) else "doubleVec"
    return "string"


def check(spec, value, *, check_exists: bool = True):
    """Coerce *value* for the parameter *spec* and apply its rules.

    Returns the coerced value — enum values in their canonical spelling from
    the XML (``'RJ'`` → ``'rj'`` where ``ignorecase`` allows it) — or raises
    ``ValueError(rule)``.  NaN and ±inf are refused unless the parameter is
    declared ``nonfinite="true"``.
    """
    value = coerce(spec.type, value, spec.accepts)
    elements = value if isinstance(value, list) else [value]
    if not spec.nonfinite:
        _require_finite(elements, is_list=isinstance(value, list))
    if spec.allowed is not None:
        elements = [_canonical_enum(spec, v) for v in elements]
        value = elements if isinstance(value, list) else elements[0]
    if spec.range is not None:
        lo, hi = spec.range
        for v in elements:
            if isinstance(v, numbers.Real) and not isinstance(v, bool):
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    raise ValueError(f"must lie in [{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]")
    if spec.mustexist and check_exists:
        vtype = _value_type(spec, value)
        if vtype in ("path", "pathVec", "string", "stringVec"):
            for v in elements:
                if not v:
                    raise ValueError("must name an existing file or directory (it is empty)")
                if not Path(v).exists():
                    raise ValueError(f"must name an existing file or directory ({v!r} does not exist)")
    return value


def _require_finite(elements: list, is_list: bool) -> None:
    """NaN and ±inf slip through every range check (all comparisons with NaN are false): refuse them."""
    for k, v in enumerate(elements):
        if isinstance(v, float) and not math.isfinite(v):
            where = f" (element {k} is {v!r})" if is_list else ""
            raise ValueError(f"must be {'finite numbers' if is_list else 'a finite number'}: NaN and "
                             f"infinities are not accepted{where}")


def _canonical_enum(spec, v):
    """*v* as the XML spells the allowed value it matches; ``ValueError`` when it matches none."""
    def norm(x):
        return x.lower() if spec.ignorecase and isinstance(x, str) else x
    for allowed in spec.allowed:
        if loosely_equal(norm(v), norm(allowed)):
            return allowed if isinstance(v, str) and isinstance(allowed, str) else v
    raise ValueError(f"must be one of {list(spec.allowed)}")


# --------------------------------------------------------------------------- text forms

_TRUE = {"true", "t", "yes", "y", "1", "on"}
_FALSE = {"false", "f", "no", "n", "0", "off", ""}


def from_xml_text(ptype: str, text: str):
    """Read a scalar (or record) written in XML text."""
    text = (text or "").strip() if ptype not in ("string", "path") else (text or "")
    if ptype in ("string", "path"):
        return text
    if ptype == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean")
    if ptype == "int":
        try:
            return int(text or 0)
        except ValueError:
            raise ValueError(f"{text!r} is not an integer") from None
    if ptype == "double":
        try:
            return float(text or 0)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if ptype == "record":
        try:
            return dict(literal(text)) if text else {}
        except (ValueError, TypeError):
            raise ValueError(f"{text!r} is not a record literal") from None
    if ptype == "any":
        return text
    if is_vector(ptype):
        return [from_xml_text(element_type(ptype), t) for t in _split_list(text)]
    raise ValueError(f"cannot read a {ptype} from text")


#: what ast.literal_eval raises on text that is not a literal (deep nesting: RecursionError or MemoryError)
_NOT_A_LITERAL = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


def literal(text: str):
    """``ast.literal_eval(text)`` — never executes anything; any failure is a ``ValueError``."""
    try:
        return ast.literal_eval(text)
    except _NOT_A_LITERAL as exc:
        raise ValueError(f"not a Python literal ({type(exc).__name__})") from None


def _split_list(text: str) -> list[str]:
    text = text.strip()
    if not text:
        return []
    if text[0] in "[(":
        try:
            value = literal(text)
        except ValueError:
            pass
        else:
            if isinstance(value, (list, tuple)):
                return [str(v) for v in value]
    return [t.strip() for t in text.split(",")]


def from_cli_text(spec, text: str):
    """Read a command-line argument for parameter *spec*.

    Strings and paths are taken verbatim; booleans accept true/false/yes/no;
    vectors take ``a,b,c`` or a Python/JSON list; records take JSON or a
    Python dict literal; ``any`` takes a Python literal when it is one, the
    text otherwise.
    """
    ptype = spec.type
    if ptype in ("string", "path"):
        return text
    if ptype == "record":
        try:
            return json.loads(text)
        except (ValueError, RecursionError):
            return from_xml_text("record", text)
    if ptype == "any":
        try:
            value = literal(text)
        except ValueError:
            return text
        return value if not spec.accepts or _fits_any(spec.accepts, value) else text
    if is_vector(ptype):
        return from_xml_text(ptype, text)
    return from_xml_text(ptype, text)


def _fits_any(accepts, value) -> bool:
    for t in accepts:
        try:
            coerce(t, value)
            return True
        except ValueError:
            pass
    return False
