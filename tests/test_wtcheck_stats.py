"""wtcheck's statistics (plugins/weights/stats.py): blocks, third-difference powers, per-row ratios, the line and
slope checks, and the groups measured from a small MS.

Expected values come from the module docstring's formulas worked out here by hand or with numpy (the third
difference ``-V0 + 3 V1 - 3 V2 + V3`` over ``1/w0 + 9/w1 + 9/w2 + 1/w3``, the median of chi2_2 from scipy, a
median's standard error ``1/(ln 2 sqrt(n))`` relative), and from spectra built so that every block's power is
known: a spike ``[0, 0, a, 0]`` in each block gives ``|z|^2 = 9 |a|^2 w / 20`` exactly.
"""

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from almatools.plugins.weights import stats
from test_wtcheck import first_row_copy
from almatools.plugins.weights.stats import (GroupStats, block_powers, block_starts, detect_lines, format_channels,
                                             row_ratios, slope_check)

CHI2_MEDIAN = scipy.stats.chi2(2).median()  # 2 ln 2
SE = 1 / math.log(2)  # relative standard error of a chi2_2 median times sqrt(n), as documented


def greedy_starts(selected):
    """Blocks of four selected adjacent channels, taken left to right wherever the next four fit."""
    out, c = [], 0
    while c + 4 <= len(selected):
        if all(selected[c:c + 4]):
            out.append(c)
            c += 4
        else:
            c += 1
    return out


# --------------------------------------------------------------------------- block_starts

def test_blocks_of_a_fully_selected_spw():
    assert block_starts(np.ones(16, bool)).tolist() == [0, 4, 8, 12]
    assert block_starts(np.ones(19, bool)).tolist() == [0, 4, 8, 12]  # the 3 channels left over make no block
    assert block_starts(np.ones(3, bool)).tolist() == []
    assert block_starts(np.ones(4, bool)).tolist() == [0]


def test_blocks_never_straddle_an_unselected_channel():
    sel = np.ones(16, bool)
    sel[5] = False
    assert block_starts(sel).tolist() == [0, 6, 10]
    sel = np.array([False] + [True] * 4 + [False] * 2 + [True] * 5)  # a block right after a gap of one and two
    assert block_starts(sel).tolist() == [1, 7]
    sel = np.array([True] * 3 + [False] + [True] * 4)
    assert block_starts(sel).tolist() == [4]


@given(st.lists(st.booleans(), max_size=60))
def test_blocks_match_a_greedy_scan(selected):
    assert block_starts(np.array(selected, bool)).tolist() == greedy_starts(selected)


def test_wide_spws_keep_at_most_max_blocks_evenly_spread():
    # 10 blocks, 3 kept: indices round(linspace(0, 9, 3)) = 0, 4 (4.5 rounds to even), 9
    assert block_starts(np.ones(40, bool), 3).tolist() == [0, 16, 36]
    assert block_starts(np.ones(40, bool), 10).tolist() == list(range(0, 40, 4))
    assert block_starts(np.ones(40, bool), 11).tolist() == list(range(0, 40, 4))
    many = block_starts(np.ones(4 * 200, bool))  # default: 127 (an odd number of blocks per row)
    assert many.size == 127 and many[0] == 0 and many[-1] == 4 * 199
    assert block_starts(np.ones(4 * 127, bool)).tolist() == list(range(0, 4 * 127, 4))


# --------------------------------------------------------------------------- block_powers

V = np.array([1 + 2j, 3 - 1j, 0.5j, 2, 4, 1, -1j, 3], complex)


def one_row(values):
    """[corr=1, chan, row=1]."""
    return np.asarray(values)[None, :, None]


def test_powers_with_one_weight_per_row():
    w = 2.0
    p = block_powers(one_row(V), one_row(np.zeros(8, bool)), np.array([[w]]), np.array([0, 4]))
    for b, s in enumerate((0, 4)):
        v0, v1, v2, v3 = V[s:s + 4]
        assert p[3][0, b, 0] == pytest.approx(abs(-v0 + 3 * v1 - 3 * v2 + v3) ** 2 / (20 / w), rel=1e-6)
        assert p[2][0, b, 0] == pytest.approx(abs(v0 - 2 * v1 + v2) ** 2 / (6 / w), rel=1e-6)
        assert p[1][0, b, 0] == pytest.approx(abs(v1 - v0) ** 2 / (2 / w), rel=1e-6)
    assert p[3][0, 0, 0] == pytest.approx(142.25 / 10, rel=1e-6)  # d = 10 - 6.5j, by hand
    assert set(p) == {1, 2, 3} and all(x.dtype == np.float32 and x.shape == (1, 2, 1) for x in p.values())


def test_powers_with_a_weight_spectrum():
    w = np.array([1.0, 2.0, 4.0, 8.0, 1.0, 1.0, 1.0, 1.0])
    p = block_powers(one_row(V), one_row(np.zeros(8, bool)), one_row(w), np.array([0, 4]))
    v0, v1, v2, v3 = V[:4]
    assert p[3][0, 0, 0] == pytest.approx(abs(-v0 + 3 * v1 - 3 * v2 + v3) ** 2 / (1 + 9 / 2 + 9 / 4 + 1 / 8), rel=1e-6)
    assert p[2][0, 0, 0] == pytest.approx(abs(v0 - 2 * v1 + v2) ** 2 / (1 + 4 / 2 + 1 / 4), rel=1e-6)
    assert p[1][0, 0, 0] == pytest.approx(abs(v1 - v0) ** 2 / (1 + 1 / 2), rel=1e-6)


def test_flagged_channels_and_non_positive_weights_give_nan():
    flag = np.zeros(8, bool)
    flag[5] = True  # second block
    p = block_powers(one_row(V), one_row(flag), np.array([[2.0]]), np.array([0, 4]))
    for k in (1, 2, 3):
        assert np.isfinite(p[k][0, 0, 0]) and np.isnan(p[k][0, 1, 0])
    flag[:] = False
    flag[0] = True  # first channel of the first block: all orders use it
    p = block_powers(one_row(V), one_row(flag), np.array([[2.0]]), np.array([0, 4]))
    assert all(np.isnan(p[k][0, 0, 0]) and np.isfinite(p[k][0, 1, 0]) for k in (1, 2, 3))
    for w in (0.0, -0.5, -1.0):
        p = block_powers(one_row(V), one_row(np.zeros(8, bool)), np.array([[w]]), np.array([0, 4]))
        assert np.isnan(p[3]).all() and np.isnan(p[1]).all()
        ws = np.ones(8)
        ws[6] = w
        p = block_powers(one_row(V), one_row(np.zeros(8, bool)), one_row(ws), np.array([0, 4]))
        assert np.isfinite(p[3][0, 0, 0]) and np.isnan(p[3][0, 1, 0]) and np.isnan(p[2][0, 1, 0])


