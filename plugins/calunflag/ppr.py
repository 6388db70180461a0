"""``hifa_fluxcalflag`` in a pipeline processing request (``PPR_uid___….xml``).

A PPR lists the pipeline's stages as ``<ProcessingCommand>`` elements::

    <ProcessingCommand>
        <Command xmlns="">hifa_fluxcalflag</Command>
        <ParameterSet>
        </ParameterSet>
    </ProcessingCommand>

calunflag reports such a command (it does not edit PPRs: the edited
``casa_pipescript.py`` is the simpler way to re-run) and says how to switch it
off in a copy.  The file is scanned as text — no XML parser, so no entity
expansion — with searches that keep the whole scan linear in its size;
commands inside ``<!-- -->`` comments are inactive.
"""

from __future__ import annotations

import bisect
import re

from .edit import Finding
from .scan import LineIndex

__all__ = ["scan_ppr", "PPR_COMMANDS"]

PPR_COMMANDS = ("hifa_fluxcalflag", "hif_fluxcalflag")
_REACH = 200  # how far around a command name its tags may sit
_OPEN_TAG = re.compile(r"<Command(?:[ \t\r\n][^<>]{0,160})?>[ \t\r\n]*\Z")
_CLOSE_TAG = re.compile(r"[ \t\r\n]*</Command[ \t\r\n]*>")
_APPLYFLAGS = re.compile(r"<Keyword(?:[ \t\r\n][^<>]{0,160})?>[ \t\r\n]*applyflags[ \t\r\n]*</Keyword[ \t\r\n]*>"
                         r"[ \t\r\n]*<Value(?:[ \t\r\n][^<>]{0,160})?>([^<]{0,40})</Value")


def _all(text: str, needle: str) -> list[int]:
    """Every offset of *needle* in *text* (one linear pass)."""
    out, i = [], text.find(needle)
    while i >= 0:
        out.append(i)
        i = text.find(needle, i + len(needle))
    return out


def _comment_spans(text: str) -> list[tuple[int, int]]:
    spans, i = [], text.find("<!--")
    while i >= 0:
        j = text.find("-->", i + 4)
        end = len(text) if j < 0 else j + 3
        spans.append((i, end))
        i = text.find("<!--", end)
    return spans


def _inside(spans: list[tuple[int, int]], offset: int) -> bool:
    k = bisect.bisect_right(spans, (offset, float("inf"))) - 1
    return k >= 0 and spans[k][0] <= offset < spans[k][1]


def scan_ppr(path: str, text: str, fluxcalflag: str) -> list[Finding]:
    """A ``report`` (or ``keep``) finding for each fluxcalflag command of a PPR."""
    lines = LineIndex(text)
    comments = _comment_spans(text)
    closes = _all(text, "</ProcessingCommand")
    hits = []  # (offset, name) of each command name: 'hifa_fluxcalflag' and 'hif_fluxcalflag' share a tail
    for i in _all(text, "_fluxcalflag"):
        tail_end = i + len("_fluxcalflag")
        for name in PPR_COMMANDS:
            at = tail_end - len(name)
            if at >= 0 and text.startswith(name, at):
                hits.append((at, name))
                break
    commands = []  # (offset, name, end of </Command>) of the names that sit in a <Command> element
    for start, name in hits:
        before = text[max(0, start - _REACH):start]
        before = before[before.rfind("<"):] if "<" in before else ""
        after = _CLOSE_TAG.match(text, start + len(name))
        if _OPEN_TAG.match(before) and after is not None:  # else the name in some other element or in prose
            commands.append((start, name, after))
    findings = []
    for k, (start, name, after) in enumerate(commands):
        # this command's parameters: up to its </ProcessingCommand> (and never past the next command;
        # a mention of a command name in a parameter's value is no command)
        limit = commands[k + 1][0] if k + 1 < len(commands) else len(text)
        c = bisect.bisect_left(closes, after.end())
        end = min(closes[c] if c < len(closes) else len(text), limit)
        applyflags = _APPLYFLAGS.search(text, after.end(), end)
        line = lines.line(start) + 1
        if _inside(comments, start):
            action, reason = "keep", "inside an XML comment (inactive)"
        elif applyflags and applyflags.group(1).strip().lower() == "false":
            action, reason = "keep", "already applyflags False"
        else:
            how = ("delete this ProcessingCommand" if fluxcalflag == "comment" else
                   "add <Parameter><Keyword>applyflags</Keyword><Value>False</Value></Parameter> to its "
                   "ParameterSet")
            action, reason = "report", (f"the pipeline run from this PPR flags the flux calibrators' lines; "
                                        f"calunflag does not edit PPRs: in a copy, {how}")
        findings.append(Finding(path, line, lines.line(after.end()) + 1, "ppr", "ProcessingCommand", "", "flux",
                                "", action, reason, f"{name} flags the AMPLITUDE (flux) calibrators"))
    return findings
