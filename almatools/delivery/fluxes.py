"""One calibrator flux density found in a delivery, whatever file it came from.

Readers of flux.csv, manual calibration scripts (``setjy``), QA2 text files
(``fluxscale`` results) and AQUA reports (``hifa_importdata``/``hifa_gfluxscale``)
all return :class:`CalibratorFlux` records, so a task compares them without
knowing the file formats.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["CalibratorFlux", "MODEL", "MEASURED"]

#: the flux density the calibration *assumed* (setjy model, flux.csv, the pipeline's imported values)
MODEL = "model"
#: a flux density *derived* from the data by transferring the flux scale (fluxscale, hifa_gfluxscale)
MEASURED = "measured"


@dataclass
class CalibratorFlux:
    """A Stokes I flux density of a calibrator in one spectral window (or at one reference frequency).

    :param field: field (source) name; ``""`` when only the index is known.
    :param field_id: field index in its MS as written in the file (``""`` if not given).
    :param spw: spectral window id in its MS (``""``: all spws of the call).
    :param flux_jy: Stokes I flux density, Jy.
    :param error_jy: its uncertainty, Jy (None if not given).
    :param freq_hz: the frequency the value applies at, Hz (None when the file does not say).
    :param spix: spectral index given with it (None if not given).
    :param ms: the MS (or execution block) it belongs to.
    :param kind: :data:`MODEL` or :data:`MEASURED`.
    :param origin: where the value came from (``flux.csv origin=DB``, ``setjy standard=manual``,
        ``fluxscale``, ``hifa_gfluxscale``, ``hifa_importdata``).
    :param intents: the field's intents when the file gives them (``AMPLITUDE``, ``BANDPASS`` ...).
    :param where: ``file:line`` it was read from.
    :param extra: anything else the file says (``age``, ``queried_at``, ``standard``, ``snr`` ...).
    """

    field: str
    field_id: str
    spw: str
    flux_jy: float
    error_jy: float | None
    freq_hz: float | None
    spix: float | None
    ms: str
    kind: str
    origin: str
    intents: tuple = ()
    where: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["intents"] = list(self.intents)
        return d