def test_non_finite_data_give_nan():
    data = V.copy()
    data[1] = np.inf
    p = block_powers(one_row(data), one_row(np.zeros(8, bool)), np.array([[2.0]]), np.array([0, 4]))
    assert np.isnan(p[3][0, 0, 0]) and np.isfinite(p[3][0, 1, 0])


def test_powers_keep_corr_and_row_axes_apart():
    data = np.stack([np.stack([V, 2 * V], axis=1), np.stack([3 * V, V], axis=1)])  # [corr 2, chan 8, row 2]
    w = np.array([[1.0, 4.0], [1.0, 1.0]])
    p = block_powers(data, np.zeros(data.shape, bool), w, np.array([0, 4]))
    base = p[3][0, :, 0]
    assert np.allclose(p[3][0, :, 1], base * 4 * 4, rtol=1e-6)  # twice the amplitude, four times the weight
    assert np.allclose(p[3][1, :, 0], base * 9, rtol=1e-6) and np.allclose(p[3][1, :, 1], base, rtol=1e-6)


# --------------------------------------------------------------------------- row_ratios

def test_chi2_median_constant():
    assert stats.MEDIAN_CHI2_2 == pytest.approx(CHI2_MEDIAN, rel=1e-12)


def test_ratio_of_an_odd_count_of_blocks_is_their_median():
    p = np.array([[[5.0, 1.0], [1.0, 2.0], [4.0, 3.0], [2.0, 9.0], [3.0, 4.0]]])  # [corr 1, block 5, row 2]
    r, n = row_ratios(p)
    assert r.shape == (1, 2) and n == 10
    assert r[0, 0] == pytest.approx(3.0 / CHI2_MEDIAN, rel=1e-12) and r[0, 1] == pytest.approx(3.0 / CHI2_MEDIAN)


def test_samples_of_all_valid_rows_count_every_correlation_and_row():
    p = np.arange(1.0, 31.0).reshape(2, 5, 3)  # [corr 2, block 5, row 3]
    r, n = row_ratios(p)
    assert n == 2 * 5 * 3 and np.allclose(r, np.median(p, axis=1) / CHI2_MEDIAN, rtol=1e-12)


def test_the_first_block_of_an_even_count_is_left_out():
    p = np.array([100.0, 1, 2, 3, 4, 5])[None, :, None]  # median of 1..5 is 3; of all six 3.5
    r, n = row_ratios(p)
    assert r[0, 0] == pytest.approx(3.0 / CHI2_MEDIAN, rel=1e-12) and n == 5
    p = np.array([3.0, 100, 1, 2, 3, 4, 5, 6])[None, :, None]  # the first goes (median 4), not the second (3)
    r, n = row_ratios(p)
    assert r[0, 0] == pytest.approx(4.0 / CHI2_MEDIAN, rel=1e-12) and n == 7


def test_too_few_blocks_give_nan_whether_or_not_another_row_is_flagged():
    # the documented rule: fewer than 5 valid blocks, no estimate -- also when every block of every row is valid
    # (this once returned the median of 3 blocks unless some other row had a flagged block)
    p = np.array([[4.0, 1, 2, 3], [4.0, 1, 2, 3], [4.0, 1, 2, 3]]).T[None, :, :]  # [corr 1, block 4, row 3]
    r, n = row_ratios(p)
    assert r.shape == (1, 3) and np.isnan(r).all() and n == 0
    p[0, 0, 1] = np.nan
    r, n = row_ratios(p)
    assert r.shape == (1, 3) and np.isnan(r).all() and n == 0
    r, n = row_ratios(np.arange(1.0, 8.0)[None, :, None], np.array([True] * 3 + [False] * 4))
    assert r.shape == (1, 1) and np.isnan(r).all() and n == 0


def ratios_by_hand(p):
    """Per (corr, row): drop the first valid block of an even count, median of the rest, NaN below 5 blocks."""
    out = np.full((p.shape[0], p.shape[2]), np.nan)
    used = 0
    for c in range(p.shape[0]):
        for r in range(p.shape[2]):
            vals = [x for x in p[c, :, r] if np.isfinite(x)]
            if len(vals) % 2 == 0 and vals:
                vals = vals[1:]
            if len(vals) >= 5:
                out[c, r] = np.median(vals) / CHI2_MEDIAN
                used += len(vals)
    return out, used


def test_ratios_with_flagged_blocks():
    nan = np.nan
    rows = [[9, 1, 2, 3, 4, 5, 6, 7],  # all 8 valid: blocks 1..7, median 4
            [nan, 8, 1, nan, 2, 3, nan, 7],  # 5 valid: median 3
            [1, 2, nan, 3, nan, 4, nan, nan],  # 4 valid -> 3: too few
            [nan, nan, 50, 1, 2, 3, 4, 5],  # 6 valid: the first valid (50) goes, median 3
            [nan] * 8]
    p = np.array(rows, float).T[None, :, :]
    r, n = row_ratios(p)
    assert np.allclose(r[0], np.array([4, 3, nan, 3, nan]) / CHI2_MEDIAN, rtol=1e-12, equal_nan=True)
    assert n == 7 + 5 + 5
    assert (r, n)[1] == ratios_by_hand(p)[1]


@given(st.lists(st.lists(st.one_of(st.none(), st.floats(0.01, 100)), min_size=9, max_size=9), min_size=1,
                max_size=4))
def test_ratios_match_the_rule_by_hand(rows):
    p = np.array([[np.nan if x is None else x for x in row] for row in rows], float).T[None, :, :]
    p = np.concatenate([p, p[:, ::-1, :]])  # a second correlation, blocks reversed
    r, n = row_ratios(p)
    want, used = ratios_by_hand(p)
    assert np.allclose(r, want, rtol=1e-12, equal_nan=True) and n == used


def test_ratios_of_the_blocks_in_use():
    p = np.array([7.0, 1, 2, 3, 4, 5, 100])[None, :, None]
    use = np.array([False, True, True, True, True, True, False])
    r, n = row_ratios(p, use)
    assert r[0, 0] == pytest.approx(3.0 / CHI2_MEDIAN) and n == 5
    r, n = row_ratios(np.ones((2, 7, 3)), np.zeros(7, bool))
    assert r.shape == (2, 3) and np.isnan(r).all() and n == 0


def test_one_row_with_a_flagged_block():
    p = np.array([9.0, np.nan, 8, 1, 7, 2, 6, 3, 5])[None, :, None]  # 8 valid: 9 goes, median of 8 1 7 2 6 3 5
    r, n = row_ratios(p)
    assert r[0, 0] == pytest.approx(5.0 / CHI2_MEDIAN) and n == 7


