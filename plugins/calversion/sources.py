"""Find the CASA version statements in the files of an ALMA delivery.

Each reader takes the text of one file and yields :class:`VersionStatement`
objects: what version the file states, on which line, in which shape, and for
which purpose (calibration or imaging).  The shapes are the ones seen in real
deliveries (see DOMAIN.md §10):

* calibration, flux-calibration and imaging scripts pin their version near
  the top — ``re.search('^4.4.0', casadef.casa_version)``, the later
  ``re.search('^5.1.1', '.'.join([str(i) for i in cu.version().tolist()[:-1]]))``,
  the ``sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA ...: 4.4.0')`` that
  follows, or a string comparison ``casadef.casa_version < '4.4.0'`` (a minimum);
  often the check is commented out, and the version is still the script's;
* member READMEs: ``CASA version used for reduction: 4.6``;
* CASA logs, first lines: ``CASA Version 4.7.2-REL (r39762)``,
  ``CASA Version PIPELINE 6.5.4.9`` (pipeline stage logs carry none);
* the pipeline weblog home page: ``CASA Version`` / ``Pipeline Version`` rows.

Nothing here runs or imports the scripts: they are often Python 2.
"""

from __future__ import annotations

import html
import re
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["VersionStatement", "classify", "read_statements", "normalise", "version_key"]

#: how much of a log to read: the version sits in the first lines
LOG_HEAD_LINES = 400
#: the largest text file read whole (logs beyond this are read up to LOG_HEAD_LINES)
MAX_TEXT_BYTES = 64 * 2**20

_VERSION = r"(\d+(?:\.\d+){1,3}(?:-\d+)?)"
_SCRIPT_PATTERNS = [
    # re.search('^4.4.0', casadef.casa_version)  /  re.search('^5.1.1', '.'.join(... cu.version() ...))
    ("version-check", "pin", re.compile(
        r"re\.search\(\s*['\"]\^?" + _VERSION + r"['\"]\s*,\s*(?:casadef\.casa_version|['\"]\.['\"]\.join\(.*cu\.version\(\))")),
    # if casadef.casa_version < '4.4.0' : sys.exit(...)   → needs at least 4.4.0
    ("version-compare", "minimum", re.compile(r"casadef\.casa_version\s*<\s*['\"]" + _VERSION + r"['\"]")),
    ("version-exit", "pin", re.compile(
        r"USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT:?\s*" + _VERSION)),
]
_README = re.compile(r"CASA\s+version\s+used\s+for\s+(reduction|calibration|imaging)\s*:\s*" + _VERSION, re.I)
_LOG = re.compile(r"CASA Version\s+(?:([A-Z]+)\s+)?" + _VERSION + r"(-[A-Za-z]+)?(?:[\s-]*\(?(r\d+)\)?)?")
_PIPELINE_IN_VERSION = re.compile(r"pipeline[-\s]+(\d{4}\.\d+\.\d+\.\d+)", re.I)
_PIPELINE_LOG = re.compile(r"Pipeline\s+version\s*:?\s*(\d{4}\.\d+\.\d+\.\d+)", re.I)
_WEBLOG = re.compile(r"CASA\s+Version\s*:?\s*" + _VERSION, re.I)
_WEBLOG_PIPELINE = re.compile(r"Pipeline\s+Version\s*:?\s*(\d{4}\.\d+\.\d+\.\d+)", re.I)
_CALIBRATION_WORDS = re.compile(r"\b(bandpass|gaincal|applycal|setjy|fluxscale|hifa?_\w+|h_init|"
                                r"scriptForCalibration|scriptForPI|wvrgcal)\b")
_IMAGING_WORDS = re.compile(r"\b(tclean|clean|scriptForImaging|exportfits|impbcor)\b")


@dataclass
class VersionStatement:
    """One statement of a CASA version found in a file.

    :param file: the file (or ``archive.tgz:member``) it was read from.
    :param line: 1-based line number.
    :param version: the version as written (``4.7.2``, ``4.6``, ``6.5.4.9``).
    :param source: the kind of file: ``calibration-script``, ``fluxcal-script``,
        ``imaging-script``, ``readme``, ``casa-log``, ``weblog``.
    :param purpose: ``calibration``, ``imaging`` or ``unknown``.
    :param shape: how it was stated (``version-check``, ``version-exit``,
        ``version-compare``, ``readme``, ``log-header``, ``weblog``).
    :param meaning: ``pin`` (this exact version), ``minimum`` (at least) or
        ``ran`` (the version that ran, from a log or weblog).
    :param active: False when the statement is commented out.
    :param text: the line itself, stripped.
    :param pipeline_version: pipeline release named alongside, if any.
    """

    file: str
    line: int
    version: str
    source: str
    purpose: str
    shape: str
    meaning: str
    active: bool
    text: str
    pipeline_version: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def normalise(version: str) -> str:
    """``6.5.4-9`` → ``6.5.4.9``; CASA writes both."""
    return version.replace("-", ".")


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in normalise(version).split(".") if p.isdigit())


