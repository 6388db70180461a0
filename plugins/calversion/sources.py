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

Nothing here runs or imports the scripts: they are often Python 2.  Every
reader is linear in the size of its input (no regular expression here can
backtrack over a run of characters more than once), reads at most a bounded
number of bytes, and opens only regular files (:func:`almatools.limits.open_regular`).
"""

from __future__ import annotations

import html
import re
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

from almatools.limits import open_regular

__all__ = ["VersionStatement", "classify", "read_statements", "statements_from_text", "read_head", "normalise",
           "version_key",
           "MAX_TEXT_BYTES", "LOG_HEAD_LINES", "LOG_HEAD_BYTES"]

#: how much of a log to read: the version sits in the first lines
LOG_HEAD_LINES = 400
LOG_HEAD_BYTES = 2**20
#: the most read of any other text file (READMEs, scripts and weblog pages are far smaller)
MAX_TEXT_BYTES = 64 * 2**20

# a version: 2 to 4 dot-separated numbers of at most 9 digits, optionally '-build' (6.5.4-9)
_VERSION = r"(?<![0-9])([0-9]{1,9}(?:\.[0-9]{1,9}){1,3}(?:-[0-9]{1,9})?)(?![0-9])"
_SCRIPT_PATTERNS = [
    # re.search('^4.4.0', casadef.casa_version)  /  re.search('^5.1.1', '.'.join(... cu.version() ...));
    # the second form needs 'cu.version(' later on the line (checked by _script_match, not by a '.*')
    ("version-check", "pin", re.compile(
        r"re\.search\([ \t]*['\"]\^?" + _VERSION + r"['\"][ \t]*,[ \t]*(casadef\.casa_version|['\"]\.['\"]\.join\()")),
    # if casadef.casa_version < '4.4.0' : sys.exit(...)   → needs at least 4.4.0
    ("version-compare", "minimum", re.compile(r"casadef\.casa_version\s*<\s*['\"]" + _VERSION + r"['\"]")),
    ("version-exit", "pin", re.compile(
        r"USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT:?\s*" + _VERSION)),
]
_README = re.compile(r"CASA\s+version\s+used\s+for\s+(reduction|calibration|imaging)\s*:\s*" + _VERSION, re.I)
_LOG = re.compile(r"CASA Version\s+(?:([A-Z]+)\s+)?" + _VERSION + r"(-[A-Za-z]+)?(?:[\s-]*\(?(r\d+)\)?)?")
_PIPELINE_IN_VERSION = re.compile(r"pipeline[-\s]+(\d{4}\.\d{1,9}\.\d{1,9}\.\d{1,9})", re.I)
_PIPELINE_LOG = re.compile(r"Pipeline\s+version[\s:]*(\d{4}\.\d{1,9}\.\d{1,9}\.\d{1,9})", re.I)
_WEBLOG = re.compile(r"CASA\s+Version[\s:]*" + _VERSION, re.I)
_WEBLOG_PIPELINE = re.compile(r"Pipeline\s+Version[\s:]*(\d{4}\.\d{1,9}\.\d{1,9}\.\d{1,9})", re.I)
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
    """``'6.5.4-9'`` → ``(6, 5, 4, 9)``; parts that are not plain numbers (or absurdly long) are left out."""
    return tuple(int(p) for p in normalise(version).split(".") if _NUMBER.fullmatch(p))


_NUMBER = re.compile(r"[0-9]{1,18}")


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
        if text is not None and _looks_like_script_with_version(text):
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


def _script_match(line: str):
    """(shape, meaning, match) of the first version statement on a script line, or None."""
    last_cu_version = line.rfind("cu.version(")
    for shape, meaning, pattern in _SCRIPT_PATTERNS:
        m = pattern.search(line)
        if m and shape == "version-check" and m.group(2) != "casadef.casa_version":
            # '.'.join([... cu.version() ...]): the join form counts only with cu.version( after it
            m = next((c for c in pattern.finditer(line) if c.group(2) == "casadef.casa_version"
                      or last_cu_version >= c.end()), None)
        if m:
            return shape, meaning, m
    return None


def _looks_like_script_with_version(text: str) -> bool:
    if "casa_version" not in text and "cu.version" not in text and "VERSION OF CASA" not in text:
        return False
    return any(_script_match(line) for line in text.splitlines())


def _script_statements(name: str, text: str, source: str) -> list[VersionStatement]:
    purpose = "imaging" if source == "imaging-script" else "calibration"
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        hit = _script_match(line)
        if hit:
            shape, meaning, m = hit
            found.append(VersionStatement(name, number, m.group(1), source, purpose, shape, meaning,
                                          not _commented(line, m.start()), line.strip()[:500]))
    # The sys.exit message repeats the version of the check just above it: keep the check.
    checks = {(s.line, s.version) for s in found if s.shape == "version-check"}
    return [s for s in found if not (s.shape == "version-exit" and
                                     ((s.line - 1, s.version) in checks or (s.line - 2, s.version) in checks))]


def _readme_statements(name: str, text: str) -> list[VersionStatement]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        m = _README.search(line) if "ersion" in line else None
        if m:
            purpose = "imaging" if m.group(1).lower() == "imaging" else "calibration"
            found.append(VersionStatement(name, number, m.group(2), "readme", purpose, "readme", "ran",
                                          True, line.strip()[:500]))
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
        m = _LOG.search(line) if "CASA Version" in line else None
        if m:
            build, version = m.group(1) or "", m.group(2)
            p = _PIPELINE_IN_VERSION.search(line)
            found.append(VersionStatement(name, number, version, "casa-log", purpose, "log-header", "ran",
                                          True, line.split("\t")[-1].strip()[:500],
                                          p.group(1) if p else pipeline))
            if build == "PIPELINE" and not found[-1].pipeline_version:
                found[-1].pipeline_version = "unknown"
    return found


_SPACE_ENTITY = re.compile(r"&(?:nbsp|#160|#32|#x[aA]0);")


def _blank_tags(text: str) -> str:
    """*text* with every ``<...>`` tag and whitespace entity turned into spaces (newlines kept).

    Offsets stay those of *text*; one pass with ``str.find`` (an unclosed ``<``
    ends the tags, it is not searched again from every position).
    """
    out, i = [], 0
    while True:
        lt = text.find("<", i)
        gt = text.find(">", lt) if lt >= 0 else -1
        if lt < 0 or gt < 0:
            out.append(text[i:])
            break
        out.append(text[i:lt])
        tag = text[lt:gt + 1]
        out.append(" " * len(tag) if "\n" not in tag else re.sub(r"[^\n]", " ", tag))
        i = gt + 1
    return _SPACE_ENTITY.sub(lambda m: " " * len(m.group(0)), "".join(out))


def _weblog_statements(name: str, text: str) -> list[VersionStatement]:
    plain = _blank_tags(text)
    found = []
    m = _WEBLOG.search(plain)
    if m:
        p = _WEBLOG_PIPELINE.search(plain)
        found.append(VersionStatement(name, plain.count("\n", 0, m.start()) + 1, m.group(1), "weblog",
                                      "calibration", "weblog", "ran", True,
                                      html.unescape(" ".join(plain[m.start():m.end()].split())),
                                      p.group(1) if p else ""))
    return found


def statements_from_text(kind: str, text: str, label: str) -> list[VersionStatement]:
    """The version statements of one file's text, for a :func:`classify` kind that states versions."""
    if kind in ("calibration-script", "fluxcal-script", "imaging-script"):
        return _script_statements(label, text, kind)
    if kind == "readme":
        return _readme_statements(label, text)
    if kind == "casa-log":
        return _log_statements(label, text.splitlines()[:LOG_HEAD_LINES])
    if kind == "weblog":
        return _weblog_statements(label, text)
    return []