def test_five_valid_blocks_are_enough_and_three_are_not():
    nan = np.nan
    p = np.array([[1, 2, 3, 4, 5, nan, nan], [1, 2, 3, nan, nan, nan, nan]], float).T[None, :, :]
    r, n = row_ratios(p)
    assert r[0, 0] == pytest.approx(3.0 / CHI2_MEDIAN) and np.isnan(r[0, 1]) and n == 5


# --------------------------------------------------------------------------- medians of blocks

def test_block_medians_pool_corr_and_rows():
    nan = np.nan
    p = np.array([[[1, 2], [nan, nan], [5, nan]], [[3, 4], [nan, nan], [7, 9]]], float)  # [corr 2, block 3, row 2]
    med, n = stats._block_medians(p)
    assert np.allclose(med, [2.5, nan, 7.0], equal_nan=True) and n.tolist() == [4, 0, 3]


def test_running_median_of_neighbours():
    nan = np.nan
    v = np.array([5, 1, 2, 8, 3, nan, 7], float)
    assert np.allclose(stats._running_median(v, 1), [3, 2, 2, 3, 5.5, 5, 7], equal_nan=True)
    assert np.allclose(stats._running_median(v, 0), v, equal_nan=True)
    assert np.allclose(stats._running_median(v, 2), [2, 3.5, 3, 2.5, 5, 7, 5], equal_nan=True)
    assert np.isnan(stats._running_median(np.array([1.0, nan, nan, nan]), 1)[2])


# --------------------------------------------------------------------------- detect_lines

def powers(p3, nrows=100, p1=None, p2=None):
    """{order: [corr 1, block, row]}: every row of a block at that block's value (default 1)."""
    nb = len(p3)
    out = {}
    for k, vals in ((1, p1), (2, p2), (3, p3)):
        vals = np.ones(nb) if vals is None else np.asarray(vals, float)
        out[k] = np.repeat(vals[None, :, None], nrows, axis=2)
    return out


def sigmas_of(level, n):
    """Standard errors a block's median *level* times its reference stands out, with n samples."""
    return (level - 1) / (SE / math.sqrt(n))


def test_a_narrow_line_is_excluded_with_its_neighbours():
    p3 = np.ones(20)
    p3[7] = 2.0
    out, level, sig, reliable, note = detect_lines(powers(p3))
    assert np.nonzero(out)[0].tolist() == [6, 7, 8] and reliable is True and note == ""
    assert level[7] == pytest.approx(2.0) and sig[7] == pytest.approx(sigmas_of(2.0, 100), rel=1e-9)
    assert sig[7] == pytest.approx(10 * math.log(2), rel=1e-9)  # 6.9 standard errors
    assert level[0] == pytest.approx(1.0) and sig[0] == pytest.approx(0.0, abs=1e-12)


def test_lines_at_the_edges_grow_inwards_only():
    p3 = np.ones(20)
    p3[0] = p3[19] = 3.0
    out, *_ = detect_lines(powers(p3))
    assert np.nonzero(out)[0].tolist() == [0, 1, 18, 19]


def test_the_threshold_is_five_standard_errors():
    for s, flagged in ((5.1, True), (4.9, False)):
        p3 = np.ones(20)
        p3[10] = 1 + s * SE / 10  # s standard errors with 100 samples
        out, *_ = detect_lines(powers(p3))
        assert out[10] == flagged, s
    p3 = np.ones(20)
    p3[10] = 2.0
    exact = (2.0 - 1) / (SE / np.sqrt(100))
    assert not detect_lines(powers(p3), sigmas=exact)[0].any()  # more than, not as many as
    assert detect_lines(powers(p3), sigmas=exact * (1 - 1e-9))[0][10]


def test_excluding_a_line_lowers_the_reference():
    # with the line (blocks 4-6) the spw's median is 1.3; without it and its neighbours, 1.0: the blocks at 1.3
    # then stand out by 0.3 x 50 x ln 2 = 10 standard errors, and with the line more than half of the spw goes
    p3 = np.array([1.0, 1.3, 1.0, 1.3, 10, 10, 10, 1.3, 1.0, 1.3, 1.0])
    out, level, sig, reliable, note = detect_lines(powers(p3, nrows=2500))
    assert not out.any() and reliable is False
    assert level[1] == pytest.approx(1.3) and sig[1] == pytest.approx(sigmas_of(1.3, 2500), rel=1e-6)


def one_round(p, out, orders, sigmas=5.0, half=4):
    """The blocks one more round would exclude given the exclusions *out* (and their neighbours), from
    the documented rule: the order-3 reference is the median of the kept blocks, the order-1 and -2
    references the median of the kept blocks within +-half; a block stands out by (level - 1) / (SE / sqrt n)."""
    nb = len(out)
    meds = {k: np.array([np.median(p[k][:, b, :]) for b in range(nb)]) for k in orders}
    n = p[3].shape[0] * p[3].shape[2]
    core = np.zeros(nb, bool)
    for k in orders:
        kept = [b for b in range(nb) if not out[b]]
        for b in range(nb):
            near = kept if k == 3 else [j for j in kept if abs(j - b) <= half]
            if near:
                ref = np.median(meds[k][near])
                core[b] |= (meds[k][b] / ref - 1) / (SE / math.sqrt(n)) > sigmas
    grown = core.copy()
    grown[1:] |= core[:-1]
    grown[:-1] |= core[1:]
    return grown


@pytest.mark.parametrize("phase", [0, 1, 2])
def test_a_ripple_in_the_first_differences_settles_on_the_third_differences(phase):
    # a period-3 ripple: each round's exclusions moved the local references enough to clear the blocks that
    # caused them, and after 20 rounds the flip-flop's last state came back as reliable exclusions
    p1 = np.where((np.arange(30) + phase) % 3 == 0, 2.9, 1.0)
    p = powers(np.ones(30), nrows=400, p1=p1)
    out, level, sig, reliable, note = detect_lines(p)
    assert not out.any() and reliable and note.startswith("first and second differences stand out over most")
    assert one_round(p, np.zeros(30, bool), (1, 2, 3)).any()  # the ripple does stand out at first


@settings(max_examples=150, deadline=None)
@given(p1=st.lists(st.sampled_from([1.0, 1.4, 2.0, 2.9]), min_size=8, max_size=30),
       p3=st.lists(st.sampled_from([1.0, 1.0, 1.2, 1.6, 3.0]), min_size=30, max_size=30))
def test_exclusions_are_a_fixed_point_of_the_rule(p1, p3):
    # whatever the pattern, the exclusions returned are closed under one more round of the rule (with the
    # orders that produced them): the answer cannot depend on where an iteration happened to stop
    nb = len(p1)
    p = powers(np.array(p3[:nb]), nrows=400, p1=p1)
    out, level, sig, reliable, note = detect_lines(p)
    if reliable and out.any():
        orders = (1, 2, 3) if note == "" else (3,)
        assert not (one_round(p, out, orders) & ~out).any()
        assert out.sum() <= nb / 2


