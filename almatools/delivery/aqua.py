"""The pipeline's AQUA report (``pipeline_aquareport.xml``): what a pipeline run measured.

Schema (``pipeline/h/tasks/exportdata/aqua.py`` and ``hifa/tasks/exportdata/almaifaqua.py``)::

    <PipelineAquaReport>
      <ProjectStructure> <ProposalCode/> ... <OusStatusEntityId/> <ExecBlockId/> </ProjectStructure>
      <QaSummary> <ReportDate/> <ProcessingTime/> <CasaVersion/> <PipelineVersion/> <FinalScore/> </QaSummary>
      <QaPerStage> <Stage …/> … </QaPerStage>
      <QaPerTopic>
        <Dataset Score=> <Stage …/> … <FluxMeasurements><FluxMeasurements Origin="hifa_importdata" Score=>
            <FluxMeasurement SpwName= MsSpwId= FluxJy= ErrorJy= Asdm= Field= FrequencyGHz=/> ...
            <ImageSensitivity><SensitivityEstimates Origin="hifa_imageprecheck" …><Sensitivity …/> …
        <Flagging Score=> … <Calibration Score=> … <FluxMeasurements Origin="hifa_gfluxscale" …> …
        <Imaging Score=> … <ImageSensitivity><ImageSensitivities Origin="hif_makeimages" …><Sensitivity …/> …
      </QaPerTopic>
    </PipelineAquaReport>

The per-stage scores have had two layouts, both read:

* pipeline ≤ 2021 (Python 2 and early Python 3 pipelines): ``<Stage Number= Name= Score=>`` with
  ``<Metric Name= Value= Asdm= QaScore= [Session=]/>`` children — a score, no message;
* pipeline 2022 on: ``<Stage Number= Name=>`` holding ``<RepresentativeScore Score= Reason=>`` and
  ``<SubScore Score= Reason=>`` elements, each with ``<Metric Name= Value= Units=/>`` and
  ``<DataSelection Asdm= Session= Spw= Intent= [Field=] [Antenna=]/>``.

Sensitivities (``<Sensitivity Array= BandwidthHz= EffectiveBandwidthHz= BeamMajArcsec= BeamMinArcsec=
BeamPosAngDeg= BwMode= CellXArcsec= CellYArcsec= Field= MsSpwId= Robust= UVTaper= SensitivityJyPerBeam=/>``)
gained ``Intent`` and, in pipeline 2025, ``TheoreticalSensitivityJyPerBeam``,
``ObservedSensitivityJyPerBeam``, ``IsRepresentative``, ``PbcorImageMin/MaxJyPerBeam``, ``ImageName`` and
``DataType``; before that ``SensitivityJyPerBeam`` is the theoretical value in ``hifa_imageprecheck`` and the
observed one in ``hif_makeimages`` (the pipeline's own comment keeps that meaning).  Values the pipeline
could not compute are written ``N/A`` or ``Undefined``.

``hifa_importdata`` values are the models the calibration used (catalogue or flux.csv);
``hifa_gfluxscale`` values were derived from the data.  Stage elements that fit neither layout are not
guessed at: the report's ``not_read`` says which part was left and why.  The report is parsed with the
standard library's expat-based ElementTree; a document type declaration (the AQUA report has none) is
refused, so no entity is ever expanded.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field

from .fluxes import MEASURED, MODEL, CalibratorFlux
from .textfile import DeliveryError

__all__ = ["AquaReport", "read_aqua", "STAGE_LAYOUTS"]

#: the per-stage layouts this reader knows, by the pipeline releases that wrote them
STAGE_LAYOUTS = {"stage-score": "pipeline <= 2021: <Stage Score=> with <Metric> children",
                 "representative-score": "pipeline 2022 on: <Stage> with <RepresentativeScore>/<SubScore> children"}
_UNDEFINED = {"", "undefined", "n/a", "none", "nan"}

_KIND = {"hifa_importdata": MODEL, "hifa_gfluxscale": MEASURED}


@dataclass
class AquaReport:
    """What an AQUA report says that a delivery check needs.

    :param fluxes: flux measurements of ``hifa_importdata`` (model) and ``hifa_gfluxscale`` (measured).
    :param stages: ``[{"number", "name", "score", "reason", "metrics", "subscores"}]`` in stage order; a
        score is a float in [0, 1] or None (``Undefined``); ``subscores`` hold ``score``, ``reason``, ``metrics``
        and ``selection`` (pipeline 2022 on).
    :param topics: topic name (``Dataset``, ``Flagging``, ``Calibration``, ``Imaging``) → score or None.
    :param sensitivities: ``[{"origin", "field", "spw", "intent", "bwmode", "bandwidth_hz", "beam_arcsec",
        "theoretical_jy", "observed_jy", "image", …}]``.
    :param layout: which of :data:`STAGE_LAYOUTS` the stages follow (``""`` when there are none).
    :param not_read: ``[why]`` — parts of the report that were present but not read.
    :param problems: ``label: why`` for measurements that could not be read.
    """

    label: str
    ous: str = ""
    proposal: str = ""
    casa_version: str = ""
    pipeline_version: str = ""
    report_date: str = ""
    processing_time: str = ""
    final_score: float | None = None
    fluxes: list = field(default_factory=list)
    stages: list = field(default_factory=list)
    topics: dict = field(default_factory=dict)
    sensitivities: list = field(default_factory=list)
    layout: str = ""
    not_read: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def lowest_scores(self, n: int = 5) -> list[dict]:
        """The *n* lowest scores of the run (representative and sub-scores alike), lowest first, with the
        stage and the message; scores that are Undefined are left out."""
        rows = []
        for st in self.stages:
            for sub in st["subscores"] or [dict(score=st["score"], reason=st["reason"], metrics=st["metrics"])]:
                if sub["score"] is not None:
                    rows.append({"stage": st["number"], "task": st["name"], "score": sub["score"],
                                 "reason": sub.get("reason", ""), "metrics": sub.get("metrics", []),
                                 "selection": sub.get("selection", {})})
        return sorted(rows, key=lambda r: (r["score"], r["stage"]))[:n]

    def as_dict(self) -> dict:
        return {"file": self.label, "ous": self.ous, "proposal": self.proposal, "casa_version": self.casa_version,
                "pipeline_version": self.pipeline_version, "report_date": self.report_date,
                "processing_time": self.processing_time, "final_score": self.final_score, "layout": self.layout,
                "stages": self.stages, "topics": self.topics, "lowest_scores": self.lowest_scores(),
                "sensitivities": self.sensitivities, "fluxes": [f.as_dict() for f in self.fluxes],
                "not_read": list(self.not_read), "problems": list(self.problems)}


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


def _number(text) -> float | None:
    """An attribute's finite number, or None for Undefined/N/A/None and anything unreadable."""
    if text is None or str(text).strip().lower() in _UNDEFINED:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _score(text) -> float | None:
    """A score attribute: a number in [0, 1], else None."""
    value = _number(text)
    return value if value is not None and 0.0 <= value <= 1.0 else None


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
        elif name == "ProcessingTime":
            out.processing_time = (element.text or "").strip()
        elif name == "FinalScore":
            out.final_score = _score(element.text)
        elif name == "FluxMeasurements" and element.get("Origin") in _KIND:
            _measurements(element, out)
        elif name in ("SensitivityEstimates", "ImageSensitivities"):
            _sensitivities(element, out)
        elif name == "QaPerStage":
            _stages(element, out)
        elif name == "QaPerTopic":
            for topic in element:
                out.topics[_local(topic.tag)] = _score(topic.get("Score"))
    if not any(_local(e.tag) == "QaPerStage" for e in root):
        out.not_read.append("stage scores: the report has no <QaPerStage> element")
    return out


