"""Find calls such as ``flagdata(...)`` in CASA scripts without running or converting them.

Delivered scripts are often Python 2 (``print 'x'``, ``T``/``F``), with
multi-line calls, comments inside calls (``field = '1', #Titan``), strings
holding parentheses and comments in any language and encoding, so :mod:`ast`
cannot be used.  A small character scanner tracks strings (single, double,
triple quoted, with escapes), comments and brackets instead; arguments are
split at top-level commas and read with :func:`ast.literal_eval` where they
are literals.  A value that is not a literal (``field = phaseCalName``) is
kept as an :class:`Expr`, so that nothing downstream mistakes its text for a
field name.

Calls in commented-out code are found too (reported as inactive): lines that
hold only a comment are scanned again with their ``#`` removed; prose in such
comments (``# don't``) is skipped, never an error.

Files are read as bytes and decoded losslessly (UTF-8, else Latin-1, which
maps every byte to one character), so an edited file is written back in the
same encoding and its untouched lines stay byte-identical.  Every pass is
linear in the size of the file.
"""

from __future__ import annotations

import ast
import bisect
import re
import warnings
from dataclasses import dataclass, field

from almatools import limits
from almatools.errors import AlmatoolsError, InputFileError, ResourceLimitError

__all__ = ["Call", "Expr", "ScriptError", "Source", "find_calls", "read_source", "step_titles", "step_of_lines",
           "LineIndex", "MAX_SCRIPT_BYTES"]

#: the largest script or template read (real ones are below 1 MB)
MAX_SCRIPT_BYTES = 16 * 2**20


class ScriptError(AlmatoolsError):
    """A script or template calunflag cannot read safely; names the file and line."""


class Expr(str):
    """The source text of an argument that is not a literal (``phaseCalName``, ``vis + '.tsys'``)."""

    def __repr__(self) -> str:
        return f"Expr({str.__repr__(self)})"


@dataclass
class Call:
    """One call found in a file.

    :param start, end: 0-based line indices of its first and last line.
    :param column: column of the function name on the first line.
    :param args: keyword arguments: name → value (a Python value when the
        text is a literal, else an :class:`Expr` holding the text).
    :param arg_comments: keyword → the comment written after that argument
        (``field = '2', # Titan`` → ``{'field': 'Titan'}``), including one
        after the closing parenthesis for the last argument.
    :param comments: every comment inside the call (``#Titan``).
    :param active: False for calls inside commented-out code.
    """

    name: str
    start: int
    end: int
    column: int
    args: dict = field(default_factory=dict)
    positional: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    arg_comments: dict = field(default_factory=dict)
    active: bool = True
    text: str = ""


@dataclass
class Source:
    """A file's text and how to write it back byte for byte."""

    path: str
    text: str
    encoding: str  # 'utf-8' or 'latin-1'
    newline: str  # '\n' or '\r\n': the ending given to inserted lines

    def encode(self, text: str, errors: str = "strict") -> bytes:
        return text.encode(self.encoding, errors)


def read_source(path) -> Source:
    """The file decoded losslessly; FIFOs, devices, binary junk and oversized files are refused.

    :raises ScriptError: naming the file (and the line for binary data).
    """
    try:
        data = limits.read_bytes(path, MAX_SCRIPT_BYTES)
    except InputFileError as exc:
        raise ScriptError(str(exc)) from None
    except ResourceLimitError as exc:
        raise ScriptError(f"{exc}: delivered scripts and templates are far smaller") from None
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise ScriptError(f"{path}:{line}: binary data (NUL byte), not a script or template")
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "latin-1"  # old scripts: accented comments in Latin-1
        control = re.search("[\x01-\x08\x0e-\x1a\x1c-\x1f]", text)
        if control:
            line = text.count("\n", 0, control.start()) + 1
            raise ScriptError(f"{path}:{line}: binary data, not a script or template")
    newline = "\r\n" if "\r\n" in text[:text.find("\n") + 1] else "\n"
    return Source(str(path), text, encoding, newline)


