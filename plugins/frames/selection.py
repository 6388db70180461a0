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

import math
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SelItem", "SelectionReport", "parse_selection", "check_selection", "check_fitspec_dict",
           "format_channel_ranges", "channel_mask", "casa_ms_select", "MAX_SELECTION_CHARS", "MAX_SPW_ID", "MAX_CHANNEL",
           "MAX_SPW_ITEMS", "MAX_CHANNEL_PAIRS"]

# Bounds, checked before anything is expanded: a selection is a few kilobytes at most in real scripts, real
# MSs have at most hundreds of spws and tens of thousands of channels per spw.  Beyond these a selection is
# refused with a problem naming the bound, instead of allocating gigabytes ('2:1~59999999', '0~99999999999').
MAX_SELECTION_CHARS = 1_000_000
MAX_SPW_ID = 9_999
MAX_CHANNEL = 2**20 - 1
MAX_SPW_ITEMS = 100_000  #: (item, spw) pairs a selection may expand to
MAX_CHANNEL_PAIRS = 2**24  #: (spw, channel) pairs a selection may expand to

# possessive quantifiers (Python >= 3.11): a run of digits or blanks is never given back, so a failed match
# costs one pass over the text instead of a backtracking search
_NUM = r"[-+]?(?:\d++(?:\.\d*+)?|\.\d++)(?:[eE][-+]?\d++)?"
_FREQ_RE = re.compile(rf"^({_NUM})\s*+(?:([kMGT]?Hz)\s*+)?~\s*+({_NUM})\s*+([kMGT]?Hz)$", re.I)
_CHAN_RE = re.compile(r"^(\d++)(?:\s*+~\s*+(\d++))?(?:\s*+\^\s*+(\d++))?$")
_SPW_RANGE_RE = re.compile(r"(\d++)(?:\s*+~\s*+(\d++))?")
_ANGLED_RE = re.compile(r"<[^<>]*>")
_UNIT = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9, "thz": 1e12}


def _placeholder(text: str) -> str | None:
    """``'<your channel selection here>'`` and the like (``'<2:5~9'`` is CASA syntax, not a placeholder)."""
    for m in _ANGLED_RE.finditer(text):
        if re.search(r"[A-Za-z_ ]", m.group(0)):
            return m.group(0)
    return None


def _bounded_int(digits: str, bound: int, what: str, item: str, problems: list) -> int | None:
    """``int(digits)`` when it is at most *bound*; else a problem naming the bound (and None)."""
    if len(digits) > len(str(bound)) or int(digits) > bound:
        problems.append(f"{item!r}: {what} {digits[:20]}{'…' if len(digits) > 20 else ''} exceeds the largest "
                        f"allowed, {bound:,}")
        return None
    return int(digits)


