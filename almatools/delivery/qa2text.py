"""QA2 text files: the QA2 analyst's summary of a Member OUS, as text.

Two generations are read:

* **manual QA2 text file** (Cycle 0–4, one per execution block, ``qa/`` of a manual delivery):
  upper-case sections — ``SUMMARY INFORMATION FOR <ms>.split`` (listobs: observed range, scans
  with intents, fields), ``FREQUENCY INFORMATION`` (one row per spw: ``SpwID #Chans
  FirstFreq(GHz) LastFreq(GHz) BandWidth(MHz) ChanWidth(MHz) ChanWidth(km/s) POLN``), antenna
  positions, ``CALIBRATOR FLUX DENSITIES`` (fluxscale's ``Flux density for … is: …`` lines),
  ``EXECUTION BLOCKS`` (``EB NAnt Start End ToS(min) Elev(deg) PWV(mm) PhaseRMS(deg) MinBL(m)
  MaxBL(m) AR(arcsec) MRS(arcsec)``) and ``RMS AND BEAM SIZE AT REPRESENTATIVE FREQUENCY``;
* **QA2 report text** (Cycle 5 on, the text of ``*.qa2_report``): the same facts under
  title-case headings (``Execution blocks``, ``RMS and beam size at representative frequency``,
  ``Pipeline executions``), the sensitivity and resolution goals next to what was achieved.

Tables are read by their header's column names (any order, any subset, spelled as the generators
spelled them: ``MinBL(m)``, ``Min.BL(m)``, ``minBaseline[m]`` …), so columns added or dropped across
cycles do not shift values.  The listobs summary and the fluxscale lines go through
:mod:`.listobs` and :mod:`.fluxscale` (one parser each).  A text with none of these sections is
not a QA2 text file: :func:`read_qa2_text` says so in ``not_read`` rather than guessing.
CASA and pipeline versions are left to :mod:`almatools.plugins.calversion`.  One pass, line by line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from .fluxscale import read_fluxscale_text

__all__ = ["Qa2Text", "read_qa2_text", "looks_like_qa2"]

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_SECTIONS = (("summary", re.compile(r"^\s*SUMMARY INFORMATION FOR\s+(\S+)", re.I)),
             ("spws", re.compile(r"^\s*(FREQUENCY INFORMATION|Spectral windows?)\s*:?\s*$", re.I)),
             ("fluxes", re.compile(r"^\s*(CALIBRATOR FLUX DENSIT(Y|IES)|Flux densit(y|ies) of the calibrators?)\b",
                                   re.I)),
             ("ebs", re.compile(r"^\s*(EXECUTION BLOCKS?|Execution blocks?( summary)?)\s*:?\s*$", re.I)),
             ("rms", re.compile(r"^\s*RMS and beam size at (the )?representative frequency", re.I)),
             ("antennas", re.compile(r"^\s*(ANTENNA (POSITIONS|INFORMATION)|Antennas?)\s*:?\s*$", re.I)),
             ("other", re.compile(r"^\s*(Pipeline executions?|GAIN|BANDPASS|PHASE|TSYS|WVR)[A-Z ]*:?\s*$")))
#: canonical column → normalised header spellings (lower case, no punctuation or units)
_EB_COLUMNS = {"eb": ("eb", "execblock", "execblockid", "ebuid", "uid", "asdm"), "nant": ("nant", "nants", "ant", "antennas"),
               "start": ("start", "startutc", "starttime"), "end": ("end", "endutc", "endtime", "stop"),
               "tos_min": ("tos", "tosmin", "timeonsource"), "elevation_deg": ("elev", "elevation", "el", "elevdeg"),
               "pwv_mm": ("pwv", "pwvmm"), "phase_rms_deg": ("phaserms", "phrms", "phaserms"),
               "min_baseline_m": ("minbl", "minbaseline", "blmin", "minbaselinem"),
               "max_baseline_m": ("maxbl", "maxbaseline", "blmax", "maxbaselinem"),
               "ar_arcsec": ("ar", "angres", "angularresolution"), "mrs_arcsec": ("mrs", "maxrecoverablescale", "las"),
               "ef": ("ef", "efficiency")}
_SPW_COLUMNS = {"spw": ("spwid", "spw", "id"), "nchan": ("chans", "nchan", "nchans", "channels"),
                "first_ghz": ("firstfreq", "firstfreqghz", "freqfirst", "ch0", "startfreq"),
                "last_ghz": ("lastfreq", "lastfreqghz", "freqlast", "endfreq"),
                "bandwidth_mhz": ("bandwidth", "bw", "totbw", "bandwidthmhz"),
                "width_mhz": ("chanwidth", "chanwidthmhz", "chanwid", "resolution"),
                "width_kms": ("chanwidthkms", "velres", "chanwidthkms"), "poln": ("poln", "corrs", "pol", "corr")}
_UNIT_SCALE = {"jy": 1.0, "mjy": 1e-3, "ujy": 1e-6, "µjy": 1e-6, "μjy": 1e-6, "njy": 1e-9}
_FREQ_SCALE = {"hz": 1.0, "khz": 1e3, "mhz": 1e6, "ghz": 1e9}
_REPFREQ = re.compile(r"representative\s+frequency\s*[:=]?\s*(" + _NUM + r")\s*(GHz|MHz)(?:.*?spw\s*(\d+))?", re.I)
_FLUX_OVER = (r"(" + _NUM + r")\s*(mJy|uJy|µJy|μJy|nJy|Jy)(?:\s*/\s*beam)?"
              r"(?:\s*(?:over|in|per|@)\s*(?:a\s+)?(" + _NUM + r")\s*(km/s|GHz|MHz|kHz|Hz))?")
_GOAL = re.compile(r"(?:sensitivity\s+goal|requested\s+(?:rms|sensitivity)|rms\s+goal)\s*[:=]?\s*" + _FLUX_OVER, re.I)
_ACHIEVED = re.compile(r"(?:achieved\s+rms|rms\s+achieved|measured\s+rms|achieved\s+sensitivity)\s*[:=]?\s*"
                       + _FLUX_OVER, re.I)
_AR_GOAL = re.compile(r"(?:angular\s+resolution\s+goal|requested\s+(?:angular\s+)?resolution|AR\s+goal)\s*[:=]?\s*("
                      + _NUM + r")\s*(?:(?:-|to|~|–)\s*(" + _NUM + r"))?\s*(arcsec|\"|mas)?", re.I)
_BEAM = re.compile(r"(?:achieved\s+beam|beam\s+achieved|synthesi[sz]ed\s+beam|achieved\s+resolution)\s*[:=]?\s*("
                   + _NUM + r")\s*(?:arcsec|\")?\s*[x×X*]\s*(" + _NUM + r")\s*(arcsec|\"|mas)?"
                   r"(?:[\s,;]*(?:PA|p\.a\.|position angle)?\s*[:=]?\s*(" + _NUM + r")\s*(?:deg)?)?", re.I)
_MRS = re.compile(r"(?:maximum\s+recoverable\s+scale|\bMRS\b)\s*[:=]\s*(" + _NUM + r")\s*(arcsec|\")?", re.I)


@dataclass
class Qa2Text:
    """What a QA2 text file says.

    :param shape: ``"manual QA2 text (Cycle 0-4)"`` or ``"QA2 report text (Cycle 5+)"``, ``""`` if neither.
    :param not_read: why the text was not read as a QA2 text file (``""`` when it was).
    :param ms: the (split) MS the summary describes.
    :param spws: rows of the spw table, ``{"spw", "nchan", "first_ghz", "last_ghz", "bandwidth_mhz", …}``.
    :param fluxes: :class:`~.fluxes.CalibratorFlux` records of its fluxscale lines.
    :param execution_blocks: rows of the EB table (``min_baseline_m``, ``max_baseline_m``, ``ar_arcsec``,
        ``mrs_arcsec`` … when the table has them).
    :param rms: the representative-frequency section: ``rep_freq_hz``, ``rep_spw``, ``goal_rms_jy``,
        ``goal_bandwidth`` (value, unit), ``achieved_rms_jy``, ``achieved_bandwidth``, ``ar_goal_arcsec``
        ``[lo, hi]``, ``beam_arcsec`` ``[major, minor, pa_deg]``, ``mrs_arcsec``.
    :param problems: ``file:line: why`` for rows that could not be read.
    """

    label: str
    shape: str = ""
    not_read: str = ""
    ms: str = ""
    sections: list = field(default_factory=list)
    spws: list = field(default_factory=list)
    fluxes: list = field(default_factory=list)
    execution_blocks: list = field(default_factory=list)
    rms: dict = field(default_factory=dict)
    listobs: object = None
    problems: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"file": self.label, "shape": self.shape, "not_read": self.not_read, "ms": self.ms,
                "sections": list(self.sections), "spws": list(self.spws),
                "fluxes": [f.as_dict() for f in self.fluxes], "execution_blocks": list(self.execution_blocks),
                "rms": dict(self.rms), "problems": list(self.problems)}


def _norm(token: str) -> str:
    return re.sub(r"[^a-z0-9/]", "", token.lower().replace("#", "n")).replace("/", "")


def _header_map(tokens: list[str], columns: dict) -> dict[int, str]:
    """Column index → canonical name, for header *tokens* (units in brackets are ignored)."""
    out = {}
    for i, token in enumerate(tokens):
        bare = _norm(re.sub(r"[\(\[].*?[\)\]]", "", token))
        full = _norm(token)
        for canon, spellings in columns.items():
            if canon in out.values():
                continue
            if full in spellings or bare in spellings or (full.endswith("kms") and canon == "width_kms"
                                                          and bare in ("chanwidth", "chanwid")):
                out[i] = canon
                break
    return out


def _cell(value: str):
    if re.fullmatch(r"[-+]?\d{1,18}", value):
        return int(value)
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def looks_like_qa2(text: str) -> bool:
    """Whether *text* has at least one section a QA2 text file has (a cheap first look)."""
    head = text[:200_000]
    return any(rx.search(line) for line in head.splitlines() for name, rx in _SECTIONS if name != "other")


def read_qa2_text(text: str, label: str = "qa2.txt") -> Qa2Text:
    """Read a QA2 text file; a text that is not one comes back with ``not_read`` saying why."""
    out = Qa2Text(label)
    section, header, columns = "", None, {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        new = _section_of(line)
        if new:
            section, header = new, None
            if new not in out.sections:
                out.sections.append(new)
            if new == "summary":
                out.ms = _SECTIONS[0][1].match(line).group(1)
            columns = _EB_COLUMNS if new == "ebs" else _SPW_COLUMNS if new == "spws" else {}
            continue
        if section == "rms" or _REPFREQ.search(line) or _GOAL.search(line) or _ACHIEVED.search(line):
            _rms_line(line, out.rms)
        if section in ("ebs", "spws"):
            tokens = stripped.split()
            if header is None:
                mapping = _header_map(tokens, columns)
                if len(mapping) >= 2:
                    header = mapping
                continue
            row = _table_row(tokens, header, f"{label}:{number}", out.problems)
            if row is not None:
                (out.execution_blocks if section == "ebs" else out.spws).append(row)
    fluxscale = read_fluxscale_text(text, label)
    out.fluxes, out.listobs = fluxscale.fluxes, fluxscale.listobs
    if not out.ms and fluxscale.listobs is not None:
        out.ms = fluxscale.listobs.ms
    if out.fluxes and "fluxes" not in out.sections:
        out.sections.append("fluxes")
    found = [s for s in out.sections if s != "other"]
    if not found and not out.rms:
        out.not_read = ("none of the sections of a QA2 text file (SUMMARY INFORMATION, FREQUENCY INFORMATION, "
                        "calibrator flux densities, execution blocks, RMS and beam size at representative "
                        "frequency) was found")
    else:
        # the listobs-style summary is what the manual generation starts with; the report text has none
        out.shape = "manual QA2 text (Cycle 0-4)" if "summary" in out.sections else "QA2 report text (Cycle 5+)"
    return out


def _section_of(line: str) -> str:
    for name, rx in _SECTIONS:
        if rx.match(line):
            return name
    return ""


def _table_row(tokens: list[str], header: dict[int, str], where: str, problems: list) -> dict | None:
    """A table row by the header's columns; rows that are shorter than the header end the table quietly."""
    if len(tokens) < len(header) or not tokens[0][:1].isalnum():
        return None
    row = {"where": where}
    ncols = max(header) + 1
    # a last column may hold several words (POLN "XX YY"): it takes the rest of the line
    for i, canon in header.items():
        if i >= len(tokens):
            break
        row[canon] = " ".join(tokens[i:]) if i == ncols - 1 and canon == "poln" else _cell(tokens[i])
    if "spw" in row and not isinstance(row["spw"], int):
        problems.append(f"{where}: spw {row['spw']!r} is not a number")
        return None
    if "spw" in row:
        row["spw"] = str(int(row["spw"]))
    return row


