"""Flux density of a calibrator at a frequency and date from its measurement history, as analysisUtils' getALMAFlux.

The algorithm (DOMAIN.md §6.1, analysisUtils ``getALMAFlux``/``getALMASpectralIndex``,
behaviour of the Cycle 6+ versions as their printed output shows it):

1. In the low band (3) and the high band (7; 6 when the source has no Band 7
   measurement) take the measurements of the day closest to the date (past or
   future; a tie goes to the past).  Age = date − measurement day (positive: before).
2. Spectral index, by *pairing*:

   * ``closest`` (default): within ``daywindow`` (1800) days of the date, pair every
     low-band day with the nearest high-band measurement; keep the pairs with the
     smallest separation, and of those the one whose low-band age is closest to the
     date (a tie goes to the later day, as analysisUtils' ``argmin`` over ascending ages);
   * ``mean``: every pair with that smallest separation, each fitted, combined by the
     inverse-variance weighted mean, with the scaled median absolute deviation as its
     uncertainty when there is more than one pair;
   * ``contemporaneous``: the closest measurements of step 1 themselves.

   Each fit is a weighted least-squares line through log10(S) against
   log10(ν/GHz) − mean(log10 ν/GHz), each point weighted by 1/σ² with
   σ = σ_S / (S ln 10), the error of log10 S; its covariance is (AᵀWA)⁻¹.  Two points
   give the exact slope ln(S2/S1)/ln(ν2/ν1).
3. Reference: the mean of the step-1 low-band fluxes at their mean frequency (Cycle 6+).
   S(ν) = S_ref (ν/ν_ref)^α.
4. Uncertainty: Monte Carlo — (intercept, slope) drawn from the fit's multivariate normal,
   the line evaluated at ν; the median of the draws is ``monteCarloFluxDensity`` and the
   standard deviation of the draws below median + 6·MAD is ``fluxDensityUncertainty``.
   The draws are seeded: the same standard normal deviates serve every request (common
   random numbers), so a result never depends on what else is estimated with it.
5. With only one band measured: the default spectral index (−0.7 ± 0.2), no Monte Carlo;
   the uncertainty combines the reference's and the index's in quadrature (analysisUtils
   leaves the index's out).

Warnings follow analysisUtils (mean age or band separation above 14 days, α > 0) plus
dates outside the monitoring and fall-backs.  :class:`Estimator` does many requests at
once: closest days and pairing are array operations per source, the fits are solved
together in closed form and the Monte Carlo is one array operation per block of requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .catalogue import Catalogue, Source, UnknownSource
from .dates import mjd_to_iso

__all__ = ["Estimator", "EstimateOptions", "fit_power_law", "power_law", "PAIRINGS", "MAD_SCALE"]

PAIRINGS = ("closest", "contemporaneous", "mean")
#: median absolute deviation → standard deviation for a normal distribution (analysisUtils' c = 0.6745)
MAD_SCALE = 0.6745
LN10 = math.log(10.0)
_BLOCK = 128  # requests per Monte Carlo block: bounds memory to BLOCK x trials doubles per array


@dataclass(frozen=True)
class EstimateOptions:
    """How to estimate; defaults are analysisUtils'."""

    lowband: int = 3
    highband: int = 7
    pairing: str = "closest"
    daywindow: int = 1800
    separation_threshold: float = 14.0
    default_spix: float = -0.7
    default_spix_error: float = 0.2
    max_sensible_spix: float = 0.0
    trials: int = 10000
    seed: int = 0


def power_law(flux_ref, freq_ref, alpha, freq):
    """S(ν) = S_ref (ν/ν_ref)^α (any consistent frequency unit)."""
    return np.asarray(flux_ref) * (np.asarray(freq) / np.asarray(freq_ref)) ** np.asarray(alpha)