def _metrics(element) -> list[dict]:
    return [{"name": m.get("Name", ""), "value": m.get("Value", ""), "units": m.get("Units", ""),
             **({"asdm": m.get("Asdm")} if m.get("Asdm") else {}),
             **({"score": _score(m.get("QaScore"))} if m.get("QaScore") is not None else {})}
            for m in element if _local(m.tag) == "Metric"]


def _selection(element) -> dict:
    sel = next((e for e in element if _local(e.tag) == "DataSelection"), None)
    return {} if sel is None else {k.lower(): v for k, v in sel.attrib.items() if v not in ("N/A", "")}


def _stages(group, out: AquaReport) -> None:
    """The <Stage> children of <QaPerStage>, in either layout; a stage in neither is reported, not guessed."""
    layouts, unknown = set(), []
    for st in (e for e in group if _local(e.tag) == "Stage"):
        number = _number(st.get("Number"))
        entry = {"number": int(number) if number is not None else None, "name": st.get("Name", ""),
                 "score": None, "reason": "", "metrics": [], "subscores": []}
        rep = next((e for e in st if _local(e.tag) == "RepresentativeScore"), None)
        if rep is not None:
            layouts.add("representative-score")
            entry.update(score=_score(rep.get("Score")), reason=rep.get("Reason", ""), metrics=_metrics(rep),
                         selection=_selection(rep))
            entry["subscores"] = [{"score": _score(e.get("Score")), "reason": e.get("Reason", ""),
                                   "metrics": _metrics(e), "selection": _selection(e)}
                                  for e in st if _local(e.tag) == "SubScore"]
        elif "Score" in st.attrib:
            layouts.add("stage-score")
            entry.update(score=_score(st.get("Score")), metrics=_metrics(st))
        else:
            unknown.append(entry["name"] or f"number {st.get('Number')!r}")
            continue
        out.stages.append(entry)
    out.stages.sort(key=lambda s: (s["number"] is None, s["number"] or 0))
    out.layout = "+".join(sorted(layouts))
    if unknown:
        version = f" (pipeline version {out.pipeline_version})" if out.pipeline_version else ""
        out.not_read.append(
            f"scores of {len(unknown)} stage(s) ({', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}): "
            f"<Stage> has neither a Score attribute ({STAGE_LAYOUTS['stage-score']}) nor <RepresentativeScore> "
            f"children ({STAGE_LAYOUTS['representative-score']}) — a layout this reader does not know{version}")


