"""ALMA receiver bands: frequency ranges and the flux-scale accuracy ALMA states for each.

Ranges are the receivers' RF coverage (ALMA Technical Handbook, ch. 4); the accuracy
is the Technical Handbook's / primer's statement: better than 5 % in Bands 3–5, 10 % in
Bands 6–8, 20 % in Bands 9–10 (DOMAIN.md §11).  Bands 1 and 2 are given Bands 3–5's
figure (ALMA has not stated one for them); results say which figure was used.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BANDS", "band_of", "band_array", "flux_accuracy"]

#: band → (lowest, highest) frequency, GHz
BANDS = {1: (35.0, 50.0), 2: (67.0, 90.0), 3: (84.0, 116.0), 4: (125.0, 163.0), 5: (158.0, 211.0),
         6: (211.0, 275.0), 7: (275.0, 373.0), 8: (385.0, 500.0), 9: (602.0, 720.0), 10: (787.0, 950.0)}
_ACCURACY = {1: 0.05, 2: 0.05, 3: 0.05, 4: 0.05, 5: 0.05, 6: 0.10, 7: 0.10, 8: 0.10, 9: 0.20, 10: 0.20}
# where bands overlap (2/3, 4/5), the higher-numbered band's lower edge decides
_EDGES = sorted((lo, b) for b, (lo, _) in BANDS.items())


def band_of(freq_hz: float) -> int | None:
    """The ALMA band that covers *freq_hz* (the higher band where two overlap); None outside all bands."""
    return int(band_array(np.array([float(freq_hz)]))[0]) or None


def band_array(freq_hz: np.ndarray) -> np.ndarray:
    """:func:`band_of` for an array (0 where no band covers the frequency)."""
    ghz = np.asarray(freq_hz, dtype=float) / 1e9
    out = np.zeros(ghz.shape, dtype=int)
    for lo, b in _EDGES:
        hi = BANDS[b][1]
        out[(ghz >= lo) & (ghz <= hi)] = b
    return out


def flux_accuracy(band: int | None) -> float | None:
    """ALMA's stated flux-scale accuracy (fraction) in *band*; None outside the ALMA bands."""
    return _ACCURACY.get(band) if band else None