def fit_power_law(freq_hz, flux, error, mask=None):
    """Weighted least-squares fits of log10 S = b + α (log10 ν/GHz − x̄), many at once.

    Arrays are (n_fits, n_points); *mask* marks the points each fit uses (padding is False).
    Returns ``(b, alpha, cov, xbar)``: intercepts, slopes, covariance matrices (n, 2, 2) of
    (b, α) from the stated errors, and the unweighted mean of log10 ν/GHz of each fit.
    """
    f, s, e = (np.atleast_2d(np.asarray(a, dtype=float)) for a in (freq_hz, flux, error))
    m = np.ones(f.shape, bool) if mask is None else np.atleast_2d(mask)
    x = np.where(m, np.log10(np.where(m, f, 1.0) / 1e9), 0.0)
    n = m.sum(axis=1)
    xbar = x.sum(axis=1) / n
    x = np.where(m, x - xbar[:, None], 0.0)
    y = np.where(m, np.log10(np.where(m, s, 1.0)), 0.0)
    w = np.where(m, (np.where(m, s, 1.0) * LN10 / np.where(m, e, 1.0)) ** 2, 0.0)
    sw, swx, swxx = w.sum(1), (w * x).sum(1), (w * x * x).sum(1)
    swy, swxy = (w * y).sum(1), (w * x * y).sum(1)
    det = sw * swxx - swx ** 2
    b = (swxx * swy - swx * swxy) / det
    alpha = (sw * swxy - swx * swy) / det
    cov = np.empty((len(sw), 2, 2))
    cov[:, 0, 0], cov[:, 1, 1] = swxx / det, sw / det
    cov[:, 0, 1] = cov[:, 1, 0] = -swx / det
    return b, alpha, cov, xbar


def _row_medians(a: np.ndarray) -> np.ndarray:
    """The median of each row, as numpy.median computes it, partitioning *a* in place (no copy)."""
    n = a.shape[1]
    mid = n // 2
    kth = [mid - 1, mid] if n % 2 == 0 else [mid]
    a.partition(kth, axis=1)
    return a[:, kth].astype(np.float64).mean(axis=1)


def _mad(values: np.ndarray) -> float:
    return float(np.median(np.abs(values - np.median(values))) / MAD_SCALE)


class _Days:
    """A source's measurements in one band grouped by day: unique days and their index ranges."""

    def __init__(self, source: Source, band: int):
        idx = source.in_band(band)
        self.idx = idx  # measurement indices, sorted by day (then frequency, descending)
        self.days, self.start, self.count = np.unique(source.day[idx], return_index=True, return_counts=True)

    def __len__(self):
        return len(self.days)

    def members(self, k: int) -> np.ndarray:
        return self.idx[self.start[k]:self.start[k] + self.count[k]]

    def mean(self, values: np.ndarray) -> np.ndarray:
        """The mean of *values* over each day's measurements (one number per day)."""
        return np.add.reduceat(values[self.idx], self.start) / self.count if len(self) else np.empty(0)

    def closest(self, t: np.ndarray) -> np.ndarray:
        """Index of the day closest to each t (tie: the earlier day); -1 when the band is empty."""
        if not len(self):
            return np.full(t.shape, -1)
        i = np.searchsorted(self.days, t, side="right")
        past, future = np.clip(i - 1, 0, len(self) - 1), np.clip(i, 0, len(self) - 1)
        d_past = np.where(i > 0, t - self.days[past], np.inf)
        d_future = np.where(i < len(self), self.days[future] - t, np.inf)
        return np.where(d_past <= d_future, past, future)


