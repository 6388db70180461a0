"""Find calls such as ``flagdata(...)`` in CASA scripts without running or converting them.

Delivered scripts are often Python 2 (``print 'x'``, ``T``/``F``), with
multi-line calls, comments inside calls (``field = '1', #Titan``) and strings
holding parentheses, so :mod:`ast` cannot be used.  A small character scanner
tracks strings (single, double, triple quoted, with escapes), comments and
brackets instead; arguments are split at top-level commas and read with
:func:`ast.literal_eval` where they are literals.

Calls in commented-out code are found too (reported as inactive): lines that
hold only a comment are scanned again with their ``#`` removed.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass, field

from almatools.errors import AlmatoolsError

__all__ = ["Call", "ScriptError", "find_calls", "read_text", "step_titles", "step_of_lines"]


class ScriptError(AlmatoolsError):
    """A script or template calunflag cannot read safely; names the file and line."""


@dataclass
class Call:
    """One call found in a file.

    :param start, end: 0-based line indices of its first and last line.
    :param column: column of the function name on the first line.
    :param args: keyword arguments: name → value (a Python value when the
        text is a literal, else the raw text).
    :param comments: comments inside the call (``#Titan``).
    :param active: False for calls inside commented-out code.
    """

    name: str
    start: int
    end: int
    column: int
    args: dict = field(default_factory=dict)
    positional: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    active: bool = True
    text: str = ""


def read_text(path) -> str:
    """The file's text; binary junk is refused with the file and line named."""
    data = open(path, "rb").read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        try:
            text = data.decode("latin-1")  # old scripts: a stray accented character in a comment
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
            raise ScriptError(f"{path}:{line}: not a text file") from None
        if any(ch in text for ch in "\x00\x01\x02\x03\x04\x05\x06\x07\x0e\x0f"):
            raise ScriptError(f"{path}:{line}: binary data, not a script or template") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise ScriptError(f"{path}:{line}: binary data (NUL byte), not a script or template")
    return text


_COMMENT_LEAD = re.compile(r"^(#calunflag# |#+)")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_PY2_LITERALS = {"T": True, "F": False, "True": True, "False": False, "None": None}


def _scan(text: str, names: set[str], path: str):
    """Yield (name, start offset, open-paren offset, close-paren offset, comments) of calls."""
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch in "'\"":
            i = _skip_string(text, i, path)
            continue
        if (ch.isascii() and ch.isalpha()) or ch == "_":  # _IDENT is ASCII: "º".isalpha() is True
            m = _IDENT.match(text, i)
            word = m.group(0)
            j = m.end()
            prev = text[i - 1] if i else "\n"
            if word in names and prev not in ".":
                k = j
                while k < n and text[k] in " \t":
                    k += 1
                if k < n and text[k] == "(":
                    close, comments = _match_paren(text, k, path)
                    yield word, i, k, close, comments
                    i = close + 1
                    continue
            i = j
            continue
        i += 1


def _skip_string(text: str, i: int, path: str) -> int:
    """Offset just after the string literal starting at *i*."""
    quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else text[i]
    j = i + len(quote)
    while True:
        k = text.find(quote, j)
        nl = text.find("\n", j)
        if k < 0 or (len(quote) == 1 and 0 <= nl < k):
            line = text[:i].count("\n") + 1
            raise ScriptError(f"{path}:{line}: unterminated string")
        backslashes = 0
        b = k - 1
        while b >= j and text[b] == "\\":
            backslashes += 1
            b -= 1
        if backslashes % 2 == 0:
            return k + len(quote)
        j = k + 1


def _match_paren(text: str, open_at: int, path: str):
    """Offset of the ``)`` closing the ``(`` at *open_at*, and the comments inside."""
    depth, i, n = 0, open_at, len(text)
    comments = []
    while i < n:
        ch = text[i]
        if ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            comments.append(text[i + 1:j].strip())
            i = j
            continue
        if ch in "'\"":
            i = _skip_string(text, i, path)
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i, comments
        i += 1
    line = text[:open_at].count("\n") + 1
    raise ScriptError(f"{path}:{line}: unbalanced parentheses: the call opened here never closes")


def _split_args(inner: str, path: str) -> list[str]:
    """Top-level comma-separated pieces of an argument list, comments removed."""
    parts, current, depth, i, n = [], [], 0, 0, len(inner)
    while i < n:
        ch = inner[i]
        if ch == "#":
            j = inner.find("\n", i)
            i = n if j < 0 else j
            continue
        if ch in "'\"":
            j = _skip_string(inner, i, path)
            current.append(inner[i:j])
            i = j
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _value(text: str):
    text = text.strip()
    if text in _PY2_LITERALS:
        return _PY2_LITERALS[text]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _make_call(text: str, name, start, open_at, close, comments, path, active, newlines=None) -> Call:
    if newlines is None:
        newlines = [m.start() for m in re.finditer("\n", text)]
    # line numbers by bisection in the newline offsets: counting from the top for every call is quadratic
    line = bisect.bisect_left(newlines, start)
    end_line = bisect.bisect_left(newlines, close)
    column = start - (text.rfind("\n", 0, start) + 1)
    call = Call(name, line, end_line, column, comments=comments, active=active, text=text[start:close + 1])
    for piece in _split_args(text[open_at + 1:close], path):
        m = re.match(r"^([A-Za-z_][A-Za-z_0-9]*)\s*=(?!=)\s*(.*)$", piece, re.S)
        if m:
            call.args[m.group(1)] = _value(m.group(2))
        else:
            call.positional.append(_value(piece))
    return call


def find_calls(text: str, names, path: str = "<script>") -> list[Call]:
    """Every call of a function in *names*, active or commented out, in line order."""
    names = set(names)
    newlines = [m.start() for m in re.finditer("\n", text)]  # the commented-out shadow below has the same
    calls = [_make_call(text, *found, path, True, newlines) for found in _scan(text, names, path)]
    # commented-out code: comment-only lines with their first '#' (and one space) removed,
    # every other line blanked so that only the commented code is scanned
    shadow = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("#"):
            body = _COMMENT_LEAD.sub("", stripped)  # also calunflag's own '#calunflag# ' prefix
            shadow.append(" " * (len(line) - len(body)) + body)
        else:
            shadow.append(" " * len(line))
    shadow_text = "\n".join(shadow)
    try:
        for found in _scan(shadow_text, names, path):
            calls.append(_make_call(shadow_text, *found, path, False, newlines))
    except ScriptError:
        pass  # commented-out code need not be well formed; only live code must be
    return sorted(calls, key=lambda c: (c.start, c.column))


def step_titles(text: str) -> dict[int, str]:
    """The ``step_title = {0: '...', ...}`` dictionary of a manual calibration script ({} if none)."""
    m = re.search(r"^\s*step_title\s*=\s*\{", text, re.M)
    if not m:
        return {}
    open_at = m.end() - 1
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = _skip_string(text, i, "<step_title>")
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    try:
        value = ast.literal_eval(text[open_at:i + 1])
    except (ValueError, SyntaxError):
        return {}
    return {int(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def step_of_lines(text: str) -> list[int | None]:
    """For each line, the step number (``mystep = N``) it belongs to, or None."""
    out, current = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s*mystep\s*=\s*(\d+)\s*(#.*)?$", line)
        if m:
            current = int(m.group(1))
        out.append(current)
    return out