def test_standard_errors_grow_with_the_samples():
    p3 = np.ones(20)
    p3[10] = 1.5  # 0.5 above: 3.5 standard errors with 100 samples, 6.9 with 400
    assert not detect_lines(powers(p3, nrows=100))[0].any()
    out, level, sig, *_ = detect_lines(powers(p3, nrows=400))
    assert out[10] and sig[10] == pytest.approx(sigmas_of(1.5, 400), rel=1e-9)


def test_blocks_without_samples_are_not_usable():
    nan = np.nan
    assert detect_lines(powers([1.0, 1.0]))[3:] == (True, "")
    out, level, sig, reliable, note = detect_lines(powers([1.0, 9.0]))  # two blocks: no reference
    assert not out.any() and np.isnan(level).all() and np.isnan(sig).all() and reliable and note == ""
    out, level, sig, reliable, _ = detect_lines(powers([1.0, 1.0, 1.0]))  # three: measured
    assert not out.any() and np.allclose(level, 1.0) and reliable
    out, level, *_ = detect_lines(powers([1.0, nan, 1.0, nan]))  # two usable blocks again
    assert not out.any() and np.isnan(level).all()
    # a flagged block is never excluded, and does not count towards the half
    p3 = [1.0, nan, 1.0, 1.0, 1.0, 1.0, 1.0, 4.0, 1.0, 1.0]
    out, level, sig, reliable, _ = detect_lines(powers(p3))
    assert np.nonzero(out)[0].tolist() == [6, 7, 8] and reliable
    flagged = [x if np.isnan(x) else 1.0 for x in p3]
    sig = detect_lines(powers(p3, p1=flagged, p2=flagged))[2]
    assert np.isnan(sig[1]) and sig[0] == 0  # no evidence for a block without samples in any order


def test_usable_blocks_are_those_with_third_differences():
    nan = np.nan
    # three blocks with third differences (one reading zero, one without second differences), one row each
    out, level, sig, reliable, _ = detect_lines(powers([0.0, 1.0, 1.0], nrows=1, p2=[nan, 1.0, 1.0]))
    assert not out.any() and np.isfinite(level).all() and reliable


def test_one_sample_per_block():
    # one standard error is 1/ln 2 = 1.44: a level of 8 is 4.85 standard errors, 9 is 5.5
    assert not detect_lines(powers(np.where(np.arange(9) == 4, 8.0, 1.0), nrows=1))[0].any()
    assert detect_lines(powers(np.where(np.arange(9) == 4, 9.0, 1.0), nrows=1))[0][4]


def test_third_differences_compare_with_the_whole_spw():
    p3 = np.ones(30)
    p3[10:15] = 3.0  # a broad line: the majority of its neighbourhood, but not of the spw
    out, *_ = detect_lines(powers(p3, nrows=400))
    assert np.nonzero(out)[0].tolist() == list(range(9, 16))


def test_first_differences_compare_with_their_neighbours():
    # a 4-block plateau in the first differences: within +-4 blocks most are below it, so it stands out
    p1 = np.ones(30)
    p1[10:14] = 3.0
    out, level, sig, reliable, note = detect_lines(powers(np.ones(30), nrows=400, p1=p1))
    assert np.nonzero(out)[0].tolist() == list(range(9, 15)) and reliable and note == ""
    assert level[10] == pytest.approx(3.0)
    # a 5-block plateau is the majority of every window of 9 blocks around it: nothing stands out
    p1[14] = 3.0
    assert not detect_lines(powers(np.ones(30), nrows=400, p1=p1))[0].any()


def test_second_differences_count_too():
    p2 = np.ones(30)
    p2[20] = 3.0
    out, *_ = detect_lines(powers(np.ones(30), nrows=400, p2=p2))
    assert np.nonzero(out)[0].tolist() == [19, 20, 21]


def test_a_smooth_slope_in_first_differences_does_not_count():
    p1 = 1 + 0.1 * np.arange(20)  # far from the spw's median at the ends, not from the neighbours
    assert not detect_lines(powers(np.ones(20), nrows=1000, p1=p1))[0].any()


def test_exactly_half_of_the_blocks_may_go():
    p1 = np.ones(10)
    p1[1:4] = 3.0  # blocks 0..4 go: 5 of 10
    out, _, _, reliable, note = detect_lines(powers(np.ones(10), nrows=400, p1=p1))
    assert np.nonzero(out)[0].tolist() == [0, 1, 2, 3, 4] and reliable and note == ""


def test_broad_structure_in_lower_differences_falls_back_to_third_differences():
    spikes = np.where(np.arange(12) % 4 == 1, 3.0, 1.0)  # blocks 1, 5, 9: grown, 9 of 12
    out, level, sig, reliable, note = detect_lines(powers(np.ones(12), nrows=400, p1=spikes))
    assert not out.any() and reliable and "broad structure" in note and "third differences" in note
    # third differences excluding exactly half, first differences more
    p3 = np.ones(10)
    p3[1:4] = 3.0
    p1 = np.ones(10)
    p1[7] = 3.0
    out, level, sig, reliable, note = detect_lines(powers(p3, nrows=400, p1=p1))
    assert np.nonzero(out)[0].tolist() == [0, 1, 2, 3, 4] and reliable and "broad structure" in note


def test_more_than_half_standing_out_leaves_no_reference():
    p3 = np.where(np.arange(12) % 4 == 1, 3.0, 1.0)  # blocks 1, 5, 9: grown, 9 of 12
    out, level, sig, reliable, note = detect_lines(powers(p3, nrows=400))
    assert not out.any() and reliable is False and "broad structure" in note
    assert level[5] == pytest.approx(3.0) and sig[5] > 5  # the evidence is still returned


# --------------------------------------------------------------------------- slope_check

def slope_powers(r1, r2, n3, nblocks=1, third=2.0):
    """Constant powers: first and second differences r1 and r2 times the third's, n3 samples of each."""
    return {1: np.full((1, nblocks, n3), r1 * third), 2: np.full((1, nblocks, n3), r2 * third),
            3: np.full((1, nblocks, n3), third)}


def test_slope_excess_over_third_differences():
    s = slope_check(slope_powers(1.5, 0.75, 400), np.ones(1, bool))
    assert s["first"]["excess"] == pytest.approx(0.5) and s["second"]["excess"] == pytest.approx(-0.25)
    assert s["first"]["significant"] is True and s["second"]["significant"] is False


