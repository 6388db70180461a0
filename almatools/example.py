"""The embedded example: a small Member OUS shaped like a real ALMA delivery.

``almatools demo`` builds it first (and the archive emulator serves it as
tars), then every task runs on it.  Its files follow the real shapes of
delivered files (DOMAIN.md §10): ALMA naming, the
``<project>/science_goal.uid___…/group.uid___…/member.uid___…/`` tree with
``calibration/ log/ product/ qa/ raw/ script/``, pipeline or manual
calibration scripts with their version statements and calibrator line
flags, a cont.dat, and Jy/beam product images with per-plane beams.

The science is invented but consistent: TW Hya observed in Band 6 in one
execution block, spw 25 around CO(2-1) and spw 27 for continuum.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import textwrap
from pathlib import Path

from .io import atomic_write

__all__ = ["build_member_ous", "member_ous_dir", "PROJECT", "SGOUS", "GOUS", "MOUS", "EXECBLOCKS",
           "TARGET", "TARGET_DIRECTION", "CALIBRATORS", "CONTDAT", "CASA_VERSION", "PIPELINE_VERSION",
           "MANUAL_CASA_VERSION", "uid_path", "FLUX_CSV", "LISTOBS", "AQUA_REPORT", "QA2_TEXT"]

PROJECT = "2019.1.00001.S"
SGOUS = "uid://A001/X1465/X1"
GOUS = "uid://A001/X1465/X2"
MOUS = "uid://A001/X1465/X3"
EXECBLOCKS = ["uid://A002/Xf1e1d3/X1a2b"]
TARGET = "TW_Hya"
TARGET_DIRECTION = ("J2000", "11h01m51.9s", "-34d42m17.0s")
#: intent → field name, as the calibration script header lists them
CALIBRATORS = {"CALIBRATE_FLUX": "J1058+0133", "CALIBRATE_BANDPASS": "J1058+0133",
               "CALIBRATE_PHASE": "J1126-3828", "OBSERVE_CHECK_SOURCE": "J1147-3812"}
CASA_VERSION = "6.5.4.9"
PIPELINE_VERSION = "2023.1.0.124"
MANUAL_CASA_VERSION = "4.7.2"

#: the pipeline's continuum ranges for the target (cont.dat v3: spw names and a Flags: line)
CONTDAT = """Field: TW_Hya

SpectralWindow: 25 X1#ALMA_RB_06#BB_1#SW-01#FULL_RES
Flags: LOWBANDWIDTH
229.9500000000~229.9600000000GHz LSRK
229.9700000000~229.9900000000GHz LSRK

SpectralWindow: 27 X1#ALMA_RB_06#BB_2#SW-01#FULL_RES
232.0100000000~232.0300000000GHz LSRK
232.0450000000~232.0600000000GHz LSRK

"""

#: the product cube: spw 25 around CO(2-1) in TW Hya (LSRK)
CUBE = dict(nx=64, ny=64, nchan=24, cell_arcsec=0.1, freq0_hz=230.400e9, width_hz=12.0e6,
            restfreq_hz=230.538e9, line_hz=230.5358e9, line_fwhm_hz=30e6, line_peak_jy=0.5,
            continuum_jy=0.010, beam_major_arcsec=0.62, beam_minor_arcsec=0.47, beam_pa_deg=80.0,
            pb_radius_pix=28, noise_jy=0.002, seed=20191)


def uid_path(uid: str) -> str:
    """``uid://A001/X1465/X3`` → ``uid___A001_X1465_X3`` (the form used in file names)."""
    return uid.replace("uid://", "uid___").replace("/", "_")