@dataclass
class SelItem:
    """One comma-separated item ``spw[:chans]`` of a selection."""

    text: str
    spw: str  #: the spw part as written
    spw_ids: range | None = None  #: resolved ids (None: by name/pattern, resolved against an MS)
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
    """Parse an MSSelection spw/channel string without an MS (syntax only).

    Never raises: what cannot be right goes to ``problems``, including sizes
    beyond the bounds of this module (checked before anything is expanded).
    """
    rep = SelectionReport(text=text)
    s = (text or "").strip()
    if len(s) > MAX_SELECTION_CHARS:
        rep.problems.append(f"the selection is {len(s):,} characters long; at most {MAX_SELECTION_CHARS:,} "
                            "are accepted")
        return rep
    placeholder = _placeholder(s)
    if placeholder:
        rep.problems.append(f"{text!r} contains placeholder text {placeholder!r}, "
                            "not a selection: replace it by spw:channel ranges")
        return rep
    if not s:
        rep.warnings.append("the empty selection selects every channel of every spw: a continuum fit over "
                            "all channels includes any line emission")
        return rep
    spw_items = channel_pairs = 0
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
        m = _SPW_RANGE_RE.fullmatch(spw_part)
        if m:
            a = _bounded_int(m.group(1), MAX_SPW_ID, "spw id", item, rep.problems)
            b = a if m.group(2) is None else _bounded_int(m.group(2), MAX_SPW_ID, "spw id", item, rep.problems)
            if a is None or b is None:
                continue
            if b < a:
                rep.problems.append(f"{item!r}: the spw range {spw_part} is reversed (CASA refuses it)")
                continue
            sel.spw_ids = range(a, b + 1)
        elif re.fullmatch(r"[<>]\s*\d+", spw_part) or spw_part == "*" or re.fullmatch(r"[\w#*?.\-]+", spw_part):
            sel.spw_ids = None  # '*', '<n', '>n' or a name pattern: needs the MS
        elif _FREQ_RE.match(spw_part):
            rng = _freq_range(_FREQ_RE.match(spw_part), item, rep.problems)
            if rng is None:
                continue
            sel.freqs.append(rng)
        else:
            rep.problems.append(f"{item!r}: {spw_part!r} is not a spw id, range, name or frequency range")
            continue
        if chan_part.strip():
            chans, freqs = [], []
            for c in chan_part.split(";"):
                c = c.strip()
                mc, mf = _CHAN_RE.match(c), _FREQ_RE.match(c)
                if mc:
                    a = _bounded_int(mc.group(1), MAX_CHANNEL, "channel", item, rep.problems)
                    b = a if mc.group(2) is None else _bounded_int(mc.group(2), MAX_CHANNEL, "channel", item,
                                                                   rep.problems)
                    step = 1 if mc.group(3) is None else _bounded_int(mc.group(3), MAX_CHANNEL, "channel step",
                                                                      item, rep.problems)
                    if a is None or b is None or step is None:
                        continue
                    if b < a:
                        rep.problems.append(f"{item!r}: the channel range {c} is reversed (start {a} > end {b}); "
                                            f"CASA refuses it — did you mean {b}~{a}?")
                        continue
                    chans.append((a, b, max(step, 1)))
                elif mf:
                    rng = _freq_range(mf, item, rep.problems)
                    if rng is None:
                        continue
                    lo, hi = rng
                    if hi < lo:
                        rep.problems.append(f"{item!r}: the frequency range {c} is reversed")
                        continue
                    freqs.append((lo, hi))
                else:
                    rep.problems.append(f"{item!r}: {c[:40]!r} is not a channel range 'a~b' or a frequency range "
                                        "'a~bGHz'")
            sel.chans = chans if chans or not freqs else []
            sel.freqs += freqs
        else:
            rep.warnings.append(f"{item!r} selects every channel of spw {spw_part}: a continuum fit over all "
                                "channels includes any line emission")
        nspw = len(sel.spw_ids) if sel.spw_ids is not None else 1
        spw_items += nspw
        channel_pairs += nspw * max(1, sum((b - a) // st + 1 for a, b, st in sel.chans or []))
        if spw_items > MAX_SPW_ITEMS or channel_pairs > MAX_CHANNEL_PAIRS:
            rep.problems.append(f"{text[:60]!r}{'…' if len(text) > 60 else ''} expands to more than "
                                f"{MAX_SPW_ITEMS:,} (item, spw) pairs or {MAX_CHANNEL_PAIRS:,} (spw, channel) "
                                "pairs, the largest accepted")
            rep.items = []
            return rep
        rep.items.append(sel)
    return rep


def _freq_range(m, item: str, problems: list) -> tuple[float, float] | None:
    u1 = (m.group(2) or m.group(4)).lower()
    lo, hi = float(m.group(1)) * _UNIT[u1], float(m.group(3)) * _UNIT[m.group(4).lower()]
    if not (math.isfinite(lo) and math.isfinite(hi)):
        problems.append(f"{item!r}: {m.group(0)[:40]!r} is not a finite frequency range")
        return None
    return lo, hi


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
        n = _union_size(ranges)
        if sum((b - a) // max(step, 1) + 1 for a, b, step in ranges) > n:
            rep.warnings.append(f"spw {sid}: channel ranges overlap")
        rep.nchan_selected[sid] = n
        if msinfo is not None and sid in msinfo.spws:
            rep.nchan_total[sid] = msinfo.spws[sid].nchan


def _union_size(ranges) -> int:
    """Number of distinct channels in ``[(start, stop, step), …]``, without listing the contiguous ones."""
    plain = sorted((a, b) for a, b, step in ranges if max(step, 1) == 1 or a == b)
    merged = []
    for a, b in plain:
        if merged and a <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    n = sum(b - a + 1 for a, b in merged)
    stepped = [np.arange(a, b + 1, step) for a, b, step in ranges if step > 1 and a != b]
    if stepped:  # bounded: the parser refused selections of more than MAX_CHANNEL_PAIRS channels
        extra = np.unique(np.concatenate(stepped))
        if merged:
            lo = np.array([a for a, _ in merged])
            hi = np.array([b for _, b in merged])
            k = np.searchsorted(lo, extra, side="right") - 1
            extra = extra[(k < 0) | (extra > hi[np.maximum(k, 0)])]
        n += int(extra.size)
    return n


def channel_mask(ranges, nchan: int) -> np.ndarray:
    """Boolean mask of the channels ``[(start, stop, step), …]`` select in a spw of *nchan* channels."""
    mask = np.zeros(nchan, bool)
    for a, b, step in ranges:
        mask[a:min(b, nchan - 1) + 1:max(step, 1)] = True
    return mask


def casa_ms_select(vis: str):
    """A callable ``text → [[spw, start, stop, step], …]``: what CASA's MSSelection selects in *vis*."""
    def run(text):
        from almatools.casaenv import casatools
        ms = casatools().ms()
        try:
            ms.open(vis)
            if not ms.msselect({"spw": text}):
                return []
            return np.asarray(ms.msselectedindices()["channel"]).tolist()
        finally:
            ms.close()
            ms.done()
    return run


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