def test_slope_significance_needs_four_standard_errors():
    # excess 0.5 against 4 x (1/ln 2) sqrt(2/n): the boundary is at n = 266.4
    assert 4 * SE * math.sqrt(2 / 267) < 0.5 < 4 * SE * math.sqrt(2 / 266)
    assert slope_check(slope_powers(1.5, 1.0, 267), np.ones(1, bool))["first"]["significant"] is True
    assert slope_check(slope_powers(1.5, 1.0, 266), np.ones(1, bool))["first"]["significant"] is False
    assert slope_check(slope_powers(1.0, 1.5, 267), np.ones(1, bool))["second"]["significant"] is True


def test_slope_with_a_single_third_difference():
    # n = 1: four standard errors are 4 x (1/ln 2) sqrt(2) = 8.2
    assert slope_check(slope_powers(8.0, 1.0, 1), np.ones(1, bool))["first"]["significant"] is False
    assert slope_check(slope_powers(9.5, 1.0, 1), np.ones(1, bool))["first"]["significant"] is True


def test_slope_excess_below_two_percent_is_not_worth_a_note():
    big = 10 ** 6  # four standard errors: 0.8 %
    assert slope_check(slope_powers(1.021, 1.0, big), np.ones(1, bool))["first"]["significant"] is True
    assert slope_check(slope_powers(1.019, 1.0, big), np.ones(1, bool))["first"]["significant"] is False


def test_slope_uses_only_the_blocks_in_use_and_finite_powers():
    pw = slope_powers(1.0, 1.0, 400, nblocks=3, third=1.0)
    pw[1][:, 1, :] = 50.0  # an excluded line
    pw[3][:, 2, :200] = np.nan  # flagged
    s = slope_check(pw, np.array([True, False, True]))
    assert s["first"]["excess"] == pytest.approx(0.0) and s["first"]["significant"] is False
    pw[1][:, 1, :] = 1.0
    pw[1][:, 2, :] = 2.0
    pw[3][:, 2, :] = np.nan  # the third differences' n is now 400: 4 SE = 0.41
    s = slope_check(pw, np.array([True, False, True]))
    assert s["first"]["excess"] == pytest.approx(0.5) and s["first"]["significant"] is True


def test_slope_without_third_differences_is_nan():
    s = slope_check(slope_powers(1.5, 1.5, 10), np.zeros(1, bool))
    assert math.isnan(s["first"]["excess"]) and s["first"]["significant"] is False
    pw = slope_powers(1.5, 1.5, 10)
    pw[3][:] = 0.0
    s = slope_check(pw, np.ones(1, bool))
    assert math.isnan(s["second"]["excess"]) and s["second"]["significant"] is False


# --------------------------------------------------------------------------- format_channels, GroupStats

def test_format_channels():
    assert format_channels(3, [0, 1, 2, 5, 6]) == "3:0~2;5~6"
    assert format_channels(3, [6, 5, 5, 0, 2, 1]) == "3:0~2;5~6"
    assert format_channels(0, [4]) == "0:4"
    assert format_channels(1, [0, 2, 3, 9]) == "1:0;2~3;9"
    assert format_channels(2, np.array([], int)) == ""


def test_group_stats_defaults_and_dict():
    g = GroupStats("a.ms", 1, "TGT", None, 10, 0, 1.0, 0.1, 0.2, 2.0, 1.0, 5e5, 6.0, 3.0, "WEIGHT")
    d = g.as_dict()
    assert d["channels"] == "" and d["excluded"] == [] and d["slope"] == {} and d["reliable"] is True
    assert d["note"] == "" and d["weight_column"] == "WEIGHT" and d["spw"] == 1
    g.excluded.append(1)
    assert GroupStats("a.ms", 1, "TGT", None, 10, 0, 1.0, 0.1, 0.2, 2.0, 1.0, 5e5, 6.0, 3.0, "W").excluded == []


# --------------------------------------------------------------------------- the accumulator

def test_excluded_ranges_cover_the_unsampled_channels_up_to_the_next_used_block():
    acc = stats._Accumulator(np.array([0, 10, 20, 30, 40, 50]))
    assert acc.excluded_ranges(0) == []  # nothing decided yet
    acc.use = np.array([True, True, False, False, True, True])
    acc.level = np.array([1, 1, 1.5, 3.0, 1, 1], float)
    acc.sig = np.array([0, 0, 7.0, 20.0, 0, 0], float)
    (e,) = acc.excluded_ranges(0)
    assert e == {"channels": "14~39", "first": 14, "last": 39, "excess": pytest.approx(2.0), "sigmas": 20.0}
    acc.use = np.array([False, True, True, True, True, False])
    acc.sig = np.array([np.nan, 0, 0, 0, 0, 9.0])
    acc.level = np.array([np.nan, 1, 1, 1, 1, 1.25])
    first, last = acc.excluded_ranges(0)
    assert (first["first"], first["last"], last["first"], last["last"]) == (0, 9, 44, 53)
    assert last["excess"] == pytest.approx(0.25) and last["sigmas"] == 9.0
    acc.use = np.array([True, False, True, False, True, True])
    acc.sig = np.array([0, 6.0, 0, 8.0, 0, 0])
    assert [e["channels"] for e in acc.excluded_ranges(0)] == ["4~19", "24~39"]
    acc.use = np.array([True, True, True, True, False, False])  # a run to the last block
    assert [e["channels"] for e in acc.excluded_ranges(0)] == ["34~53"]
    acc.use = np.array([True, True, True, True, False, True])  # a run to the last block but one
    assert [e["channels"] for e in acc.excluded_ranges(0)] == ["34~49"]
    acc.use = np.array([False, False, True, True, True, True])  # the peak: the highest finite excess in the run
    acc.sig = np.array([np.nan, 9.0, 50.0, 0, 0, 0])
    acc.level = np.array([np.nan, 1.5, 3.0, 1, 1, 1])
    (e,) = acc.excluded_ranges(0)
    assert (e["channels"], e["sigmas"], e["excess"]) == ("0~19", 9.0, 0.5)


def test_accumulator_decides_once_the_buffer_is_full(monkeypatch):
    # lower differences at 2: the ratios must come from the third
    lined = powers(np.where(np.arange(9) == 4, 5.0, 1.0), nrows=100, p1=np.full(9, 2.0), p2=np.full(9, 2.0))
    plain = powers(np.ones(9), nrows=100, p1=np.full(9, 2.0), p2=np.full(9, 2.0))
    nbytes = sum(p.nbytes for p in lined.values())
    monkeypatch.setattr(stats, "CHECK_BUFFER_BYTES", nbytes)  # the first add fills it exactly
    acc = stats._Accumulator(np.arange(0, 36, 4))
    acc.add(lined)
    assert acc.use is not None and np.nonzero(~acc.use)[0].tolist() == [3, 4, 5] and acc.buffer == []
    acc.add(plain)  # measured with the mask decided on the first rows
    r = acc.finish()
    assert r.size == 200 and np.allclose(r, 1 / CHI2_MEDIAN) and acc.samples == 200 * 5
    monkeypatch.setattr(stats, "CHECK_BUFFER_BYTES", 2 * nbytes + 1)
    acc = stats._Accumulator(np.arange(0, 36, 4))
    acc.add(plain)
    acc.add(lined)  # still buffering: the line in the second rows decides
    assert acc.use is None and acc.buffered == 2 * nbytes
    r = acc.finish()
    assert np.nonzero(~acc.use)[0].tolist() == [3, 4, 5] and r.size == 200
    assert stats._Accumulator(np.arange(0, 36, 4)).finish().size == 0