#: calibrator flux densities the pipeline used (flux.csv in the auxproducts tgz; current format). The
#: flux calibrator J1058+0133 is within 10 % of the catalogue at the date; the phase calibrator's model
#: value is 14 % high, which does not matter: only the flux calibrator sets the scale (calflux's demo)
FLUX_CSV = f"""ms,field,spw,I,Q,U,V,spix,uvmin,uvmax,comment
{uid_path(EXECBLOCKS[0])}.ms,0,25,1.2912,0.0,0.0,0.0,-0.512,0.0,0.0,"# field=J1058+0133 intents=AMPLITUDE,ATMOSPHERE,BANDPASS,WVR origin=DB age=-4.0 queried_at=2023-10-14 10:15:02 UTC"
{uid_path(EXECBLOCKS[0])}.ms,0,27,1.2876,0.0,0.0,0.0,-0.512,0.0,0.0,"# field=J1058+0133 intents=AMPLITUDE,ATMOSPHERE,BANDPASS,WVR origin=DB age=-4.0 queried_at=2023-10-14 10:15:02 UTC"
{uid_path(EXECBLOCKS[0])}.ms,1,25,0.449,0.0,0.0,0.0,-0.655,0.0,0.0,"# field=J1126-3828 intents=ATMOSPHERE,PHASE,WVR origin=DB age=28.0 queried_at=2023-10-14 10:15:02 UTC"
{uid_path(EXECBLOCKS[0])}.ms,1,27,0.4472,0.0,0.0,0.0,-0.655,0.0,0.0,"# field=J1126-3828 intents=ATMOSPHERE,PHASE,WVR origin=DB age=28.0 queried_at=2023-10-14 10:15:02 UTC"
{uid_path(EXECBLOCKS[0])}.ms,3,25,0.492,0.0,0.0,0.0,-0.537,0.0,0.0,"# field=J1147-3812 intents=CHECK,WVR origin=DB age=34.0 queried_at=2023-10-14 10:15:02 UTC"
{uid_path(EXECBLOCKS[0])}.ms,3,27,0.4899,0.0,0.0,0.0,-0.537,0.0,0.0,"# field=J1147-3812 intents=CHECK,WVR origin=DB age=34.0 queried_at=2023-10-14 10:15:02 UTC"
"""
#: the weblog's listobs of the execution block (observed 2020-01-01, as the archive's t_min says)
LISTOBS = f"""================================================================================
           MeasurementSet Name:  /opt/dared/mnt/dataproc/{uid_path(EXECBLOCKS[0])}.ms      MS Version 2
================================================================================
   Observer: example     Project: {GOUS}
Observation: ALMA
Data records: 181440       Total elapsed time = 4020 seconds
   Observed from   01-Jan-2020/02:24:00.0   to   01-Jan-2020/03:31:00.0 (UTC)

   ObservationID = 0         ArrayID = 0
  Date        Timerange (UTC)          Scan  FldId FieldName             nRows     SpwIds   Average Interval(s)    ScanIntent
  01-Jan-2020/02:24:00.0 - 02:31:00.0     1      0 J1058+0133               15120  [25,27]  [6.05, 6.05] [CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE]
              02:33:00.0 - 02:34:00.0     2      1 J1126-3828                2160  [25,27]  [6.05, 6.05] [CALIBRATE_PHASE#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE]
              02:35:00.0 - 03:20:00.0     3      2 {TARGET}                   151200  [25,27]  [6.05, 6.05] [OBSERVE_TARGET#ON_SOURCE]
              03:22:00.0 - 03:24:00.0     4      3 J1147-3812                4320  [25,27]  [6.05, 6.05] [OBSERVE_CHECK_SOURCE#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE]
              03:30:00.0 - 03:31:00.0     5      1 J1126-3828                2160  [25,27]  [6.05, 6.05] [CALIBRATE_PHASE#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE]
           (nRows = Total number of rows per scan)
Fields: 4
  ID   Code Name                RA               Decl           Epoch   SrcId      nRows
  0    none J1058+0133          10:58:29.605200 +01.33.58.82400 ICRS    0          15120
  1    none J1126-3828          11:26:39.110700 -38.28.48.60000 ICRS    1           4320
  2    none {TARGET}              11:01:51.900000 -34.42.17.00000 ICRS    2         151200
  3    none J1147-3812          11:47:01.370700 -38.12.11.02300 ICRS    3           4320
Spectral Windows:  (2 unique spectral windows and 1 unique polarization setups)
  SpwID  Name                           #Chans   Frame   Ch0(MHz)  ChanWid(kHz)  TotBW(kHz) CtrFreq(MHz) BBC Num  Corrs
  25     X1#ALMA_RB_06#BB_1#SW-01#FULL_RES   3840   TOPO  229562.744       244.141    937500.0 230031.5050        1  XX  YY
  27     X1#ALMA_RB_06#BB_2#SW-01#FULL_RES    128   TOPO  231007.812     15625.000   2000000.0 231999.9995        2  XX  YY
Sources: 8
"""
#: the stages of the example's pipeline run (its casa_pipescript) with their representative score, message and
#: metric, in the AQUA layout of pipeline 2022+ (RepresentativeScore/SubScore with Metric and DataSelection)
AQUA_STAGES = [
    ("hifa_importdata", 1.0, "No missing target intent", ("MissingIntentsMark", "0", "")),
    ("hifa_flagdata", 0.94, "6.2% data flagged", ("%DataFlagged", "6.2", "%")),
    ("hifa_fluxcalflag", 1.0, "No flux calibrator lines flagged", ("FluxCalFlagged", "0", "")),
    ("hif_rawflagchans", 1.0, "No extra data flagged", ("%DataFlagged", "0.0", "%")),
    ("hif_refant", 1.0, "Reference antenna DA45 chosen", ("RefAnt", "DA45", "")),
    ("h_tsyscal", 1.0, "No Tsys channels flagged", ("TsysFlagged", "0", "")),
    ("hifa_tsysflag", 0.82, "7.5% of Tsys data flagged (DV10 high Tsys in spw 25)", ("%TsysFlagged", "7.5", "%")),
    ("hifa_antpos", 1.0, "No antenna position corrections", ("AntposCorrections", "0", "")),
    ("hifa_wvrgcalflag", 0.5, "Phase rms improvement by the WVR correction only 1.04 for uid___A002_Xf1e1d3_X1a2b.ms",
     ("PhaseRmsRatio", "1.04", "")),
    ("hif_lowgainflag", 1.0, "No antennas flagged", ("%DataFlagged", "0.0", "%")),
    ("hif_setmodels", 1.0, "Models set for the flux and bandpass calibrator", ("ModelsSet", "2", "")),
    ("hifa_bandpassflag", 0.9, "1.2% of the calibrator data flagged", ("%DataFlagged", "1.2", "%")),
    ("hifa_spwphaseup", 1.0, "Phase calibrator SNR above 32 in every spw", ("PhaseSNR", "32", "")),
    ("hifa_gfluxscaleflag", 1.0, "No outliers flagged", ("%DataFlagged", "0.0", "%")),
    ("hifa_gfluxscale", 0.95, "Check source J1147-3812 flux 1.3% from the catalogue", ("FluxRatio", "0.987", "")),
    ("hifa_timegaincal", 0.88, "Phase offsets of the check source 15.1 deg (spw 27)", ("PhaseOffset", "15.1", "deg")),
    ("hif_applycal", 0.91, "Amplitude outliers in spw 25 of DV10", ("%DataFlagged", "0.4", "%")),
    ("hifa_imageprecheck", 1.0, "Representative resolution and sensitivity achievable", ("BeamRatio", "1.02", "")),
    ("hif_makeimlist", 1.0, "Calibrator images listed", ("NImages", "4", "")),
    ("hif_makeimages", 0.85, "Calibrator images made", ("NImages", "4", "")),
    ("hif_findcont", 0.83, "Continuum found in 2 of 2 spws; spw 25 LOWBANDWIDTH", ("ContSpws", "2", "")),
    ("hif_uvcontsub", 1.0, "Continuum subtracted", ("NFits", "2", "")),
    ("hif_makeimlist", 1.0, "Target cube images listed", ("NImages", "1", "")),
    ("hif_makeimages", 0.67, "TW_Hya spw 25 cube: rms 1.02 x theoretical, strong line emission near the edge",
     ("RmsRatio", "1.02", "")),
    ("hifa_exportdata", 1.0, "Products exported", ("NProducts", "4", "")),
]
#: the pipeline's sensitivities: (field, spw, bwmode, bandwidth Hz, beam arcsec, cell arcsec, Jy/beam, is representative)
#: hifa_imageprecheck's are estimates (the representative bandwidth of spw 25, the aggregate of 25 and 27); in
#: pipelines before 2025 hif_makeimages reports its images' measured rms in the same attribute
AQUA_SENSITIVITIES = {
    "hifa_imageprecheck": [(TARGET, "25", "repBW", 24.0e6, (0.62, 0.47, 80.0), (0.1, 0.1), 1.35e-3, True),
                           (TARGET, "25,27", "aggBW", 2.23e9, (0.62, 0.47, 80.0), (0.1, 0.1), 1.1e-3, False)],
    "hif_makeimages": [(TARGET, "25", "cube", 12.0e6, (0.62, 0.47, 80.0), (0.1, 0.1), 2.05e-3, True),
                       (TARGET, "25,27", "mfs", 3.75e9, (0.62, 0.47, 80.0), (0.1, 0.1), 2.1e-3, False)],
}