class Estimator:
    """Estimates from one :class:`~.catalogue.Catalogue` with one set of :class:`EstimateOptions`."""

    def __init__(self, catalogue: Catalogue, options: EstimateOptions = EstimateOptions()):
        if options.pairing not in PAIRINGS:
            raise ValueError(f"pairing must be one of {PAIRINGS}, not {options.pairing!r}")
        self.catalogue, self.opt = catalogue, options
        z = np.random.default_rng(options.seed).standard_normal((2, max(int(options.trials), 1)))
        self._z = z  # the common random numbers of every Monte Carlo
        self._z32 = z.astype(np.float32)
        self._assumed: dict[str, set] = {}

    # ------------------------------------------------------------------------------ public
    def estimate(self, requests) -> list[dict]:
        """One result dict per ``(name, freq_hz, mjd)`` request, in order.

        An unknown name gives ``{"error": ..., "close_names": [...]}`` in its place.
        """
        requests = list(requests)
        out: list = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, (name, _, _) in enumerate(requests):
            try:
                source = self.catalogue.find(name)
            except UnknownSource as exc:
                exc = self.catalogue.unknown.get(name, exc)  # the service's answer names closer names
                out[i] = {"source": name, "error": str(exc), "close_names": exc.close}
                continue
            groups.setdefault(source.name, []).append(i)
        for name, idx in groups.items():
            source = self.catalogue.sources[name]
            freq = np.array([float(requests[i][1]) for i in idx])
            mjd = np.array([float(requests[i][2]) for i in idx])
            for i, result in zip(idx, self._estimate_source(source, freq, mjd)):
                result["source"] = requests[i][0]
                out[i] = result
        return out

    # ------------------------------------------------------------------------------ per source
    def _bands(self, source: Source) -> tuple[int, int]:
        high = self.opt.highband
        if high == 7 and not len(source.in_band(7)) and len(source.in_band(6)):
            high = 6  # grid sources are monitored in Band 3 and Band 6 or 7
        return self.opt.lowband, high

    def _estimate_source(self, source: Source, freq: np.ndarray, mjd: np.ndarray) -> list[dict]:
        lowband, highband = self._bands(source)
        low, high = _Days(source, lowband), _Days(source, highband)
        t = np.floor(mjd)
        k_low, k_high = low.closest(t), high.closest(t)
        results = [self._base(source, freq[r], mjd[r], lowband, highband) for r in range(len(t))]
        if not len(low) and not len(high):
            for res in results:
                res["error"] = (f"{source.name} has no Band {lowband} or Band {highband} measurement in the catalogue "
                                f"({len(source)} measurement(s) in other bands)")
            return results
        for r, res in enumerate(results):
            res["closest"] = {}
            for band, days, k in ((lowband, low, k_low[r]), (highband, high, k_high[r])):
                if k >= 0:
                    res["closest"][str(band)] = [_measurement(source, j, t[r]) for j in days.members(k)]
        if not len(low) or not len(high):
            self._one_band(source, results, low if len(low) else high, k_low if len(low) else k_high, t, freq,
                           missing=highband if len(low) else lowband)
        else:
            jobs = self._pairing_jobs(source, low, high, k_low, k_high, t, results)
            self._fit_and_combine(source, jobs, results, low, k_low, t, freq)
        for r, res in enumerate(results):
            self._warn(source, res, t[r])
        return results

    def _base(self, source, freq, mjd, lowband, highband) -> dict:
        return {"catalogue_name": source.name, "frequency_hz": float(freq), "mjd": float(mjd),
                "date": mjd_to_iso(mjd), "lowband": lowband, "highband": highband, "pairing": self.opt.pairing,
                "method": "getalmaflux", "warnings": [], "pairs": []}

    # ------------------------------------------------------------------------------ pairing
    def _pairing_jobs(self, source, low: _Days, high: _Days, k_low, k_high, t, results) -> list[list]:
        """For each request, the fits to make: lists of (low measurement indices, high measurement indices)."""
        jobs: list[list] = [[] for _ in t]
        if self.opt.pairing == "contemporaneous":
            for r in range(len(t)):
                jobs[r] = [(low.members(k_low[r]), high.members(k_high[r]))]
                results[r]["spectralIndexPairing"] = "contemporaneous"
            return jobs
        W = self.opt.daywindow
        L, H = low.days.astype(float), high.days.astype(float)
        # the nearest high-band day on each side of each low-band day (the same day counts as before)
        j = np.searchsorted(H, L, side="right")
        prev = np.where(j > 0, H[np.clip(j - 1, 0, len(H) - 1)], -np.inf)
        nxt = np.where(j < len(H), H[np.clip(j, 0, len(H) - 1)], np.inf)
        # within the window around the date, the nearest high day to a (windowed) low day is the
        # nearest one on a side whose nearest day still lies inside the window
        tt = t[:, None]
        in_window = np.abs(tt - L[None, :]) <= W
        ok_prev = prev[None, :] >= tt - W
        ok_next = nxt[None, :] <= tt + W
        d_prev = np.where(ok_prev, L - prev, np.inf)
        d_next = np.where(ok_next, nxt - L, np.inf)
        sep = np.where(in_window, np.minimum(d_prev, d_next), np.inf)
        min_sep = sep.min(axis=1)
        for r in range(len(t)):
            if not np.isfinite(min_sep[r]):
                results[r]["warnings"].append(
                    f"no Band {results[r]['lowband']}/{results[r]['highband']} measurement pair within "
                    f"{W} days of the date: the spectral index comes from the closest measurements instead")
                results[r]["spectralIndexPairing"] = "contemporaneous (fallback)"
                jobs[r] = [(low.members(k_low[r]), high.members(k_high[r]))]
                continue
            cand = np.flatnonzero(sep[r] == min_sep[r])
            if self.opt.pairing == "closest":
                ages = t[r] - L[cand]
                best = np.flatnonzero(np.abs(ages) == np.abs(ages).min())
                cand = cand[[best[np.argmin(ages[best])]]]  # a tie goes to the later day (smaller age)
            results[r]["spectralIndexPairing"] = self.opt.pairing
            for c in cand:
                highs = []
                for side_ok, day in ((d_prev[r, c] == min_sep[r], prev[c]), (d_next[r, c] == min_sep[r], nxt[c])):
                    if side_ok and day not in highs:
                        highs.append(day)
                highs.sort(key=lambda d: (abs(t[r] - d), d))  # analysisUtils' order: closest to the date first
                for day in highs if self.opt.pairing == "mean" else highs[:1]:
                    kh = int(np.searchsorted(high.days, day))
                    members = high.members(kh)  # same day: highest frequency first
                    for m in members if self.opt.pairing == "mean" else members[:1]:
                        jobs[r].append((low.members(c), np.array([m])))
        return jobs

    # ------------------------------------------------------------------------------ fits
    def _fit_and_combine(self, source, jobs, results, low: _Days, k_low, t, freq) -> None:
        flat = [(r, lo, hi) for r, js in enumerate(jobs) for lo, hi in js]
        width = max(len(lo) + len(hi) for _, lo, hi in flat)
        idx = np.zeros((len(flat), width), dtype=int)
        mask = np.zeros((len(flat), width), dtype=bool)
        for n, (_, lo, hi) in enumerate(flat):
            pts = np.concatenate([lo, hi])
            idx[n, :len(pts)], mask[n, :len(pts)] = pts, True
        b, alpha, cov, xbar = fit_power_law(source.freq_hz[idx], source.flux[idx], source.error[idx], mask)
        sigma_a, sigma_b = np.sqrt(cov[:, 1, 1]), np.sqrt(cov[:, 0, 0])
        per_request: dict[int, list[int]] = {}
        for n, (r, _, _) in enumerate(flat):
            per_request.setdefault(r, []).append(n)
        n_req = len(results)
        A, SA, B, X = np.empty(n_req), np.empty(n_req), np.empty(n_req), np.empty(n_req)
        C = np.empty((n_req, 2, 2))
        for r, ns in per_request.items():
            if len(ns) == 1:  # closest and contemporaneous: one fit
                n = ns[0]
                A[r], SA[r], B[r], X[r], C[r] = alpha[n], sigma_a[n], b[n], xbar[n], cov[n]
            else:  # mean: inverse-variance weighted, with the scaled MAD of the indices as uncertainty
                ns = np.array(ns)
                A[r] = np.average(alpha[ns], weights=1 / sigma_a[ns] ** 2)
                SA[r] = _mad(alpha[ns])
                wb = 1 / sigma_b[ns] ** 2
                B[r], X[r] = np.average(b[ns], weights=wb), np.average(xbar[ns], weights=wb)
                C[r] = cov[ns].mean(axis=0)
            res = results[r]
            res["pairs"] = [_pair(source, flat[n][1], flat[n][2], t[r], alpha[n], sigma_a[n]) for n in ns]
            seps = [p["separation"] for p in res["pairs"]]
            ages = [p["age"] for p in res["pairs"]]
            res.update(spectralIndexAgeSeparation=float(min(seps)), spectralIndexAgeYoungest=float(min(ages)),
                       spectralIndexAgeOldest=float(max(ages)), spectralIndexNPairs=len(ns))
        s_ref, f_ref = self._reference(source, low, k_low)
        flux = power_law(s_ref, f_ref, A, freq)
        median, std = self._monte_carlo(B, A, C, np.log10(freq / 1e9) - X)
        for r, res in enumerate(results):
            lows = res["closest"][str(res["lowband"])]
            highs = res["closest"][str(res["highband"])]
            low_ages = [m["age"] for m in lows]
            high_ages = [m["age"] for m in highs]
            both = [abs(a) for a in low_ages + high_ages]
            contemporaneous = res["spectralIndexPairing"].startswith("contemporaneous")
            res.update(fluxDensity=float(flux[r]), fluxDensityUncertainty=float(std[r]),
                       monteCarloFluxDensity=float(median[r]), spectralIndex=float(A[r]),
                       spectralIndexUncertainty=float(SA[r]), intercept=float(B[r]), meanOfLogX=float(X[r]),
                       covar=C[r].tolist(), referenceFluxDensity=float(s_ref[r]), referenceFrequency=float(f_ref[r]),
                       ageDifference=abs(sum(low_ages) / len(low_ages) - sum(high_ages) / len(high_ages)),
                       meanAge=sum(both) / len(both) if contemporaneous else sum(low_ages) / len(low_ages))

    def _reference(self, source: Source, days: _Days, k) -> tuple[np.ndarray, np.ndarray]:
        """Cycle 6+: the mean flux of the closest day's measurements, at their mean frequency."""
        return days.mean(source.flux)[k], days.mean(source.freq_hz)[k]

    def _monte_carlo(self, b, a, cov, x) -> tuple[np.ndarray, np.ndarray]:
        """Median and clipped standard deviation of 10^(α_i x + b_i), (b_i, α_i) ~ N((b, α), cov).

        With the Cholesky factor L of cov, log10 y_i = (b + α x) + (L00 + L10 x) z0_i + (L11 x) z1_i:
        two multiply-adds per draw, in float32 (the spread is what matters; 1e-7 is far below it), sums
        in float64.  analysisUtils leaves out draws at or above median + 6 MAD.  One partition gives the
        median and the quartiles, and the quartiles bound the MAD from below: fewer than half the draws
        lie strictly between them, so MAD >= min(median - q25, q75 - median).  When even that bound
        clips nothing (the usual case) no draw is clipped and the MAD need not be computed; otherwise it
        is, exactly, for that request.
        """
        c00, c01, c11 = cov[:, 0, 0], cov[:, 0, 1], cov[:, 1, 1]
        l00 = np.sqrt(c00)
        l10 = c01 / l00
        l11 = np.sqrt(np.maximum(c11 - l10 ** 2, 0.0))
        mu, k0, k1 = b + a * x, l00 + l10 * x, l11 * x
        z0, z1 = self._z32
        n = z0.shape[0]
        mid = n // 2
        q1 = n // 4
        q3 = q1 + n // 2  # at most n//2 - 1 draws lie strictly between positions q1 and q3
        median, std = np.empty(len(b)), np.empty(len(b))
        for s in range(0, len(b), _BLOCK):
            sl = slice(s, s + _BLOCK)
            y = k0[sl, None].astype(np.float32) * z0
            y += k1[sl, None].astype(np.float32) * z1
            y += mu[sl, None].astype(np.float32)
            y *= np.float32(LN10)
            np.exp(y, out=y)
            y.partition([q1, mid, q3], axis=1)
            med = y[:, mid].astype(np.float64)
            if n % 2 == 0:  # the draw just below the middle is the largest of positions q1..mid-1
                med = (med + y[:, q1:mid].max(axis=1)) / 2
            mad_floor = np.minimum(med - y[:, q1], y[:, q3] - med) / MAD_SCALE
            mean = y.mean(axis=1).astype(np.float64)  # float32, pairwise summation: ~1e-7 relative
            var = y.var(axis=1).astype(np.float64)
            for r in np.flatnonzero(y[:, q3:].max(axis=1) >= med + 6 * mad_floor):
                row = y[r]
                dev = np.abs(row - np.float32(med[r]))
                keep = row < med[r] + 6 * _row_medians(dev[None, :])[0] / MAD_SCALE
                mean[r] = row[keep].mean()
                var[r] = row[keep].var()
            median[sl], std[sl] = med, np.sqrt(var)
        return median, std

    def _one_band(self, source, results, days: _Days, k, t, freq, missing: int) -> None:
        """Only one band measured: the default spectral index, uncertainties in quadrature, no Monte Carlo."""
        a, sa = self.opt.default_spix, self.opt.default_spix_error
        for r, res in enumerate(results):
            m = days.members(k[r])
            s_ref, f_ref = source.flux[m].mean(), source.freq_hz[m].mean()
            s_err = math.sqrt(float((source.error[m] ** 2).sum())) / len(m)
            flux = float(power_law(s_ref, f_ref, a, freq[r]))
            ratio = math.log(freq[r] / f_ref)
            unc = flux * math.hypot(s_err / s_ref, ratio * sa)
            ages = [float(t[r] - source.day[j]) for j in m]
            res.update(fluxDensity=flux, fluxDensityUncertainty=unc, monteCarloFluxDensity=flux, spectralIndex=a,
                       spectralIndexUncertainty=sa, intercept=math.log10(flux), meanOfLogX=math.log10(f_ref / 1e9),
                       covar=None, referenceFluxDensity=float(s_ref), referenceFrequency=float(f_ref),
                       ageDifference=0.0, meanAge=float(np.mean(ages)), spectralIndexPairing="default",
                       spectralIndexNPairs=0)
            res["warnings"].append(f"{source.name} has no Band {missing} measurement: spectral index "
                                   f"{a:+.2f} ± {sa:.2f} assumed (default), no Monte Carlo")

    # ------------------------------------------------------------------------------ warnings
    def _warn(self, source: Source, res: dict, t: float) -> None:
        if "fluxDensity" not in res:
            return
        o = self.opt
        w = res["warnings"]
        if res["meanAge"] > o.separation_threshold:
            w.append(f"the mean time separation between the date and the flux monitoring measurements used is "
                     f"{res['meanAge']:.0f} days")
        if res["spectralIndexPairing"].startswith("contemporaneous") and res["ageDifference"] > o.separation_threshold:
            w.append(f"the Band {res['lowband']} and Band {res['highband']} measurements are "
                     f"{res['ageDifference']:.0f} days apart")
        if res["spectralIndex"] > o.max_sensible_spix:
            w.append(f"the spectral index of {res['spectralIndex']:+.2f} is unusual for a quasar: there may be a "
                     "problem with the flux monitoring data")
        first, last = source.day.min(), source.day.max()
        if t < first - o.separation_threshold:
            w.append(f"the date is {first - t:.0f} days before the first measurement of {source.name} "
                     f"({mjd_to_iso(first)}): outside the monitoring")
        elif t > last + o.separation_threshold:
            w.append(f"the date is {t - last:.0f} days after the last measurement of {source.name} "
                     f"({mjd_to_iso(last)}): outside the monitoring")
        used = [m for ms in res["closest"].values() for m in ms] + \
            [{"date": d, "frequency_hz": f} for p in res["pairs"] for d, f in
             zip([p["low_date"]] * (len(p["frequencies_hz"]) - 1) + [p["high_date"]], p["frequencies_hz"])]
        if source.name not in self._assumed:
            self._assumed[source.name] = _assumed(source)
        assumed = {(m["date"], m["frequency_hz"]) for m in used} & self._assumed[source.name]
        if assumed:
            w.append(f"{len(assumed)} measurement(s) used have no uncertainty in the catalogue: 10 % assumed "
                     f"({', '.join(f'{d} {f / 1e9:.2f} GHz' for d, f in sorted(assumed))})")


