"""What a Member OUS contains: readers of the files ALMA delivers, shared by every task.

One place parses each delivery format, so tasks never re-parse files their own way:

* :mod:`.tree` — where things are in a delivered Member OUS (:class:`MemberOUS`);
* :mod:`.textfile` — safe text reading (regular files only, bounded, any encoding, tar members);
* :mod:`.fluxcsv` — the pipeline's flux.csv, every historical format, and writing it back;
* :mod:`.scripts` — ``setjy`` calls in manual calibration scripts;
* :mod:`.fluxscale` — fluxscale and setjy results in QA2 text files and CASA logs;
* :mod:`.listobs` — CASA listobs summaries (observation dates, fields and intents, spws);
* :mod:`.aqua` — the pipeline's AQUA report (stage and topic scores with their messages, image
  sensitivities, flux measurements), both stage layouts;
* :mod:`.products` — product names (target, intent, spws, spectral mode, kind) and missing companions;
* :mod:`.readme` — the README's QA2 status and notes;
* :mod:`.qa2text` — QA2 text files (spw and execution-block tables, RMS and beam at the representative
  frequency, fluxscale results), manual and report generations;
* :mod:`.fluxes` — :class:`CalibratorFlux`, the record every flux reader returns.

Readers take text and a label (the file, or ``archive.tgz:member``) and name the label
and line in every problem they report.  Nothing here imports CASA.
"""

from .aqua import AquaReport, read_aqua
from .fluxcsv import FluxCsv, read_fluxcsv
from .fluxes import MEASURED, MODEL, CalibratorFlux
from .fluxscale import FluxscaleText, read_fluxscale_text
from .listobs import Listobs, read_listobs
from .products import Product, missing_companions, parse_product_name
from .qa2text import Qa2Text, read_qa2_text
from .readme import Readme, read_readme
from .scripts import SetjyCall, header_intents, setjy_calls, setjy_fluxes
from .textfile import DeliveryError, TextFile, read_text, tar_texts
from .tree import MemberOUS

__all__ = ["AquaReport", "CalibratorFlux", "DeliveryError", "FluxCsv", "FluxscaleText", "Listobs", "MEASURED",
           "MODEL", "MemberOUS", "Product", "Qa2Text", "Readme", "SetjyCall", "TextFile", "missing_companions",
           "parse_product_name", "read_aqua", "read_fluxcsv", "read_fluxscale_text", "read_listobs", "read_qa2_text",
           "read_readme", "read_text", "header_intents", "setjy_calls", "setjy_fluxes", "tar_texts"]