def _aqua_stage(number, task, score, reason, metric) -> str:
    name, value, units = metric
    return (f'    <Stage Number="{number}" Name="{task}">\n'
            f'      <RepresentativeScore Score="{score}" Reason="{reason}">\n'
            f'        <Metric Name="{name}" Value="{value}" Units="{units}"/>\n'
            f'        <DataSelection Asdm="{uid_path(EXECBLOCKS[0])}" Session="session_1" Spw="N/A" Intent="N/A"/>\n'
            f'      </RepresentativeScore>\n'
            f'      <SubScore Score="{score}" Reason="{reason}">\n'
            f'        <Metric Name="{name}" Value="{value}" Units="{units}"/>\n'
            f'        <DataSelection Asdm="{uid_path(EXECBLOCKS[0])}" Session="session_1" Spw="N/A" Intent="N/A"/>\n'
            f'      </SubScore>\n'
            f'    </Stage>\n')


def _aqua_sensitivity(field, spw, bwmode, bandwidth, beam, cell, jy, representative) -> str:
    return (f'          <Sensitivity Array="12m" BandwidthHz="{bandwidth}" EffectiveBandwidthHz="{bandwidth}" '
            f'BeamMajArcsec="{beam[0]}" BeamMinArcsec="{beam[1]}" BeamPosAngDeg="{beam[2]}" BwMode="{bwmode}" '
            f'CellXArcsec="{cell[0]}" CellYArcsec="{cell[1]}" Intent="TARGET" Field="{field}" Robust="0.5" '
            f'UVTaper="[]" SensitivityJyPerBeam="{jy}" MsSpwId="{spw}" IsRepresentative="{representative}"/>\n')


#: the pipeline's AQUA report: the catalogue values hifa_importdata used and what hifa_gfluxscale derived
AQUA_REPORT = f"""<?xml version="1.0" ?>
<PipelineAquaReport>
  <ProjectStructure>
    <ProposalCode>{PROJECT}</ProposalCode>
    <ProcessingProcedure>hifa_calimage</ProcessingProcedure>
    <OusStatusEntityId>{MOUS}</OusStatusEntityId>
    <ExecBlockId>{EXECBLOCKS[0]}</ExecBlockId>
  </ProjectStructure>
  <QaSummary>
    <ReportDate>2023-10-14 13:40:12</ReportDate>
    <ProcessingTime>3:28:41</ProcessingTime>
    <CasaVersion>{CASA_VERSION}</CasaVersion>
    <PipelineVersion>{PIPELINE_VERSION}</PipelineVersion>
    <FinalScore>Undefined</FinalScore>
  </QaSummary>
  <QaPerStage>
{"".join(_aqua_stage(n, task, score, reason, metric) for n, (task, score, reason, metric) in enumerate(AQUA_STAGES, 1))}  </QaPerStage>
  <QaPerTopic>
    <Dataset Score="0.9">
      <FluxMeasurements>
        <FluxMeasurements Origin="hifa_importdata" Score="Undefined">
{"".join(f'          <FluxMeasurement SpwName="X1#ALMA_RB_06#BB_{1 if spw == 25 else 2}#SW-01#FULL_RES" MsSpwId="{spw}" FluxJy="{flux}" ErrorJy="" Asdm="{uid_path(EXECBLOCKS[0])}" Field="{field}" FrequencyGHz="{ghz}"/>{chr(10)}'
         for field, spw, flux, ghz in (("J1058+0133", 25, "1.291200", "230.031505"), ("J1058+0133", 27, "1.287600", "231.999999"),
                                       ("J1126-3828", 25, "0.449000", "230.031505"), ("J1126-3828", 27, "0.447200", "231.999999"),
                                       ("J1147-3812", 25, "0.492000", "230.031505"), ("J1147-3812", 27, "0.489900", "231.999999")))}        </FluxMeasurements>
      </FluxMeasurements>
      <ImageSensitivity>
        <SensitivityEstimates Origin="hifa_imageprecheck" StageNumber="18" Score="1.0">
{"".join(_aqua_sensitivity(*row) for row in AQUA_SENSITIVITIES["hifa_imageprecheck"])}        </SensitivityEstimates>
      </ImageSensitivity>
    </Dataset>
    <Calibration Score="0.95">
      <FluxMeasurements>
        <FluxMeasurements Origin="hifa_gfluxscale" Score="0.95">
{"".join(f'          <FluxMeasurement SpwName="X1#ALMA_RB_06#BB_{1 if spw == 25 else 2}#SW-01#FULL_RES" MsSpwId="{spw}" FluxJy="{flux}" ErrorJy="{err}" Asdm="{uid_path(EXECBLOCKS[0])}" Field="{field}" FrequencyGHz="{ghz}"/>{chr(10)}'
         for field, spw, flux, err, ghz in (("J1126-3828", 25, "0.399800", "0.002100", "230.031505"), ("J1126-3828", 27, "0.398200", "0.002300", "231.999999"),
                                            ("J1147-3812", 25, "0.485100", "0.003000", "230.031505"), ("J1147-3812", 27, "0.483700", "0.003400", "231.999999")))}        </FluxMeasurements>
      </FluxMeasurements>
    </Calibration>
    <Imaging Score="0.67">
      <ImageSensitivity>
        <ImageSensitivities Origin="hif_makeimages" StageNumber="24" Score="0.67">
{"".join(_aqua_sensitivity(*row) for row in AQUA_SENSITIVITIES["hif_makeimages"])}        </ImageSensitivities>
      </ImageSensitivity>
    </Imaging>
  </QaPerTopic>
</PipelineAquaReport>
"""