def test_accumulator_drops_rows_without_a_ratio():
    pw = powers(np.ones(9), nrows=4)
    for k in pw:
        pw[k][:, :6, 1] = np.nan  # row 1: three blocks left
    acc = stats._Accumulator(np.arange(0, 36, 4))
    acc.add(pw)
    r = acc.finish()
    assert r.size == 3 and np.allclose(r, 1 / CHI2_MEDIAN) and acc.samples == 3 * 9
    assert acc.slope["first"]["excess"] == pytest.approx(0.0)


# --------------------------------------------------------------------------- groups measured from an MS

SPIKE = {0: 2, 1: 0, 2: 1}  # spw -> the channel of each block that holds the spike
LINE_BLOCK = 3  # in spw 0 of field CAL the spike of block 3 is three times as high: a line


def spike_powers(spw, a, w):
    """(|z|^2 of the third, second, first differences) of a spike of amplitude a in each block, weight w."""
    c = SPIKE[spw]
    d = ((-1, 3, -3, 1)[c], (1, -2, 1, 0)[c], (-1, 1, 0, 0)[c])  # the spike's coefficient in each difference
    return tuple(k * k * abs(a) ** 2 * w / s for k, s in zip(d, (20, 6, 2)))


@pytest.fixture(scope="module")
def ms(tmp_path_factory):
    """Three spws of 32 channels, fields TGT and CAL in alternate scans, 15 rows per (spw, field), the last two
    scans of CAL with a calibration intent.  Every block holds one spike of the row's and correlation's
    amplitude a (channel 2 of 4 in spw 0, 0 in spw 1, 1 in spw 2): all its powers are known."""
    from almatools.casaenv import casatools
    from almatools.testing import simulate_ms
    vis = simulate_ms(tmp_path_factory.mktemp("wtstats") / "spikes.ms",
                      [("A", 230e9, 0.5e6, 32), ("B", 231e9, 1e6, 32), ("C", 232e9, 2e6, 32)], nant=3,
                      duration_s=60, integration_s=6, weights="modern", intent="OBSERVE_TARGET#ON_SOURCE",
                      pointings=[("J2000", "11h01m51.9s", "-34d42m17.0s"), ("J2000", "11h01m53.9s", "-34d42m17.0s")])
    tb = casatools().table()
    try:
        tb.open(f"{vis}/FIELD", nomodify=False)
        tb.putcol("NAME", np.array(["TGT", "CAL"]))
        tb.close()
        tb.open(f"{vis}/STATE", nomodify=False)
        tb.addrows(1)
        tb.putcell("OBS_MODE", 1, "CALIBRATE_PHASE#ON_SOURCE,CALIBRATE_WVR#ON_SOURCE")
        tb.close()
        tb.open(vis, nomodify=False)
        dd, fid, scan = tb.getcol("DATA_DESC_ID"), tb.getcol("FIELD_ID"), tb.getcol("SCAN_NUMBER")
        nrow = dd.size
        a = (1 + 0.1 * np.arange(nrow))[None, :] * np.array([1.0, 1.3])[:, None]  # [corr, row]
        w = np.where(fid == 0, 2.0, 8.0)[None, :] * np.array([1.0, 1.5])[:, None]
        data = np.zeros((2, 32, nrow), complex)
        for r in range(nrow):
            data[:, SPIKE[dd[r]]::4, r] = a[:, r, None] * (1 + 0.5j)
            if dd[r] == 0 and fid[r] == 1:
                data[:, 4 * LINE_BLOCK + SPIKE[0], r] *= 3
        for col in ("DATA", "CORRECTED_DATA"):
            tb.putcol(col, data)
        tb.putcol("WEIGHT", w)
        tb.putcol("SIGMA", np.sqrt(2 / w))  # WEIGHT x SIGMA^2 = 2
        tb.putcol("FLAG", np.zeros((2, 32, nrow), bool))
        tb.putcol("STATE_ID", np.where((fid == 1) & (scan > 24), 1, 0).astype(np.int32))
    finally:
        tb.done()
    return vis, dd, fid, scan, a * abs(1 + 0.5j), w


def expected(ratios):
    """Median, relative 16-84 % half-spread and the median's standard error sqrt(pi/2) spread / sqrt(N)."""
    med = np.median(ratios)
    p16, p84 = np.percentile(ratios, [16, 84])
    spread = (p84 - p16) / 2 / med
    return med, spread, math.sqrt(math.pi / 2) * spread / math.sqrt(ratios.size)


def measured(ms, **kw):
    from almatools.casaenv import casatools
    args = dict(column="DATA", channels=None, fields=None, intent="", perscan=False)
    args.update(kw)
    return stats.measure(casatools(), ms[0], **args)


class Progress:
    def __init__(self):
        self.counts = []

    def update(self, n):
        self.counts.append(n)


@pytest.mark.casa
def test_groups_ratios_and_weights(ms):
    vis, dd, fid, scan, a, w = ms
    progress = Progress()
    groups = measured(ms, progress=progress)
    assert [(g.spw, g.field, g.scan) for g in groups] == [(s, f, None) for s in (0, 1, 2) for f in ("TGT", "CAL")]
    assert sum(progress.counts) == dd.size
    for g in groups:
        rows = (dd == g.spw) & (fid == ("TGT", "CAL").index(g.field))
        ratios = (spike_powers(g.spw, a[:, rows], w[:, rows])[0] / CHI2_MEDIAN).ravel()
        med, spread, err = expected(ratios)
        assert (g.vis, g.nrows, g.weight_column) == (vis, 15, "WEIGHT")
        assert g.ratio == pytest.approx(med, rel=1e-6) and g.spread == pytest.approx(spread, rel=1e-5)
        assert g.ratio_err == pytest.approx(err, rel=1e-5)
        assert g.weight_median == pytest.approx(np.median(w[:, rows])) and g.weight_sigma2 == pytest.approx(2.0)
        width = (0.5e6, 1e6, 2e6)[g.spw]
        assert g.chan_width_hz == width and g.exposure_s == 6.0
        assert g.radiometer == pytest.approx(np.median(w[:, rows]) / (2 * width * 6.0))
        blocks_used = 5 if (g.spw, g.field) == (0, "CAL") else 7  # 8 blocks: the first goes; 3 for the line
        assert g.nsamples == 2 * 15 * blocks_used


