"""CASA ``listobs`` text (in the pipeline weblog, QA2 text files and manual deliveries).

What a Member OUS's observations were: the MS, when it was observed, which fields
(with their intents from the scan listing) and which spectral windows (centre
frequencies).  The weblog keeps one ``listobs.txt`` per MS
(``html/sessionsession_1/<ms>/listobs.txt``); manual QA2 text files start with the
same summary.  Read in one pass, line by line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

__all__ = ["Listobs", "Spw", "read_listobs", "parse_casa_time"]

_MS_NAME = re.compile(r"MeasurementSet Name:\s*(\S+)")
_OBSERVED = re.compile(r"Observed from\s+(\S+)\s+to\s+(\S+)")
_SCAN = re.compile(r"^\s*(?:(\d{1,2}-[A-Za-z]{3}-\d{4})/)?(\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s*-\s*"
                   r"(\d{2}:\d{2}:\d{2}(?:\.\d+)?)\s+(\d+)\s+(\d+)\s+(\S+)\s+\d+\s+\[([^\]]*)\]"
                   r"(?:\s+\[[^\]]*\])?(?:\s+\[([^\]]*)\])?")
_FIELD = re.compile(r"^\s*(\d+)\s+(?:(\S+)\s+)?(\S+)\s+(\d{1,2}:\d{2}:\d{2}(?:\.\d*)?)\s+([+-]?\d{1,3}\.\d{2}\.\d{2}(?:\.\d*)?)")
_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                       "dec"), 1)}


@dataclass
class Spw:
    """One spectral window: id, name, channels, frame and centre frequency (Hz)."""

    id: str
    name: str
    nchan: int
    frame: str
    centre_hz: float
    width_hz: float


@dataclass
class Listobs:
    """What one listobs text says.

    :param ms: the MS name (file name only), ``""`` if the text does not say.
    :param start, end: UTC observation start and end (None if not stated).
    :param fields: field id → name.
    :param intents: field name → set of intents (``CALIBRATE_FLUX`` ...), from the scan listing.
    :param spws: spw id → :class:`Spw`.
    """

    label: str
    ms: str = ""
    start: datetime | None = None
    end: datetime | None = None
    fields: dict = field(default_factory=dict)
    intents: dict = field(default_factory=dict)
    spws: dict = field(default_factory=dict)


def parse_casa_time(text: str) -> datetime | None:
    """``01-Jan-2020/02:24:00.0`` (CASA's listobs form) → an aware UTC datetime; None if malformed."""
    m = re.fullmatch(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})/(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?", text.strip())
    if not m or m.group(2).lower() not in _MONTHS:
        return None
    try:
        frac = float("0." + m.group(7)) if m.group(7) else 0.0
        return datetime(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)), int(m.group(4)),
                        int(m.group(5)), int(m.group(6)), int(round(frac * 1e6)) % 1_000_000, tzinfo=timezone.utc)
    except ValueError:
        return None


def _spw_row(header: list[str], tokens: list[str]) -> Spw | None:
    """A row of the Spectral Windows table, its values taken by the header's column names."""
    columns = header[:header.index("BBC")] if "BBC" in header else header[:header.index("Corrs")] \
        if "Corrs" in header else header
    if len(tokens) < len(columns):
        return None
    v = dict(zip(columns, tokens))
    try:
        nchan = int(v.get("#Chans", "0"))
        width = float(v.get("ChanWid(kHz)", "nan")) * 1e3
        if "CtrFreq(MHz)" in v:
            centre = float(v["CtrFreq(MHz)"]) * 1e6
        else:  # older listobs: first channel and width only
            first = float(v.get("Ch0(MHz)", v.get("Ch1(MHz)", "nan"))) * 1e6
            centre = first + (nchan - 1) / 2 * width
    except ValueError:
        return None
    if not v.get("SpwID", "").isdigit() or not centre > 0:
        return None
    return Spw(v["SpwID"], v.get("Name", ""), nchan, v.get("Frame", ""), centre, width)


def read_listobs(text: str, label: str = "listobs") -> Listobs:
    """Everything :class:`Listobs` holds that the text states; sections it lacks stay empty."""
    out = Listobs(label)
    section = ""
    spw_header: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not out.ms:
            m = _MS_NAME.search(line)
            if m:
                out.ms = m.group(1).rstrip("/").rsplit("/", 1)[-1]
                continue
        m = _OBSERVED.search(line)
        if m and out.start is None:
            out.start, out.end = parse_casa_time(m.group(1)), parse_casa_time(m.group(2))
            continue
        if stripped.startswith("Date") and "Timerange" in stripped:
            section = "scans"
            continue
        if re.match(r"^Fields:\s*\d+", stripped):
            section = "fields"
            continue
        if stripped.startswith("Spectral Windows:"):
            section = "spws"
            continue
        if stripped.startswith("SpwID") and section == "spws":
            # old versions run names together ("ChanWid(kHz)TotBW(kHz)"): split after each "(unit)"
            spw_header = re.findall(r"[^\s()]+(?:\([^)\s]*\))?", stripped)
            continue
        if re.match(r"^(Sources|Antennas|Polarization Setups|Data Description)", stripped):
            section = ""
            continue
        if section == "scans":
            m = _SCAN.match(line)
            if m:
                name = m.group(6)
                out.fields.setdefault(m.group(5), name)
                for intent in (m.group(8) or "").split(","):
                    base = intent.strip().split("#")[0]
                    if base:
                        out.intents.setdefault(name, set()).add(base)
        elif section == "fields":
            m = _FIELD.match(line)
            if m:
                out.fields[m.group(1)] = m.group(3)
        elif section == "spws" and spw_header:
            spw = _spw_row(spw_header, stripped.split())
            if spw:
                out.spws[spw.id] = spw
    return out