#: the QA2 analyst's text file of the manual (Cycle 4) calibration, one per execution block: the listobs-style
#: summary of the split MS, the spw table, fluxscale's results, the execution blocks with baselines, AR and MRS,
#: and the RMS and beam at the representative frequency (manual generation; see almatools.delivery.qa2text)
QA2_TEXT = f"""###########################################################################
 QA2 REPORT  {PROJECT}  Member ObsUnitSet {MOUS}
 Execution block {EXECBLOCKS[0]}   analyst: example   2017-03-02
###########################################################################

SUMMARY INFORMATION FOR {uid_path(EXECBLOCKS[0])}.ms.split
================================================================================
           MeasurementSet Name:  /data/{uid_path(EXECBLOCKS[0])}.ms.split      MS Version 2
================================================================================
   Observer: example     Project: {GOUS}
   Observed from   01-Jan-2017/02:24:00.0   to   01-Jan-2017/03:31:00.0 (UTC)

SCAN LISTING
  Date        Timerange (UTC)          Scan  FldId FieldName             nRows     SpwIds   Average Interval(s)    ScanIntent
  01-Jan-2017/02:24:00.0 - 02:31:00.0     1      0 J1058+0133               15120  [0,1]  [6.05, 6.05] [CALIBRATE_BANDPASS#ON_SOURCE]
              02:33:00.0 - 02:34:00.0     2      1 J1126-3828                2160  [0,1]  [6.05, 6.05] [CALIBRATE_PHASE#ON_SOURCE]
              02:35:00.0 - 02:38:00.0     3      2 Titan                     6480  [0,1]  [6.05, 6.05] [CALIBRATE_AMPLI#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE]
              02:40:00.0 - 03:20:00.0     4      3 {TARGET}                  134400  [0,1]  [6.05, 6.05] [OBSERVE_TARGET#ON_SOURCE]
              03:30:00.0 - 03:31:00.0     5      1 J1126-3828                2160  [0,1]  [6.05, 6.05] [CALIBRATE_PHASE#ON_SOURCE]

FIELD INFORMATION
Fields: 4
  ID   Code Name                RA               Decl           Epoch   SrcId      nRows
  0    none J1058+0133          10:58:29.605200 +01.33.58.82400 J2000   0          15120
  1    none J1126-3828          11:26:39.110700 -38.28.48.60000 J2000   1           4320
  2    none Titan               11:05:02.000000 +05.12.11.00000 J2000   2           6480
  3    none {TARGET}              11:01:51.900000 -34.42.17.00000 J2000   3         134400

FREQUENCY INFORMATION
 SpwID  #Chans  FirstFreq(GHz)  LastFreq(GHz)  BandWidth(MHz)  ChanWidth(MHz)  ChanWidth(km/s)  POLN
     0    3840       229.56274       230.50000         937.500         0.24414            0.318  XX YY
     1     128       231.00781       232.99219        2000.000        15.62500           20.219  XX YY

CALIBRATOR FLUX DENSITIES
 Found reference field(s): Titan
 Found transfer field(s): J1058+0133 J1126-3828
 Flux density for J1058+0133 in SpW=0 (freq=2.30031e+11 Hz) is: 1.312 +/- 0.004 (SNR = 328.0, N = 40)
 Flux density for J1058+0133 in SpW=1 (freq=2.32000e+11 Hz) is: 1.307 +/- 0.003 (SNR = 435.7, N = 40)
 Flux density for J1126-3828 in SpW=0 (freq=2.30031e+11 Hz) is: 0.4512 +/- 0.0031 (SNR = 145.5, N = 40)
 Flux density for J1126-3828 in SpW=1 (freq=2.32000e+11 Hz) is: 0.4496 +/- 0.0025 (SNR = 179.8, N = 40)

EXECUTION BLOCKS
 EB                          NAnt  Start(UTC)           End(UTC)             ToS(min)  Elev(deg)  PWV(mm)  PhaseRMS(deg)  MinBL(m)  MaxBL(m)  AR(arcsec)  MRS(arcsec)
 {uid_path(EXECBLOCKS[0])}     40  2017-01-01T02:24:00  2017-01-01T03:31:00      40.0       61.2     1.12           18.3      15.1     460.0       0.58         5.1

RMS AND BEAM SIZE AT REPRESENTATIVE FREQUENCY
 Representative frequency: 230.538 GHz (spw 0)
 Sensitivity goal: 6.0 mJy/beam over 1.0 km/s
 Angular resolution goal: 0.40 - 0.80 arcsec
 Achieved rms: 2.1 mJy/beam over 12.0 MHz
 Achieved beam: 0.62 x 0.47 arcsec, PA 80.0 deg
"""


