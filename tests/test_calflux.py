"""calflux: estimates against analysisUtils' printed results and an independent re-implementation, the
Source Catalogue emulator over HTTP (flux service and history), Member OUS checks and recalibration inputs.

Expected values come from DOMAIN.md §6.1/§11 (analysisUtils output printed in public reduction
scripts and the primer), from numpy.polyfit as an independent weighted least-squares, from a
loop-by-loop re-implementation of getALMASpectralIndex's pairing written in this file, and from the
emulator's catalogue read with the csv module.
"""

import csv
import io
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from almatools import example
from almatools.casa_tasks import calflux
from almatools.errors import TaskParameterError
from almatools.plugins.archive.emulator.sourcecat import SourceCatalogueServer
from almatools.plugins.calflux import names
from almatools.plugins.calflux.catalogue import Catalogue, CatalogueError, Source
from almatools.plugins.calflux.dates import to_mjd
from almatools.plugins.calflux.estimate import EstimateOptions, Estimator, fit_power_law, power_law
from almatools.plugins.calflux.service import SourceCatalogueService, parse_flux_votable
from almatools.testing import colour_pixels, png_rgb

LN10 = math.log(10)


@pytest.fixture(scope="module")
def sourcecat():
    """The Source Catalogue emulator on loopback (flux service and XML-RPC history)."""
    with SourceCatalogueServer() as server:
        yield server


@pytest.fixture(scope="module")
def catalogue(catalogue_file):
    return Catalogue.read(catalogue_file)