@pytest.mark.casa
def test_a_line_is_excluded_and_reported(ms):
    g = {(x.spw, x.field): x for x in measured(ms)}
    line, clean = g[(0, "CAL")], g[(0, "TGT")]
    (e,) = line.excluded
    assert (e["channels"], e["first"], e["last"]) == ("8~19", 8, 19)
    assert e["excess"] == pytest.approx(8.0, rel=1e-5)  # three times the amplitude: nine times the power
    assert e["sigmas"] == pytest.approx(8.0 / (SE / math.sqrt(30)), rel=1e-5)
    assert line.channels == "0:0~7;20~31" and clean.channels == "0:0~31" and clean.excluded == []
    assert line.used_mask.tolist() == [True] * 8 + [False] * 12 + [True] * 12
    assert line.note == f"excluded channels 8~19 (x9.00, {e['sigmas']:.0f} sigma)" and line.reliable
    assert clean.note == "" and clean.reliable and clean.slope["first"]["excess"] == pytest.approx(-1.0)


@pytest.mark.casa
def test_slopes_in_lower_differences_are_noted(ms):
    g = {(x.spw, x.field): x for x in measured(ms)}
    ones = g[(1, "TGT")]  # a spike in the first channel: first differences 10x, second 10/3 x the third
    assert ones.slope["first"]["excess"] == pytest.approx(9.0, rel=1e-5)
    assert ones.slope["second"]["excess"] == pytest.approx(20 / 6 - 1, rel=1e-5)
    assert "first differences read +900.0% (a continuum slope" in ones.note
    assert "second differences read +233.3% (a continuum slope" in ones.note
    assert "structure strong even in second differences" in ones.note and ones.reliable is False
    mid = g[(2, "TGT")]  # second channel: second differences 40/27 x, not significant with 240 samples
    assert mid.slope["second"]["excess"] == pytest.approx((4 / 6) / (9 / 20) - 1, rel=1e-5)
    assert mid.slope["second"]["significant"] is False and mid.slope["first"]["significant"] is False
    assert mid.note == "structure strong even in second differences: the ratio may still be biased"
    assert mid.reliable is False and np.isfinite(mid.ratio)


@pytest.mark.casa
def test_groups_per_scan(ms):
    vis, dd, fid, scan, a, w = ms
    groups = measured(ms, perscan=True, fields=["TGT"], channels={2: np.ones(32, bool)})
    assert [g.scan for g in groups] == sorted(set(scan[(dd == 2) & (fid == 0)].tolist()))
    for g in groups:
        rows = scan == g.scan
        assert g.nrows == 3 and g.spw == 2
        assert g.ratio == pytest.approx(np.median(spike_powers(2, a[:, rows], w[:, rows])[0]) / CHI2_MEDIAN, rel=1e-6)


@pytest.mark.casa
def test_fields_by_name_or_index(ms):
    assert {(g.spw, g.field) for g in measured(ms, fields=["CAL"])} == {(0, "CAL"), (1, "CAL"), (2, "CAL")}
    assert {g.field for g in measured(ms, fields=["0"])} == {"TGT"}
    assert measured(ms, fields=["NONE"]) == []
    assert {g.field for g in measured(ms, fields=[])} == {"TGT", "CAL"}  # no selection: every field


@pytest.mark.casa
def test_intents_select_states(ms):
    from almatools.casaenv import casatools
    vis = ms[0]
    ct = casatools()
    assert stats._states_for(ct, vis, "") is None
    assert stats._states_for(ct, vis, "CALIBRATE_WVR") == [1]  # a part of a comma-separated OBS_MODE
    assert stats._states_for(ct, vis, "ON_SOURCE") == [0, 1]
    assert stats._states_for(ct, vis, "CALIBRATE?PHASE*") == [1]
    assert stats._states_for(ct, vis, "TARGET*") == []  # a pattern is not wrapped in '*'
    assert stats._states_for(ct, vis, "XYZ") == []
    cal = measured(ms, intent="CALIBRATE_PHASE", channels={0: np.ones(32, bool)})
    assert [(g.field, g.nrows) for g in cal] == [("TGT", 0), ("CAL", 3)]  # CAL's last scan of spw 0
    assert cal[0].note == "no rows" and cal[0].reliable is False
    assert cal[1].reliable and np.isfinite(cal[1].ratio)
    assert measured(ms, intent="XYZ") == []


@pytest.mark.casa
def test_channel_selections(ms):
    progress = Progress()
    sel = np.zeros(32, bool)
    sel[:20] = True  # 5 blocks
    (g,) = measured(ms, channels={1: sel}, fields=["TGT"])
    assert g.channels == "1:0~19" and g.nsamples == 2 * 15 * 5 and g.spw == 1
    (g,) = measured(ms, channels={1: np.ones(20, bool)}, fields=["TGT"])  # shorter than the spw: the rest is out
    assert g.channels == "1:0~19" and g.nsamples == 2 * 15 * 5
    (g,) = measured(ms, channels={1: np.ones(40, bool)}, fields=["TGT"])
    assert g.channels == "1:0~31"
    sel[16:] = False  # 4 blocks: too few
    (g,) = measured(ms, channels={1: sel}, fields=["TGT"], progress=progress)
    assert g.note == "fewer than 5 blocks of 4 adjacent selected channels: no third differences"
    assert g.reliable is False and math.isnan(g.ratio) and g.nsamples == 0 and progress.counts == [15]


@pytest.mark.casa
def test_rows_are_read_in_chunks(ms, monkeypatch):
    whole = {(g.spw, g.field): g for g in measured(ms)}
    monkeypatch.setattr(stats, "CHUNK_BYTES", 1)  # one row at a time
    progress = Progress()
    for g in measured(ms, progress=progress):
        w = whole[(g.spw, g.field)]
        assert (g.ratio, g.spread, g.nsamples, g.weight_median, g.channels) == (w.ratio, w.spread, w.nsamples,
                                                                                w.weight_median, w.channels)
    assert progress.counts == [1] * ms[1].size
    # 32 bytes per visibility (data, differences, powers, flags): seven rows at a time, 15 = 7 + 7 + 1
    monkeypatch.setattr(stats, "CHUNK_BYTES", 2 * 32 * 32 * 7)
    progress = Progress()
    measured(ms, channels={0: np.ones(32, bool)}, fields=["TGT"], progress=progress)
    assert progress.counts == [7, 7, 1]


