"""Long fuzz run:  python benchmarks/fuzz.py [-k EXPR] [--examples N]

Runs every test marked ``fuzz`` with the hypothesis profile ``fuzz``
(10,000 generated inputs per test unless ``--examples`` says otherwise),
then the parsers' linear-time check (``benchmarks/bench_parsers.py``).
CI runs the same tests with the small, fixed ``ci`` budget; this run is
for before a release or after changing a parser.  Exit status: non-zero
when any generated input raised something other than the package's own
documented errors, or a parser's time grew faster than linearly.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", default="", help="pytest -k expression to run only some fuzz tests")
    parser.add_argument("--examples", type=int, default=0, help="inputs per test (default: the profile's 10,000)")
    args = parser.parse_args(argv)
    env = dict(os.environ, ALMATOOLS_HYPOTHESIS_PROFILE="fuzz")
    if args.examples:
        env["ALMATOOLS_FUZZ_EXAMPLES"] = str(args.examples)
    cmd = [sys.executable, "-m", "pytest", "-m", "fuzz", "-q", "-p", "no:cacheprovider",
           "--hypothesis-show-statistics", *(["-k", args.k] if args.k else [])]
    print("fuzz:", " ".join(cmd), flush=True)
    status = subprocess.run(cmd, cwd=ROOT, env=env).returncode
    linear = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "parsers"], cwd=ROOT).returncode
    return status or linear


if __name__ == "__main__":
    sys.exit(main())