def _flux_jy(value: str, unit: str) -> float:
    return float(value) * _UNIT_SCALE[unit.lower().replace("µ", "u").replace("μ", "u")]


def _rms_line(line: str, rms: dict) -> None:
    m = _REPFREQ.search(line)
    if m and "rep_freq_hz" not in rms:
        rms["rep_freq_hz"] = float(m.group(1)) * _FREQ_SCALE[m.group(2).lower()]
        if m.group(3):
            rms["rep_spw"] = m.group(3)
    for key, rx in (("goal", _GOAL), ("achieved", _ACHIEVED)):
        m = rx.search(line)
        if m and f"{key}_rms_jy" not in rms:
            rms[f"{key}_rms_jy"] = _flux_jy(m.group(1), m.group(2))
            if m.group(3):
                rms[f"{key}_bandwidth"] = [float(m.group(3)), m.group(4)]
    m = _AR_GOAL.search(line)
    if m and "ar_goal_arcsec" not in rms:
        scale = 1e-3 if (m.group(3) or "").lower() == "mas" else 1.0
        lo = float(m.group(1)) * scale
        rms["ar_goal_arcsec"] = [lo, float(m.group(2)) * scale if m.group(2) else lo]
    m = _BEAM.search(line)
    if m and "beam_arcsec" not in rms:
        scale = 1e-3 if (m.group(3) or "").lower() == "mas" else 1.0
        rms["beam_arcsec"] = [float(m.group(1)) * scale, float(m.group(2)) * scale,
                              float(m.group(4)) if m.group(4) else None]
    m = _MRS.search(line)
    if m and "mrs_arcsec" not in rms:
        rms["mrs_arcsec"] = float(m.group(1))
