"""The emulator's ``ivoa.obscore``: ALMA's columns and a realistic, seeded catalogue of Member OUS.

Columns, order, units, UCDs and utypes are those of the real archive (DOMAIN.md §1.2; the
FIELDs of astroquery's recorded responses ``alma-onerow.txt`` and ``alma-shapes.xml``), plus
``pi_name``.  Rows are what the archive holds: **one row per Member OUS, target and spectral
window** (astroquery issue #2156) — the rows of one target differ in ``em_min``/``em_max``,
``em_res_power``, ``bandwidth``, ``spectral_resolution`` and ``sensitivity_10kms`` (their own
window) while ``frequency_support`` lists the whole correlator set-up on each, and
``frequency`` is the middle of the set-up's span (between the two sidebands for most set-ups).

The set-ups follow ALMA's correlator: 4 (up to 16) windows of 1.875 GHz … 58.6 MHz with
their channel spacings, placed in the sidebands of each band's IF range (Bands 1–10);
12 m, 7 m and total-power antennas; single pointings and mosaics (STC-S polygons); public and
proprietary data; calibrator-only rows; projects with and without publications.  The
generator is seeded, so every run publishes the same rows; next to it stand the hand-written
Member OUS the other archive tests and the demo rely on (the embedded example, astroquery's
recorded M83 row, a 7 m Orion project, a proprietary project, the recorded DataLink MOUS).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from almatools import example as ex

__all__ = ["Column", "COLUMNS", "RECORDED_MOUS", "member_ouses", "C"]

C = 299792458.0
RECORDED_MOUS = "uid://A001/X12a3/Xe9"  # astroquery's recorded DataLink responses


@dataclass(frozen=True)
class Column:
    name: str
    dbtype: str
    unit: str = ""
    ucd: str = ""
    utype: str = ""
    description: str = ""
    xtype: str = ""


def _c(name, dbtype="unicode", unit="", ucd="", utype="", description="", xtype=""):
    return Column(name, dbtype, unit, ucd, utype and f"obscore:{utype}", description, xtype)


D = "double precision"
#: the published columns, in the order the archive returns them (alma-onerow.txt), pi_name last
COLUMNS = [
    _c("obs_publisher_did", ucd="meta.ref.ivoid", utype="Curation.PublisherDID",
       description="publisher dataset identifier"),
    _c("obs_collection", ucd="meta.id", utype="DataID.Collection", description="short name for the data collection"),
    _c("facility_name", ucd="meta.id;instr.tel", utype="Provenance.ObsConfig.Facility.name",
       description="telescope name"),
    _c("instrument_name", ucd="meta.id;instr", utype="Provenance.ObsConfig.Instrument.name",
       description="instrument name"),
    _c("obs_id", ucd="meta.id", utype="DataID.observationID", description="internal dataset identifier"),
    _c("dataproduct_type", ucd="meta.id", utype="ObsDataset.dataProductType", description="type of product"),
    _c("calib_level", "integer", ucd="meta.code;obs.calib", utype="ObsDataset.calibLevel",
       description="calibration level (2 or 3). 2 if product_type = MOUS, 3 if product_type = GOUS"),
    _c("target_name", ucd="meta.id;src", utype="Target.Name", description="name of intended target"),
    _c("s_ra", D, "deg", "pos.eq.ra", "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C1",
       "RA of central coordinates"),
    _c("s_dec", D, "deg", "pos.eq.dec", "Char.SpatialAxis.Coverage.Location.Coord.Position2D.Value2.C2",
       "DEC of central coordinates"),
    _c("s_fov", D, "deg", "phys.angSize;instr.fov", "Char.SpatialAxis.Coverage.Bounds.Extent.diameter",
       "size of the region covered (~diameter of minimum bounding circle)"),
    _c("s_region", "spoly", "deg", "pos.outline;obs.field", "Char.SpatialAxis.Coverage.Support.Area",
       "region bounded by observation", "adql:REGION"),
    _c("s_resolution", D, "arcsec", "pos.angResolution", "Char.SpatialAxis.Resolution.Refval.value",
       "typical spatial resolution"),
    _c("t_min", D, "d", "time.start;obs.exposure", "Char.TimeAxis.Coverage.Bounds.Limits.StartTime",
       "start time of observation (MJD)"),
    _c("t_max", D, "d", "time.end;obs.exposure", "Char.TimeAxis.Coverage.Bounds.Limits.StopTime",
       "end time of observation (MJD)"),
    _c("t_exptime", D, "s", "time.duration;obs.exposure", "Char.TimeAxis.Coverage.Support.Extent",
       "exposure time of observation"),
    _c("t_resolution", D, "s", "time.resolution", "Char.TimeAxis.Resolution.Refval.value",
       "typical temporal resolution"),
    _c("em_min", D, "m", "em.wl;stat.min", "Char.SpectralAxis.Coverage.Bounds.Limits.LoLimit",
       "start spectral coordinate value"),
    _c("em_max", D, "m", "em.wl;stat.max", "Char.SpectralAxis.Coverage.Bounds.Limits.HiLimit",
       "stop spectral coordinate value"),
    _c("em_res_power", D, "", "spect.resolution", "Char.SpectralAxis.Resolution.ResolPower.refVal",
       "typical spectral resolution"),
    _c("pol_states", ucd="meta.code;phys.polarization", utype="Char.PolarizationAxis.stateList",
       description="polarization states present in the data"),
    _c("o_ucd", ucd="meta.ucd", utype="Char.ObservableAxis.ucd",
       description="UCD describing the observable axis (pixel values)"),
    _c("access_url", ucd="meta.ref.url", utype="Access.Reference", description="URL to download the data"),
    _c("access_format", ucd="meta.code.mime", utype="Access.Format", description="Content format of the data"),
    _c("proposal_id", ucd="meta.id;obs.proposal", utype="Provenance.Proposal.identifier",
       description="Identifier of proposal to which NO observation belongs."),
    _c("data_rights", ucd="meta.code", utype="Curation.Rights", description="Access to data."),
    _c("gal_longitude", D, "deg", "pos.galactic.lon", description="Galactic longitude of the observation for RA/Dec"),
    _c("gal_latitude", D, "deg", "pos.galactic.lat", description="Galactic latitude of the observation for RA/Dec"),
    _c("band_list", ucd="instr.bandpass", description="Space delimited list of bands"),
    _c("em_resolution", D, "m", "em.wl;spect.resolution", "Char.SpectralAxis.Resolution.Refval.value",
       "Estimated frequency resolution from all the spectral windows, using median values of channel widths."),
    _c("bandwidth", D, "Hz", "instr.bandwidth", description="Total Bandwidth"),
    _c("antenna_arrays", ucd="instr.setup", description="Blank-separated list of Pad:Antenna pairs"),
    _c("is_mosaic", ucd="meta.code", description="Flag to indicate if this ASDM represents a mosaic or not."),
    _c("obs_release_date", ucd="time.release", utype="Curation.releaseDate",
       description="timestamp of date the data becomes publicly available"),
    _c("spatial_resolution", D, "arcsec", "pos.angResolution",
       description="Average of the maximum and minimum spatial resolution values of all spectral windows"),
    _c("frequency_support", unit="GHz", ucd="em.freq;obs.param", description="All frequency ranges used by the field"),
    _c("frequency", D, "GHz", "em.freq;obs;meta.main", "Char.SpectralAxis.Coverage.Location.refval",
       "Observed (tuned) reference frequency on the sky."),
    _c("velocity_resolution", D, "m/s", "spect.resolution;phys.veloc",
       description="Estimated velocity resolution from all the spectral windows, from frequency resolution."),
    _c("obs_creator_name", ucd="meta.id;obs.observer", utype="DataID.Creator",
       description="case-insensitive partial match over the full PI name. Wildcards can be used"),
    _c("pub_title", ucd="meta.title", description="Case insensitive search through the title of the publication."),
    _c("first_author", ucd="meta.bib.author", description="The first author as provided by telbib.eso.org."),
    _c("authors", ucd="meta.bib.author", description="Full list of first author and all co-authors"),
    _c("pub_abstract", ucd="meta.note", description="Case insensitive text search through the abstract of the publication."),
    _c("publication_year", "integer", ucd="time.epoch;meta.bib",
       description="The year the publication did appear in the printed version of the refereed journal."),
    _c("proposal_abstract", ucd="meta.note;obs.proposal", description="Text search on the proposal abstract."),
    _c("schedblock_name", ucd="meta.id;obs.sequence",
       description="Name of the Scheduling Block used as a template for executing the ASDM containing this Field."),
    _c("proposal_authors", ucd="meta.id;obs.observer", description="Full name of CoIs ."),
    _c("sensitivity_10kms", D, "mJy/beam", "stat.error;phot.flux.density",
       description="Estimated noise in an nominal 10km/s bandwidth."),
    _c("cont_sensitivity_bandwidth", D, "mJy/beam", "stat.error;phot.flux.density;em.freq",
       description="Estimated noise in the aggregated continuum bandwidth."),
    _c("pwv", D, "mm", "obs.atmos.water", description="Estimated precipitable water vapour from the XML_CALWVR_ENTITIES table."),
    _c("group_ous_uid", ucd="meta.id.parent", description="Group OUS ID"),
    _c("member_ous_uid", ucd="meta.id", description="Member OUS ID"),
    _c("asdm_uid", ucd="meta.id", description="UID of the ASDM containing this Field."),
    _c("obs_title", ucd="meta.title;obs", utype="DataID.Title",
       description="Case-insensitive search over the project title"),
    _c("type", ucd="meta.code", description="Type flags."),
    _c("scan_intent", ucd="obs.param", description="Scan intent list for the observed field."),
    _c("science_observation", ucd="meta.code", description="Flag to indicate whether this is a science observation."),
    _c("spatial_scale_max", D, "arcsec", "phys.angSize;stat.max", description="Largest angular scale"),
    _c("qa2_passed", ucd="meta.code.qual",
       description="Quality Assessment 2 status: does the Member / Group OUS fulfil the PI's requirements?"),
    _c("bib_reference", ucd="meta.bib.bibcode", description="Bibliography code"),
    _c("science_keyword", ucd="meta.note", description="Science keyword"),
    _c("scientific_category", ucd="meta.note", description="Scientific category"),
    _c("spectral_resolution", D, "Hz", "spect.resolution;em.freq", description="Spectral resolution (channel width)"),
    _c("lastModified", ucd="time.processing", description="Time stamp of last modification of the metadata"),
    _c("pi_name", ucd="meta.id;obs.observer", description="Principal investigator"),
]


# -------------------------------------------------------------------------------------- correlator

#: band → (low, high) edges in GHz and the IF range (GHz) of its receivers; 'ssb'/'dsb' as built
BANDS = {
    1: (35.0, 50.0, (4.0, 12.0), "ssb"), 2: (67.0, 90.0, (4.0, 12.0), "2sb"), 3: (84.0, 116.0, (4.0, 8.0), "2sb"),
    4: (125.0, 163.0, (4.0, 8.0), "2sb"), 5: (163.0, 211.0, (4.0, 8.0), "2sb"), 6: (211.0, 275.0, (5.0, 10.0), "2sb"),
    7: (275.0, 373.0, (4.0, 8.0), "2sb"), 8: (385.0, 500.0, (4.0, 8.0), "2sb"), 9: (602.0, 720.0, (4.0, 12.0), "dsb"),
    10: (787.0, 950.0, (4.0, 12.0), "dsb"),
}
#: correlator windows: (bandwidth GHz, channel spacing kHz) — TDM 128 channels, FDM 3840 (or averaged)
TDM = (1.875, 15625.0)
FDM = [(1.875, 488.28125), (1.875, 976.5625), (1.875, 1953.125), (0.9375, 244.140625), (0.46875, 122.0703125),
       (0.234375, 61.03515625), (0.1171875, 30.517578125), (0.05859375, 15.2587890625)]


@dataclass
class SpectralWindow:
    spw: int
    lo: float   # GHz, exact edges (em_min/em_max come from these)
    hi: float
    res_khz: float
    line_mjy: float   # sensitivity at 10 km/s
    native_mjy: float  # sensitivity at native resolution

    def support(self, pols: str, with_sensitivity: bool = True) -> str:
        parts = [f"{self.lo:.2f}..{self.hi:.2f}GHz", f"{self.res_khz:.2f}kHz"]
        if with_sensitivity:
            parts += [f"{_mjy(self.line_mjy)}@10km/s", f"{_mjy(self.native_mjy)}@native"]
        return "[" + ",".join(parts) + f", {pols}]"


def _mjy(value: float) -> str:
    """8 → '8mJy/beam', 9.94 → '9.9mJy/beam', 0.3602 → '360.2uJy/beam' (the archive's spelling)."""
    if value < 1.0:
        return f"{round(value * 1e3, 1):g}uJy/beam"
    return f"{round(value, 1):g}mJy/beam"


def _setup(rng: random.Random, band: int, nspw: int, array: str) -> list[SpectralWindow]:
    """A tuning: *nspw* windows in the sidebands of *band*'s IF, inside the band's edges."""
    lo_edge, hi_edge, (if_lo, if_hi), kind = BANDS[band]
    lo_lo = lo_edge + if_hi if kind != "ssb" else lo_edge - if_lo
    lo_hi = hi_edge - if_hi if kind != "ssb" else hi_edge - if_hi
    lo_freq = rng.uniform(min(lo_lo, lo_hi), max(lo_lo, lo_hi))
    doppler = 1 - rng.uniform(0, 40e3) / C  # windows are set in the source frame: edges are never round
    sidebands = [+1] * nspw if kind == "ssb" or rng.random() < 0.15 else \
        [(-1 if k < (nspw + 1) // 2 else +1) for k in range(nspw)]
    windows = []
    tdm = array == "7m" and rng.random() < 0.3 or rng.random() < 0.25
    spw_ids = [17 + 2 * k for k in range(nspw)] if rng.random() < 0.5 else [25 + 2 * k for k in range(nspw)]
    per_side: dict[int, int] = {}
    for k, side in enumerate(sidebands):
        bw, chan = TDM if tdm else (FDM[0] if k % 2 else rng.choice(FDM))
        n_on_side = per_side.get(side, 0)
        per_side[side] = n_on_side + 1
        slots = max(1, sidebands.count(side))
        span = if_hi - if_lo
        offset = if_lo + span * (n_on_side + 0.5) / slots + rng.uniform(-0.2, 0.2) * span / slots
        centre = (lo_freq + side * offset) * doppler
        centre = min(max(centre, lo_edge + bw / 2), hi_edge - bw / 2)
        res = chan * doppler * (2.0 if tdm else 1.0)  # TDM resolution: twice the channel spacing
        line = rng.uniform(0.4, 12.0) * (band / 3.0) ** 0.5
        windows.append(SpectralWindow(spw_ids[k], centre - bw / 2 * 1.0027, centre + bw / 2 * 1.0027, res, line,
                                      line * math.sqrt(10.0 / max(res * 1e3 / (centre * 1e9) * C / 1e3, 1e-3))))
    return sorted(windows, key=lambda w: w.lo)


# ---------------------------------------------------------------------------------------- people & text

SURNAMES = ["Andrews", "Cortés", "Dunham", "Fujii", "García", "Hacar", "Jørgensen", "Kóspál", "Leroy", "Matsushita",
            "Nakanishi", "O'Brien", "Pérez", "Qi", "Rosolowsky", "Sakai", "Tobin", "Umemoto", "van Dishoeck",
            "Walsh", "Xue", "Yen", "Zhang", "Bolatto", "Carilli", "Hodge", "Ginsburg", "Ohashi"]
GIVEN = ["Sean", "Paula", "Michael", "Yuki", "Laura", "Alvaro", "Jes", "Ágnes", "Adam", "Satoki", "Kouichiro",
         "Ciara", "Laura", "Chunhua", "Erik", "Nami", "John", "Tomomi", "Ewine", "Catherine", "Li", "Hsi-Wei", "Qizhou",
         "Alberto", "Chris", "Jacqueline", "Adam", "Nagayoshi"]
SUBJECTS = [
    ("Disks around low-mass stars", "Disks and planet formation", "protoplanetary disk", "dust rings and gaps"),
    ("Low-mass star formation", "Star formation and star formation regions", "protostellar envelope", "outflows"),
    ("High-mass star formation", "Star formation and star formation regions", "hot core", "fragmentation"),
    ("Astrochemistry", "ISM and star formation", "complex organic molecules", "deuteration"),
    ("Giant Molecular Clouds (GMC) properties", "Local Universe", "molecular clouds", "CO(1-0) mapping"),
    ("Active Galactic Nuclei (AGN)/Quasars (QSO)", "Galaxies and galactic nuclei", "circumnuclear disk",
     "dense gas tracers"),
    ("Sub-mm Galaxies (SMG)", "Cosmology and the high redshift universe", "dusty star-forming galaxies",
     "[CII] 158 um"),
    ("Solar system - Planetary atmospheres", "Solar system, Sun, stellar evolution", "planetary atmosphere",
     "HCN winds"),
    ("Evolved stars - Shaping/physical structure", "Stars and stellar evolution", "AGB envelope", "SiO masers"),
    ("Galaxy chemistry", "Galaxies and galactic nuclei", "starburst nucleus", "line survey"),
]
TARGETS = [("Orion_KL", 83.8221, -5.3911), ("HL_Tau", 67.9102, 18.2327), ("IRAS_16293-2422", 248.0946, -24.4758),
           ("NGC_1068", 40.6696, -0.0133), ("Sgr_B2", 266.8346, -28.3850), ("SDP.81", 135.3716, 0.6836),
           ("Elias_2-27", 246.7946, -24.6786), ("AS_209", 251.7114, -14.2735), ("NGC_253", 11.8880, -25.2883),
           ("IRC+10216", 146.9892, 13.2787), ("G0.253+0.016", 266.5813, -28.7417), ("Titan", 5.0, 10.0),
           ("HD_163296", 269.0887, -21.9562), ("W51e2", 290.9333, 14.5096), ("Arp220", 233.7384, 23.5032),
           ("SPT0346-52", 56.7012, -52.0787), ("M83_center", 204.2537, -29.8657), ("VY_CMa", 110.7430, -25.7675),
           ("GW_Lup", 237.3617, -34.3079), ("Serpens_Main", 277.4550, 1.2530), ("NGC_1333_IRAS4A", 52.2939, 31.2255),
           ("CenA", 201.3651, -43.0191), ("BHR71", 180.3950, -65.1470), ("L1527", 69.9740, 26.0527)]
CALIBRATORS = [("J0423-0120", 65.8158, -1.3425), ("J1256-0547", 194.0465, -5.7893), ("J1924-2914", 291.2127, -29.2417),
               ("J0510+1800", 77.5099, 18.0116), ("J1427-4206", 216.9846, -42.1054)]

PROJECT_TYPES = ["S", "S", "S", "S", "L", "T", "A", "V"]


def _pads(rng: random.Random, array: str) -> str:
    """antenna_arrays: pad:antenna pairs (DA/DV 12 m, CM 7 m, PM total power)."""
    if array == "12m":
        names = [f"DA{n}" for n in range(41, 66)] + [f"DV{n:02d}" for n in range(1, 26)]
        chosen = sorted(rng.sample(names, rng.randint(38, 46)))
        return " ".join(f"A{k + 1:03d}:{a}" for k, a in enumerate(chosen))
    if array == "7m":
        chosen = sorted(rng.sample([f"CM{n:02d}" for n in range(1, 13)], rng.randint(9, 11)))
        return " ".join(f"J{501 + k}:{a}" for k, a in enumerate(chosen))
    chosen = sorted(rng.sample([f"PM0{n}" for n in range(1, 5)], rng.randint(2, 4)))
    return " ".join(f"T{701 + k}:{a}" for k, a in enumerate(chosen))


def _polygon(ra: float, dec: float, rx: float, ry: float, rotation: float, n: int) -> str:
    """An STC-S polygon of *n* vertices on an ellipse of half-axes rx, ry (deg) around (ra, dec)."""
    cosd = max(math.cos(math.radians(dec)), 1e-6)
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        x, y = rx * math.cos(a), ry * math.sin(a)
        xr = x * math.cos(rotation) - y * math.sin(rotation)
        yr = x * math.sin(rotation) + y * math.cos(rotation)
        pts.append(f"{(ra + xr / cosd) % 360:.6f} {dec + yr:.6f}")
    return "Polygon ICRS " + " ".join(pts)


def _mjd(year: int, day_of_year: float) -> float:
    return 51544.0 + (year - 2000) * 365.25 + day_of_year  # MJD of 2000-01-01 is 51544


def _iso_from_mjd(mjd: float) -> str:
    from datetime import datetime, timedelta
    t = datetime(1858, 11, 17) + timedelta(days=mjd)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}"


def _galactic(ra: float, dec: float) -> tuple[float, float]:
    """Galactic coordinates (IAU 1958 pole, J2000) by the textbook rotation — no astropy at import."""
    ra_p, dec_p, l_ncp = math.radians(192.85948), math.radians(27.12825), math.radians(122.93192)
    a, d = math.radians(ra), math.radians(dec)
    sinb = math.sin(d) * math.sin(dec_p) + math.cos(d) * math.cos(dec_p) * math.cos(a - ra_p)
    b = math.asin(max(-1.0, min(1.0, sinb)))
    y = math.cos(d) * math.sin(a - ra_p)
    x = math.sin(d) * math.cos(dec_p) - math.cos(d) * math.sin(dec_p) * math.cos(a - ra_p)
    lon = (l_ncp - math.atan2(y, x)) % (2 * math.pi)
    return math.degrees(lon), math.degrees(b)


# ------------------------------------------------------------------------------------------- rows

def _rows(mous: dict, targets: list[tuple], windows: list[SpectralWindow], *, band: int, array: str, rng,
          science: bool = True, with_sensitivity: bool = True, mosaic: bool = False, pols: str = "XX YY") -> list[dict]:
    """The rows of one Member OUS: one per target and window, sharing the set-up's frequency_support."""
    support = " U ".join(w.support(pols, with_sensitivity) for w in windows)
    span_lo, span_hi = windows[0].lo, max(w.hi for w in windows)
    centre = (span_lo + span_hi) / 2
    finest = min(windows, key=lambda w: w.res_khz)
    dish = {"12m": 12.0, "7m": 7.0, "TP": 12.0}[array]
    fwhm_deg = 1.13 * C / (centre * 1e9) / dish * 180 / math.pi
    resolution = {"12m": rng.choice([0.05, 0.1, 0.3, 0.6, 1.2]), "7m": rng.uniform(3.0, 7.0),
                  "TP": fwhm_deg * 3600}[array] * (230.0 / centre) ** (0.3 if array == "12m" else 1.0)
    las = {"12m": resolution * rng.uniform(6, 12), "7m": resolution * 4.0, "TP": fwhm_deg * 3600 * 8}[array]
    t_min = _mjd(mous["cycle_year"] + 1, rng.uniform(30, 330)) + rng.random()
    exptime = round(rng.uniform(120, 7200), 2)
    cont = min(w.line_mjy for w in windows) / math.sqrt(sum(w.hi - w.lo for w in windows) / 0.01) * 2
    pwv = round({1: 5.0, 2: 4.0, 3: 3.5, 4: 2.5, 5: 2.0, 6: 1.8, 7: 1.0, 8: 0.7, 9: 0.45, 10: 0.35}[band]
                * rng.uniform(0.6, 1.3), 3)
    rows = []
    for name, ra, dec in targets:
        if mosaic:
            rx, ry = rng.uniform(0.5, 2.0) * fwhm_deg * 3, rng.uniform(0.3, 1.0) * fwhm_deg * 3
            region = _polygon(ra, dec, rx, ry, rng.uniform(0, math.pi), rng.choice([8, 10, 12]))
            fov = 2 * max(rx, ry) + fwhm_deg
        else:
            region = _polygon(ra, dec, fwhm_deg / 2, fwhm_deg / 2, 0.0, 10)
            fov = fwhm_deg
        lon, lat = _galactic(ra, dec)
        for w in windows:
            row = dict(mous["common"])
            row.update(
                obs_id=f"{mous['member_ous_uid']}.source.{name}.spw.{w.spw}", target_name=name, s_ra=ra, s_dec=dec,
                s_fov=fov, s_region=region, s_resolution=resolution, t_min=round(t_min, 6),
                t_max=round(t_min + exptime * rng.uniform(1.4, 2.5) / 86400, 6), t_exptime=exptime,
                t_resolution=exptime, em_min=C / (w.hi * 1e9), em_max=C / (w.lo * 1e9),
                em_res_power=w.hi * 1e6 / w.res_khz, pol_states="/" + pols.replace(" ", "/") + "/",
                gal_longitude=lon, gal_latitude=lat, band_list=str(band),
                em_resolution=C / ((w.lo + w.hi) / 2 * 1e9) * w.res_khz * 1e3 / ((w.lo + w.hi) / 2 * 1e9),
                bandwidth=float(round((w.hi - w.lo) * 1e9)), antenna_arrays=mous["antennas"],
                is_mosaic="T" if mosaic else "F", spatial_resolution=resolution, frequency_support=support,
                frequency=centre, velocity_resolution=finest.res_khz * 1e3 / (finest.hi * 1e9) * C,
                sensitivity_10kms=w.line_mjy, cont_sensitivity_bandwidth=cont, pwv=pwv,
                spatial_scale_max=las, spectral_resolution=float(round(w.res_khz * 1e3)),
                scan_intent="TARGET" if science else rng.choice(["CALIBRATE_PHASE", "CALIBRATE_BANDPASS CALIBRATE_FLUX"]),
                science_observation="T" if science else "F")
            row["access_url"] = f"http://almascience.org/aq?member_ous_id={row['member_ous_uid']}"
            rows.append(row)
    return rows


def _common(project: str, gous: str, mous: str, eb: str, *, pi: str, title: str, abstract: str, coi: str,
            keyword: str, category: str, public: bool, release: str, sb: str, qa2: bool = True,
            publication: dict | None = None, modified: str = "2023-06-01T12:00:00.000") -> dict:
    pub = publication or {}
    return dict(obs_publisher_did=f"ADS/JAO.ALMA#{project}", obs_collection="ALMA", facility_name="JAO",
                instrument_name="ALMA", dataproduct_type="cube", calib_level=2, o_ucd="phot.flux.density;phys.polarization",
                access_format="text/html", proposal_id=project, data_rights="Public" if public else "Proprietary",
                obs_release_date=release, obs_creator_name=pi, pi_name=pi, obs_title=title, proposal_abstract=abstract,
                proposal_authors=coi, science_keyword=keyword, scientific_category=category,
                type=project.rsplit(".", 1)[-1], schedblock_name=sb, group_ous_uid=gous, member_ous_uid=mous,
                asdm_uid=eb, qa2_passed="T" if qa2 else "F", lastModified=modified,
                pub_title=pub.get("title", ""), first_author=pub.get("first_author", ""),
                authors=pub.get("authors", ""), pub_abstract=pub.get("abstract", ""),
                publication_year=pub.get("year"), bib_reference=pub.get("bibcode", ""))


def _person(rng: random.Random) -> str:
    k = rng.randrange(len(SURNAMES))
    return f"{SURNAMES[k]}, {GIVEN[k]}"


def _generated(seed: int = 2026) -> list[dict]:
    """About 60 Member OUS over 24 projects, every band, array and data-rights case."""
    rng = random.Random(seed)
    out = []
    bands = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    uid_block = 0x2100
    for p in range(24):
        year = 2012 + p % 13
        ptype = PROJECT_TYPES[p % len(PROJECT_TYPES)]
        project = f"{year}.1.{(p * 397 + 101) % 100000:05d}.{ptype}"
        keyword, category, topic, detail = SUBJECTS[p % len(SUBJECTS)]
        pi = _person(rng)
        coi = "; ".join(_person(rng) for _ in range(rng.randint(1, 5)))
        title = f"{detail.capitalize()} in the {topic} of {TARGETS[p % len(TARGETS)][0].replace('_', ' ')}"
        abstract = (f"We propose to study the {topic} with ALMA: {detail} traced at high resolution; "
                    f"{rng.randint(10, 90)}% of the flux is expected on scales below 1 arcsec.")
        public = p % 5 != 3
        release = (_iso_from_mjd(_mjd(year + 2, rng.uniform(0, 360))) if public
                   else _iso_from_mjd(_mjd(2027 + p % 2, rng.uniform(0, 360))))
        published = public and p % 2 == 0
        publication = None
        if published:
            first = pi.split(",")[0]
            publication = dict(title=f"ALMA reveals {detail} in the {topic}", first_author=pi,
                               authors="; ".join([pi] + [_person(rng) for _ in range(rng.randint(1, 4))]),
                               abstract=f"We present ALMA observations of the {topic}. The {detail} are resolved.",
                               year=year + 3, bibcode=f"{year + 3}ApJ...{900 + p}..{p + 10:3d}{first[0]}".replace(" ", "."))
        block = uid_block + p
        sgous, gous = f"uid://A001/X{block:x}/X1", f"uid://A001/X{block:x}/X2"
        nmous = 2 + p % 3
        arrays = ["12m", "7m", "TP", "12m"][:nmous] if p % 4 == 1 else ["12m"] * nmous
        for k in range(nmous):
            array = arrays[k]
            band = bands[(p + k * 3) % 10]
            if array == "TP" and band in (1, 2, 9, 10):  # total power observes Bands 3-8
                band = 6
            mous = f"uid://A001/X{block:x}/X{3 + k:x}"
            eb = f"uid://A002/X{0xe00000 + p * 16 + k:x}/X{rng.randrange(1, 0xfff):x}"
            base_target = TARGETS[(p * 3 + k) % len(TARGETS)]
            ntargets = 1 if array == "TP" else rng.randint(1, 3)
            targets = [(base_target[0] if t == 0 else f"{base_target[0]}_{'NSEW'[t - 1]}",
                        (base_target[1] + rng.uniform(-0.2, 0.2) * t) % 360,
                        max(-89.0, min(89.0, base_target[2] + rng.uniform(-0.2, 0.2) * t))) for t in range(ntargets)]
            nspw = 16 if (p, k) in ((4, 0), (17, 1)) else (8 if p % 7 == 2 and array == "12m" else 4)
            windows = _setup(rng, band, nspw, array)
            pols = "XX" if array == "TP" and rng.random() < 0.3 else ("XX XY YX YY" if p % 9 == 5 else "XX YY")
            sb = f"{base_target[0][:12]}_{'abc'[k % 3]}_{band:02d}_{ {'12m': 'TM1', '7m': '7M', 'TP': 'TP'}[array]}"
            mous_info = dict(member_ous_uid=mous, cycle_year=year, antennas=_pads(rng, array),
                             common=_common(project, gous, mous, eb, pi=pi, title=title, abstract=abstract, coi=coi,
                                            keyword=keyword, category=category, public=public, release=release, sb=sb,
                                            qa2=rng.random() > 0.1, publication=publication,
                                            modified=_iso_from_mjd(_mjd(2024, rng.uniform(0, 360)))))
            rows = _rows(mous_info, targets, windows, band=band, array=array, rng=rng,
                         with_sensitivity=year >= 2014, mosaic=array == "TP" or rng.random() < 0.3, pols=pols)
            if rng.random() < 0.3:  # a calibrator observed on its own: calibrator-only rows
                cal = CALIBRATORS[(p + k) % len(CALIBRATORS)]
                rows += _rows(mous_info, [cal], windows, band=band, array=array, rng=rng, science=False,
                              with_sensitivity=year >= 2014, pols=pols)
            out.append(dict(project=project, sgous=sgous, gous=gous, mous=mous, ebs=[eb], rows=rows, public=public,
                            release=release))
    return out


# ----------------------------------------------------------------------------------- hand-written MOUS

def _hand_written() -> list[dict]:
    """The Member OUS other tests and the demo name: keep their uids, projects, targets and releases."""
    rng = random.Random(7)
    out = []
    # the embedded example: TW Hya, Band 6, spw 25 (CO 2-1) and 27 (continuum) in the lower sideband
    tw = _common(ex.PROJECT, ex.GOUS, ex.MOUS, ex.EXECBLOCKS[0], pi="Example, A.", title="CO(2-1) in the TW Hya disk",
                 abstract="We map CO(2-1) in TW Hya.", coi="Other, B.; Third, C.",
                 keyword="Disks around low-mass stars", category="Disks and planet formation", public=True,
                 release="2020-11-01T00:00:00.000", sb="TW_Hya_a_06_TM1",
                 publication=dict(title="The TW Hya disk in CO", first_author="Example, A.",
                                  authors="Example, A.; Other, B.", abstract="CO(2-1) rings in the TW Hya disk.",
                                  year=2021, bibcode="2021ApJ...900....1E"))
    windows = [SpectralWindow(25, 230.2657, 230.7343, 122.07, 3.1, 9.8), SpectralWindow(27, 231.0600, 232.9400, 976.56, 2.2, 2.5),
               SpectralWindow(29, 244.0600, 245.9400, 976.56, 2.4, 2.7), SpectralWindow(31, 246.0600, 247.9400, 976.56, 2.4, 2.7)]
    info = dict(member_ous_uid=ex.MOUS, cycle_year=2019, antennas=_pads(rng, "12m"), common=tw)
    out.append(dict(project=ex.PROJECT, sgous=ex.SGOUS, gous=ex.GOUS, mous=ex.MOUS, ebs=list(ex.EXECBLOCKS),
                    example=True, release="2020-11-01T00:00:00.000",
                    rows=_rows(info, [(ex.TARGET, 165.46625, -34.704722)], windows, band=6, array="12m", rng=rng)))
    # the 7 m Band 7 Orion project (two sources; a PI with a quote in the name)
    orion = _common("2018.1.00123.S", "uid://A001/X1300/X2", "uid://A001/X1300/X3", "uid://A002/Xe0a0a0/X11",
                    pi="O'Brien, Ciara", title="Dust in Orion cores", coi="Hacar, Alvaro",
                    abstract="7 m survey of Orion cores; 50% of the mass is in the OMC-2 filament.",
                    keyword="Inter-Stellar Medium (ISM)/Molecular clouds", category="ISM and star formation",
                    public=True, release="2020-06-01T00:00:00.000", sb="Orion_a_07_7M")
    info = dict(member_ous_uid="uid://A001/X1300/X3", cycle_year=2018, antennas=_pads(rng, "7m"), common=orion)
    out.append(dict(project="2018.1.00123.S", sgous="uid://A001/X1300/X1", gous="uid://A001/X1300/X2",
                    mous="uid://A001/X1300/X3", ebs=["uid://A002/Xe0a0a0/X11"], release="2020-06-01T00:00:00.000",
                    rows=_rows(info, [("Orion_KL", 83.8221, -5.3911), ("OMC-2", 83.85, -5.17)],
                               _setup(rng, 7, 4, "7m"), band=7, array="7m", rng=rng)))
    # proprietary, released in the future
    prop = _common("2025.1.00999.S", "uid://A001/X2000/X2", "uid://A001/X2000/X3", "uid://A002/X1100aa/X22",
                   pi="Secret, P.", title="Proprietary Band 7 mosaic", coi="", abstract="Not yet public.",
                   keyword="Galaxy structure & evolution", category="Local Universe", public=False,
                   release="2027-09-30T00:00:00.000", sb="NGC253_b_07_TM2")
    info = dict(member_ous_uid="uid://A001/X2000/X3", cycle_year=2025, antennas=_pads(rng, "12m"), common=prop)
    out.append(dict(project="2025.1.00999.S", sgous="uid://A001/X2000/X1", gous="uid://A001/X2000/X2",
                    mous="uid://A001/X2000/X3", ebs=["uid://A002/X1100aa/X22"], public=False,
                    release="2027-09-30T00:00:00.000",
                    rows=_rows(info, [("NGC253", 11.888, -25.288)], _setup(rng, 7, 4, "12m"), band=7, array="12m",
                               rng=rng, mosaic=True)))
    # the Band 3 project of astroquery's recorded DataLink responses, with a calibrator-only row
    cal = _common("2017.1.01185.S", "uid://A001/X12a3/Xe8", RECORDED_MOUS, "uid://A002/Xd28a9e/X71b8",
                  pi="Cloud, F.", title="The 50 km/s cloud", coi="", abstract="Band 3 lines toward the Galactic centre.",
                  keyword="Inter-Stellar Medium (ISM)/Molecular clouds", category="ISM and star formation",
                  public=True, release="2019-05-01T00:00:00.000", sb="50_kms_c_03_TM1")
    info = dict(member_ous_uid=RECORDED_MOUS, cycle_year=2017, antennas=_pads(rng, "12m"), common=cal)
    windows = _setup(rng, 3, 4, "12m")
    out.append(dict(project="2017.1.01185.S", sgous="uid://A001/X12a3/Xe7", gous="uid://A001/X12a3/Xe8",
                    mous=RECORDED_MOUS, ebs=["uid://A002/Xd28a9e/X71b8"], release="2019-05-01T00:00:00.000",
                    layout="recorded",
                    rows=_rows(info, [("50_kms_cloud", 266.2208, -28.9939)], windows, band=3, array="12m", rng=rng,
                               mosaic=True)
                    + _rows(info, [("J1744-3116", 266.0890, -31.2717)], windows, band=3, array="12m", rng=rng,
                            science=False)))
    return out


def _recorded_m83() -> dict:
    """astroquery's recorded real row (tests/data/alma-onerow.txt) verbatim, in the older one-row layout."""
    from importlib.resources import files
    from astropy.table import Table
    t = Table.read(str(files("astroquery.alma.tests") / "data" / "alma-onerow.txt"), format="ascii")
    row = {}
    for name in t.colnames:
        v = t[name][0]
        if hasattr(v, "mask") and v.mask or str(v) == "--":
            v = None
        elif isinstance(v, str) or hasattr(v, "startswith"):
            v = str(v)
            if v.startswith("b'") and v.endswith("'"):  # the recording kept Python's bytes repr
                v = v[2:-1]
        else:
            v = v.item() if hasattr(v, "item") else v
        row[name] = v
    row["band_list"] = str(row["band_list"])
    row["pi_name"] = row["obs_creator_name"]
    row["spectral_resolution"] = float(row["spectral_resolution"])
    return dict(project="2017.1.00079.S", sgous="uid://A001/X1295/X33", gous="uid://A001/X1295/X34",
                mous="uid://A001/X1295/X35", ebs=["uid://A002/Xd74c3f/Xcf20"], release=row["obs_release_date"],
                layout="legacy", rows=[row])


def member_ouses() -> list[dict]:
    """Every Member OUS the emulator publishes, as keyword arguments of ``catalog.Mous``."""
    hand = _hand_written()
    return hand[:1] + [_recorded_m83()] + hand[1:] + _generated()