@pytest.mark.casa
def test_flagged_rows_give_no_ratio(ms, tmp_path):
    import shutil

    from almatools.casaenv import casatools
    vis = shutil.copytree(ms[0], tmp_path / "flagged.ms")
    tb = casatools().table()
    try:
        tb.open(str(vis), nomodify=False)
        tb.putcol("FLAG", np.ones(tb.getcol("FLAG").shape, bool))
    finally:
        tb.done()
    (g,) = stats.measure(casatools(), str(vis), "DATA", {0: np.ones(32, bool)}, ["TGT"], "", False)
    assert g.reliable is False and math.isnan(g.ratio) and g.nsamples == 0
    assert "no row has enough unflagged channels with positive weights" in g.note


@pytest.mark.casa
def test_a_weight_spectrum_is_used_when_present(ms, tmp_path):
    import shutil

    from casatasks import initweights

    from almatools.casaenv import casatools
    vis = str(shutil.copytree(ms[0], tmp_path / "wsp.ms"))
    initweights(vis=vis, wtmode="weight", dowtsp=True)  # WEIGHT_SPECTRUM from WEIGHT
    tb = casatools().table()
    try:
        tb.open(vis, nomodify=False)
        tb.putcol("WEIGHT_SPECTRUM", tb.getcol("WEIGHT_SPECTRUM") * 4)
    finally:
        tb.done()
    before = {(g.spw, g.field): g for g in measured(ms, channels={0: np.ones(32, bool)})}
    for g in stats.measure(casatools(), vis, "DATA", {0: np.ones(32, bool)}, None, "", False):
        assert g.weight_column == "WEIGHT_SPECTRUM"
        assert g.ratio == pytest.approx(4 * before[(g.spw, g.field)].ratio, rel=1e-6)
        assert g.weight_median == pytest.approx(before[(g.spw, g.field)].weight_median)


@pytest.mark.casa
def test_spw_layout(ms):
    from almatools.casaenv import casatools
    dd_spw, widths, names = stats.spw_layout(casatools(), ms[0])
    assert list(dd_spw) == [0, 1, 2] and widths == [0.5e6, 1e6, 2e6] and names == ["TGT", "CAL"]


@pytest.mark.casa
def test_measure_path_returns_dicts(ms):
    (d,) = stats.measure_path(ms[0], "DATA", {2: np.ones(32, bool)}, ["CAL"], "", False)
    assert isinstance(d, dict) and d["spw"] == 2 and d["field"] == "CAL" and d["nrows"] == 15


def edited_copy(ms, tmp_path, name, edit):
    """A copy of the fixture MS changed by edit(table tool opened for writing on the copy)."""
    import shutil

    from almatools.casaenv import casatools
    vis = str(shutil.copytree(ms[0], tmp_path / name))
    tb = casatools().table()
    try:
        tb.open(vis, nomodify=False)
        edit(tb, vis)
    finally:
        tb.done()
    return vis


@pytest.mark.casa
def test_lines_over_most_of_the_spw_leave_it_unreliable(ms, tmp_path):
    from almatools.casaenv import casatools

    def second_line(tb, vis):  # spw 0 of CAL: a second line at block 6 -- blocks 2-7 stand out, 6 of 8
        sub = tb.query("DATA_DESC_ID==0 && FIELD_ID==1")
        d = sub.getcol("DATA")
        d[:, 4 * 6 + SPIKE[0], :] *= 3
        sub.putcol("DATA", d)
        sub.done()
    vis = edited_copy(ms, tmp_path, "two.ms", second_line)
    (g,) = stats.measure(casatools(), vis, "DATA", {0: np.ones(32, bool)}, ["CAL"], "", False)
    assert g.reliable is False and g.excluded == [] and g.channels == "0:0~31"
    assert g.note.startswith("first and second differences stand out over most of the spw (broad structure); "
                             "only the third differences' exclusions are used; more than half of the channels "
                             "stand out (a line everywhere, or weights wrong per channel): no line-free reference")


@pytest.mark.casa
def test_without_a_channel_width_there_is_no_radiometer_figure(ms, tmp_path):
    from almatools.casaenv import casatools

    def no_width(tb, vis):
        tb.close()
        tb.open(f"{vis}/SPECTRAL_WINDOW", nomodify=False)
        tb.putcell("EFFECTIVE_BW", 2, np.zeros(32))
    vis = edited_copy(ms, tmp_path, "nobw.ms", no_width)
    (g,) = stats.measure(casatools(), vis, "DATA", {2: np.ones(32, bool)}, ["TGT"], "", False)
    assert g.chan_width_hz == 0 and math.isnan(g.radiometer) and np.isfinite(g.ratio)


@pytest.mark.casa
def test_an_ms_without_rows_has_no_groups(ms, tmp_path):
    from casatasks import initweights

    from almatools.casaenv import casatools
    vis = edited_copy(ms, tmp_path, "full.ms", lambda tb, vis: None)
    initweights(vis=vis, wtmode="weight", dowtsp=True)
    empty = str(tmp_path / "empty.ms")
    tb = casatools().table()
    try:
        tb.open(vis)
        tb.copy(empty, deep=True, norows=True)
    finally:
        tb.done()
    assert stats.measure(casatools(), empty, "DATA", None, None, "", False) == []


@pytest.mark.casa
def test_the_line_check_sees_all_rows_of_a_small_group(ms, tmp_path, monkeypatch):
    from almatools.casaenv import casatools

    def first_row_without_the_line(tb, vis):
        sub = tb.query("DATA_DESC_ID==0 && FIELD_ID==1")
        d = sub.getcol("DATA", 0, 1)
        d[:, 4 * LINE_BLOCK + SPIKE[0], :] /= 3
        sub.putcol("DATA", d, 0, 1)
        sub.done()
    vis = edited_copy(ms, tmp_path, "late.ms", first_row_without_the_line)
    monkeypatch.setattr(stats, "CHUNK_BYTES", 1)  # read row by row: the check waits for its buffer, or the end
    (g,) = stats.measure(casatools(), vis, "DATA", {0: np.ones(32, bool)}, ["CAL"], "", False)
    assert [e["channels"] for e in g.excluded] == ["8~19"]


@pytest.mark.casa
def test_a_group_of_one_row(ms, tmp_path):
    from casatasks import initweights

    from almatools.casaenv import casatools
    vis = edited_copy(ms, tmp_path, "full.ms", lambda tb, vis: None)
    initweights(vis=vis, wtmode="weight", dowtsp=True)
    one = first_row_copy(vis, tmp_path / "one.ms")
    (g,) = stats.measure(casatools(), one, "DATA", None, None, "", False)
    vis0, dd, fid, scan, a, w = ms
    assert (g.nrows, g.spw, g.field, g.weight_column) == (1, dd[0], "TGT", "WEIGHT_SPECTRUM")
    assert g.ratio == pytest.approx(np.median(spike_powers(dd[0], a[:, 0], w[:, 0])[0]) / CHI2_MEDIAN, rel=1e-6)