def _sensitivities(group, out: AquaReport) -> None:
    origin = group.get("Origin", "")
    for n, s in enumerate((e for e in group if _local(e.tag) == "Sensitivity"), 1):
        legacy = _number(s.get("SensitivityJyPerBeam"))
        theoretical = _number(s.get("TheoreticalSensitivityJyPerBeam"))
        observed = _number(s.get("ObservedSensitivityJyPerBeam"))
        if "TheoreticalSensitivityJyPerBeam" not in s.attrib and "ObservedSensitivityJyPerBeam" not in s.attrib:
            # before pipeline 2025 one value: the estimate in imageprecheck, the image's rms in makeimages
            theoretical, observed = (legacy, None) if origin == "hifa_imageprecheck" else (None, legacy)
        beam = [_number(s.get("BeamMajArcsec")), _number(s.get("BeamMinArcsec")), _number(s.get("BeamPosAngDeg"))]
        out.sensitivities.append({
            "origin": origin, "where": f"{out.label}: {origin} sensitivity {n}", "field": s.get("Field", ""),
            "spw": s.get("MsSpwId", ""), "intent": s.get("Intent", ""), "bwmode": s.get("BwMode", ""),
            "array": s.get("Array", ""), "bandwidth_hz": _number(s.get("BandwidthHz")),
            "effective_bandwidth_hz": _number(s.get("EffectiveBandwidthHz")),
            "beam_arcsec": beam if beam[0] is not None else None,
            "cell_arcsec": [_number(s.get("CellXArcsec")), _number(s.get("CellYArcsec"))],
            "robust": s.get("Robust", ""), "theoretical_jy": theoretical, "observed_jy": observed,
            "representative": s.get("IsRepresentative", "") == "True", "image": s.get("ImageName", ""),
            "pbcor_max_jy": _number(s.get("PbcorImageMaxJyPerBeam")), "datatype": s.get("DataType", "")})


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