def plot_panels(path, sources: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The decoded plot cut into its (history, spectrum) panels; its size says one row per source."""
    from almatools import plotting
    pixels = png_rgb(path)
    dpi = plotting.DPI
    rows_px = round(3.6 * sources * dpi)  # figsize (12, 3.6 per source), plus 0.4 inch for a title
    assert pixels.shape[1:] == (12 * dpi, 3) and pixels.shape[0] in (rows_px, round((3.6 * sources + 0.4) * dpi))
    top, height, half = pixels.shape[0] - rows_px, rows_px // sources, pixels.shape[1] // 2
    return [(pixels[top + i * height:top + (i + 1) * height, :half], pixels[top + i * height:top + (i + 1) * height, half:])
            for i in range(sources)]


#: the plot's colours (almatools.plotting's palette): Band 3 / Band 7 history, archival values, flux service
BAND3, ARCHIVAL, BAND7, SERVICE = (__import__("almatools.plotting").plotting.colour(i) for i in (0, 1, 3, 4))
POWER_LAW = "0.25"  # plotting.NEUTRAL["dark"]: the power law and the date line


def rows_of(path, source):
    """The measurements of *source* in the emulator's file, read with the csv module."""
    with open(path, newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["source"] == source]


def polyfit(freqs_ghz, fluxes, errors):
    """Independent weighted least squares (numpy.polyfit) of log10 S against centred log10 ν."""
    x = np.log10(freqs_ghz)
    xbar = x.mean()
    sigma = np.asarray(errors) / (np.asarray(fluxes) * LN10)
    (slope, intercept), cov = np.polyfit(x - xbar, np.log10(fluxes), 1, w=1 / sigma, cov="unscaled")
    return slope, intercept, cov, xbar


# ---------------------------------------------------------------------------------- the algorithm
def test_primer_example_step_is_reproduced():
    """Primer §11.2.1: 5.500 Jy at 91.47 GHz, α = -0.538980 → J1924-2914 at 230 GHz = 3.346019 Jy.

    The primer prints α to six decimals, so the step is reproduced to 1e-6 relative (DOMAIN.md's tolerance
    for formulas): 5.5 (230/91.47)^-0.538980 = 3.3460205.
    """
    value = float(power_law(5.500, 91.470, -0.538980, 230.0))
    assert value == pytest.approx(3.346019, rel=1e-6)
    assert value == pytest.approx(5.5 * math.exp(-0.538980 * math.log(230 / 91.47)), rel=1e-15)


@pytest.mark.parametrize("freqs, fluxes, errors, alpha", [
    ([103.49, 91.46, 343.48], [2.14, 2.25, 1.25], [0.05, 0.04, 0.08], -0.443796),
    ([91.46, 343.48], [3.78, 2.71], [0.07, 0.05], -0.251488),
])
def test_verified_fits_and_an_independent_least_squares(freqs, fluxes, errors, alpha):
    b, a, cov, xbar = fit_power_law(np.array(freqs) * 1e9, fluxes, errors)
    assert a[0] == pytest.approx(alpha, abs=5e-7)  # DOMAIN.md §6.1, verified against printed output
    slope, intercept, pcov, pxbar = polyfit(freqs, fluxes, errors)
    assert a[0] == pytest.approx(slope, abs=1e-12) and b[0] == pytest.approx(intercept, abs=1e-12)
    assert xbar[0] == pytest.approx(pxbar, abs=1e-15)
    # polyfit's covariance is in (slope, intercept) order; ours (intercept, slope)
    assert cov[0] == pytest.approx(np.array([[pcov[1, 1], pcov[1, 0]], [pcov[0, 1], pcov[0, 0]]]), rel=1e-9)
    if len(freqs) == 2:  # two points: the exact slope
        assert a[0] == pytest.approx(math.log(fluxes[1] / fluxes[0]) / math.log(freqs[1] / freqs[0]), rel=1e-12)


# analysisUtils (Cycle 6 version) printed, for J0510+1800 on 2017/12/11 (a public DSHARP reduction script):
# frequency (GHz) -> result, and the Monte Carlo median and spread it printed (two runs for some)
J0510 = {333.173: (1.272174, [1.269734, 1.270016], [0.076398, 0.077680]),
         330.727: (1.276342, [1.272587, 1.274930], [0.077919, 0.078216]),
         342.976: (1.255907, [1.253626, 1.253691], [0.079484, 0.079388]),
         345.694: (1.251515, [1.248913, 1.249209], [0.078582, 0.077387])}


def test_estimates_reproduce_analysisutils_printed_results(catalogue):
    est = Estimator(catalogue)
    results = est.estimate([("J0510+1800", ghz * 1e9, to_mjd("2017/12/11")) for ghz in J0510])
    for (ghz, (flux, medians, spreads)), r in zip(J0510.items(), results):
        assert r["fluxDensity"] == pytest.approx(flux, rel=1e-6)
        assert r["spectralIndex"] == pytest.approx(-0.443796, abs=5e-7)
        assert r["referenceFluxDensity"] == pytest.approx(2.195) and r["referenceFrequency"] == 97.475e9
        assert [m["age"] for m in r["closest"]["3"]] == [3.0, 3.0] and r["closest"]["7"][0]["age"] == 2.0
        pair, = r["pairs"]
        assert (pair["low_date"], pair["high_date"], pair["separation"], pair["age"]) == \
            ("2017-12-08", "2017-12-09", 1.0, 2.5)
        # the Monte Carlo: within 1 % of aU's medians and 4 % of its spreads (10,000 draws each)
        assert r["monteCarloFluxDensity"] == pytest.approx(np.mean(medians), rel=0.01)
        assert r["fluxDensityUncertainty"] == pytest.approx(np.mean(spreads), rel=0.04)
    # J1517-2422 on 2017/09/06 (the same script): the pair of 2017/08/20, 3.690 Jy at 91.460 GHz
    r, = est.estimate([("J1517-243", 232.582e9, to_mjd("2017-09-06"))])
    assert r["fluxDensity"] == pytest.approx(2.918012, rel=1e-6)
    assert r["spectralIndex"] == pytest.approx(-0.251488, abs=5e-7)
    assert r["pairs"][0]["low_date"] == "2017-08-20" and r["spectralIndexAgeSeparation"] == 0
    assert r["catalogue_name"] == "J1517-2422" and r["meanAge"] == 2.0


def test_monte_carlo_spread_matches_the_delta_method_and_is_seeded(catalogue):
    request = [("J0510+1800", 333.173e9, to_mjd("2017-12-11"))]
    r, = Estimator(catalogue, EstimateOptions(trials=200_000)).estimate(request)
    b, a, cov, xbar = r["intercept"], r["spectralIndex"], np.array(r["covar"]), r["meanOfLogX"]
    x = math.log10(333.173) - xbar
    s = 10 ** (b + a * x)
    sd = s * LN10 * math.sqrt(cov[0, 0] + 2 * x * cov[0, 1] + x * x * cov[1, 1])
    assert r["monteCarloFluxDensity"] == pytest.approx(s, rel=2e-3)
    assert r["fluxDensityUncertainty"] == pytest.approx(sd, rel=0.02)
    one = Estimator(catalogue, EstimateOptions(seed=7)).estimate(request)[0]
    again = Estimator(catalogue, EstimateOptions(seed=7)).estimate(request)[0]
    other = Estimator(catalogue, EstimateOptions(seed=8)).estimate(request)[0]
    assert one["fluxDensityUncertainty"] == again["fluxDensityUncertainty"]
    assert one["fluxDensityUncertainty"] != other["fluxDensityUncertainty"]
    assert one["fluxDensity"] == other["fluxDensity"]  # the power law itself is not random


def test_primer_example_end_to_end(catalogue):
    """J1924-2914 on 2019-12-12 (primer §11.2.1): the measurements it printed, its α and its result.

    The primer printed no errors for the 2019-12-06 triple; the emulator's are the ones that give its
    α (see sourcecat_data.PINNED).  Its ± (0.275106) comes from an older uncertainty convention.
    """
    r, = Estimator(catalogue).estimate([("J1924-292", 230e9, to_mjd("2019-12-12"))])
    assert r["fluxDensity"] == pytest.approx(3.346019, rel=1e-6)
    assert r["spectralIndex"] == pytest.approx(-0.538980, abs=5e-7)
    assert r["monteCarloFluxDensity"] == pytest.approx(3.422817, rel=5e-3)
    low, = r["closest"]["3"]
    high, = r["closest"]["7"]
    assert (low["flux"], low["error"], low["frequency_hz"], low["age"]) == (5.5, 0.13, 91.47e9, -2.0)
    assert (high["flux"], high["error"], high["frequency_hz"], high["age"]) == (2.78, 0.08, 337.5e9, 2.0)
    pair, = r["pairs"]
    assert pair["low_date"] == pair["high_date"] == "2019-12-06" and pair["separation"] == 0
    assert sorted(pair["fluxes"]) == [2.75, 5.33, 5.56]
    assert r["meanOfLogX"] == pytest.approx(2.168151, abs=5e-7)  # the primer's meanOfLogX
    slope, *_ = polyfit(np.array(pair["frequencies_hz"]) / 1e9, pair["fluxes"], pair["errors"])
    assert r["spectralIndex"] == pytest.approx(slope, abs=1e-12)
    assert r["fluxDensity"] == pytest.approx(5.5 * (230 / 91.47) ** slope, rel=1e-12)


def _reference(meas, t, nu, pairing, window):
    """getALMASpectralIndex and getALMAFlux's selection, loop by loop (the documented rules).

    *meas*: (day, freq_hz, flux, error, band) of one source; returns (flux, alpha) at day *t*, *nu*.
    """
    low = [m for m in meas if m[4] == 3]
    high = [m for m in meas if m[4] == 7]

    def closest(ms):
        best = min({m[0] for m in ms}, key=lambda d: (abs(t - d), d > t))  # a tie goes to the past
        return [m for m in ms if m[0] == best]
    cl, ch = closest(low), closest(high)
    s_ref, f_ref = np.mean([m[2] for m in cl]), np.mean([m[1] for m in cl])
    if pairing == "contemporaneous":
        fits = [cl + ch]
    else:
        lw = [m for m in low if abs(t - m[0]) <= window]
        hw = sorted((m for m in high if abs(t - m[0]) <= window), key=lambda m: (abs(t - m[0]), m[0], -m[1]))
        ages = sorted({t - m[0] for m in lw})  # ascending, as numpy.unique
        best, pairs = math.inf, []
        for age in ages:
            for h in hw:
                sep = abs((t - h[0]) - age)
                if sep < best:
                    best, pairs = sep, [(age, h)]
                elif sep == best:
                    pairs.append((age, h))
        if not pairs:
            fits = [cl + ch]
        else:
            if pairing == "closest":
                pairs = [min(pairs, key=lambda p: abs(p[0]))]  # first of the smallest |age|
            fits = [[m for m in lw if t - m[0] == age] + [h] for age, h in pairs]
    alphas, sigmas = [], []
    for pts in fits:
        slope, _, cov, _ = polyfit([p[1] / 1e9 for p in pts], [p[2] for p in pts], [p[3] for p in pts])
        alphas.append(slope)
        sigmas.append(math.sqrt(cov[0, 0]))
    alpha = float(np.average(alphas, weights=1 / np.array(sigmas) ** 2))
    return s_ref * (nu / f_ref) ** alpha, alpha


MEASUREMENT = st.tuples(st.integers(0, 300), st.sampled_from([(91.46e9, 3), (103.49e9, 3), (343.48e9, 7),
                                                               (337.46e9, 7)]),
                        st.floats(0.2, 5.0), st.floats(0.01, 0.3))


@given(st.lists(MEASUREMENT, min_size=2, max_size=25), st.integers(-60, 360),
       st.sampled_from(["closest", "contemporaneous", "mean"]), st.sampled_from([20, 80, 1800]))
def test_pairings_agree_with_a_loop_by_loop_reimplementation(ms, t, pairing, window):
    meas = list({(d, f, round(s, 3), round(e, 3), b) for d, (f, b), s, e in ms})  # one value per day and frequency
    meas = list({(m[0], m[1]): m for m in meas}.values())
    if not {m[4] for m in meas} >= {3, 7}:
        return
    src = Source.from_arrays("J0001+0001", [], [58000 + m[0] for m in meas], [m[1] for m in meas],
                             [m[2] for m in meas], [m[3] for m in meas])
    opts = EstimateOptions(pairing=pairing, daywindow=window, trials=100)
    r, = Estimator(Catalogue([src]), opts).estimate([("J0001+0001", 230e9, 58000 + t)])
    flux, alpha = _reference(meas, t, 230e9, pairing, window)
    assert r["spectralIndex"] == pytest.approx(alpha, abs=1e-9)
    assert r["fluxDensity"] == pytest.approx(flux, rel=1e-9)


def test_batches_give_the_same_results_as_single_requests(catalogue):
    rng = np.random.default_rng(3)
    names_ = ["J1924-2914", "J0510+1800", "3C 279", "J1058+015", "J1733-3722"]
    requests_ = [(names_[i % 5], float(rng.uniform(90e9, 700e9)), float(rng.uniform(57000, 60000)))
                 for i in range(40)]
    est = Estimator(catalogue, EstimateOptions(trials=2000))
    together = est.estimate(requests_)
    alone = [est.estimate([r])[0] for r in requests_]
    for a, b in zip(together, alone):
        assert a["fluxDensity"] == b["fluxDensity"] and a["fluxDensityUncertainty"] == b["fluxDensityUncertainty"]
        assert a["warnings"] == b["warnings"]


def test_one_band_only_uses_the_default_index_in_quadrature(catalogue):
    r, = Estimator(catalogue).estimate([("J1733-3722", 345e9, to_mjd("2020-06-01"))])
    low = r["closest"]["3"]
    s_ref = np.mean([m["flux"] for m in low])
    f_ref = np.mean([m["frequency_hz"] for m in low])
    s_err = math.sqrt(sum(m["error"] ** 2 for m in low)) / len(low)
    flux = s_ref * (345e9 / f_ref) ** -0.7
    assert r["fluxDensity"] == pytest.approx(flux, rel=1e-12) and r["spectralIndex"] == -0.7
    assert r["fluxDensityUncertainty"] == pytest.approx(flux * math.hypot(s_err / s_ref, 0.2 * math.log(345e9 / f_ref)),
                                                        rel=1e-12)
    assert "Band 7" in r["warnings"][0] and "-0.70 ± 0.20 assumed" in r["warnings"][0]
    assert r["monteCarloFluxDensity"] == r["fluxDensity"]


def test_warnings_for_old_data_dates_outside_the_monitoring_and_catalogue_gaps(catalogue):
    r, = Estimator(catalogue).estimate([("J1924-2914", 230e9, to_mjd("2030-01-01"))])
    assert any("after the last measurement of J1924-2914" in w for w in r["warnings"])
    assert any("mean time separation" in w for w in r["warnings"])
    r, = Estimator(catalogue, EstimateOptions(pairing="contemporaneous")).estimate(
        [("J1733-1304", 230e9, to_mjd("2011-01-01"))])
    assert any("before the first measurement" in w for w in r["warnings"])


def test_catalogue_cleaning_as_analysisutils(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("source,aliases,date,frequency,flux,error,band\n"
                    "J0001-0001,QSO B0001-000;X,2020-01-01,91.46,1.0,,3\n"
                    "J0001-0001,,2020-01-01,343.48,0.5,0.02,7\n"
                    "J0001-0001,,2020-01-02,91.46,-1.0,0.05,3\n"
                    "J0001-0001,,2020-01-03,91.46,0.0,0.05,3\n")
    cat = Catalogue.read(path)
    src = cat.find("QSO B0001-000")
    assert len(src) == 2 and src.discarded == 2 and src.error[src.band == 3][0] == pytest.approx(0.1)
    r, = Estimator(cat).estimate([("x", 230e9, to_mjd("2020-01-03"))])
    assert r["fluxDensity"] == pytest.approx(1.0 * (230 / 91.46) ** (math.log(0.5) / math.log(343.48 / 91.46)))
    assert any("10 % assumed (2020-01-01 91.46 GHz)" in w for w in r["warnings"])


def test_ecsv_catalogue_round_trip_and_units(catalogue, tmp_path):
    from astropy.table import Table
    small = Catalogue([catalogue.find("J0510+1800"), catalogue.find("J1733-3722")])
    small.write(tmp_path / "c.ecsv")
    back = Catalogue.read(tmp_path / "c.ecsv")
    for name, src in small.sources.items():
        got = back.find(name)
        assert np.array_equal(got.day, src.day) and np.allclose(got.freq_hz, src.freq_hz, rtol=1e-12)
        assert np.array_equal(got.flux, src.flux) and np.allclose(got.error, src.error)
        assert np.array_equal(got.assumed, src.assumed) and got.aliases == src.aliases
    # an ECSV written by someone else, frequency in MHz: the unit is honoured
    t = Table({"source": ["J0001-0001"] * 2, "date": ["2020-01-01"] * 2, "frequency": [91460.0, 343480.0],
               "flux": [1.0, 0.5], "error": [0.05, 0.02]})
    t["frequency"].unit = "MHz"
    t.write(tmp_path / "mhz.ecsv", format="ascii.ecsv")
    got = Catalogue.read(tmp_path / "mhz.ecsv").find("J0001-0001")
    assert sorted(got.freq_hz) == pytest.approx([91.46e9, 343.48e9], rel=1e-12)  # same day: highest first


@pytest.mark.parametrize("text, message", [
    ("source,date,frequency\nA,2020-01-01,90\n", "header must name"),
    ("source,date,frequency,flux\nA,2020-01-01,ninety,1\n", r"c.csv:2: frequency is 'ninety', not a number"),
    ("source,date,frequency,flux\nA,2020-13-01,90,1\n", r"c.csv:2: date '2020-13-01' is not a valid date"),
    ("source,date,frequency,flux\n\nA,2020-01-01,90,inf\n", r"c.csv:3: flux is 'inf', not a finite number"),
    ("source,date,frequency,flux\nA,2020-01-01,90\n", r"c.csv:2: 3 values for 4 columns"),
    ("", "no header line"),
])
def test_bad_catalogue_files_are_named_by_line(tmp_path, text, message):
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(CatalogueError, match=message):
        Catalogue.read(path)


@pytest.mark.fuzz
@given(st.text(alphabet=st.sampled_from(list("sourcedatefrqunyflx,J0123456789-.e\n\"; ")), max_size=300))
def test_catalogue_reader_on_generated_text(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "c.csv"
    path.write_text(text)
    try:
        cat = Catalogue.read(path)
    except CatalogueError as exc:
        assert str(exc).startswith(str(path))
        return
    for s in cat.sources.values():
        assert np.all(s.flux > 0) and np.all(s.error > 0) and np.all(np.diff(s.day) >= 0)


def test_names_match_as_the_catalogue_matches_them(catalogue):
    assert names.short_jname("J1924-2914") == "J1924-292" and names.short_jname("J1058+0133") == "J1058+015"
    for alias in ("J1924-2914", "J1924-292", "QSO J1924-2914", "qso j1924-2914", "PKS 1921-293", " J1924-2914 "):
        assert catalogue.find(alias).name == "J1924-2914"
    assert catalogue.find("3C 279").name == catalogue.find("3c279").name == "J1256-0547"
    with pytest.raises(CatalogueError, match=r"'J1924-2915' is not in the calibrator catalogue; closest names: "
                                             r"J1924-2914"):
        catalogue.find("J1924-2915")


@pytest.mark.fuzz
@given(st.text(max_size=40))
def test_name_keys_on_generated_text(text):
    for key in names.keys(text):
        assert key == key.upper() and " " not in key
    short = names.short_jname(text)
    assert short is None or re.fullmatch(r"J\d{4}[+-]\d{3}", short)


# ---------------------------------------------------------------------------------- the emulator's service
def test_flux_service_layouts_read_by_field_name(sourcecat):
    from astropy.io.votable import parse_single_table
    params = {"NAME": "J1924-2914", "DATE": "12-December-2019", "FREQUENCY": "230000000000.0", "WEIGHTED": "true",
              "RESULT": 1, "VERBOSE": 1, "CATALOGUE": 5}
    for path, layout, width in (("/sc/flux", "14-column (Curvature)", 14),
                                ("/legacy/sc/flux", "13-column (Clarification)", 13)):
        data = requests.get(sourcecat.url + path, params=params, timeout=30).content
        ours = parse_flux_votable(data)
        table = parse_single_table(io.BytesIO(data)).to_table()
        assert len(table.colnames) == width and ours["layout"] == layout
        assert ours["flux_density"] == float(table["FluxDensity"][0])
        assert ours["spectral_index"] == float(table["SpectralIndex"][0])
        assert ours["status_code"] == int(table["StatusCode"][0]) == 0
        assert ours["nearest_measurement_age"] == float(table["Nearest_Measurement_Date"][0])  # astropy: spaces to _
        assert ours["data_conditions"] == str(table["DataConditions"][0]) and ours["valid"]
    # r-xue/pipeline's positional reading (row[rl-11] ...) mis-assigns the 14-column layout: by name it does not
    cells = re.findall(r"<TD>([^<]*)</TD>", requests.get(sourcecat.url + "/sc/flux", params=params).text)
    assert cells[len(cells) - 11] == "12-December-2019" != ours["source_name"]


@pytest.mark.fuzz
@given(st.one_of(st.binary(max_size=300),
                 st.lists(st.sampled_from(["<VOTABLE>", "</VOTABLE>", "<TABLE>", "<FIELD name=\"StatusCode\"/>",
                                           "<FIELD name=\"FluxDensity\"/>", "<FIELD name=\"SpectralIndex\"/>",
                                           "<TR>", "</TR>", "<TD>", "</TD>", "<TD/>", "1.5", "-1000", "nan", "null",
                                           "<!DOCTYPE x>", "&amp;", "<FIELD name=\"Clarification\"/>"]),
                          max_size=30).map(lambda parts: "".join(parts).encode())))
def test_flux_votable_parser_on_generated_answers(data):
    """A server's answer is either read (valid only with a positive flux and a real index) or refused."""
    try:
        answer = parse_flux_votable(data, "svc")
    except OSError as exc:  # _BadAnswer: the client moves to the next mirror
        assert str(exc).startswith("svc: ")
        return
    if answer["valid"]:
        assert answer["flux_density"] > 0 and answer["spectral_index"] not in (None, -1000)


def test_flux_service_status_codes_and_bad_requests(sourcecat, catalogue_file):
    svc = SourceCatalogueService(sourcecat.url)
    grid = svc.flux("J1924-2914", to_mjd("2019-12-12"), 230e9)
    # status 0: measurements of both bands within 14 days; DataConditions counts them (max 9)
    rows = rows_of(catalogue_file, "J1924-2914")
    near = [r for r in rows if abs(to_mjd(r["date"]) - to_mjd("2019-12-12")) <= 14 and float(r["flux"]) > 0]
    assert grid["status_code"] == 0 and grid["data_conditions"] == f"{min(len(near), 9)}11"
    assert svc.flux("J1744-3116", to_mjd("2019-12-12"), 230e9)["status_code"] in (1, 2)
    single = svc.flux("J1733-3722", to_mjd("2020-06-01"), 230e9)
    assert single["status_code"] == 3 and single["spectral_index"] == -0.7 and "Fallback" in single["verbose"]
    # only the older 13-column layout has a Clarification column
    legacy = SourceCatalogueService(sourcecat.url + "/legacy").flux("J1733-3722", to_mjd("2020-06-01"), 230e9)
    assert single["clarification"] == "" and legacy["clarification"].startswith("Fallback algorithm used")
    assert legacy["flux_density"] == single["flux_density"]
    unknown = svc.flux("J0000+0000", to_mjd("2019-12-12"), 230e9)
    assert unknown["status_code"] == 4 and not unknown["valid"] and unknown["spectral_index"] == -1000
    for params, why in (({"NAME": "x", "DATE": "12-Decx-2019", "FREQUENCY": "1e11"}, "unknown month"),
                        ({"NAME": "x", "DATE": "12-Dec-2019"}, "Missing parameter FREQUENCY"),
                        ({"NAME": "x", "DATE": "12-Dec-2019", "FREQUENCY": "-5"}, "positive")):
        r = requests.get(sourcecat.url + "/sc/flux", params=params, timeout=30)
        assert r.status_code == 400 and why in r.text


def test_history_over_xmlrpc_equals_the_catalogue_file(sourcecat, catalogue_file):
    svc = SourceCatalogueService(sourcecat.url)
    src = svc.history("qso j1924-292")
    rows = [r for r in rows_of(catalogue_file, "J1924-2914") if float(r["flux"]) > 0]
    assert src.name == "J1924-2914" and "PKS 1921-293" in src.aliases and len(src) == len(rows)
    assert sorted(src.flux.tolist()) == sorted(float(r["flux"]) for r in rows)
    assert src.discarded == len(rows_of(catalogue_file, "J1924-2914")) - len(rows)
    with pytest.raises(CatalogueError, match="'J1925-2914' is not in the calibrator catalogue; closest names: "
                                             "J1924-2914"):
        svc.history("J1925-2914")


def test_service_failover_and_parallel_queries(sourcecat):
    dead = "http://127.0.0.1:9"
    svc = SourceCatalogueService(f"{dead},{sourcecat.url}", workers=6)
    queries = [("J1924-2914", to_mjd("2019-12-01") + k, 100e9 + 10e9 * k) for k in range(12)]
    parallel = svc.fluxes(queries)
    assert svc.bases[0] == sourcecat.url  # the mirror that answered is asked first from then on
    sequential = [SourceCatalogueService(sourcecat.url, workers=1).flux(*q) for q in queries]
    assert [p["flux_density"] for p in parallel] == [s["flux_density"] for s in sequential]
    assert [p["request"]["frequency_hz"] for p in parallel] == [q[2] for q in queries]


@pytest.mark.emulator
def test_catalogue_behind_the_archive_emulator_with_faults(archive):
    """The archive emulator serves the catalogue through nginx; a 503 from one mirror moves to the next."""
    from almatools.plugins.archive.emulator import Fault
    archive.faults.inject(Fault("503", path="/sc/"))
    r = calflux(source=["J1924-2914"], freq=["230GHz"], date=["2019-12-12"], method="service",
                service=f"{archive.faulty_url},{archive.url}")
    assert r["ok"] and archive.faults.pending() == 0 and r["estimates"][0]["service"]["status_code"] == 0
    direct = SourceCatalogueService(archive.url).flux("J1924-2914", to_mjd("2019-12-12"), 230e9)
    assert r["estimates"][0]["fluxDensity"] == direct["flux_density"]


# ---------------------------------------------------------------------------------- the task: estimate
def test_estimate_mode_both_methods_side_by_side(sourcecat, catalogue, tmp_path):
    r = calflux(source=["QSO J0510+1800", "J1924-292"], freq=["333.173GHz", "230"], date=["2017/12/11"],
                method="both", service=sourcecat.url, outfile=str(tmp_path / "e.ecsv"),
                plotfile=str(tmp_path / "e.png"), savecatalogue=str(tmp_path / "saved.csv"))
    assert r["ok"] and len(r["estimates"]) == 4
    first = r["estimates"][0]
    assert first["source"] == "QSO J0510+1800" and first["fluxDensity"] == pytest.approx(1.272174, rel=1e-6)
    offline, = Estimator(catalogue).estimate([("J0510+1800", 333.173e9, to_mjd("2017-12-11"))])
    assert first["fluxDensity"] == offline["fluxDensity"]
    direct = SourceCatalogueService(sourcecat.url).flux("J0510+1800", to_mjd("2017-12-11"), 333.173e9)
    assert first["service"]["flux_density"] == direct["flux_density"]
    assert first["service_difference_percent"] == pytest.approx(
        100 * (first["fluxDensity"] / direct["flux_density"] - 1))
    from astropy.table import Table
    table = Table.read(tmp_path / "e.ecsv")
    assert list(table["fluxDensity"]) == [e["fluxDensity"] for e in r["estimates"]]
    assert list(table["service_flux"]) == [e["service"]["flux_density"] for e in r["estimates"]]
    panels = plot_panels(tmp_path / "e.png", 2)  # one row per source, history left and spectrum right
    for history, spectrum in panels:
        assert colour_pixels(history, BAND3).sum() > 100 and colour_pixels(history, POWER_LAW).sum() > 100
        assert colour_pixels(spectrum, SERVICE).sum() > 20  # method both: the service's values
        assert colour_pixels(spectrum, POWER_LAW).sum() > 250  # the power law: a line across the panel
        assert not colour_pixels(spectrum, ARCHIVAL).any()  # no archival values in estimate mode
    # the saved histories serve offline and give the same estimates
    again = calflux(source=["J0510+1800"], freq=["333.173GHz"], date=["2017-12-11"],
                    catalogue=str(tmp_path / "saved.csv"))
    assert again["estimates"][0]["fluxDensity"] == first["fluxDensity"]


def test_estimate_mode_service_only_and_unknown_names(sourcecat, catalogue_file):
    r = calflux(source=["J0000+0000"], freq=["100GHz"], date=["2019-01-01"], method="service",
                service=sourcecat.url)
    assert not r["ok"] and "status 4" in r["failed"][0]["error"]
    with pytest.raises(TaskParameterError, match=r"parameter 'source'.*'J1924-2915' is not in the calibrator "
                                                 r"catalogue; closest names: J1924-2914"):
        calflux(source=["J1924-2915"], freq=["230GHz"], date=["2019-12-12"], catalogue=str(catalogue_file))


@pytest.mark.parametrize("kwargs, param, why", [
    (dict(freq=["abc"]), "freq", "is not a frequency"),
    (dict(freq=["5GHz"]), "freq", "outside ALMA"),
    (dict(date=["2019-02-30"]), "date", "not a valid date"),
    (dict(source=[]), "source", "at least one"),
    (dict(freq=[]), "freq", "at least one"),
    (dict(plotfile="x.jpg"), "plotfile", ".png"),
    (dict(outfile="x.txt"), "outfile", ".ecsv or .csv"),
    (dict(source=["a"] * 400, freq=["100GHz"] * 300), "source", "needs 120,000 estimates; the bound is 100,000"),
    (dict(source=["a"] * 100, freq=["100GHz"] * 100, date=["2020-01-01"] * 3, trials=1_000_000), "trials",
     "Monte Carlo draws"),
    (dict(method="service", catalogue="c.csv"), "catalogue", "offline"),
    (dict(service="ftp://x"), "service", "use eso"),
])
def test_bad_parameters_name_the_parameter(kwargs, param, why):
    from almatools.errors import ResourceLimitError
    args = dict(source=["J1924-2914"], freq=["230GHz"], date=["2019-12-12"], catalogue="/nonexistent.csv")
    args.update(kwargs)
    with pytest.raises((TaskParameterError, ResourceLimitError), match=f"parameter '{param}'.*{why}"):
        calflux(**args)


def test_existing_outputs_need_overwrite(tmp_path, catalogue_file):
    out = tmp_path / "e.csv"
    out.write_text("keep me")
    with pytest.raises(TaskParameterError, match="parameter 'outfile'.*exists"):
        calflux(source=["J1924-2914"], freq=["230GHz"], catalogue=str(catalogue_file), outfile=str(out))
    assert out.read_text() == "keep me"


# ---------------------------------------------------------------------------------- the task: mous, setjy
@pytest.fixture(scope="module")
def pipeline_mous(tmp_path_factory):
    return example.build_member_ous(tmp_path_factory.mktemp("mous"), images=False)


def test_mous_mode_on_the_example_pipeline_delivery(pipeline_mous, catalogue_file, catalogue, tmp_path):
    r = calflux(mode="mous", path=str(pipeline_mous), catalogue=str(catalogue_file),
                plotfile=str(tmp_path / "m.png"), outfile=str(tmp_path / "m.csv"))
    assert r["ok"] and r["dates"] == {"uid___A002_Xf1e1d3_X1a2b.ms": "2020-01-01"}
    assert r["flux_calibrators"] == ["J1058+0133"] and r["problems"] == [] and r["skipped"] == []
    # the flux.csv values, read independently, against the estimator at the listobs date and spw centres
    spw_ghz = {"25": 230.031505, "27": 231.9999995}
    mjd = to_mjd("2020-01-01T02:24:00")
    rows = list(csv.DictReader(io.StringIO(example.FLUX_CSV)))
    names_ = {"0": "J1058+0133", "1": "J1126-3828", "3": "J1147-3812"}
    expected = Estimator(catalogue).estimate([(names_[x["field"]], spw_ghz[x["spw"]] * 1e9, mjd) for x in rows])
    fluxcsv_rows = [x for x in r["rows"] if x["origin"] == "flux.csv origin=DB"]
    assert len(fluxcsv_rows) == len(rows)
    for got, x, e in zip(fluxcsv_rows, rows, expected):
        assert (got["field"], got["spw"], got["archival_jy"]) == (names_[x["field"]], x["spw"], float(x["I"]))
        assert got["estimate_jy"] == pytest.approx(e["fluxDensity"], rel=1e-12)
        assert got["difference_percent"] == pytest.approx(100 * (float(x["I"]) / e["fluxDensity"] - 1), rel=1e-9)
    verdicts = {c["field"]: c for c in r["calibrators"]}
    assert {k: v["verdict"] for k, v in verdicts.items()} == {"J1058+0133": "agrees", "J1126-3828": "differs",
                                                             "J1147-3812": "agrees"}
    flux_cal = verdicts["J1058+0133"]
    assert flux_cal["flux_calibrator"] and flux_cal["accuracy_percent"] == 10.0
    assert "sets the flux scale" in flux_cal["explanation"][1]
    # its Band 7 measurement was re-reduced in 2024, after the pipeline queried the catalogue (2023-10-14)
    assert "as late as 2024-03-01, after the delivery was calibrated (2023-10-14)" in flux_cal["explanation"][2]
    assert "does not set the flux scale" in verdicts["J1126-3828"]["explanation"][1]
    # hifa_gfluxscale's derived values are compared too
    derived = [x for x in r["rows"] if x["origin"] == "hifa_gfluxscale"]
    assert {x["field"] for x in derived} == {"J1126-3828", "J1147-3812"} and all(x["kind"] == "measured"
                                                                               for x in derived)
    for history, spectrum in plot_panels(tmp_path / "m.png", len(r["calibrators"])):
        assert colour_pixels(history, BAND3).sum() > 40 and colour_pixels(history, BAND7).sum() > 40
        assert colour_pixels(spectrum, ARCHIVAL).sum() > 100  # each calibrator's archival values
        assert colour_pixels(spectrum, POWER_LAW).sum() > 250
        assert not colour_pixels(spectrum, SERVICE).any()  # no service asked
    with open(tmp_path / "m.csv", newline="") as fh:
        assert [float(x["archival_jy"]) for x in csv.DictReader(fh)] == [x["archival_jy"] for x in r["rows"]]


QA2 = """\
           MeasurementSet Name:  /data/uid___A002_X1_X2.ms.split      MS Version 2
   Observed from   02-Mar-2017/10:10:10.5   to   02-Mar-2017/11:20:00.0 (UTC)
  Date        Timerange (UTC)          Scan  FldId FieldName             nRows     SpwIds   Average Interval(s)    ScanIntent
  02-Mar-2017/10:10:10.5 - 10:15:00.0     1      0 J1058+0133               1000  [0,1]  [6.05, 6.05] [CALIBRATE_BANDPASS#ON_SOURCE,CALIBRATE_FLUX#ON_SOURCE]
              10:20:00.0 - 10:21:00.0     2      1 J1126-3828                200  [0,1]  [6.05, 6.05] [CALIBRATE_PHASE#ON_SOURCE]
              10:25:00.0 - 10:26:00.0     3      2 Titan                     200  [0,1]  [6.05, 6.05] [CALIBRATE_AMPLI#ON_SOURCE]
Spectral Windows:  (2 unique spectral windows and 1 unique polarization setups)
  SpwID  Name                           #Chans   Frame   Ch0(MHz)  ChanWid(kHz)  TotBW(kHz) CtrFreq(MHz) BBC Num  Corrs
  0      ALMA_RB_06#BB_1#SW-01#FULL_RES    128   TOPO  232000.000     15625.000   2000000.0 232992.1875        1  XX  YY
  1      ALMA_RB_06#BB_2#SW-01#FULL_RES    128   TOPO  216000.000     15625.000   2000000.0 216992.1875        2  XX  YY
2017-03-02 10:40:01 INFO fluxscale\t Found reference field(s): J1058+0133
2017-03-02 10:40:02 INFO fluxscale\t Flux density for J1126-3828 in SpW=0 (freq=2.32992e+11 Hz) is: 0.5123 +/- 0.004 (SNR = 128.0, N = 40)
2017-03-02 10:40:02 INFO fluxscale\t Flux density for J1126-3828 in SpW=1 is: 0.5311 +/- 0.004 (SNR = 132.0, N = 40)
"""
SCRIPT = """\
# CALIBRATE_FLUX: J1058+0133
mystep = 11
if(mystep in thesteps):
  setjy(vis = 'uid___A002_X1_X2.ms.split',
    standard = 'manual',
    field = '0', # J1058+0133
    fluxdensity = [2.3, 0, 0, 0],
    spix = -0.6,
    reffreq = '224.99GHz')
  setjy(vis = 'uid___A002_X1_X2.ms.split', field = 'Titan', standard = 'Butler-JPL-Horizons 2012')
"""


def test_mous_mode_on_a_manual_delivery(tmp_path, catalogue_file, catalogue):
    root = tmp_path / "member.uid___A001_X9_X9"
    for sub, name, text in (("qa", "uid___A002_X1_X2.qa2.txt", QA2),
                            ("script", "uid___A002_X1_X2.ms.scriptForCalibration.py", SCRIPT)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        (root / sub / name).write_text(text)
    r = calflux(mode="mous", path=str(root), catalogue=str(catalogue_file))
    # both setjy targets set a flux scale; Titan's is a planetary model, not a catalogue value
    assert r["flux_calibrators"] == ["J1058+0133", "Titan"]
    assert r["dates"] == {"uid___A002_X1_X2.ms.split": "2017-03-02"}
    model = [x for x in r["rows"] if x["origin"] == "setjy standard=manual"]
    # the setjy model evaluated at each spw's centre: 2.3 (nu / 224.99 GHz)^-0.6
    assert [(x["spw"], x["archival_jy"]) for x in model] == [
        ("0", pytest.approx(2.3 * (232.9921875 / 224.99) ** -0.6, rel=1e-12)),
        ("1", pytest.approx(2.3 * (216.9921875 / 224.99) ** -0.6, rel=1e-12))]
    e0, = Estimator(catalogue).estimate([("J1058+0133", 232.9921875e9, to_mjd("2017-03-02T10:10:10.5"))])
    assert model[0]["estimate_jy"] == pytest.approx(e0["fluxDensity"], rel=1e-12)
    measured = [x for x in r["rows"] if x["origin"] == "fluxscale"]
    assert [(x["field"], x["frequency_ghz"]) for x in measured] == [("J1126-3828", 232.992),
                                                                   ("J1126-3828", 216.9921875)]
    titan, = [s for s in r["skipped"] if s["field"] == "Titan"]
    assert "Butler-JPL-Horizons 2012" in titan["reason"]
    assert {c["field"] for c in r["calibrators"]} == {"J1058+0133", "J1126-3828", "Titan"}
    assert next(c for c in r["calibrators"] if c["field"] == "Titan")["verdict"] == "not compared"


def test_mous_without_calibrator_information_is_refused(tmp_path, catalogue_file):
    root = tmp_path / "member.uid___A001_X1_X1"
    (root / "qa").mkdir(parents=True)
    (root / "qa" / "notes.txt").write_text("nothing about fluxes\n")
    with pytest.raises(TaskParameterError, match="parameter 'path'.*holds no calibrator flux information"):
        calflux(mode="mous", path=str(root), catalogue=str(catalogue_file))
    with pytest.raises(TaskParameterError, match="parameter 'path'.*needed in mode 'mous'"):
        calflux(mode="mous", catalogue=str(catalogue_file))
    fifo = tmp_path / "flux.csv"
    import os
    os.mkfifo(fifo)
    with pytest.raises(TaskParameterError, match="not a regular file"):
        calflux(mode="mous", path=str(fifo), catalogue=str(catalogue_file))


def _pipeline_reads(text: str) -> list[dict]:
    """flux.csv read the way the pipeline's import_flux reads it (its regular expressions)."""
    out = []
    for row in csv.DictReader(io.StringIO(text)):
        comment = row["comment"]
        origin = re.search(r"(?:origin=)(?P<origin>\S+)", comment).group("origin")
        if "Jy, freq=" in comment:
            origin = "analysisUtils"
        age = int(re.search(r"(?:age=)(?P<age>\S+)", comment).group("age"))
        when = re.search(r"(?:queried_at=)(?P<t>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} \w{3})", comment).group("t")
        datetime.strptime(when, "%Y-%m-%d %H:%M:%S %Z")
        out.append({"field": row["field"], "spw": row["spw"], "I": float(row["I"]), "spix": float(row["spix"]),
                    "origin": origin, "age": age})
    return out


def test_setjy_mode_writes_commands_and_a_flux_csv_the_pipeline_reads(pipeline_mous, catalogue_file, tmp_path):
    r = calflux(mode="setjy", path=str(pipeline_mous), catalogue=str(catalogue_file), outdir=str(tmp_path))
    out = r["setjy"]
    # setjy only for the flux calibrator, one per spw, with the catalogue value at the spw centre
    assert len(out["commands"]) == 2 and all("field='J1058+0133'" in c for c in out["commands"])
    est = {x["spw"]: x for x in r["rows"] if x["origin"] == "flux.csv origin=DB" and x["field"] == "J1058+0133"}
    for c in out["commands"]:
        spw = re.search(r"spw='(\d+)'", c).group(1)
        flux = float(re.search(r"fluxdensity=\[([^,]+),", c).group(1))
        assert flux == pytest.approx(est[spw]["estimate_jy"], rel=1e-5)
        assert f"reffreq='{est[spw]['frequency_ghz']:.6f}GHz'" in c
    assert Path(out["script"]).read_text().count("setjy(") == 2
    written, = out["fluxcsv"]
    assert written["file"] == str(tmp_path / "flux.calflux.csv") and written["rows_changed"] == 6
    read = _pipeline_reads(Path(written["file"]).read_text())
    originals = list(csv.DictReader(io.StringIO(example.FLUX_CSV)))
    for got, orig, row in zip(read, originals, [x for x in r["rows"] if x["origin"] == "flux.csv origin=DB"]):
        assert (got["field"], got["spw"]) == (orig["field"], orig["spw"]) and got["origin"] == "analysisUtils"
        assert got["I"] == pytest.approx(row["estimate_jy"], rel=1e-5)
        assert got["spix"] == pytest.approx(row["spectral_index"], abs=1e-5)
        assert got["age"] == round(row["estimate"]["meanAge"])
    with pytest.raises(TaskParameterError, match="parameter 'outdir'.*already holds flux.calflux.csv"):
        calflux(mode="setjy", path=str(pipeline_mous), catalogue=str(catalogue_file), outdir=str(tmp_path))
    with pytest.raises(TaskParameterError, match="parameter 'inplace'.*inside a tar archive"):
        calflux(mode="setjy", path=str(pipeline_mous), catalogue=str(catalogue_file), inplace=True)


def test_setjy_inplace_keeps_a_byte_identical_backup_never_replaced(tmp_path, catalogue_file):
    root = tmp_path / "member.uid___A001_X1465_X3"
    (root / "calibration").mkdir(parents=True)
    original = example.FLUX_CSV.replace("\n", "\r\n").encode()
    (root / "calibration" / "flux.csv").write_bytes(original)
    listobs = root / "qa" / "uid___A002_Xf1e1d3_X1a2b.ms.listobs.txt"
    listobs.parent.mkdir()
    listobs.write_text(example.LISTOBS)
    r = calflux(mode="setjy", path=str(root), catalogue=str(catalogue_file), inplace=True)
    info, = r["setjy"]["fluxcsv"]
    assert info["backup"] == str(root / "calibration" / "flux.csv.original")
    assert (root / "calibration" / "flux.csv.original").read_bytes() == original
    first = (root / "calibration" / "flux.csv").read_bytes()
    assert first != original and first.count(b"\r\n") == original.count(b"\r\n")  # line ends kept
    calflux(mode="setjy", path=str(root), catalogue=str(catalogue_file), inplace=True, overwrite=True)
    assert (root / "calibration" / "flux.csv.original").read_bytes() == original  # never replaced
    assert (root / "calibration" / "flux.csv.original.2").read_bytes() == first
    # a flux.csv with an unreadable line is not rewritten: the line would be lost
    (root / "calibration" / "flux.csv").write_text(example.FLUX_CSV + "x.ms,0,25,abc,0,0,0,0,0,0,c\n")
    with pytest.raises(TaskParameterError, match=r"flux.csv:8: column I is 'abc'"):
        calflux(mode="setjy", path=str(root), catalogue=str(catalogue_file), inplace=True, overwrite=True)
