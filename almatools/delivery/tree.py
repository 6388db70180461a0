"""Where things are in a delivered Member OUS, as almafetch unpacks it.

``<project>/science_goal.uid___…/group.uid___…/member.uid___…/`` holds
``README`` (``member.uid___….README.txt``), ``calibration/`` (cont.dat, the
``*.auxproducts.tgz`` with flux.csv, calibration tables), ``log/``, ``product/``,
``qa/`` (QA2 report or text, the weblog ``*.weblog.tgz`` with one ``listobs.txt`` per
MS and, from Cycle 5, the AQUA report), ``raw/`` and ``script/`` (scriptForPI,
manual ``*.scriptForCalibration.py`` or pipeline ``*casa_pipescript.py``).

:class:`MemberOUS` finds those files and hands their text to the readers; each tar
archive is read once, as a stream.  Real deliveries vary in names, so files are
matched by pattern, not by exact name.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from .textfile import DeliveryError, TextFile, read_text, tar_texts

__all__ = ["MemberOUS"]

#: the most files of one kind a Member OUS may offer before it is refused (a bound on work)
MAX_FILES = 2000


def _listobs_name(name: str) -> bool:
    return name.rsplit("/", 1)[-1].lower().endswith("listobs.txt")


def _aqua_name(name: str) -> bool:
    base = name.rsplit("/", 1)[-1].lower()
    return "aquareport" in base and base.endswith(".xml")


def _fluxcsv_name(name: str) -> bool:
    return name.rsplit("/", 1)[-1].lower().endswith("flux.csv")


class MemberOUS:
    """The delivery files of one Member OUS directory (or of any directory holding such files)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DeliveryError(f"{self.root}: not a directory")

    def _glob(self, subdirs, patterns) -> list[Path]:
        found = set()
        for sub in subdirs:
            base = self.root / sub if sub else self.root
            if base.is_dir():
                for pattern in patterns:
                    found.update(p for p in base.glob(pattern) if p.is_file())
        if len(found) > MAX_FILES:
            raise DeliveryError(f"{self.root}: more than {MAX_FILES} files match {patterns}; refused")
        return sorted(found)

    @cached_property
    def weblog_texts(self) -> list[TextFile]:
        """listobs.txt and AQUA report members of the weblog archives in ``qa/`` (each archive read once)."""
        out = []
        for archive in self._glob(("qa", ""), ("*weblog*.tgz", "*weblog*.tar.gz", "*weblog*.tar")):
            out += tar_texts(archive, lambda n: _listobs_name(n) or _aqua_name(n))
        return out

    def flux_csvs(self) -> list[TextFile]:
        """Every flux.csv: loose files and members of ``calibration/*.tgz`` (auxproducts)."""
        out = [read_text(p) for p in self._glob(("calibration", "", "qa"), ("*flux.csv",))]
        for archive in self._glob(("calibration", ""), ("*auxproduct*.tgz", "*auxproduct*.tar.gz",
                                                        "*auxproduct*.tar")):
            out += tar_texts(archive, _fluxcsv_name)
        return out

    def calibration_scripts(self) -> list[Path]:
        """Manual calibration scripts (``*scriptForCalibration*.py``, ``*scriptForFluxCalibration*.py``)."""
        return [p for p in self._glob(("script", ""), ("*scriptForCalibration*.py", "*scriptForFluxCalibration*.py"))
                if ".calunflag" not in p.name]

    def qa_texts(self) -> list[TextFile]:
        """QA2 text files and logs in ``qa/``, fluxscale logs in ``qa/`` and ``calibration/``."""
        paths = self._glob(("qa",), ("*.txt", "*.log")) + self._glob(("qa", "calibration"), ("*fluxscale*",))
        return [read_text(p) for p in sorted(set(paths)) if not _fluxcsv_name(p.name)
                and not p.name.lower().endswith((".tgz", ".tar", ".gz"))]

    def listobs_texts(self) -> list[TextFile]:
        """listobs summaries: the weblog's per-MS ``listobs.txt`` and loose ``*listobs*.txt`` files."""
        loose = [read_text(p) for p in self._glob(("qa", "calibration", "log", ""), ("*listobs*.txt",))]
        return loose + [t for t in self.weblog_texts if _listobs_name(t.label)]

    def contdat_texts(self) -> list[TextFile]:
        """cont.dat files: loose ``*cont.dat`` (``calibration/``, top level) and members of the auxproducts tgz."""
        out = [read_text(p) for p in self._glob(("calibration", ""), ("*cont.dat",))]
        for archive in self._glob(("calibration", ""), ("*auxproduct*.tgz", "*auxproduct*.tar.gz", "*auxproduct*.tar")):
            out += tar_texts(archive, lambda n: n.rsplit("/", 1)[-1].lower().endswith("cont.dat"))
        return out

    def readmes(self) -> list[TextFile]:
        """The Member OUS README(s): ``*README*`` at the top (real ones are not always ``member.uid___….README.txt``)."""
        return [read_text(p) for p in self._glob(("",), ("*README*", "*readme*"))
                if not p.name.lower().endswith((".tgz", ".tar", ".gz", ".pdf", ".html"))]

    def product_paths(self) -> list[Path]:
        """Image products in ``product/`` (or the top level of a bare folder): FITS files, gzipped FITS and CASA
        image directories (a directory holding ``table.dat`` and ``logtable``), sorted by name."""
        from .products import is_image_name
        base = self.root / "product" if (self.root / "product").is_dir() else self.root
        found = []
        for p in sorted(base.iterdir()):
            if len(found) >= MAX_FILES:
                raise DeliveryError(f"{base}: more than {MAX_FILES} products; refused")
            if p.is_dir() and (p / "table.dat").is_file():
                found.append(p)
            elif p.is_file() and is_image_name(p.name):
                found.append(p)
            elif not p.is_dir() and not p.is_file() and is_image_name(p.name):
                found.append(p)  # a FIFO or device with an image's name: listed, refused when read
        return found

    def qa2_texts(self) -> list[TextFile]:
        """QA2 text files in ``qa/``: ``*qa2*`` text files and any ``qa/*.txt`` with a QA2 section."""
        from .qa2text import looks_like_qa2
        return [t for t in self.qa_texts() if "qa2" in Path(t.label).name.lower() or looks_like_qa2(t.text)]

    def aqua_reports(self) -> list[TextFile]:
        """AQUA reports: ``qa/*aquareport*.xml`` and the one inside the weblog archive."""
        loose = [read_text(p) for p in self._glob(("qa", ""), ("*aquareport*.xml",))]
        return loose + [t for t in self.weblog_texts if _aqua_name(t.label)]