def _assumed(source: Source) -> set:
    """(date, frequency) of the source's measurements whose uncertainty was assumed."""
    idx = np.flatnonzero(source.assumed) if source.assumed is not None else []
    return {(mjd_to_iso(source.day[j]), float(source.freq_hz[j])) for j in idx}


def _ingested(source: Source, j) -> str | None:
    return mjd_to_iso(source.ingested[j]) if np.isfinite(source.ingested[j]) else None


def _measurement(source: Source, j: int, t: float) -> dict:
    return {"date": mjd_to_iso(source.day[j]), "age": float(t - source.day[j]), "frequency_hz": float(source.freq_hz[j]),
            "flux": float(source.flux[j]), "error": float(source.error[j]), "band": int(source.band[j]),
            "ingested": _ingested(source, j)}


def _pair(source: Source, lo, hi, t, alpha, sigma) -> dict:
    d_low, d_high = float(source.day[lo[0]]), float(source.day[hi[0]])
    pts = np.concatenate([lo, hi])
    return {"low_date": mjd_to_iso(d_low), "high_date": mjd_to_iso(d_high), "separation": abs(d_high - d_low),
            "age": t - (d_low + d_high) / 2, "frequencies_hz": source.freq_hz[pts].tolist(),
            "fluxes": source.flux[pts].tolist(), "errors": source.error[pts].tolist(),
            "ingested": [_ingested(source, j) for j in pts],
            "spectralIndex": float(alpha), "spectralIndexUncertainty": float(sigma)}