def member_ous_dir(root: str | os.PathLike) -> Path:
    """Where :func:`build_member_ous` puts the Member OUS under *root*."""
    return (Path(root) / PROJECT / f"science_goal.{uid_path(SGOUS)}" / f"group.{uid_path(GOUS)}"
            / f"member.{uid_path(MOUS)}")


def build_member_ous(root: str | os.PathLike, kind: str = "pipeline", *, images: bool = True) -> Path:
    """Write the example Member OUS under *root* and return its directory.

    :param kind: ``"pipeline"`` (casa_pipescript, flag templates, weblog,
        CASA 6 log) or ``"manual"`` (scriptForCalibration with a CASA 4.7.2
        version pin and Titan line flags, CASA 4.7.2 log).
    :param images: also write the FITS products (needs casatools; a few seconds).
    """
    if kind not in ("pipeline", "manual"):
        raise ValueError(f"build_member_ous: kind must be 'pipeline' or 'manual', not {kind!r}")
    mous = member_ous_dir(root)
    for sub in ("calibration", "log", "product", "qa", "raw", "script"):
        (mous / sub).mkdir(parents=True, exist_ok=True)
    files = _common_files() | (_pipeline_files() if kind == "pipeline" else _manual_files())
    for relpath, text in files.items():
        atomic_write(mous / relpath, text)
    if kind == "pipeline":
        _write_weblog(mous / "qa" / f"member.{uid_path(MOUS)}.hifa_calimage.weblog.tgz")
        _write_tgz(mous / "calibration" / f"member.{uid_path(MOUS)}.hifa_calimage.auxproducts.tgz",
                   {"flux.csv": FLUX_CSV.encode()})
    if images:
        write_product_images(mous / "product")
    return mous


def _dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


M, EB = uid_path(MOUS), uid_path(EXECBLOCKS[0])
FLUX, PHASE, CHECK = CALIBRATORS["CALIBRATE_FLUX"], CALIBRATORS["CALIBRATE_PHASE"], CALIBRATORS["OBSERVE_CHECK_SOURCE"]


def _common_files() -> dict[str, str]:
    return {
        f"calibration/member.{M}.cont.dat": CONTDAT,
        f"script/member.{M}.scriptForPI.py": _dedent(f"""\
            # ALMA Data Reduction Script: restores the calibrated MSs of Member OUS {MOUS}
            # (example; the archive's scriptForPI.py is longer but does the same)
            import os, sys
            if os.path.exists('../calibrated'):
                sys.exit('ERROR: the directory ../calibrated already exists; remove or rename it first')
            os.mkdir('../calibrated')
            """),
    }


