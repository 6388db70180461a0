"""``python -m almatools.plugins.archive.emulator ROOT [--rate 20m]``: run the emulator until Ctrl-C."""

import argparse
import time

from .server import ArchiveEmulator

parser = argparse.ArgumentParser(prog="python -m almatools.plugins.archive.emulator", description=__doc__)
parser.add_argument("root", help="working directory for the emulator's files")
parser.add_argument("--rate", default="0", help="nginx limit_rate per connection, e.g. 20m (0: unlimited)")
args = parser.parse_args()
with ArchiveEmulator(args.root, rate=args.rate) as emu:
    print(f"archive emulator: {emu.url}  (TAP {emu.url}/tap; with faults: {emu.faulty_url})", flush=True)
    print(f"proprietary data: user {emu.username}, password in this process only", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
