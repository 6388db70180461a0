"""The pipeline's AQUA report (``pipeline_aquareport.xml``): what a pipeline run measured.

Schema (``pipeline/h/tasks/exportdata/aqua.py`` and ``hifa/tasks/exportdata/almaifaqua.py``)::

    <PipelineAquaReport>
      <ProjectStructure> <ProposalCode/> ... <OusStatusEntityId/> </ProjectStructure>
      <QaSummary> <ReportDate/> <ProcessingTime/> <CasaVersion/> <PipelineVersion/> </QaSummary>
      <QaPerStage> <Stage Number= Name= Score=> ... </QaPerStage>
      <QaPerTopic>
        <Dataset Score=> ... <FluxMeasurements><FluxMeasurements Origin="hifa_importdata" Score=>
            <FluxMeasurement SpwName= MsSpwId= FluxJy= ErrorJy= Asdm= Field= FrequencyGHz=/> ...
        <Calibration Score=> ... <FluxMeasurements Origin="hifa_gfluxscale" ...> ...
      </QaPerTopic>
    </PipelineAquaReport>

``hifa_importdata`` values are the models the calibration used (catalogue or flux.csv);
``hifa_gfluxscale`` values were derived from the data.  This module reads the parts
calflux needs; qacheck adds its readers (scores, sensitivities) here.  The report is
parsed with the standard library's expat-based ElementTree; a document type declaration
(the AQUA report has none) is refused, so no entity is ever expanded.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from .fluxes import MEASURED, MODEL, CalibratorFlux
from .textfile import DeliveryError

__all__ = ["AquaReport", "read_aqua"]

_KIND = {"hifa_importdata": MODEL, "hifa_gfluxscale": MEASURED}


@dataclass
class AquaReport:
    """What an AQUA report says that a delivery check needs.

    :param fluxes: flux measurements of ``hifa_importdata`` (model) and ``hifa_gfluxscale`` (measured).
    :param problems: ``label: why`` for measurements that could not be read.
    """

    label: str
    ous: str = ""
    proposal: str = ""
    casa_version: str = ""
    pipeline_version: str = ""
    report_date: str = ""
    fluxes: list = field(default_factory=list)
    problems: list = field(default_factory=list)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _float(text, label, what, problems):
    try:
        value = float(text)
    except (TypeError, ValueError):
        problems.append(f"{label}: {what} is {text!r}, not a number")
        return None
    if not math.isfinite(value):
        problems.append(f"{label}: {what} is {text!r}, not a finite number")
        return None
    return value


def read_aqua(text: str, label: str = "pipeline_aquareport.xml") -> AquaReport:
    """Parse the text of an AQUA report; raises :class:`DeliveryError` naming *label* when it is not one."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise DeliveryError(f"{label}: has a document type declaration; an AQUA report has none (refused)")
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        raise DeliveryError(f"{label}: not well-formed XML ({exc})") from None
    if _local(root.tag) != "PipelineAquaReport":
        raise DeliveryError(f"{label}: the root element is <{_local(root.tag)}>, not <PipelineAquaReport>")
    out = AquaReport(label)
    for element in root.iter():
        name = _local(element.tag)
        if name == "OusStatusEntityId":
            out.ous = (element.text or "").strip()
        elif name == "ProposalCode":
            out.proposal = (element.text or "").strip()
        elif name == "CasaVersion":
            out.casa_version = (element.text or "").strip()
        elif name == "PipelineVersion":
            out.pipeline_version = (element.text or "").strip()
        elif name == "ReportDate":
            out.report_date = (element.text or "").strip()
        elif name == "FluxMeasurements" and element.get("Origin") in _KIND:
            _measurements(element, out)
    return out


def _measurements(group, out: AquaReport) -> None:
    origin = group.get("Origin")
    for n, m in enumerate((e for e in group if _local(e.tag) == "FluxMeasurement"), 1):
        where = f"{out.label}: {origin} measurement {n}"
        flux = _float(m.get("FluxJy"), where, "FluxJy", out.problems)
        freq = _float(m.get("FrequencyGHz"), where, "FrequencyGHz", out.problems)
        if flux is None or freq is None:
            continue
        if flux < 0 or freq <= 0:
            out.problems.append(f"{where}: FluxJy {flux} / FrequencyGHz {freq} out of range")
            continue
        error = _float(m.get("ErrorJy"), where, "ErrorJy", []) if m.get("ErrorJy") else None
        asdm = m.get("Asdm", "")
        out.fluxes.append(CalibratorFlux(
            field=m.get("Field", ""), field_id="", spw=m.get("MsSpwId", ""), flux_jy=flux,
            error_jy=None if error is None else abs(error), freq_hz=freq * 1e9, spix=None,
            ms=f"{asdm}.ms" if asdm else "", kind=_KIND[origin], origin=origin, where=where,
            extra={"spw_name": m.get("SpwName", ""), "score": group.get("Score", "")}))