def classify(path: Path, text: str | None = None) -> str | None:
    """The kind of delivery file *path* is, or None if it states no version by nature.

    Kinds: ``calibration-script``, ``fluxcal-script``, ``imaging-script``,
    ``pipeline-script`` (pipescript, piperestorescript, scriptForPI: no version),
    ``ppr`` (PPR XML), ``readme``, ``casa-log``, ``weblog``, ``weblog-archive``,
    ``log-archive``.
    """
    name = path.name
    low = name.lower()
    if low.endswith(".py"):
        if "scriptforfluxcalibration" in low:
            return "fluxcal-script"
        if "scriptforcalibration" in low:
            return "calibration-script"
        if "scriptforimaging" in low or "imaging" in low:
            return "imaging-script"
        if "pipescript" in low or "piperestorescript" in low or "scriptforpi" in low:
            return "pipeline-script"
        if text is not None and any(p.search(text) for _, _, p in _SCRIPT_PATTERNS):
            return "calibration-script" if _CALIBRATION_WORDS.search(text) else "imaging-script"
        return None
    if low.startswith("ppr") and low.endswith(".xml"):
        return "ppr"
    if "readme" in low:
        return "readme"
    if low.endswith((".html", ".htm")):
        return "weblog"
    if low.endswith((".tgz", ".tar.gz", ".tar")):
        if "weblog" in low:
            return "weblog-archive"
        if "log" in low and "calibration" not in low:
            return "log-archive"
        return None
    if low.endswith(".log") or ".log." in low or low.startswith("casa-") and low.endswith(".log"):
        return "casa-log"
    if low.endswith(".txt") and text is not None and _README.search(text):
        return "readme"
    return None


def _commented(line: str, start: int) -> bool:
    return "#" in line[:start]


def _script_statements(name: str, text: str, source: str) -> list[VersionStatement]:
    purpose = "imaging" if source == "imaging-script" else "calibration"
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for shape, meaning, pattern in _SCRIPT_PATTERNS:
            m = pattern.search(line)
            if m:
                found.append(VersionStatement(name, number, m.group(1), source, purpose, shape, meaning,
                                              not _commented(line, m.start()), line.strip()))
                break
    # The sys.exit message repeats the version of the check just above it: keep the check.
    checks = {(s.line, s.version) for s in found if s.shape == "version-check"}
    return [s for s in found if not (s.shape == "version-exit" and
                                     any(line in (s.line - 1, s.line - 2) and v == s.version for line, v in checks))]


def _readme_statements(name: str, text: str) -> list[VersionStatement]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _README.search(line)
        if m:
            purpose = "imaging" if m.group(1).lower() == "imaging" else "calibration"
            found.append(VersionStatement(name, number, m.group(2), "readme", purpose, "readme", "ran",
                                          True, line.strip()))
    return found


def _log_statements(name: str, lines: list[str]) -> list[VersionStatement]:
    """Version lines of a CASA log; purpose from the tasks the log shows running."""
    text = "\n".join(lines)
    if _CALIBRATION_WORDS.search(text):
        purpose = "calibration"
    elif _IMAGING_WORDS.search(text):
        purpose = "imaging"
    else:
        purpose = "unknown"
    pipeline = ""
    m = _PIPELINE_LOG.search(text)
    if m:
        pipeline = m.group(1)
    found = []
    for number, line in enumerate(lines, 1):
        m = _LOG.search(line)
        if m:
            build, version = m.group(1) or "", m.group(2)
            p = _PIPELINE_IN_VERSION.search(line)
            found.append(VersionStatement(name, number, version, "casa-log", purpose, "log-header", "ran",
                                          True, line.split("\t")[-1].strip(),
                                          p.group(1) if p else pipeline))
            if build == "PIPELINE" and not found[-1].pipeline_version:
                found[-1].pipeline_version = "unknown"
    return found


def _weblog_statements(name: str, text: str) -> list[VersionStatement]:
    plain = html.unescape(re.sub(r"<[^>]+>", " ", text))
    found = []
    m = _WEBLOG.search(plain)
    if m:
        p = _WEBLOG_PIPELINE.search(plain)
        number = text[:text.find("CASA")].count("\n") + 1 if "CASA" in text else 1
        found.append(VersionStatement(name, number, m.group(1), "weblog", "calibration", "weblog", "ran", True,
                                      " ".join(plain[m.start():m.end()].split()), p.group(1) if p else ""))
    return found


def _read_text(path: Path, head_lines: int | None = None) -> str:
    with open(path, "rb") as fh:
        if head_lines is None and path.stat().st_size <= MAX_TEXT_BYTES:
            return fh.read().decode("utf-8", "replace")
        return "".join(fh.readline().decode("utf-8", "replace") for _ in range(head_lines or LOG_HEAD_LINES))


def _archive_members(path: Path, kind: str):
    """(member name, text) for the weblog home pages or CASA logs inside a tar archive."""
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = member.name.rsplit("/", 1)[-1]
            if kind == "weblog-archive" and base in ("t1-1.html", "index.html") and "/html/" in f"/{member.name}":
                yield member.name, tar.extractfile(member).read(MAX_TEXT_BYTES).decode("utf-8", "replace")
            elif kind == "log-archive" and base.endswith(".log") and base.startswith("casa"):
                fh = tar.extractfile(member)
                yield member.name, "".join(fh.readline().decode("utf-8", "replace") for _ in range(LOG_HEAD_LINES))


def read_statements(path: Path, kind: str, label: str | None = None) -> list[VersionStatement]:
    """Every version statement in the file *path* of the given :func:`classify` kind."""
    label = label or str(path)
    if kind in ("calibration-script", "fluxcal-script", "imaging-script"):
        return _script_statements(label, _read_text(path), kind)
    if kind == "readme":
        return _readme_statements(label, _read_text(path))
    if kind == "casa-log":
        return _log_statements(label, _read_text(path, LOG_HEAD_LINES).splitlines())
    if kind == "weblog":
        return _weblog_statements(label, _read_text(path))
    if kind in ("weblog-archive", "log-archive"):
        found = []
        for member, text in _archive_members(path, kind):
            reader = _weblog_statements if kind == "weblog-archive" else (
                lambda n, t: _log_statements(n, t.splitlines()))
            found.extend(reader(f"{label}:{member}", text))
        return found
    return []
