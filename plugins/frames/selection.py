"""Parse and check channel selections (``fitspw`` / ``fitspec``) as scripts write them.

Delivered imaging scripts contain selections CASA cannot use or silently
changes: placeholders (``'<your channel selection here>'``), reversed ranges
(``'0:3821~2839'``, CASA errors), channels beyond the spw (CASA clips them to
the last channel and carries on), spws the MS does not have, bare spw ids that
select every channel (a continuum fit over the line).  :func:`check_selection`
says what a selection selects and collects *problems* (it cannot be right)
apart from *warnings* (legal, but probably not meant).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["SelItem", "SelectionReport", "parse_selection", "check_selection", "check_fitspec_dict",
           "format_channel_ranges"]

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FREQ_RE = re.compile(rf"^({_NUM})\s*([kMGT]?Hz)?\s*~\s*({_NUM})\s*([kMGT]?Hz)$", re.I)
_CHAN_RE = re.compile(r"^(\d+)(?:\s*~\s*(\d+))?(?:\s*\^\s*(\d+))?$")
_PLACEHOLDER_RE = re.compile(r"<[^<>]*[A-Za-z_ ][^<>]*>")
_UNIT = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "thz": 1e12}


@dataclass
class SelItem:
    """One comma-separated item ``spw[:chans]`` of a selection."""

    text: str
    spw: str  #: the spw part as written
    spw_ids: list[int] | None = None  #: resolved ids (None: by name/pattern, resolved against an MS)
    chans: list[tuple[int, int, int]] | None = None  #: channel ranges (start, stop, step); None = all
    freqs: list[tuple[float, float]] = field(default_factory=list)  #: frequency ranges, Hz


@dataclass
class SelectionReport:
    text: str
    items: list[SelItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    selected: dict[int, list[list[int]]] = field(default_factory=dict)  #: spw → [[start, stop, step]]
    nchan_selected: dict[int, int] = field(default_factory=dict)
    nchan_total: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"selection": self.text, "ok": not self.problems, "problems": list(self.problems),
                "warnings": list(self.warnings),
                "selected": {str(k): v for k, v in sorted(self.selected.items())},
                "nchan_selected": {str(k): v for k, v in sorted(self.nchan_selected.items())},
                "nchan_total": {str(k): v for k, v in sorted(self.nchan_total.items())}}


def parse_selection(text: str) -> SelectionReport:
    """Parse an MSSelection spw/channel string without an MS (syntax only)."""
    rep = SelectionReport(text=text)
    s = (text or "").strip()
    if _PLACEHOLDER_RE.search(s):
        rep.problems.append(f"{text!r} contains placeholder text {_PLACEHOLDER_RE.search(s).group(0)!r}, "
                            "not a selection: replace it by spw:channel ranges")
        return rep
    if not s:
        rep.warnings.append("the empty selection selects every channel of every spw: a continuum fit over "
                            "all channels includes any line emission")
        return rep
    for item in s.split(","):
        item = item.strip()
        if not item:
            rep.problems.append(f"{text!r} has an empty item between commas")
            continue
        spw_part, _, chan_part = item.partition(":")
        spw_part = spw_part.strip()
        sel = SelItem(text=item, spw=spw_part)
        if not spw_part:
            rep.problems.append(f"{item!r} has no spw before ':' (write '*:{chan_part}' for all spws)")
            continue
        m = re.fullmatch(r"(\d+)(?:\s*~\s*(\d+))?", spw_part)
        if m:
            a, b = int(m.group(1)), int(m.group(2) or m.group(1))
            if b < a:
                rep.problems.append(f"{item!r}: the spw range {spw_part} is reversed (CASA refuses it)")
                continue
            sel.spw_ids = list(range(a, b + 1))
        elif re.fullmatch(r"[<>]\s*\d+", spw_part) or spw_part == "*" or re.fullmatch(r"[\w#*?.\-]+", spw_part):
            sel.spw_ids = None  # '*', '<n', '>n' or a name pattern: needs the MS
        elif _FREQ_RE.match(spw_part):
            sel.freqs.append(_freq_range(_FREQ_RE.match(spw_part)))
        else:
            rep.problems.append(f"{item!r}: {spw_part!r} is not a spw id, range, name or frequency range")
            continue
        if chan_part.strip():
            chans, freqs = [], []
            for c in chan_part.split(";"):
                c = c.strip()
                mc, mf = _CHAN_RE.match(c), _FREQ_RE.match(c)
                if mc:
                    a = int(mc.group(1))
                    b = int(mc.group(2)) if mc.group(2) is not None else a
                    step = int(mc.group(3) or 1)
                    if b < a:
                        rep.problems.append(f"{item!r}: the channel range {c} is reversed (start {a} > end {b}); "
                                            f"CASA refuses it — did you mean {b}~{a}?")
                        continue
                    chans.append((a, b, max(step, 1)))
                elif mf:
                    lo, hi = _freq_range(mf)
                    if hi < lo:
                        rep.problems.append(f"{item!r}: the frequency range {c} is reversed")
                        continue
                    freqs.append((lo, hi))
                else:
                    rep.problems.append(f"{item!r}: {c!r} is not a channel range 'a~b' or a frequency range "
                                        "'a~bGHz'")
            sel.chans = chans if chans or not freqs else []
            sel.freqs += freqs
        else:
            rep.warnings.append(f"{item!r} selects every channel of spw {spw_part}: a continuum fit over all "
                                "channels includes any line emission")
        rep.items.append(sel)
    return rep


def _freq_range(m) -> tuple[float, float]:
    u1 = (m.group(2) or m.group(4)).lower()
    return float(m.group(1)) * _UNIT[u1], float(m.group(3)) * _UNIT[m.group(4).lower()]


def check_selection(text: str, msinfo=None, ms_select=None) -> SelectionReport:
    """Parse *text* and, given an MS, check it against the MS's spws.

    :param msinfo: :class:`~.msinfo.MsInfo` of the MS (optional).
    :param ms_select: callable ``text → [[spw, start, stop, step], …]`` that
        asks CASA's MSSelection (``ms.msselect``) what it selects; used for
        name and frequency selections and to report CASA's own answer.
    """
    rep = parse_selection(text)
    if msinfo is None or rep.problems:
        for it in rep.items:
            for sid in it.spw_ids or []:
                if it.chans:
                    rep.selected.setdefault(sid, []).extend([list(c) for c in it.chans])
        _count(rep, None)
        return rep
    for it in rep.items:
        for sid in it.spw_ids or []:
            if sid not in msinfo.spws:
                rep.problems.append(f"{it.text!r}: spw {sid} is not in {msinfo.path} (it has spws "
                                    f"{_compact(sorted(msinfo.spws))})")
                continue
            n = msinfo.spws[sid].nchan
            for a, b, _ in it.chans or []:
                if b >= n:
                    rep.problems.append(f"{it.text!r}: channel {b} is beyond the last channel ({n - 1}) of spw {sid}; "
                                        f"CASA would silently clip the range to {min(a, n - 1)}~{n - 1}")
    if rep.problems:
        return rep
    if ms_select is not None and (text or "").strip():
        try:
            rows = ms_select(text)
        except Exception as exc:  # noqa: BLE001 - CASA's parser error is the reason to report
            rep.problems.append(f"CASA's MSSelection refuses {text!r}: {str(exc).splitlines()[0]}")
            return rep
        if not rows:
            rep.problems.append(f"{text!r} selects nothing in {msinfo.path}")
            return rep
        for spw, a, b, step in rows:
            rep.selected.setdefault(int(spw), []).append([int(a), int(b), int(step)])
    else:
        for sid in msinfo.spws:
            rep.selected[sid] = [[0, msinfo.spws[sid].nchan - 1, 1]]
    _count(rep, msinfo)
    bare = {sid for it in rep.items if it.chans is None and not it.freqs for sid in (it.spw_ids or [])}
    for sid, total in rep.nchan_total.items():
        if rep.nchan_selected.get(sid) == total and sid not in bare:
            rep.warnings.append(f"spw {sid}: every channel is selected")
    return rep


def _count(rep: SelectionReport, msinfo) -> None:
    for sid, ranges in rep.selected.items():
        chans = set()
        for a, b, step in ranges:
            chans.update(range(a, b + 1, max(step, 1)))
        if sum((b - a) // max(step, 1) + 1 for a, b, step in ranges) > len(chans):
            rep.warnings.append(f"spw {sid}: channel ranges overlap")
        rep.nchan_selected[sid] = len(chans)
        if msinfo is not None and sid in msinfo.spws:
            rep.nchan_total[sid] = msinfo.spws[sid].nchan


def check_fitspec_dict(spec: dict, msinfo=None) -> list[str]:
    """Problems in a uvcontsub ``fitspec`` dictionary (empty list: fine)."""
    problems = []
    for fkey, fval in spec.items():
        if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", str(fkey)):
            problems.append(f"field key {fkey!r} is not a field id or comma-separated ids")
            continue
        fids = [int(x) for x in str(fkey).split(",")]
        if msinfo is not None:
            problems += [f"field {f} (key {fkey!r}) is not in {msinfo.path}" for f in fids if f not in msinfo.fields]
        if isinstance(fval, str):
            if fval.strip().upper() != "NONE":
                problems.append(f"field {fkey!r}: a string entry must be 'NONE', got {fval!r}")
            continue
        if not isinstance(fval, dict):
            problems.append(f"field {fkey!r}: expected a dictionary of spws, got {type(fval).__name__}")
            continue
        for skey, sval in fval.items():
            if not re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", str(skey)):
                problems.append(f"field {fkey!r}: spw key {skey!r} is not a spw id or comma-separated ids")
                continue
            if not isinstance(sval, dict) or set(sval) - {"chan", "fitorder"}:
                problems.append(f"field {fkey!r} spw {skey!r}: expected {{'chan': str, 'fitorder': int}}, got {sval!r}")
                continue
            order = sval.get("fitorder", 0)
            if not isinstance(order, int) or isinstance(order, bool) or order < 0:
                problems.append(f"field {fkey!r} spw {skey!r}: fitorder must be an integer >= 0, got {order!r}")
            chan = sval.get("chan", "")
            if not isinstance(chan, str):
                problems.append(f"field {fkey!r} spw {skey!r}: chan must be a string, got {chan!r}")
                continue
            for sid in (int(x) for x in str(skey).split(",")):
                sub = check_selection(f"{sid}:{chan}" if chan.strip() else str(sid), msinfo)
                problems += [f"field {fkey!r}: {p}" for p in sub.problems]
    return problems


def format_channel_ranges(ranges) -> str:
    """``[(55, 119), (16, 48)]`` → ``'55~119;16~48'`` (order kept)."""
    return ";".join(f"{a}~{b}" if a != b else f"{a}" for a, b in ranges)


def _compact(ids) -> str:
    return ",".join(str(i) for i in ids)