class LineIndex:
    """0-based line number of any offset in a text, in O(log n) (no counting from the start)."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset) - 1

    def column(self, offset: int) -> int:
        return offset - self.starts[self.line(offset)]


_COMMENT_LEAD = re.compile(r"^(#calunflag# |#+)")
#: the next comment, string or identifier (Python 3 identifiers in any script; Python 2 ones are ASCII)
_NEXT_TOKEN = re.compile(r"[#'\"]|[^\W\d]\w*")
_BRACKETS = re.compile(r"[#'\"()\[\]{}]")
_CLOSING = {"(": ")", "[": "]", "{": "}"}
_KEYWORD_ARG = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)[ \t\r\n]*=(?!=)")
_PY2_LITERALS = {"T": True, "F": False, "True": True, "False": False, "None": None}


class _Scanner:
    """Offsets of strings, comments and brackets in one text.

    With ``lenient`` (commented-out code) an unterminated string ends at the
    end of its line and an unbalanced call is skipped instead of refused.
    """

    def __init__(self, text: str, path: str, lines: LineIndex, lenient: bool = False):
        self.text, self.path, self.lines, self.lenient = text, path, lines, lenient

    def error(self, offset: int, what: str) -> ScriptError:
        return ScriptError(f"{self.path}:{self.lines.line(offset) + 1}: {what}")

    def skip_string(self, i: int) -> int:
        """Offset just after the string literal starting at *i*."""
        text = self.text
        quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else text[i]
        j = i + len(quote)
        while True:
            k = text.find(quote, j)
            if len(quote) == 1:
                end = k if k >= 0 else len(text)  # never past the closing quote
                nl = text.find("\n", j, end)
                while nl >= 0 and self._escaped(nl - 1 if text[nl - 1] == "\r" else nl, i + 1):
                    nl = text.find("\n", nl + 1, end)  # a backslash before the newline continues the string
                if k < 0 or nl >= 0:
                    if self.lenient:
                        return nl if nl >= 0 else len(text)
                    raise self.error(i, "unterminated string")
            elif k < 0:
                if self.lenient:
                    return len(text)
                raise self.error(i, "unterminated string")
            if not self._escaped(k, j):
                return k + len(quote)
            j = k + 1

    def _escaped(self, at: int, start: int) -> bool:
        """True if an odd number of backslashes stand right before offset *at* (not before *start*)."""
        b = at - 1
        while b >= start and self.text[b] == "\\":
            b -= 1
        return (at - 1 - b) % 2 == 1

    def comment_end(self, i: int) -> int:
        j = self.text.find("\n", i)
        return len(self.text) if j < 0 else j

    def match_paren(self, open_at: int) -> tuple[int, list[str]] | None:
        """Offset of the ``)`` closing the ``(`` at *open_at*, and the comments inside."""
        text, i = self.text, open_at
        stack: list[str] = []  # the closing bracket each open one needs
        comments = []
        while True:
            m = _BRACKETS.search(text, i)
            if m is None:
                break
            i = m.start()
            ch = text[i]
            if ch == "#":
                j = self.comment_end(i)
                comments.append(text[i + 1:j].strip())
                i = j
                continue
            if ch in "'\"":
                i = self.skip_string(i)
                continue
            if ch in _CLOSING:
                stack.append(_CLOSING[ch])
            elif not stack or ch != stack.pop():
                if self.lenient:
                    return None
                raise self.error(i, f"mismatched {ch!r} inside the call opened on line "
                                    f"{self.lines.line(open_at) + 1}")
            elif not stack:
                return i, comments
            i += 1
        if self.lenient:
            return None
        raise self.error(open_at, "unbalanced parentheses: the call opened here never closes")

    def calls(self, names: set[str]):
        """Yield (name, start offset, open-paren offset, close-paren offset, comments) of calls."""
        text, i, n = self.text, 0, len(self.text)
        while True:
            m = _NEXT_TOKEN.search(text, i)  # the next comment, string or identifier
            if m is None:
                return
            i = m.start()
            ch = text[i]
            if ch == "#":
                i = self.comment_end(i)
                continue
            if ch in "'\"":
                i = self.skip_string(i)
                continue
            word, j = m.group(0), m.end()
            if word in names and (i == 0 or text[i - 1] != "."):
                k = j
                while k < n and text[k] in " \t":
                    k += 1
                if k < n and text[k] == "(":
                    found = self.match_paren(k)
                    if found is not None:
                        close, comments = found
                        yield word, i, k, close, comments
                        i = close + 1
                        continue
            i = j


def _split_args(scanner: _Scanner, open_at: int, close: int) -> list[tuple[str, str]]:
    """Top-level comma-separated pieces of the argument list between the parentheses, with comments.

    A comment belongs to the piece it follows (``field = '1', #Titan``).
    """
    text = scanner.text
    pieces: list[list] = []  # [text pieces, comment]
    current: list[str] = []
    comment = ""
    depth, i = 0, open_at + 1
    while i < close:
        ch = text[i]
        if ch == "#":
            j = min(scanner.comment_end(i), close)
            note = text[i + 1:j].strip()
            if "".join(current).strip() or not pieces:
                comment = comment or note
            elif not pieces[-1][1]:
                pieces[-1][1] = note
            i = j
            continue
        if ch in "'\"":
            j = scanner.skip_string(i)
            current.append(text[i:j])
            i = j
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            pieces.append(["".join(current), comment])
            current, comment = [], ""
        else:
            current.append(ch)
        i += 1
    pieces.append(["".join(current), comment])
    return [(p.strip(), c) for p, c in pieces if p.strip()]


def _value(text: str):
    """The Python value of a literal argument, else an :class:`Expr` of its text."""
    text = text.strip()
    if text in _PY2_LITERALS:
        return _PY2_LITERALS[text]
    try:
        with warnings.catch_warnings(action="ignore"):  # '\d' in a script's string is not our business
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return Expr(text)


def _make_call(scanner: _Scanner, name, start, open_at, close, comments, active) -> Call:
    text, lines = scanner.text, scanner.lines
    call = Call(name, lines.line(start), lines.line(close), lines.column(start), comments=comments, active=active,
                text=text[start:close + 1])
    last = None
    for piece, comment in _split_args(scanner, open_at, close):
        m = _KEYWORD_ARG.match(piece)
        if m:
            last = m.group(1)
            call.args[last] = _value(piece[m.end():])
            if comment:
                call.arg_comments[last] = comment
        else:
            last = None
            call.positional.append(_value(piece))
    tail = text[close + 1:scanner.comment_end(close + 1)].strip()
    if tail.startswith("#") and last is not None:  # reference = '2') # Titan
        call.arg_comments.setdefault(last, tail[1:].strip())
    return call


def find_calls(text: str, names, path: str = "<script>") -> list[Call]:
    """Every call of a function in *names*, active or commented out, in line order.

    :raises ScriptError: for an unterminated string or unbalanced call in live code.
    """
    names = set(names)
    lines = LineIndex(text)
    live = _Scanner(text, path, lines)
    calls = [_make_call(live, *found, True) for found in live.calls(names)]
    # commented-out code: comment-only lines with their first '#'s (and calunflag's own prefix) removed,
    # every other line blanked, so offsets and line numbers stay those of the file
    shadow = []
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith("#"):
            body = _COMMENT_LEAD.sub("", stripped)
            shadow.append(" " * (len(line) - len(body)) + body)
        else:
            shadow.append(" " * len(line))
    commented = _Scanner("\n".join(shadow), path, lines, lenient=True)
    calls += [_make_call(commented, *found, False) for found in commented.calls(names)]
    return sorted(calls, key=lambda c: (c.start, c.column))


_STEP_TITLE = re.compile(r"^[ \t]*step_title[ \t]*=[ \t]*\{", re.M)
_MYSTEP = re.compile(r"^[ \t]*mystep[ \t]*=[ \t]*(\d{1,6})[ \t\r]*(#.*)?$")


def step_titles(text: str) -> dict[int, str]:
    """The ``step_title = {0: '...', ...}`` dictionary of a manual calibration script ({} if none)."""
    m = _STEP_TITLE.search(text)
    if not m:
        return {}
    scanner = _Scanner(text, "<step_title>", LineIndex(""), lenient=True)
    open_at = m.end() - 1
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch in "'\"":
            i = scanner.skip_string(i)
            continue
        if ch == "#":
            i = scanner.comment_end(i)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                break
        i += 1
    try:
        with warnings.catch_warnings(action="ignore"):
            value = ast.literal_eval(text[open_at:i + 1])
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: str(v) for k, v in value.items() if isinstance(k, int) and not isinstance(k, bool)}


def step_of_lines(text: str) -> list[int | None]:
    """For each line, the step number (``mystep = N``) it belongs to, or None."""
    out, current = [], None
    for line in text.split("\n"):
        m = _MYSTEP.match(line)
        if m:
            current = int(m.group(1))
        out.append(current)
    return out
