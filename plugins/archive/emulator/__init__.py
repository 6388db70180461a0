"""The local ALMA Science Archive emulator: real TAP (GAVO DaCHS), DataLink and dataPortal (nginx).

Used by the archive tests, the demo and the benchmark; never contacts the internet.
"""

from .catalog import MOUSES, RECORDED_MOUS, uid_path
from .faults import Fault, FaultProxy
from .server import ArchiveEmulator, EmulatorUnavailable, emulator_available

__all__ = ["ArchiveEmulator", "EmulatorUnavailable", "emulator_available", "Fault", "FaultProxy", "MOUSES",
           "RECORDED_MOUS", "uid_path"]