def _pipeline_files() -> dict[str, str]:
    return {
        f"member.{M}.README.txt": _dedent(f"""\
            This file describes the delivered data of ALMA project {PROJECT},
            Member ObsUnitSet {MOUS}, target {TARGET}.

            Cycle: 7
            QA2 Result: PASS
            CASA version used for reduction: {CASA_VERSION.rsplit('.', 1)[0]}
            Pipeline version used for reduction: {PIPELINE_VERSION}

            The calibrated MeasurementSets are recreated by running, in script/,
              casa --pipeline -c member.{M}.scriptForPI.py
            """),
        f"script/member.{M}.hifa_calimage.casa_pipescript.py": _dedent(f"""\
            from recipes.almahelpers import fixsyscaltimes # SACM/JAO - Fixes
            __rethrow_casa_exceptions = True
            context = h_init()
            context.set_state('ProjectSummary', 'proposal_code', '{PROJECT}')
            context.set_state('ProjectStructure', 'ous_entity_id', '{GOUS}')
            context.set_state('ProjectStructure', 'ousstatus_entity_id', '{MOUS}')
            try:
                hifa_importdata(vis=['{EB}'], dbservice=True, session=['session_1'])
                fixsyscaltimes(vis = '{EB}.ms')# SACM/JAO - Fixes
                h_save() # SACM/JAO - Finish weblog after fixes
                h_init() # SACM/JAO - Restart weblog after fixes
                hifa_importdata(vis=['{EB}'], dbservice=True, session=['session_1'])
                hifa_flagdata(pipelinemode="automatic")
                hifa_fluxcalflag(pipelinemode="automatic")
                hif_rawflagchans(pipelinemode="automatic")
                hif_refant(pipelinemode="automatic")
                h_tsyscal(pipelinemode="automatic")
                hifa_tsysflag(pipelinemode="automatic")
                hifa_antpos(pipelinemode="automatic")
                hifa_wvrgcalflag(pipelinemode="automatic")
                hif_lowgainflag(pipelinemode="automatic")
                hif_setmodels(pipelinemode="automatic")
                hifa_bandpassflag(pipelinemode="automatic")
                hifa_spwphaseup(pipelinemode="automatic")
                hifa_gfluxscaleflag(pipelinemode="automatic")
                hifa_gfluxscale(pipelinemode="automatic")
                hifa_timegaincal(pipelinemode="automatic")
                hif_applycal(pipelinemode="automatic")
                hifa_imageprecheck(pipelinemode="automatic")
                hif_makeimlist(intent='PHASE,BANDPASS,CHECK')
                hif_makeimages(pipelinemode="automatic")
                hif_findcont(pipelinemode="automatic")
                hif_uvcontsub(pipelinemode="automatic")
                hif_makeimlist(specmode='cube')
                hif_makeimages(pipelinemode="automatic")
                hifa_exportdata(pipelinemode="automatic")
            finally:
                h_save()
            """),
        f"script/member.{M}.hifa_calimage.casa_piperestorescript.py": _dedent(f"""\
            __rethrow_casa_exceptions = True
            h_init()
            try:
                hifa_restoredata (vis=['{EB}'], session=['session_1'], ocorr_mode='ca')
                hif_statwt()
            finally:
                h_save()
            """),
        f"script/PPR_{M}.xml": _dedent(f"""\
            <?xml version="1.0" encoding="UTF-8"?>
            <SciPipeRequest>
              <ProjectSummary><ProposalCode>{PROJECT}</ProposalCode></ProjectSummary>
              <ProjectStructure>{MOUS}</ProjectStructure>
              <ProcessingRequests><ProcessingRequest>
                <ProcessingProcedure><ProcedureTitle>hifa_calimage</ProcedureTitle></ProcessingProcedure>
                <DataSet><RelativePath>/opt/dared/opt/c7r1/mnt/dataproc/{M}</RelativePath></DataSet>
              </ProcessingRequest></ProcessingRequests>
            </SciPipeRequest>
            """),
        # The pipeline reads these on the next run: one QA2 line flag on the flux
        # calibrator (an absorption line the model lacks), messy as in the wild.
        f"calibration/{EB}.flagtemplate.txt": _dedent(f"""\
            # User flagging commands file for the calibration pipeline
            #
            # Examples
            # Note: Do not put spaces inside the reason string !
            #
            # mode='manual' antenna='DV10' reason='QA2:applycal_amplitude_frequency'
            mode='manual' field='{FLUX}' spw='25:230.513~230.525GHz' reason='QA2:calibrator_absorption_line'
            mode='manual' field='{FLUX}' spw='25:230.513~230.525GHz' reason='QA2:calibrator_absorption_line'
            mode='manual' antenna='DA45' reason='Tsys problems' \n\
            mode='manual' field='{TARGET}' spw='27:232.100~232.110GHz' reason='QA2:target_atmospheric_line'
            """),
        f"qa/member.{M}.hifa_calimage.pipeline_aquareport.xml": AQUA_REPORT,
        f"calibration/{EB}.flagtargetstemplate.txt": _dedent("""\
            # User flagging commands file for the imaging pipeline
            """),
        f"log/member.{M}.hifa_calimage.casa_commands.log": _dedent(f"""\
            # hifa_importdata
            importasdm(asdm='../rawdata/{EB}', vis='{EB}.ms', savecmds=True, outfile='{EB}.flagonline.txt', process_caldevice=True, asis='Antenna Station Receiver Source CalAtmosphere CalWVR CorrelatorMode SBSummary', bdfflags=True, lazy=True, ocorr_mode='ca', createmms=False)
            # hifa_fluxcalflag
            flagdata(vis='{EB}.ms', mode='list', inpfile=["mode='manual' intent='*AMPLI*' spw='25:230.531~230.541GHz' reason='Titan_CO_line'"], action='apply', flagbackup=False, savepars=False)
            # hif_makeimages
            tclean(vis=['{EB}.ms'], field='{TARGET}', spw=['25'], specmode='cube', imsize=[64, 64], cell=['0.1arcsec'], restfreq=['230.538GHz'], parallel=False)
            """),
        "log/casa-20231014-101231.log": _dedent(f"""\
            2023-10-14 10:12:31\tINFO\t::casa\t
            2023-10-14 10:12:31\tINFO\t::casa\tPython version 3.8.10
            2023-10-14 10:12:31\tINFO\t::casa\tCASA Version PIPELINE {CASA_VERSION}
            2023-10-14 10:12:31\tINFO\t::casa\t  Descriptive Version 6.5.4.9-pipeline-{PIPELINE_VERSION}
            2023-10-14 10:12:35\tINFO\th_init::pipeline.infrastructure.launcher::casa\tPipeline version {PIPELINE_VERSION} running on cvpost042
            2023-10-14 10:15:02\tINFO\thifa_importdata::casa\t##### Begin Task: importasdm #####
            2023-10-14 11:40:10\tINFO\thif_applycal::casa\t##### Begin Task: applycal #####
            2023-10-14 13:02:44\tINFO\thif_makeimages::casa\t##### Begin Task: tclean #####
            """),
    }