def read_head(path: Path, limit: int) -> bytes:
    """The first *limit* bytes of a regular file (never a FIFO or device), read in pieces.

    Logs and weblogs may be far larger than what is read of them: only their
    head is needed, so a large file is not an error here.
    """
    chunks, size = [], 0
    with open_regular(path) as fh:
        while size < limit:
            chunk = fh.read(min(limit - size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def _read_text(path: Path, limit: int = MAX_TEXT_BYTES) -> str:
    """The first *limit* bytes of a regular file as text."""
    return read_head(path, limit).decode("utf-8", "replace")


def _archive_members(path: Path, kind: str):
    """(member name, text) for the weblog home pages or CASA logs inside a tar archive."""
    with open_regular(path) as fh, tarfile.open(fileobj=fh) as tar:
        for member in tar:
            if not member.isfile():
                continue
            base = member.name.rsplit("/", 1)[-1]
            if kind == "weblog-archive" and base in ("t1-1.html", "index.html") and "/html/" in f"/{member.name}":
                yield member.name, tar.extractfile(member).read(MAX_TEXT_BYTES).decode("utf-8", "replace")
            elif kind == "log-archive" and base.endswith(".log") and base.startswith("casa"):
                yield member.name, tar.extractfile(member).read(LOG_HEAD_BYTES).decode("utf-8", "replace")


def read_statements(path: Path, kind: str, label: str | None = None) -> list[VersionStatement]:
    """Every version statement in the file *path* of the given :func:`classify` kind.

    :raises almatools.errors.InputFileError: for a FIFO, device or socket (never opened).
    """
    label = label or str(path)
    if kind == "casa-log":
        return statements_from_text(kind, _read_text(path, LOG_HEAD_BYTES), label)
    if kind in ("weblog-archive", "log-archive"):
        found = []
        for member, text in _archive_members(path, kind):
            found.extend(statements_from_text("weblog" if kind == "weblog-archive" else "casa-log", text,
                                              f"{label}:{member}"))
        return found
    if kind in ("calibration-script", "fluxcal-script", "imaging-script", "readme", "weblog"):
        return statements_from_text(kind, _read_text(path), label)
    return []