def _manual_files() -> dict[str, str]:
    version = MANUAL_CASA_VERSION
    return {
        f"member.{M}.README.txt": _dedent(f"""\
            ALMA project {PROJECT}, Member ObsUnitSet {MOUS}
            Cycle: 4
            QA2 Result: PASS
            CASA version used for reduction: {version}
            The calibrated data are recreated with: casa -c member.{M}.scriptForPI.py (in script/)
            """),
        # A generated manual calibration script, Python 2 as delivered; the Titan
        # line flags sit in "Initial flagging" under the generator's misleading title.
        f"script/{EB}.ms.scriptForCalibration.py": _dedent(f"""\
            # ALMA Data Reduction Script

            # Created using $Id: almaqa2csg.py,v 1.13 2017/01/12 17:31:10 dpetry Exp $

            thesteps = []
            step_title = {{0: 'Import of the ASDM',
                          1: 'Fix of SYSCAL table times',
                          2: 'listobs',
                          3: 'A priori flagging',
                          4: 'Generation and time averaging of the WVR cal table',
                          5: 'Generation of the Tsys cal table',
                          6: 'Generation of the antenna position cal table',
                          7: 'Application of the WVR, Tsys and antpos cal tables',
                          8: 'Split out science SPWs and time average',
                          9: 'Listobs, clear pointing table, and save original flags',
                          10: 'Initial flagging',
                          11: 'Putting a model for the flux calibrator(s)',
                          12: 'Save flags before bandpass cal',
                          13: 'Bandpass calibration',
                          14: 'Save flags before gain cal',
                          15: 'Gain calibration',
                          16: 'Save flags before applycal',
                          17: 'Application of the bandpass and gain cal tables',
                          18: 'Split out corrected column',
                          19: 'Save flags after applycal'}}

            try:
              print 'List of steps to be executed ...', mysteps
              thesteps = mysteps
            except:
              print 'global variable mysteps not set.'
            if (thesteps==[]):
              thesteps = range(0,len(step_title))
              print 'Executing all steps: ', thesteps

            # The Python variable 'mysteps' will control which steps
            # are executed when you start the script using
            #   execfile('scriptForCalibration.py')

            import re

            if re.search('^{version}', casadef.casa_version) == None:
             sys.exit('ERROR: PLEASE USE THE SAME VERSION OF CASA THAT YOU USED FOR GENERATING THE SCRIPT: {version}')

            # CALIBRATE_AMPLI: Titan
            # CALIBRATE_ATMOSPHERE: {PHASE},J1058+0133,TW_Hya,Titan
            # CALIBRATE_BANDPASS: J1058+0133
            # CALIBRATE_FLUX: Titan
            # CALIBRATE_PHASE: {PHASE}
            # CALIBRATE_WVR: {PHASE},J1058+0133,TW_Hya,Titan
            # OBSERVE_TARGET: {TARGET}

            # Using reference antenna = DA45

            # Initial flagging
            mystep = 10
            if(mystep in thesteps):
              casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
              print 'Step ', mystep, step_title[mystep]

              # Flagging shadowed data

              flagdata(vis = '{EB}.ms.split',
                mode = 'shadow',
                flagbackup = F)

              # Flagging atmospheric line(s)

              flagdata(vis = '{EB}.ms.split',
                mode = 'manual',
                spw = '0:1905~1935',
                field = '2', #Titan
                flagbackup = F)

              # Flagging edge channels

              flagdata(vis = '{EB}.ms.split.tsys',
                mode = 'manual',
                spw = '9:0~3;124~127',
                flagbackup = F)

            # Putting a model for the flux calibrator(s)
            mystep = 11
            if(mystep in thesteps):
              casalog.post('Step '+str(mystep)+' '+step_title[mystep],'INFO')
              print 'Step ', mystep, step_title[mystep]

              setjy(vis = '{EB}.ms.split',
                field = '2', # Titan
                spw = '0,1',
                standard = 'Butler-JPL-Horizons 2012')
            """),
        "script/scriptForImaging.py": _dedent(f"""\
            # ALMA imaging script for {TARGET}
            import re
            if casadef.casa_version < '{version}' :
                sys.exit('Please use CASA version greater than or equal to {version} with this script')
            tclean(vis='calibrated_final.ms', imagename='{TARGET}_CO21', field='{TARGET}', specmode='cube')
            """),
        f"qa/{EB}.ms.split.qa2_textfile.txt": QA2_TEXT,
        "log/casa-20170302-101010.log": _dedent(f"""\
            2017-03-02 10:10:10\tINFO\tcasa::::\tCASA Version {version}-REL (r39762)
            2017-03-02 10:10:10\tINFO\tcasa::::\t  Descriptive Version 4.7.2-REL (r39762)
            2017-03-02 10:11:02\tINFO\tflagdata::::\t##### Begin Task: flagdata #####
            2017-03-02 10:20:40\tINFO\tbandpass::::\t##### Begin Task: bandpass #####
            """),
    }


def _write_weblog(path: Path) -> None:
    """A weblog archive whose home page (html/t1-1.html) names the CASA and pipeline versions."""
    page = _dedent(f"""\
        <html><head><title>Pipeline Weblog: {PROJECT}</title></head><body>
        <table class="table">
        <tr><th>Project</th><td>{PROJECT}</td></tr>
        <tr><th>OUS Status Entity id</th><td>{MOUS}</td></tr>
        <tr><th>CASA Version</th><td>{CASA_VERSION}</td></tr>
        <tr><th>Pipeline Version</th><td>{PIPELINE_VERSION} (Pipeline-CASA65-P1-B)</td></tr>
        </table></body></html>
        """).encode()
    _write_tgz(path, {"pipeline-20231014T101231/html/t1-1.html": page,
                      f"pipeline-20231014T101231/html/sessionsession_1/{EB}.ms/listobs.txt": LISTOBS.encode()})


def _write_tgz(path: Path, members: dict[str, bytes]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1697278351
            tar.addfile(info, io.BytesIO(data))
    atomic_write(path, buffer.getvalue())


def product_names() -> dict[str, str]:
    """File names of the product images (cube and continuum) and their primary beams."""
    stem = f"member.{M}.{TARGET}_sci"
    return {"cube": f"{stem}.spw25.cube.I.pbcor.fits", "mfs": f"{stem}.spw25_27.mfs.I.pbcor.fits",
            "cube_pb": f"{stem}.spw25.cube.I.pb.fits.gz", "mfs_pb": f"{stem}.spw25_27.mfs.I.pb.fits.gz"}


def primary_beam(shape: tuple[int, int]):
    """The products' primary beam: a Gaussian falling to 0.2 (the pipeline's pblimit) at ``pb_radius_pix``."""
    import numpy as np
    c = CUBE
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    r2 = (x - shape[1] // 2) ** 2 + (y - shape[0] // 2) ** 2
    return np.exp(np.log(0.2) * r2 / c["pb_radius_pix"] ** 2)


def write_product_images(product: Path) -> dict[str, Path]:
    """The pbcor cube (per-plane beams → FITS BEAMS table) and continuum image, in Jy/beam, and their pbs.

    A Gaussian source the size of the beam: continuum plus a Gaussian CO line, and noise that is
    white before the primary-beam correction (so it grows as 1/pb in the pbcor images), blanked
    (NaN) outside the pb = 0.2 radius as pipeline pbcor products are; the pbs as gzipped FITS.
    """
    import numpy as np
    from .casaenv import casatools
    ct = casatools()
    c = CUBE
    names = product_names()
    rng = np.random.default_rng(c["seed"])
    y, x = np.mgrid[0:c["ny"], 0:c["nx"]]
    r2 = (x - c["nx"] // 2) ** 2 + (y - c["ny"] // 2) ** 2
    outside = r2 > c["pb_radius_pix"] ** 2
    pb = primary_beam((c["ny"], c["nx"]))
    freqs = c["freq0_hz"] + c["width_hz"] * np.arange(c["nchan"])
    out = {}
    for kind, nchan in (("cube", c["nchan"]), ("mfs", 1)):
        scale = freqs[0] / freqs[:nchan] if kind == "cube" else np.array([1.0])
        planes = np.empty((c["nx"], c["ny"], nchan, 1))
        for k in range(nchan):
            bmaj, bmin = c["beam_major_arcsec"] * scale[k], c["beam_minor_arcsec"] * scale[k]
            sx, sy = bmaj / c["cell_arcsec"] / 2.3548, bmin / c["cell_arcsec"] / 2.3548
            shape = np.exp(-0.5 * ((x - c["nx"] // 2) ** 2 / sx ** 2 + (y - c["ny"] // 2) ** 2 / sy ** 2))
            line = c["line_peak_jy"] * np.exp(-4 * np.log(2) * ((freqs[k] - c["line_hz"]) / c["line_fwhm_hz"]) ** 2)
            amp = c["continuum_jy"] + (line if kind == "cube" else 0.0)
            plane = amp * shape + rng.normal(0, c["noise_jy"], shape.shape) / pb
            plane[outside] = np.nan
            planes[:, :, k, 0] = plane.T  # CASA arrays are [x, y, ...]
        freq0, width = (freqs[0], c["width_hz"]) if kind == "cube" else (231.0e9, 3.75e9)
        out[kind] = _to_fits(ct, product / names[kind], planes, freq0, width, scale)
        pbs = np.where(outside, np.nan, pb).T[:, :, None, None] * np.ones((1, 1, nchan, 1))
        out[f"{kind}_pb"] = _to_fits(ct, product / names[f"{kind}_pb"], pbs, freq0, width, None)
    return out


def _to_fits(ct, path: Path, planes, freq0_hz: float, width_hz: float, beam_scale) -> Path:
    import numpy as np
    c = CUBE
    cs, ia, me = ct.coordsys(), ct.image(), ct.measures()
    tmpdir = path.with_name(path.name + ".tmpdir")
    csys = cs.newcoordsys(direction=True, spectral=True, stokes=["I"])
    try:
        csys.transpose([0, 1, 3, 2])  # RA, Dec, Freq, Stokes as in ALMA products
        ra = me.direction(*TARGET_DIRECTION)
        csys.setreferencevalue([ra["m0"]["value"], ra["m1"]["value"], freq0_hz, 1])
        csys.setunits(["rad", "rad", "Hz", ""])
        cell = np.deg2rad(c["cell_arcsec"] / 3600)
        csys.setincrement([-cell, cell, width_hz, 1])
        csys.setreferencepixel([c["nx"] // 2, c["ny"] // 2, 0, 0])
        csys.setconversiontype(spectral="LSRK")
        csys.setrestfrequency(f"{c['restfreq_hz']}Hz")
        csys.setobserver("demo")
        csys.settelescope("ALMA")
        tmpdir.mkdir(exist_ok=True)
        image = str(tmpdir / "image")
        ia.fromarray(outfile=image, pixels=planes, csys=csys.torecord(), overwrite=True)
        ia.calcmask(mask=f"!ISNAN('{image}')", name="pbmask")  # pbcor products mask beyond the PB cut
        ia.setbrightnessunit("Jy/beam" if beam_scale is not None else "")
        if beam_scale is None:  # a primary beam: no restoring beam
            pass
        elif planes.shape[2] > 1:
            for k, s in enumerate(beam_scale):
                ia.setrestoringbeam(major=f"{c['beam_major_arcsec'] * s}arcsec",
                                    minor=f"{c['beam_minor_arcsec'] * s}arcsec",
                                    pa=f"{c['beam_pa_deg']}deg", channel=k, polarization=0)
        else:
            ia.setrestoringbeam(major=f"{c['beam_major_arcsec']}arcsec", minor=f"{c['beam_minor_arcsec']}arcsec",
                                pa=f"{c['beam_pa_deg']}deg")
        ia.sethistory(origin="almatools.example", history=["embedded example product image"])
        tmp_fits = str(tmpdir / path.name.removesuffix(".gz"))
        ia.tofits(outfile=tmp_fits, velocity=False, overwrite=True)
        ia.close()
        if path.name.endswith(".gz"):  # the pipeline gzips pb and mask images
            import gzip
            with open(tmp_fits, "rb") as src, gzip.GzipFile(tmp_fits + ".gz", "wb", mtime=0) as dst:
                shutil.copyfileobj(src, dst)
            tmp_fits += ".gz"
        os.replace(tmp_fits, path)
    finally:
        ia.done()
        csys.done()
        cs.done()
        me.done()
        shutil.rmtree(tmpdir, ignore_errors=True)
    return path
